"""The worker protocol, with a model package served by a second interpreter that cannot
import lipbench (this venv's Python with `-S`: no site-packages; NumPy alone on its path)."""

from pathlib import Path

import numpy as np
import pytest

from lipbench.models.worker import WorkerError, WorkerModel, WorkerModelError
from lipbench.rundir import RunDir
from lipbench.runner import generate
from tests.test_runner import make_config

TOY = str(Path(__file__).parent / "worker_models")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """(the interpreter of a separate virtual environment that has NumPy but not lipbench,
    an extra folder for its path)."""
    import venv

    folder = tmp_path_factory.mktemp("bare")
    venv.create(folder / "env", with_pip=False)
    numpy_home = Path(np.__file__).parent.parent
    deps = folder / "deps"
    deps.mkdir()
    for name in ("numpy", "numpy.libs"):
        if (numpy_home / name).exists():
            (deps / name).symlink_to(numpy_home / name)
    site = next((folder / "env" / "lib").glob("python*/site-packages"))
    (site / "numpy_only.pth").write_text(str(deps) + "\n")
    return str(folder / "env" / "bin" / "python"), str(deps)


def toy(bare_python, timeout_s=30, **args):
    """The `worker` model's args for the toy model with `args`, in the bare interpreter."""
    return {
        "python": bare_python[0],
        "entry": "toy_worker:Toy",
        "path": [TOY],
        "causal": True,
        "chunk_frames": [args.get("chunk", 4)],
        "args": {**args, "isolated": True},
        "timeout_s": timeout_s,
    }


def test_the_worker_interpreter_cannot_import_lipbench(bare_python):
    import subprocess

    python, _ = bare_python
    found = subprocess.run([python, "-I", "-c", "import numpy, lipbench"], capture_output=True, text=True)
    assert found.returncode != 0 and "No module named 'lipbench'" in found.stderr


def test_chunks_and_their_timing_arrive_from_the_worker(bare_python, synth_set):
    model = WorkerModel(**toy(bare_python, chunk=12, delay_s=0.05))
    request = synth_set.clip("synth_000").request()
    model.load("cpu")
    try:
        assert (model.parameters, model.dtype) == (1234, "fp32")  # reported by the worker
        model.prepare(request)
        chunks = list(model.stream(request))
        timing = model.timing(request)
    finally:
        model.close()
    assert model.process is None and model.exchange is None  # worker gone, shared files removed
    np.testing.assert_array_equal(np.concatenate(chunks), request.frames)
    assert [len(c) for c in chunks] == [12, 12, 12, 12, 1] == timing["chunk_frames"]
    assert timing["timer"] == "worker:perf_counter" and timing["n_chunks"] == 5
    # each chunk sleeps 0.05 s in the worker: its clock sees that, and only that, per chunk
    assert timing["ttff_s"] >= 0.05 and timing["total_s"] >= 0.25
    assert timing["stages_s"]["work"] >= 0.25 and len(timing["stage_spans_s"]) == 5
    assert len(timing["transfer_s"]) == 5 and all(t > 0 for t in timing["transfer_s"])
    # lipbench's own clock saw the same stream later: shipping and the interpreter's start included
    assert timing["harness_total_s"] >= timing["total_s"] - 0.01


