"""What a rerun on the same run directory does: fingerprints decide what is recomputed,
narrowing keeps the directory whole, one writer at a time, damaged records redone."""

import json
import shutil
import threading

import numpy as np
import pytest
import yaml

from lipbench import io
from lipbench.cli import main
from lipbench.data.manifest import build_manifest, save_manifest
from lipbench.rundir import RunDir
from lipbench.storage import read_json


def write_config(path, manifest_path, models=None, metrics=("psnr",), **extra):
    models = (
        models
        if models is not None
        else ["ground_truth", {"name": "shift", "model": "av_shift", "args": {"shift_frames": 2}}]
    )
    path.write_text(
        yaml.safe_dump(
            {
                "name": "rerun",
                "data": {"manifest": str(manifest_path)},
                "models": models,
                "metrics": list(metrics),
                "warmup_clips": 0,
                **extra,
            }
        )
    )
    return str(path)


def mtimes(run: RunDir, folder: str) -> dict:
    """Per record, what changes when it is written again: records are replaced atomically
    (a new inode), so a rewrite shows even where the mtime does not move (a coarse
    file-system clock, or two writes within one of its ticks)."""
    return {
        str(p.relative_to(run.root)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in (run.root / folder).rglob("*.json")
    }


def values(run: RunDir) -> dict:
    return {
        str(p.relative_to(run.root)): json.loads(p.read_text())["values"]
        for p in sorted((run.root / "metrics").rglob("*.json"))
    }


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def clips(synth_set, tmp_path):
    """A private copy of the synthetic clips (tests change files on disk) and its manifest."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for clip in synth_set.clips:
        shutil.copy(clip.video, folder / clip.video.name)
    manifest = build_manifest(folder, "copy")
    save_manifest(manifest, folder / "manifest.yaml")
    return folder / "manifest.yaml"


def test_same_config_recomputes_nothing_and_changed_args_remake_that_model_only(clips, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", clips)
    run = RunDir(tmp_path / "run")
    code, out, _ = run_cli(capsys, "run", config, "--out", str(run.root))
    assert code == 0 and "generate shift: 2 units, not made yet" in out
    units, scored = mtimes(run, "units"), mtimes(run, "metrics")

    code, out, _ = run_cli(capsys, "run", config, "--out", str(run.root))
    assert code == 0 and "generate: 0 made, 4 already done" in out and "evaluate: 0 scored" in out
    assert (mtimes(run, "units"), mtimes(run, "metrics")) == (units, scored)

    config = write_config(
        tmp_path / "c.yaml",
        clips,
        models=["ground_truth", {"name": "shift", "model": "av_shift", "args": {"shift_frames": 5}}],
    )
    code, out, _ = run_cli(capsys, "run", config, "--out", str(run.root))
    assert code == 0
    assert 'generate shift: 2 units, args changed ({"shift_frames": 2} -> {"shift_frames": 5})' in out
    assert "evaluate psnr@full: 2 values, video regenerated" in out
    assert "generate: 2 made, 2 already done" in out
    now = mtimes(run, "units")
    assert {k: v for k, v in now.items() if "ground_truth" in k} == {
        k: v for k, v in units.items() if "ground_truth" in k
    }
    assert all(now[k] != units[k] for k in now if "shift" in k)
    assert read_json(run.root / "results.json")["config"]["models"][1]["args"] == {"shift_frames": 5}

    fresh = RunDir(tmp_path / "fresh")
    assert run_cli(capsys, "run", config, "--out", str(fresh.root))[0] == 0
    assert values(run) == values(fresh)


def test_an_added_metric_is_computed_for_existing_videos_only(clips, tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    run_cli(capsys, "run", write_config(tmp_path / "c.yaml", clips), "--out", str(run.root))
    units, before = mtimes(run, "units"), values(run)
    code, out, _ = run_cli(
        capsys, "run", write_config(tmp_path / "c.yaml", clips, metrics=("psnr", "ssim@full")), "--out", str(run.root)
    )
    assert code == 0 and "evaluate ssim@full: 4 values, metric added" in out and "psnr" not in out.split("evaluate:")[0]
    assert mtimes(run, "units") == units
    after = values(run)
    for key, row in before.items():
        assert {k: v for k, v in after[key].items() if k.startswith("psnr")} == row
        assert "ssim@full" in after[key]


def test_narrowing_runs_less_and_the_directory_keeps_everything(clips, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", clips)
    run = RunDir(tmp_path / "run")
    code, out, _ = run_cli(capsys, "run", config, "--out", str(run.root), "--models", "shift", "--limit", "1")
    assert code == 0 and "generate: 1 made" in out
    code, out, _ = run_cli(
        capsys, "run", config, "--out", str(run.root), "--models", "ground_truth", "--clips", "synth_001"
    )
    assert code == 0 and "generate: 1 made" in out
    saved = yaml.safe_load((run.root / "config.yaml").read_text())
    assert [m["label"] for m in saved["models"]] == ["ground_truth", "shift"]
    assert [c["id"] for c in yaml.safe_load((run.root / "manifest.yaml").read_text())["clips"]] == [
        "synth_000",
        "synth_001",
    ]
    rows = [json.loads(line) for line in (run.root / "per_clip.jsonl").read_text().splitlines()]
    assert sorted((r["model"], r["clip"], r["status"]) for r in rows) == [
        ("ground_truth", "synth_000", "pending"),
        ("ground_truth", "synth_001", "ok"),
        ("shift", "synth_000", "ok"),
        ("shift", "synth_001", "pending"),
    ]


def test_other_clips_or_protocols_on_the_same_out_need_force(clips, synth_set, tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    run_cli(capsys, "run", write_config(tmp_path / "c.yaml", clips, metrics=("ssim@full",)), "--out", str(run.root))
    other = write_config(tmp_path / "other.yaml", synth_set.path, metrics=("ssim@full",))
    code, _, err = run_cli(capsys, "run", other, "--out", str(run.root))
    assert code == 2 and "holds a run with other inputs" in err and "come from other files" in err
    protocol = write_config(tmp_path / "p.yaml", clips, metrics=("ssim@face224",))
    code, _, err = run_cli(capsys, "generate", protocol, "--out", str(run.root))
    assert code == 2 and "metric ssim under protocol face224; the run has full" in err
    code, out, _ = run_cli(capsys, "generate", other, "--out", str(run.root), "--force")
    assert code == 0 and "clip file changed on disk" not in out


def test_a_replaced_clip_a_deleted_or_corrupted_video_are_remade(clips, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", clips, models=["ground_truth"])
    run = RunDir(tmp_path / "run")
    run_cli(capsys, "run", config, "--out", str(run.root))
    run.video("ground_truth", "synth_000").unlink()
    run.video("ground_truth", "synth_001").write_bytes(b"not a video any more")
    code, out, _ = run_cli(capsys, "run", config, "--out", str(run.root))
    assert code == 0
    assert "generate ground_truth: 1 unit, video missing" in out
    assert "generate ground_truth: 1 unit, video changed on disk" in out
    assert "evaluate psnr@full: 2 values, video regenerated" in out

    frames, fps = io.read_video(clips.parent / "synth_000.mkv")
    audio = io.read_audio(clips.parent / "synth_000.mkv")
    io.write_video(clips.parent / "synth_000.mkv", frames[::-1].copy(), fps, audio, io.DEFAULT_AUDIO_RATE)  # replaced
    code, out, _ = run_cli(capsys, "run", config, "--out", str(run.root))
    assert code == 0 and "generate ground_truth: 1 unit, clip file changed on disk" in out
    np.testing.assert_array_equal(io.read_video(run.video("ground_truth", "synth_000"))[0], frames[::-1])
    unit = run.read_unit("ground_truth", "synth_000")
    manifest = yaml.safe_load((run.root / "manifest.yaml").read_text())
    assert manifest["clips"][0]["sha256"] == unit["clip_sha256"] == unit["fingerprint"]["clip_sha256"]


def test_a_replaced_or_fixed_weight_file_recomputes_the_values_that_used_it(clips, tmp_path, capsys):
    from lipbench.random_weights import write_random_weights

    weights = tmp_path / "weights"
    weights.mkdir()
    trunk = weights / "alexnet-owt-7be5be79.pth"
    trunk.write_bytes(b"corrupt")
    config = write_config(tmp_path / "c.yaml", clips, models=["still"], metrics=("psnr", "lpips@full"))
    run = RunDir(tmp_path / "run")
    code, _, err = run_cli(capsys, "run", config, "--out", str(run.root), "--weights-dir", str(weights))
    # a file that cannot be loaded stops the run before any clip (lipbench.checkpoints)
    assert code == 2 and f"weight file {trunk}: cannot be read" in err
    assert run.read_unit("still", "synth_000") is None and run.read_metrics("still", "synth_000") is None

    write_random_weights(weights, seed=1, names=[trunk.name])
    code, out, _ = run_cli(capsys, "run", config, "--out", str(run.root), "--weights-dir", str(weights))
    assert code == 0 and "evaluate lpips@full: 2 values, not computed yet" in out
    row = psnr = run.read_metrics("still", "synth_000")
    from lipbench.storage import file_sha256

    assert row["fingerprints"]["lpips@full"]["weights"] == {trunk.name: file_sha256(trunk, cached=False)}
    assert read_json(run.root / "results.json")["weights"] == {trunk.name: file_sha256(trunk, cached=False)}
    first = row["values"]["lpips@full"]

    write_random_weights(weights, seed=2, names=[trunk.name])
    code, out, _ = run_cli(capsys, "run", config, "--out", str(run.root), "--weights-dir", str(weights))
    assert code == 0 and f"evaluate lpips@full: 2 values, weight file {trunk.name} changed" in out
    row = run.read_metrics("still", "synth_000")
    assert row["values"]["lpips@full"] != first
    assert (row["values"]["psnr@full"], row["fingerprints"]["psnr@full"]) == (
        psnr["values"]["psnr@full"],
        psnr["fingerprints"]["psnr@full"],
    )


def test_damaged_records_are_named_set_aside_and_redone(clips, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", clips, models=["ground_truth"])
    run = RunDir(tmp_path / "run")
    run_cli(capsys, "run", config, "--out", str(run.root))
    good = values(run)
    unit = run.unit("ground_truth", "synth_000")
    unit.write_text(unit.read_text()[:40])
    scored = run.metrics("ground_truth", "synth_001")
    scored.write_text(scored.read_text()[:25])
    code, out, err = run_cli(capsys, "run", config, "--out", str(run.root))
    assert code == 0
    assert f"{unit}: damaged record" in err and f"{scored}: damaged record" in err
    assert "generate ground_truth: 1 unit, not made yet" in out
    assert len(list((run.root / "damaged").rglob("*.json.*"))) == 2
    assert values(run) == good
    unit.write_text("{")
    code, out, err = run_cli(capsys, "report", str(run.root))
    assert code == 0 and f"{unit}: damaged record" in err
    # a reader of someone else's run only warns
    scored.write_text("{")
    assert RunDir(run.root, read_only=True).read_metrics("ground_truth", "synth_001") is None
    assert scored.exists()


def test_interrupted_writes_are_removed_and_one_writer_at_a_time(clips, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", clips, models=["ground_truth"])
    run = RunDir(tmp_path / "run")
    run_cli(capsys, "run", config, "--out", str(run.root))
    with run.lock():  # another writer (flock conflicts across open files, even in one process)
        code, _, err = run_cli(capsys, "run", config, "--out", str(run.root))
        assert code == 2 and "in use by pid" in err and "--wait" in err
    leftovers = [
        run.root / "videos" / "ground_truth" / ".synth_000.x1y2.partial.mkv",
        run.root / ".pareto.abcd.partial.png",
    ]  # what a kill -9 mid-write leaves
    for path in leftovers:
        path.write_bytes(b"half")
    code, _, err = run_cli(capsys, "run", config, "--out", str(run.root))
    assert code == 0 and not any(p.exists() for p in leftovers)
    assert "removed videos/ground_truth/.synth_000.x1y2.partial.mkv: an interrupted write" in err


def test_wait_waits_for_the_other_writer(clips, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", clips, models=["ground_truth"])
    run = RunDir(tmp_path / "run")
    held, release = threading.Event(), threading.Event()

    def other_writer():
        with run.lock():
            held.set()
            release.wait(30)

    thread = threading.Thread(target=other_writer)
    thread.start()
    held.wait(30)
    threading.Timer(1.0, release.set).start()
    code, out, err = run_cli(capsys, "generate", config, "--out", str(run.root), "--wait")
    thread.join()
    assert code == 0 and "waiting for" in err and "generate: 2 made" in out


def test_a_missing_first_clip_fails_only_its_own_units(clips, tmp_path, capsys):
    (clips.parent / "synth_000.mkv").unlink()
    config = write_config(tmp_path / "c.yaml", clips, models=["ground_truth", "still"], warmup_clips=1)
    run = RunDir(tmp_path / "run")
    code, out, err = run_cli(capsys, "run", config, "--out", str(run.root))
    assert code == 1 and "failed: 2 of 4 units, 0 metric values" in err
    for model in ("ground_truth", "still"):
        assert "synth_000.mkv" in run.read_unit(model, "synth_000")["error"]
        assert run.read_unit(model, "synth_001")["status"] == "ok"
        assert read_json(run.root / "models" / f"{model}.json")["warmup"][0]["clip"] == "synth_001"


@pytest.mark.parametrize("exc", ["SystemExit", "KeyboardInterrupt"])
def test_a_plugin_raising_systemexit_or_keyboardinterrupt_fails_its_unit(clips, tmp_path, capsys, exc):
    config = write_config(
        tmp_path / "c.yaml",
        clips,
        models=[
            {"name": "rude", "model": "tests.helpers:RaisesBase", "args": {"clip": "synth_000", "exc": exc}},
            "still",
        ],
    )
    run = RunDir(tmp_path / "run")
    code, out, err = run_cli(capsys, "run", config, "--out", str(run.root))
    assert code == 1 and "failed: 1 of 4 units" in err and f"rude/synth_000 (generate): {exc}: 3" in err
    assert run.read_unit("rude", "synth_001")["status"] == "ok"
    assert run.read_unit("still", "synth_000")["status"] == "ok"


def test_a_model_that_hangs_is_stopped_after_the_unit_timeout(clips, tmp_path, capsys):
    config = write_config(
        tmp_path / "c.yaml",
        clips,
        unit_timeout_s=1.0,
        models=[{"name": "stuck", "model": "tests.helpers:Hangs", "args": {"clip": "synth_000"}}],
    )
    run = RunDir(tmp_path / "run")
    code, _, err = run_cli(capsys, "run", config, "--out", str(run.root))
    record = run.read_unit("stuck", "synth_000")
    assert code == 1 and record["stage"] == "timeout" and "timed out after 1 s (unit_timeout_s)" in record["error"]
    assert run.read_unit("stuck", "synth_001")["status"] == "ok"


def test_eval_of_a_run_directory_takes_the_lock_and_reports_failures(clips, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", clips, models=["ground_truth"])
    run = RunDir(tmp_path / "run")
    run_cli(capsys, "generate", config, "--out", str(run.root))
    with run.lock():
        code, _, err = run_cli(capsys, "eval", str(run.root))
        assert code == 2 and "in use by pid" in err
    run.video("ground_truth", "synth_001").write_bytes(b"garbage")  # scored as it is: eval does not regenerate
    code, out, err = run_cli(capsys, "eval", str(run.root))
    assert code == 1 and "evaluate: 2 scored (1 metric values failed)" in out
    assert "failed: 0 of 2 units, 1 metric values" in err and "psnr@full ground_truth/synth_001" in err


@pytest.mark.parametrize("flag", ["--clips", "--frames"])
def test_demo_counts_must_be_positive(flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", flag, "0"])
    assert exc.value.code == 2 and "expected a positive integer, got '0'" in capsys.readouterr().err
