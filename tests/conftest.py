from pathlib import Path

import pytest

from lipbench.data.synthetic import SynthRecipe, synthesize

REPO = Path(__file__).resolve().parents[1]
HDTF_SAMPLES = REPO.parent / "shared" / "data" / "hdtf_samples"
SAMPLE_NAMES = ["RD_Radio1_000", "RD_Radio33_000", "RD_Radio34_001", "RD_Radio3_000", "RD_Radio50_000"]


@pytest.fixture(scope="session")
def hdtf_samples() -> Path:
    if not (HDTF_SAMPLES / "real").is_dir():
        pytest.skip(f"shared HDTF samples not found at {HDTF_SAMPLES}")
    return HDTF_SAMPLES


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory):
    """Two short synthetic clips, made once for the session."""
    return synthesize(tmp_path_factory.mktemp("synth"), SynthRecipe(clips=2, frames=49, seed=7), progress=False)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIPBENCH_CACHE", str(tmp_path / "cache"))