def test_each_worker_failure_fails_only_its_unit(bare_python, tmp_path):
    from lipbench.data.synthetic import SynthRecipe, synthesize

    clips = synthesize(tmp_path / "clips", SynthRecipe(clips=7, frames=9, size=32, seed=3), progress=False)
    fail = {
        "synth_001": "crash",
        "synth_002": "hang",
        "synth_003": "malformed",
        "synth_004": "short",
        "synth_005": "raise",
    }
    config = make_config(clips, [{"name": "toy", "model": "worker", "args": toy(bare_python, fail=fail, timeout_s=3)}])
    run = RunDir(tmp_path / "run")
    counts = generate(config, clips, run, progress=False)
    assert counts == {"done": 2, "skipped": 0, "failed": 5}
    errors = {clip: run.read_unit("toy", clip) for clip in fail}
    assert all(r["status"] == "error" and r["stage"] == "generate" for r in errors.values())
    assert "exited with code 3" in errors["synth_001"]["error"]
    assert "simulated crash in native code" in errors["synth_001"]["error"]  # the worker's own last words
    assert "sent nothing for 3 s" in errors["synth_002"]["error"]
    assert "malformed chunk: float32" in errors["synth_003"]["error"]
    assert "8 frames, expected 9" in errors["synth_004"]["error"]
    assert "ValueError: simulated model failure" in errors["synth_005"]["error"]
    assert "toy_worker.py" in errors["synth_005"]["error"]  # the worker's traceback
    for clip in ("synth_000", "synth_006"):  # before and after: a fresh worker went on
        record = run.read_unit("toy", clip)
        assert record["status"] == "ok" and record["timer"] == "worker:perf_counter"
        assert record["prepare_s"] is not None and len(record["transfer_s"]) == 3
    assert run.read_unit("toy", "synth_006")["worker_restarts"] == 3  # after the crash, the hang, the bad chunk


def test_a_worker_that_cannot_start_fails_its_units_with_its_error(bare_python, synth_set, tmp_path):
    args = toy(bare_python)
    args["entry"] = "no_such_module:Toy"
    run = RunDir(tmp_path / "run")
    counts = generate(
        make_config(synth_set, [{"name": "toy", "model": "worker", "args": args}]), synth_set, run, progress=False
    )
    assert counts["failed"] == 2
    record = run.read_unit("toy", "synth_000")
    assert record["stage"] == "load" and "No module named 'no_such_module'" in record["error"]


def test_a_missing_interpreter_is_named(tmp_path):
    model = WorkerModel(python=str(tmp_path / "nope"), entry="m:C")
    with pytest.raises(WorkerError, match="nope.*not found"):
        model.load("cpu")


def test_a_model_error_keeps_the_worker(bare_python, synth_set):
    model = WorkerModel(**toy(bare_python, fail={"synth_000": "raise"}))
    model.load("cpu")
    exchange = Path(model.exchange)
    try:
        bad, good = synth_set.clip("synth_000").request(), synth_set.clip("synth_001").request()
        model.prepare(bad)
        pid = model.process.pid
        with pytest.raises(WorkerModelError, match="simulated model failure"):
            list(model.stream(bad))
        model.prepare(good)
        assert len(np.concatenate(list(model.stream(good)))) == good.n_frames
        assert model.process.pid == pid and model.restarts == 0
    finally:
        model.close()
    assert not exchange.exists()


def test_the_unit_timeout_stops_a_hanging_worker_and_the_next_unit_gets_a_fresh_one(bare_python, synth_set, tmp_path):
    args = toy(bare_python, fail={"synth_000": "hang"}, timeout_s=600)
    config = make_config(synth_set, [{"name": "toy", "model": "worker", "args": args}], unit_timeout_s=2)
    run = RunDir(tmp_path / "run")
    assert generate(config, synth_set, run, progress=False) == {"done": 1, "skipped": 0, "failed": 1}
    assert run.read_unit("toy", "synth_000")["stage"] == "timeout"
    assert run.read_unit("toy", "synth_001")["worker_restarts"] == 1


