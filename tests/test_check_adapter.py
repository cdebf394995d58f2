"""`lipbench check-adapter`: passes for conforming models (the Lip Forcing family at the
tiny size among them) and fails, naming the check, for models that break a rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipbench import io
from lipbench.check_adapter import synthetic_request
from lipbench.cli import main

TINY = str(Path(__file__).resolve().parents[1] / "benchmarks" / "lipforcing_tiny.yaml")


@pytest.mark.parametrize("label, extra", [("lip_forcing_14b", []), ("omniavatar_ls_1_3b", ["--arg", "steps=4"])])
def test_a_student_and_a_teacher_pass_at_the_tiny_size(label, extra, capsys):
    """One causal and one bidirectional row (all five run through the runner below)."""
    assert main(["check-adapter", label, "--config", TINY, *extra]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out and "FAIL" not in out
    for stage in ("audio_encode", "align", "encode", "denoise", "decode", "composite"):
        assert f"stage {stage}:" in out
    assert "fastgen: ff_full_pipeline" in out


def test_a_clip_file_and_adapter_arguments(tmp_path, capsys):
    request = synthetic_request(frames=21, size=96)
    path = tmp_path / "talk.mkv"
    io.write_video(path, request.frames, request.fps, request.audio, request.audio_rate)
    assert (
        main(
            [
                "check-adapter",
                "lipforcing",
                "--clip",
                str(path),
                "--device",
                "cpu",
                "--arg",
                "size=tiny",
                "--arg",
                "random_weights=true",
                "--arg",
                "decoder=wan_vae",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "streaming talk (21 frames, 96x96) twice" in out
    assert "chunk sizes: [9, 12] against the declared [9, 12]" in out


@pytest.mark.parametrize(
    "model, failed",
    [
        ("tests.helpers:Jittery", "deterministic"),
        ("tests.helpers:MisChunked", "chunk sizes"),
        ("tests.helpers:Overhears", "audio lookahead as declared"),
    ],
)
def test_a_broken_model_fails_the_check_it_breaks(model, failed, capsys):
    assert main(["check-adapter", model]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {failed}:" in out and f"1 check(s) failed: {failed}" in out


def test_a_ttff_below_the_latency_floor_fails(monkeypatch, capsys):
    """On an H100 a trillion fp32 parameters take 1.2 s to read once: a model claiming them
    that answers at once has wrong declared figures."""
    monkeypatch.setattr("lipbench.runner.device_name", lambda device: "NVIDIA H100 80GB HBM3")
    assert main(["check-adapter", "tests.helpers:ClaimsTrillion"]) == 1
    out = capsys.readouterr().out
    assert "FAIL TTFF above the latency floor:" in out and "latency floor: 1.1940 s on H100" in out


def test_usage_errors_are_one_line(capsys):
    assert main(["check-adapter", "nope", "--config", TINY]) == 2
    assert "no model named 'nope'" in capsys.readouterr().err
    assert main(["check-adapter", "procedural", "--arg", "novalue"]) == 2
    assert "--arg expects KEY=VALUE" in capsys.readouterr().err


def test_the_tiny_config_runs_all_five_rows_on_the_cpu(tmp_path, monkeypatch, capsys):
    """`lipbench run benchmarks/lipforcing_tiny.yaml` (one clip; to keep the suite short,
    no warm-up and 4 teacher steps instead of 50): videos of the reference's size, length
    and fps; timing rows with every stage and the FastGen spans; the random weights
    marked in every unit."""
    import json

    import yaml

    from lipbench.models.lipforcing import pipeline
    from lipbench.rundir import RunDir

    monkeypatch.setenv("LIPBENCH_CACHE", str(tmp_path / "cache"))
    config = yaml.safe_load(Path(TINY).read_text())
    config["warmup_clips"] = 0
    for entry in config["models"]:
        if entry["model"] == "omniavatar_ls":
            entry["args"]["steps"] = 4
    shortened = tmp_path / "lipforcing_tiny.yaml"
    shortened.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["run", str(shortened), "--out", str(out), "--limit", "1"]) == 0
    run = RunDir(out)
    students = {"lip_forcing_1_3b", "lip_forcing_14b", "self_forcing_1_3b"}
    for label in students | {"omniavatar_ls_1_3b", "omniavatar_ls_14b"}:
        unit = json.loads(run.unit(label, "synth_000").read_text())
        assert unit["status"] == "ok" and unit["model_info"]["random_weights"] is True
        frames, fps = io.read_video(run.video(label, "synth_000"))
        assert frames.shape == (33, 128, 128, 3) and fps == 25.0
        expected = set(pipeline.STAGES) - (set() if label in students else {"kv_update"})
        assert set(unit["stages_s"]) == expected
        assert unit["chunk_frames"] == ([9, 12, 12] if label in students else [33])
        assert unit["derived_timing"]["fastgen"]["streaming_total"] > 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) >= students
    assert results["models"]["lip_forcing_14b"]["derived_timing"]["fastgen"]["ff_full_pipeline"] > 0
    report = (out / "report.md").read_text()
    assert "## Timing by other harnesses' definitions" in report and "### fastgen" in report
    table = report.split("### fastgen")[1]
    assert "ff_full_pipeline" in table and "streaming_total" in table
    assert all(f"| {label} " in table for label in students)
    page = (out / "report.html").read_text()
    assert "<h3>fastgen</h3>" in page and "<th>ff_full_pipeline</th>" in page
