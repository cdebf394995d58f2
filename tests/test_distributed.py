"""Crash safety and sharding, with real processes: SIGKILL mid-sweep, torchrun (gloo)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from lipbench import io
from lipbench.rundir import RunDir

CLI = [sys.executable, "-m", "lipbench.cli"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "lipbench.cli"]


def write_config(path, manifest, slow=None):
    """Models "slow" (Sleeper: 50 ms per chunk of 7 frames, unless `slow` says another
    model and args) and "still"."""
    slow = slow or {"model": "tests.helpers:Sleeper", "args": {"first_s": 0.05, "chunk_s": 0.05, "frames_per_chunk": 7}}
    path.write_text(
        yaml.safe_dump(
            {
                "name": "dist",
                "data": {"manifest": str(manifest.path)},
                "warmup_clips": 0,
                "metrics": ["psnr"],
                "models": [{"name": "slow", **slow}, "still"],
            }
        )
    )
    return path


def run_cli(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def unit_times(run: RunDir) -> dict:
    """Per unit record, what changes when it is written again: records are replaced
    atomically (a new inode), so this holds where two writes share an mtime (a coarse
    file-system clock, or two writes within one of its ticks)."""
    return {
        p.relative_to(run.root): (p.stat().st_ino, p.stat().st_mtime_ns) for p in (run.root / "units").rglob("*.json")
    }


def metric_values(run: RunDir) -> dict:
    return {
        str(p.relative_to(run.root)): json.loads(p.read_text())["values"]
        for p in sorted((run.root / "metrics").rglob("*.json"))
    }


def assert_same_videos(a: RunDir, b: RunDir):
    for path in sorted((a.root / "videos").rglob("*.mkv")):
        other = b.root / path.relative_to(a.root)
        np.testing.assert_array_equal(io.read_video(path)[0], io.read_video(other)[0])


@pytest.fixture(scope="module")
def reference_run(synth_set, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    config = write_config(tmp / "c.yaml", synth_set)
    run = RunDir(tmp / "run")
    run_cli(CLI + ["run", str(config), "--out", str(run.root)], os.getcwd())
    return run


def test_killed_sweep_resumes_without_recomputing(synth_set, reference_run, tmp_path):
    # "slow" waits on clip synth_001 until the gate file exists: the kill lands mid-sweep
    # however fast or busy the machine is (no race between a sleep and the poll below)
    gate = tmp_path / "gate"
    config = write_config(
        tmp_path / "c.yaml",
        synth_set,
        slow={"model": "tests.helpers:Gated", "args": {"clip": "synth_001", "gate": str(gate)}},
    )
    run = RunDir(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        CLI + ["run", str(config), "--out", str(run.root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while len(unit_times(run)) < 1:
        assert proc.poll() is None, f"the run ended (exit code {proc.returncode}) before any unit was written"
        assert time.monotonic() < deadline, "no unit written in 300 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = unit_times(run)
    assert 1 <= len(before) < 4, "the kill must land mid-sweep"
    gate.touch()
    out = run_cli(CLI + ["run", str(config), "--out", str(run.root)], os.getcwd())
    assert f"{len(before)} already done" in out
    assert {k: v for k, v in unit_times(run).items() if k in before} == before
    assert metric_values(run) == metric_values(reference_run)
    assert_same_videos(run, reference_run)


def test_two_torchrun_ranks_then_resume_with_one(synth_set, reference_run, tmp_path):
    config = write_config(tmp_path / "c.yaml", synth_set)
    run = RunDir(tmp_path / "run")
    out = run_cli(TORCHRUN + ["run", str(config), "--out", str(run.root), "--clips", "synth_000"], os.getcwd())
    assert out.count("generate: 1 made") == 2  # two units, one per rank
    first = unit_times(run)
    assert len(first) == 2
    out = run_cli(CLI + ["run", str(config), "--out", str(run.root)], os.getcwd())
    assert "generate: 2 made, 2 already done" in out
    assert {k: v for k, v in unit_times(run).items() if k in first} == first
    assert metric_values(run) == metric_values(reference_run)
    assert_same_videos(run, reference_run)


def test_two_ranks_equal_one_process(synth_set, reference_run, tmp_path):
    config = write_config(tmp_path / "c.yaml", synth_set)
    run = RunDir(tmp_path / "run")
    run_cli(TORCHRUN + ["run", str(config), "--out", str(run.root)], os.getcwd())
    assert metric_values(run) == metric_values(reference_run)
    assert_same_videos(run, reference_run)
    rows = [json.loads(line) for line in (run.root / "per_clip.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)


def test_rerun_behaviour_holds_under_two_ranks(synth_set, tmp_path):
    """Changed args remake that model only, an added metric is computed for existing videos
    only, a narrowed rerun keeps the directory whole: with two torchrun ranks."""

    def config(shift, metrics):
        path = tmp_path / "c.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "name": "dist",
                    "data": {"manifest": str(synth_set.path)},
                    "warmup_clips": 0,
                    "metrics": metrics,
                    "models": ["ground_truth", {"name": "shift", "model": "av_shift", "args": {"shift_frames": shift}}],
                }
            )
        )
        return str(path)

    run = RunDir(tmp_path / "run")
    run_cli(TORCHRUN + ["run", config(2, ["psnr"]), "--out", str(run.root)], os.getcwd())
    first = unit_times(run)
    out = run_cli(TORCHRUN + ["run", config(4, ["psnr", "ssim@full"]), "--out", str(run.root)], os.getcwd())
    assert "generate shift: 2 units, args changed" in out and "evaluate ssim@full: 4 values, metric added" in out
    assert "evaluate psnr@full: 2 values, video regenerated" in out
    now = unit_times(run)
    assert {k: v for k, v in now.items() if "ground_truth" in str(k)} == {
        k: v for k, v in first.items() if "ground_truth" in str(k)
    }
    assert all(now[k] != first[k] for k in now if "shift" in str(k))
    out = run_cli(
        TORCHRUN + ["run", config(4, ["psnr", "ssim@full"]), "--out", str(run.root), "--models", "shift"], os.getcwd()
    )
    assert out.count("generate: 0 made") == 2
    rows = [json.loads(line) for line in (run.root / "per_clip.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["status"] == "ok" and "ssim@full" in r for r in rows)
    fresh = RunDir(tmp_path / "fresh")
    run_cli(CLI + ["run", config(4, ["psnr", "ssim@full"]), "--out", str(fresh.root)], os.getcwd())
    assert metric_values(run) == metric_values(fresh)