def test_check_adapter_drives_a_worker_model(bare_python, capsys):
    from lipbench.cli import main

    python, _ = bare_python
    assert (
        main(
            [
                "check-adapter",
                "worker",
                "--arg",
                f"python={python}",
                "--arg",
                "entry=toy_worker:Toy",
                "--arg",
                f"path=[{TOY}]",
                "--arg",
                "causal=true",
                "--arg",
                "chunk_frames=[4]",
                "--arg",
                "args={chunk: 4}",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "all checks passed" in out and "chunk sizes: [4, 4, 4, 4, 4, 4, 4, 4, 1] against the declared" in out
    assert "worker transfer:" in out and "s per chunk (outside TTFF and FPS)" in out


def test_the_worker_clock_leaves_out_the_shipping(tmp_path, monkeypatch):
    """Worker side, in this process: with a fake clock where writing a chunk out takes
    100 s and everything else 1 s per clock read, each chunk's arrival advances by a few
    seconds, never by the 100 s of shipping, which is reported as `write_s` instead."""
    import json
    import os
    import types

    from lipbench.models import worker_side

    now = [0.0]

    def perf_counter():
        now[0] += 1.0
        return now[0]

    real_save = np.save

    def slow_save(path, array, allow_pickle=False):
        now[0] += 100.0
        real_save(path, array, allow_pickle=allow_pickle)

    monkeypatch.setattr(worker_side, "time", types.SimpleNamespace(perf_counter=perf_counter))
    monkeypatch.setattr(worker_side.np, "save", slow_save)

    class Echo(worker_side.Model):
        def stream(self, request):
            for start in range(0, request.n_frames, 2):
                with self.stage("work"):
                    pass
                yield request.frames[start : start + 2]

    read_fd, write_fd = os.pipe()
    server = worker_side.Server({"shm_dir": str(tmp_path), "out_fd": write_fd, "entry": "x:y"})
    server.model = Echo()
    frames = np.zeros((6, 4, 4, 3), np.uint8)
    real_save(tmp_path / "f.npy", frames)
    real_save(tmp_path / "a.npy", np.zeros(100, np.float32))
    server.stream(
        {
            "request": {
                "clip_id": "c",
                "frames": str(tmp_path / "f.npy"),
                "audio": str(tmp_path / "a.npy"),
                "audio_rate": 16000,
                "fps": 25.0,
            }
        }
    )
    server.out.close()
    with os.fdopen(read_fd) as answers:
        messages = [json.loads(line) for line in answers]
    chunks = [m for m in messages if m["event"] == "chunk"]
    arrivals = [m["arrival_s"] for m in chunks]
    assert len(chunks) == 3 and all(m["write_s"] >= 100 for m in chunks)
    assert all(0 < b - a < 10 for a, b in zip([0.0] + arrivals, arrivals))
    spans = messages[-1]["stage_spans_s"]
    assert messages[-1]["event"] == "end" and len(spans) == 3 and spans[-1][2] < arrivals[-1]


def test_files_a_worker_reads_are_fingerprinted(bare_python, synth_set, tmp_path, capsys):
    checkpoint = tmp_path / "ckpt.bin"
    checkpoint.write_bytes(b"one")
    args = {**toy(bare_python), "files": {"checkpoint": str(checkpoint)}}
    config = make_config(synth_set, [{"name": "toy", "model": "worker", "args": args}])
    run = RunDir(tmp_path / "run")
    generate(config, synth_set, run, progress=True)
    assert generate(config, synth_set, run, progress=False)["skipped"] == 2
    checkpoint.write_bytes(b"two")
    capsys.readouterr()
    assert generate(config, synth_set, run, progress=True)["done"] == 2
    assert "generate toy: 2 units, weight file checkpoint changed" in capsys.readouterr().out
    checkpoint.unlink()
    assert generate(config, synth_set, run, progress=False)["failed"] == 2
    assert "files not found: checkpoint" in run.read_unit("toy", "synth_000")["error"]


def test_the_live_protocol_paces_the_speech_in_the_worker(bare_python, synth_set):
    """The worker's audio feed follows the request's protocol: live, each chunk waits for
    its speech (12 frames: 0.48 s) on the worker's side, and the read is shipped back."""
    from lipbench.runner import run_stream

    model = WorkerModel(**toy(bare_python, chunk=12, listen=True))
    request = synth_set.clip("synth_000").request()
    model.load("cpu")
    try:
        _, offline = run_stream(model, request, "cpu")
        _, live = run_stream(model, request.live(), "cpu")
    finally:
        model.close()
    assert offline["timing_protocol"] == "offline" and offline["ttff_s"] < 0.48
    assert live["timing_protocol"] == "live" and live["ttff_s"] >= 0.48 - 1e-3
    assert live["audio_read_s"][:2] == [0.48, 0.96] and live["lookahead_s"] == 0.0
