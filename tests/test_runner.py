import json
import numpy as np
import pytest

from lipbench import io
from lipbench.config import ConfigError, config_from_dict, load_config
from lipbench.models import create
from lipbench.models.base import chunk_bounds
from lipbench.rundir import RunDir
from lipbench.runner import generate
from tests.helpers import Interrupting


def make_config(manifest, models, **extra):
    return config_from_dict(
        {
            "name": "t",
            "data": {"manifest": str(manifest.path)},
            "models": models,
            "metrics": ["psnr"],
            "warmup_clips": 0,
            **extra,
        },
        "test",
    )


def test_chunk_bounds_follow_lip_forcing_shape():
    sizes = [b - a for a, b in chunk_bounds(81, (9, 12))]
    assert sizes == [9, 12, 12, 12, 12, 12, 12]
    assert chunk_bounds(5, ()) == [(0, 5)]


def test_interrupted_sweep_resumes_without_recomputing(synth_set, tmp_path):
    config = make_config(synth_set, ["ground_truth", {"name": "flaky", "model": "tests.helpers:Interrupting"}])
    run = RunDir(tmp_path / "run")
    Interrupting.interrupt_on, Interrupting.calls = "synth_001", []
    with pytest.raises(KeyboardInterrupt):
        generate(config, synth_set, run, progress=False)
    done_before = {p: p.stat().st_mtime_ns for p in (run.root / "units").rglob("*.json")}
    assert len(done_before) == 3  # ground_truth x 2, flaky x synth_000; nothing half-written
    assert not list(run.root.rglob(".*"))  # no temporary files left behind

    Interrupting.interrupt_on, Interrupting.calls = None, []
    counts = generate(config, synth_set, run, progress=False)
    assert counts == {"done": 1, "skipped": 3, "failed": 0}
    assert Interrupting.calls == ["synth_001"]
    assert {p: p.stat().st_mtime_ns for p in done_before} == done_before

    fresh = RunDir(tmp_path / "fresh")
    generate(config, synth_set, fresh, progress=False)
    for model in ("ground_truth", "flaky"):
        for clip in ("synth_000", "synth_001"):
            a, _ = io.read_video(run.video(model, clip))
            b, _ = io.read_video(fresh.video(model, clip))
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, synth_set.clip(clip).frames())


@pytest.mark.parametrize(
    "how, message",
    [
        ("raise", "RuntimeError: simulated model failure"),
        ("short", "48 frames, expected 49"),
        ("float", "frames are float32, expected uint8"),
    ],
)
def test_a_failing_unit_is_recorded_and_the_sweep_goes_on(synth_set, tmp_path, how, message):
    config = make_config(
        synth_set,
        [{"name": "bad", "model": "tests.helpers:FailsOn", "args": {"clip": "synth_000", "how": how}}, "still"],
    )
    run = RunDir(tmp_path / "run")
    counts = generate(config, synth_set, run, progress=False)
    assert counts == {"done": 3, "skipped": 0, "failed": 1}
    record = run.read_unit("bad", "synth_000")
    assert record["status"] == "error" and message in record["error"]
    assert run.read_unit("bad", "synth_001")["status"] == "ok"
    assert not run.video("bad", "synth_000").exists()
    # a rerun retries the failure (and only it)
    assert generate(config, synth_set, run, progress=False)["skipped"] == 3


def test_a_model_that_cannot_load_fails_its_units_only(synth_set, tmp_path):
    config = make_config(synth_set, [{"name": "broken", "model": "tests.helpers:FailsToLoad"}, "ground_truth"])
    run = RunDir(tmp_path / "run")
    counts = generate(config, synth_set, run, progress=False)
    assert counts["failed"] == 2 and counts["done"] == 2
    record = run.read_unit("broken", "synth_000")
    assert record["stage"] == "load" and "checkpoint is corrupt" in record["error"]


def test_streaming_model_timing_rows(synth_set, tmp_path):
    config = make_config(synth_set, [{"name": "sleepy", "model": "tests.helpers:Sleeper"}])
    run = RunDir(tmp_path / "run")
    generate(config, synth_set, run, progress=False)
    row = json.loads(run.unit("sleepy", "synth_000").read_text())
    assert row["n_chunks"] == 13 and row["chunk_frames"][0] == 4
    assert row["ttff_s"] < row["total_s"] and row["fps"] < 4 / 0.02
    assert row["device"] == "cpu" and row["model_info"]["causal"] is True


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown keys \\['modles'\\]"):
        config_from_dict({"data": {"manifest": "x"}, "modles": []}, "c.yaml")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "none.yaml")
    with pytest.raises(KeyError, match="Did you mean procedural"):
        create("procedual")
    assert [m.label for m in load_config("demo").models] == ["ground_truth", "still", "av_shift", "procedural"]


def test_precomputed_outputs_keep_their_own_timing_or_none(synth_set, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for clip in synth_set.clips:
        io.write_video(outputs / f"{clip.id}_synced.mkv", clip.frames()[:-2], 25.0)
    (outputs / "synth_000_synced.json").write_text(json.dumps({"ttff_s": 0.5, "fps": 31.6, "device_name": "H100"}))
    config = make_config(synth_set, [{"name": "elsewhere", "model": "precomputed", "args": {"folder": str(outputs)}}])
    run = RunDir(tmp_path / "run")
    assert generate(config, synth_set, run, progress=False)["done"] == 2
    timed, untimed = run.read_unit("elsewhere", "synth_000"), run.read_unit("elsewhere", "synth_001")
    assert (timed["ttff_s"], timed["fps"], timed["timer"]) == (0.5, 31.6, "sidecar")
    assert (untimed["ttff_s"], untimed["fps"], untimed["timer"]) == (None, None, "absent")
    assert untimed["n_frames"] == 47  # kept as made; evaluation aligns lengths
    frames, _ = io.read_video(run.video("elsewhere", "synth_001"))
    np.testing.assert_array_equal(frames, synth_set.clip("synth_001").frames()[:-2])


def test_cold_and_load_figures_are_recorded(synth_set, tmp_path):
    config = make_config(synth_set, [{"name": "sleepy", "model": "tests.helpers:Sleeper"}], warmup_clips=1)
    run = RunDir(tmp_path / "run")
    generate(config, synth_set, run, progress=False)
    record = json.loads((run.root / "models" / "sleepy.json").read_text())
    assert record["load_s"] >= 0 and record["warmup"][0]["clip"] == "synth_000"
    assert record["warmup"][0]["ttff_s"] > 0.015


def test_installed_packages_add_models_through_entry_points(monkeypatch):
    import importlib.metadata

    from lipbench.models import MODELS

    real = importlib.metadata.entry_points

    def fake(group=None, **kw):
        if group == "lipbench.models":
            return [importlib.metadata.EntryPoint("sleepy_plugin", "tests.helpers:Sleeper", group)]
        return real(group=group, **kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    assert "sleepy_plugin" in MODELS.names()
    assert create("sleepy_plugin").name == "sleeper"
