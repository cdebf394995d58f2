"""The adapter lifecycle (load, prepare, stream, close) and the run-wide options."""

import json

import pytest

from lipbench import weights
from lipbench.weight_file import WeightFile
from lipbench.cli import main
from lipbench.rundir import RunDir
from lipbench.runner import generate
from tests.helpers import Lifecycle, config_file
from tests.test_runner import make_config

MODEL = "tests.helpers:Lifecycle"


def test_prepare_runs_before_each_stream_and_close_after_a_failure(synth_set, tmp_path):
    Lifecycle.calls = []
    config = make_config(synth_set, [{"name": "m", "model": MODEL, "args": {"fail_clip": "synth_001"}}], warmup_clips=1)
    counts = generate(config, synth_set, RunDir(tmp_path / "run"), progress=False)
    assert counts == {"done": 1, "skipped": 0, "failed": 1}
    assert Lifecycle.calls == [
        "load",
        "prepare synth_000",
        "stream synth_000",  # the warm-up
        "prepare synth_000",
        "stream synth_000",
        "prepare synth_001",
        "stream synth_001",
        "close",
    ]


def test_close_follows_a_failed_load(synth_set, tmp_path):
    Lifecycle.calls = []
    config = make_config(synth_set, [{"name": "m", "model": MODEL, "args": {"fail_load": True}}])
    run = RunDir(tmp_path / "run")
    assert generate(config, synth_set, run, progress=False)["failed"] == 2
    assert Lifecycle.calls == ["load", "close"]
    assert "simulated load failure" in run.read_unit("m", "synth_000")["error"]


def test_prepare_is_timed_apart_from_ttff_and_reported(synth_set, tmp_path):
    out = tmp_path / "run"
    models = [{"name": "prepares", "model": MODEL, "args": {"prepare_s": 0.3}}, "ground_truth"]
    assert main(["run", config_file(tmp_path / "c.yaml", synth_set, models), "--out", str(out)]) == 0
    unit = RunDir(out).read_unit("prepares", "synth_000")
    assert unit["prepare_s"] >= 0.3 > unit["ttff_s"]  # the stream yields at once; preparing is not in TTFF
    results = json.loads((out / "results.json").read_text())
    assert results["models"]["prepares"]["outside_clock"]["prepare_s"] >= 0.3
    report = (out / "report.md").read_text()
    assert "## Outside the clock" in report
    section = report.split("## Outside the clock")[1]
    row = next(line for line in section.splitlines() if line.startswith("| prepares"))
    assert float(row.split("|")[2]) >= 0.3
    assert "<h2>Outside the clock</h2>" in (out / "report.html").read_text()


def test_run_wide_weights_dir_and_dtype_reach_the_adapters(synth_set, tmp_path, capsys):
    models = [
        {"name": "plain", "model": MODEL},
        {"name": "own", "model": MODEL, "args": {"weights_dir": "/mine", "dtype": "fp16"}},
        "ground_truth",
    ]
    config = config_file(tmp_path / "c.yaml", synth_set, models)
    out = tmp_path / "run"
    argv = ["generate", config, "--out", str(out), "--weights-dir", str(tmp_path / "w"), "--dtype", "bf16"]
    assert main(argv) == 0
    run = RunDir(out)
    plain, own = run.read_unit("plain", "synth_000"), run.read_unit("own", "synth_000")
    assert (plain["model_info"]["weights_dir"], plain["model_info"]["dtype_asked"]) == (str(tmp_path / "w"), "bf16")
    assert (own["model_info"]["weights_dir"], own["model_info"]["dtype_asked"]) == ("/mine", "fp16")  # args win
    assert run.read_unit("ground_truth", "synth_000")["status"] == "ok"  # no dtype to set: unaffected
    capsys.readouterr()
    # the run-wide dtype is part of what made the videos of the models it applies to
    assert main(argv[:-2] + ["--dtype", "fp16"]) == 0
    assert "generate plain: 2 units, run-wide dtype changed" in capsys.readouterr().out
    assert main(argv[:-2]) == 0  # back to each model's own dtype
    out_text = capsys.readouterr().out
    assert "generate plain: 2 units, run-wide dtype changed" in out_text and "generate own" not in out_text


def test_a_bad_dtype_is_a_config_error(synth_set):
    from lipbench.config import ConfigError

    with pytest.raises(ConfigError, match="test: dtype: 'int8' is not a dtype"):
        make_config(synth_set, ["ground_truth"], dtype="int8")


def test_a_plugin_registers_its_weight_files_with_a_stand_in(monkeypatch, tmp_path):
    from importlib import metadata

    from lipbench.random_weights import write_random_weights

    class EntryPoint:
        value = "tests.test_lifecycle:PLUGIN_WEIGHTS"

    real = metadata.entry_points
    monkeypatch.setattr(
        metadata,
        "entry_points",
        lambda group=None: [EntryPoint()] if group == "lipbench.weights" else real(group=group),
    )
    monkeypatch.setattr(weights, "WEIGHTS", dict(weights.WEIGHTS))
    weights._register_package_weights()
    assert weights.spec("plugin_net.bin").needed_by == ("my_model",)
    written = write_random_weights(tmp_path, seed=3, names=["plugin_net.bin"])
    assert written["plugin_net.bin"].read_bytes() == b"stand-in 3"
    with pytest.raises(weights.MissingWeightError, match="plugin_net.bin .needed by my_model. not found"):
        weights.find_weight("plugin_net.bin", tmp_path / "empty", needed_by="my_model")


def write_plugin_stand_in(path, seed):
    with open(path, "wb") as f:
        f.write(f"stand-in {seed}".encode())


PLUGIN_WEIGHTS = (
    WeightFile(
        "plugin_net.bin",
        "a plug-in's network",
        ("my_model",),
        "my lab",
        stand_in="tests.test_lifecycle:write_plugin_stand_in",
    ),
)


class Watched(Lifecycle):
    """Notes, when it loads, how many models loaded before it are still alive."""

    alive: list = []

    def load(self, device="cpu"):
        import gc
        import weakref

        Watched.alive.append(weakref.ref(self))
        gc.collect()
        Lifecycle.calls.append(f"load, earlier models alive: {sum(r() is not None for r in Watched.alive[:-1])}")


def test_a_model_is_released_before_the_next_one_loads(synth_set, tmp_path):
    """Its last unit done and closed, nothing keeps a model (its device memory) alive."""
    Lifecycle.calls, Watched.alive = [], []
    config = make_config(
        synth_set,
        [
            {"name": "a", "model": "tests.test_lifecycle:Watched"},
            {"name": "b", "model": "tests.test_lifecycle:Watched"},
        ],
    )
    generate(config, synth_set, RunDir(tmp_path / "run"), progress=False)
    assert [c for c in Lifecycle.calls if c.startswith("load")] == ["load, earlier models alive: 0"] * 2
