"""LatentSync 1.6 through the worker protocol (lipbench.models.latentsync).

The adapter's declarations run everywhere. The rest runs inside LatentSync's own
environment against upstream's own code, and skips where that environment is absent:
set LIPBENCH_LATENTSYNC_PYTHON (its interpreter; build it with
`python -m lipbench.models.latentsync.env --dest DIR --checkout DIR`) and
LIPBENCH_LATENTSYNC_CHECKOUT (bytedance/LatentSync at a229c39). Both runs use a tiny
random-weight UNet of stage2_512.yaml's structure on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lipbench.errors import UsageError
from lipbench.models.latentsync import adapter as ls_adapter
from lipbench.models.latentsync.adapter import LatentSync
from lipbench.rundir import RunDir
from lipbench.runner import generate
from tests.helpers import fixture_maker
from tests.test_runner import make_config

REPO = Path(__file__).resolve().parents[1]
FACE_FIXTURES, face_maker = fixture_maker("lipforcing_faces")  # seeded stand-ins of buffalo_l's two networks


def fake_checkout(root: Path) -> Path:
    (root / "latentsync" / "pipelines").mkdir(parents=True)
    (root / "latentsync" / "pipelines" / "lipsync_pipeline.py").write_text("")
    return root


@pytest.fixture(scope="module")
def latentsync_env():
    """(LatentSync's interpreter, its checkout), or a skip saying what is missing."""
    python = os.environ.get(ls_adapter.PYTHON_ENV)
    checkout = os.environ.get(ls_adapter.CHECKOUT_ENV)
    build = f"(build it with: {ls_adapter.BUILD_HINT})"
    if not python:
        pytest.skip(f"LatentSync's environment not given: {ls_adapter.PYTHON_ENV} is unset {build}")
    if not (Path(python).is_file() and os.access(python, os.X_OK)):
        pytest.skip(f"{ls_adapter.PYTHON_ENV}={python} is not an executable file {build}")
    if not checkout or not (Path(checkout) / "latentsync" / "pipelines" / "lipsync_pipeline.py").is_file():
        pytest.skip(
            f"LatentSync checkout not found: {ls_adapter.CHECKOUT_ENV}={checkout!r} "
            "(a checkout of bytedance/LatentSync a229c39)"
        )
    return python, checkout


def test_the_adapter_declares_upstream_shape(tmp_path, monkeypatch):
    checkout = fake_checkout(tmp_path / "LatentSync")
    monkeypatch.setenv(ls_adapter.PYTHON_ENV, sys.executable)
    monkeypatch.setenv(ls_adapter.CHECKOUT_ENV, str(checkout))
    model = LatentSync(random_weights=True, faces="fixed")
    assert (model.causal, model.chunk_frames, model.dtype) == (True, (16,), "fp16")
    assert model.parameters == LatentSync.parameters == 1_267_099_844
    assert model.forward_passes_first_chunk == model.forward_passes_per_chunk == 41  # 20 steps x 2 (CFG) + VAE
    assert model.weight_files() == {}
    assert model.args == {
        "checkout": str(checkout.resolve()),
        "causal": True,
        "steps": 20,
        "guidance": 1.5,
        "seed": 1247,
        "size": "real",
        "random_weights": True,
        "faces": "fixed",
    }
    assert model.path == [str(Path(ls_adapter.__file__).resolve().parent), str(checkout.resolve())]
    whole = LatentSync(causal=False, steps=10, guidance=1.0, random_weights=True, faces="fixed")
    assert (whole.causal, whole.chunk_frames, whole.forward_passes_first_chunk) == (False, (), 11)
    assert whole.describe()["steps"] == 10


def test_what_is_missing_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv(ls_adapter.PYTHON_ENV, raising=False)
    monkeypatch.delenv(ls_adapter.CHECKOUT_ENV, raising=False)
    with pytest.raises(UsageError, match="LIPBENCH_LATENTSYNC_PYTHON.*latentsync.env"):
        LatentSync()
    with pytest.raises(UsageError, match="LIPBENCH_LATENTSYNC_CHECKOUT"):
        LatentSync(python=sys.executable)
    with pytest.raises(UsageError, match="not a LatentSync checkout"):
        LatentSync(python=sys.executable, checkout=str(tmp_path))
    from lipbench.weights import MissingWeightError

    model = LatentSync(
        python=sys.executable,
        checkout=str(fake_checkout(tmp_path / "ls")),
        random_weights=True,
        weights_dir=str(tmp_path / "weights"),
    )
    with pytest.raises(MissingWeightError, match="det_10g.onnx"):
        model.weight_files()


def test_weight_files_name_upstream_sources():
    from lipbench.models.latentsync.weights import WEIGHT_FILES

    by_name = {w.name: w for w in WEIGHT_FILES}
    assert set(by_name) == {
        "latentsync_unet.pt",
        "whisper/tiny.pt",
        "sd-vae-ft-mse/config.json",
        "sd-vae-ft-mse/diffusion_pytorch_model.safetensors",
    }
    assert by_name["latentsync_unet.pt"].url.endswith("ByteDance/LatentSync-1.6/resolve/main/latentsync_unet.pt")
    assert by_name["latentsync_unet.pt"].large and all("latentsync" in w.needed_by for w in WEIGHT_FILES)


def test_env_pins_follow_upstream_requirements(tmp_path):
    from lipbench.models.latentsync import env

    pins = dict(p.split("==") for p in env.PINS + env.SDIST)
    assert pins["torch"] == "2.5.1" and pins["torchvision"] == "0.20.1" and pins["diffusers"] == "0.32.2"
    assert pins["transformers"] == "4.48.0" and pins["insightface"] == "0.7.3" and pins["numpy"] == "1.26.4"
    with pytest.raises(env.EnvError, match="not a LatentSync checkout"):
        env.create_env(tmp_path / "env", tmp_path)  # checked before anything is built
    assert not (tmp_path / "env").exists()


def test_the_worker_matches_upstream_lipsync_pipeline(latentsync_env, tmp_path):
    """The worker's chunks (causal and whole-clip) against upstream's LipsyncPipeline.__call__
    on the same tiny random weights, inputs and seed, in LatentSync's environment."""
    python, checkout = latentsync_env
    parity = np.load(FACE_FIXTURES / "parity.npz")
    base = face_maker.seeded_frames(face_maker.DETECT_FRAMES, *face_maker.DETECT_FRAME_HW[0], seed=100)
    n = 24
    t = np.arange(int(n / 25 * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    np.savez(
        tmp_path / "inputs.npz",
        frames=base[np.arange(n) % len(base)],
        audio=audio,
        det_frame=base[0],
        det_boxes=parity["det0_boxes"],
        det_landmarks=parity["det0_landmarks"],
    )
    faces = tmp_path / "faces"
    faces.mkdir()
    (faces / "det_10g.onnx").write_bytes((FACE_FIXTURES / "tiny_det.onnx").read_bytes())
    (faces / "2d106det.onnx").write_bytes((FACE_FIXTURES / "tiny_2d106.onnx").read_bytes())
    script = REPO / "lipbench" / "models" / "latentsync" / "upstream_check.py"
    done = subprocess.run(
        [
            python,
            "-I",
            str(script),
            "--checkout",
            checkout,
            "--worker-side",
            str(REPO / "lipbench" / "models" / "worker_side.py"),
            "--inputs",
            str(tmp_path / "inputs.npz"),
            "--face-models",
            str(faces),
            "--out",
            str(tmp_path / "result.json"),
            "--steps",
            "5",
            "--faces",
            "fixed",
            "--other-seed",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    # upstream makes one frame per whisper chunk (26 for 24 frames of audio) and loops the video
    assert result["upstream_frames"] == n + 2 and result["shape"] == [n, *base.shape[1:]]
    assert result["chunks_causal"] == [16, 8] and result["chunks_whole"] == [n]
    assert result["max_abs_causal"] == 0 and result["max_abs_whole"] == 0
    assert result["max_abs_other_seed"] > 20  # while another seed changes the frames
    assert result["changed_pixels"] > 0.05  # the generated face covers a good part of the frame
    assert result["real_unet_parameters"] == LatentSync.parameters
    # the CPU InsightFace the worker builds answers as InsightFace itself (recorded in the fixture)
    assert result["det_count"] == [6, 6]
    assert result["det_boxes_max_abs"] < 1e-3 and result["det_landmarks_max_abs"] < 1e-3


def test_end_to_end_through_the_runner(latentsync_env, tmp_path, monkeypatch):
    from lipbench.data.synthetic import SynthRecipe, synthesize

    python, checkout = latentsync_env
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the worker inherits it: 2-core CI machines
    clips = synthesize(tmp_path / "clips", SynthRecipe(clips=1, frames=20, size=96, seed=5), progress=False)
    args = {
        "python": python,
        "checkout": checkout,
        "size": "tiny",
        "random_weights": True,
        "faces": "fixed",
        "steps": 3,
    }
    config = make_config(
        clips, [{"name": "latentsync", "model": "lipbench.models.latentsync.adapter:LatentSync", "args": args}]
    )
    run = RunDir(tmp_path / "run")
    assert generate(config, clips, run, progress=False) == {"done": 1, "skipped": 0, "failed": 0}
    record = run.read_unit("latentsync", "synth_000")
    assert record["status"] == "ok", record.get("error")
    assert record["chunk_frames"] == [16, 4] and record["timer"] == "worker:perf_counter"
    assert 0 < record["ttff_s"] <= record["total_s"]
    assert {"audio_encode", "faces", "encode", "denoise", "decode", "restore"} <= set(record["stages_s"])


def test_env_create_checks_the_checkout_before_installing_anything(tmp_path, capsys):
    from lipbench.cli import main

    assert (
        main(["env", "create", "latentsync", "--dest", str(tmp_path / "env"), "--checkout", str(tmp_path / "nowhere")])
        == 1
    )
    assert "is not a LatentSync checkout (no latentsync/pipelines/lipsync_pipeline.py)" in capsys.readouterr().err
    assert not (tmp_path / "env").exists()
