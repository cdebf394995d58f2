import os
from pathlib import Path

import pytest

from lipbench.data.synthetic import SynthRecipe, synthesize

REPO = Path(__file__).resolve().parents[1]
HDTF_SAMPLES = REPO.parent / "shared" / "data" / "hdtf_samples"
SAMPLE_NAMES = ["RD_Radio1_000", "RD_Radio33_000", "RD_Radio34_001", "RD_Radio3_000", "RD_Radio50_000"]


def in_ci() -> bool:
    """CI is set (CI=true, as `.ci/run` runs; most CI services set it too)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_shared(path: Path = HDTF_SAMPLES) -> Path:
    """The shared sample data (../shared/data beside the checkout), or a skip where it is
    absent; under CI the data must be there, so its absence fails instead of hiding
    every test that needs it behind a skip. (Other skips, such as an optional package
    not installed, stay skips under CI.)"""
    if not (path / "real").is_dir():
        message = f"shared HDTF samples not found at {path}"
        if in_ci():
            pytest.fail(f"{message}, and CI is set: CI needs the sample data (../shared/data)", pytrace=False)
        pytest.skip(message)
    return path


def require_module(name: str, reason: str):
    """`pytest.importorskip(name)`, except under CI, where the test extras install it: a
    missing module there is an error, not a skip that hides the tests needing it."""
    if in_ci():
        import importlib

        return importlib.import_module(name)
    return pytest.importorskip(name, reason=reason)


@pytest.fixture(scope="session")
def hdtf_samples() -> Path:
    return require_shared(HDTF_SAMPLES)


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory):
    """Two short synthetic clips, made once for the session."""
    return synthesize(tmp_path_factory.mktemp("synth"), SynthRecipe(clips=2, frames=49, seed=7), progress=False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a test module (`pytestmark = pytest.mark.usefixtures(
    "one_torch_thread")`): small networks gain little from two, and on a busy 2-core
    machine two OpenMP threads waiting on each other made such files several times
    slower (test_musetalk.py: 80 s against 13 s measured). Also where a result depends on
    the thread count (torchvision's uint8 resize rounds by thread: test_vbench_imaging.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIPBENCH_CACHE", str(tmp_path / "cache"))
