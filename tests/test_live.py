"""Live latency: the speech arriving at its real pace, and how late frames follow it."""

import json
import time
import types

import numpy as np
import pytest

from lipbench.cli import main
from lipbench.models import worker_side
from lipbench.runner import run_stream
from lipbench.types import Request
from tests.helpers import Listens, config_file


class FakeClock:
    """perf_counter and sleep on a clock that moves only when something sleeps."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(0.0, seconds)


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(worker_side, "time", types.SimpleNamespace(perf_counter=fake.perf_counter, sleep=fake.sleep))
    monkeypatch.setattr(time, "sleep", fake.sleep)  # what the model calls
    return fake


def request(n_frames=16, fps=32.0, rate=16000):
    # 32 fps, 1/8 s, 1/16 s: every time below is exact in binary
    return Request(
        "c", np.zeros((n_frames, 4, 4, 3), np.uint8), np.zeros(int(n_frames / fps * rate), np.float32), rate, fps
    )


def predicted(n_frames, fps, chunk, lookahead, work, lead=0.0, live=True):
    """When each frame exists: per chunk, wait for the speech up to its end + lookahead
    (live: it arrives at t - lead), then work."""
    t, exists = 0.0, []
    for start in range(0, n_frames, chunk):
        end = min(start + chunk, n_frames)
        heard = min(end / fps + lookahead, n_frames / fps)
        t = max(t, heard - lead if live else 0.0) + work
        exists += [t] * (end - start)
    return np.array(exists)


@pytest.mark.parametrize("lead", [0.0, 0.125])
def test_a_known_delay_model_gives_exactly_the_predicted_latencies(clock, lead):
    model = Listens(chunk=4, lookahead_s=0.125, work_s=0.0625)
    live = request().live(lead)
    _, row = run_stream(model, live, "cpu", player_delay_s=0.25)
    exists = predicted(16, 32.0, 4, 0.125, 0.0625, lead)
    index = np.arange(16)
    latency = exists - np.maximum((index + 1) / 32.0 - lead, 0.0)
    assert row["timing_protocol"] == "live" and row["chunk_s"] == list(np.diff([0.0, *exists[3::4]]))
    assert row["ttff_s"] == exists[0] == 0.3125 - lead  # speech to 4/32 + 0.125 s, then 0.0625 s of work
    assert (row["latency_p50_s"], row["latency_p95_s"], row["latency_max_s"]) == (
        np.percentile(latency, 50),
        np.percentile(latency, 95),
        latency.max(),
    )
    assert row["playback_delay_s"] == (exists - index / 32.0).max()
    assert row["stalls"] == int((exists > 0.25 + index / 32.0).sum()) and row["stall_delay_s"] == 0.25
    assert row["lookahead_s"] == row["lookahead_declared_s"] == 0.125


def test_offline_latency_is_when_frames_exist(clock):
    model = Listens(chunk=4, lookahead_s=0.125, work_s=0.0625)
    _, row = run_stream(model, request(), "cpu")
    exists = predicted(16, 32.0, 4, 0.125, 0.0625, live=False)
    assert row["timing_protocol"] == "offline" and row["latency_max_s"] == exists.max() == 0.25
    assert row["playback_delay_s"] == (exists - np.arange(16) / 32.0).max() == 0.0625
    assert row["lookahead_s"] == 0.125  # it reads as far ahead in both protocols


def test_a_bidirectional_model_waits_for_the_whole_clip(clock):
    model = Listens(whole=True, work_s=0.0625)
    _, row = run_stream(model, request().live(), "cpu")
    assert row["ttff_s"] == 0.5 + 0.0625  # the clip lasts 0.5 s
    assert row["lookahead_declared_s"] is None and row["lookahead_s"] == 0.5 - 0.5  # read it all before its one chunk


def test_a_stream_that_slows_down_does_not_hold_its_pace(clock):
    """7 chunks of 4 frames, chunk k working 0.0625 + k/32 s: chunks 1-2 make 4 frames in
    3/32 and 4/32 s, chunks 5-6 in 7/32 and 8/32 s; fps_hold is the ratio of the medians."""
    _, row = run_stream(Listens(chunk=4, work_s=0.0625, slowdown_s=1 / 32), request(28), "cpu")
    first, last = np.median([4 / (3 / 32), 4 / (4 / 32)]), np.median([4 / (7 / 32), 4 / (8 / 32)])
    assert row["fps_hold"] == pytest.approx(last / first) and row["fps_hold"] < 0.5
    _, steady = run_stream(Listens(chunk=4, work_s=0.0625), request(28), "cpu")
    assert steady["fps_hold"] == 1.0
    assert len(steady["chunk_memory_bytes"]) == 7 and steady["memory_growth_bytes"] == (
        steady["chunk_memory_bytes"][-1] - steady["chunk_memory_bytes"][0]
    )
    _, short = run_stream(Listens(chunk=4, work_s=0.0625), request(15), "cpu")
    assert "fps_hold" not in short  # 4 + 4 + 4 + 3 frames: the remainder left out, 2 chunks are too few


def test_real_clock_bounds():
    """The real clock: sleeps never return early, so no figure is below the prediction;
    a generous upper bound catches a model waiting for the whole clip (0.6 s)."""
    model = Listens(chunk=5, lookahead_s=0.1, work_s=0.02)
    _, row = run_stream(model, request(15, 25.0).live(), "cpu")
    exists = predicted(15, 25.0, 5, 0.1, 0.02)
    latency = exists - (np.arange(15) + 1) / 25.0
    assert row["ttff_s"] >= exists[0] - 1e-3 and row["latency_max_s"] >= latency.max() - 1e-3
    assert row["latency_p50_s"] < np.percentile(latency, 50) + 0.25
    assert abs(row["lookahead_s"] - 0.1) < 1e-9


def test_a_run_reports_both_protocols(synth_set, tmp_path):
    models = [
        {"name": "streams", "model": "tests.helpers:Listens", "args": {"chunk": 7, "lookahead_s": 0.1}},
        {"name": "whole", "model": "tests.helpers:Listens", "args": {"whole": True}},
    ]
    config = config_file(
        tmp_path / "c.yaml", synth_set, models, timing_protocols=["offline", "live"], player_delay_s=0.5
    )
    out = tmp_path / "run"
    assert main(["run", config, "--out", str(out)]) == 0
    unit = json.loads((out / "units" / "whole" / "synth_000.json").read_text())
    assert unit["timing_protocol"] == "offline" and unit["live"]["ttff_s"] >= 49 / 25.0
    results = json.loads((out / "results.json").read_text())
    live = results["models"]["whole"]["latency"]["live"]
    assert live["ttff_s"]["value"] >= 49 / 25.0 and live["verdict"] == "stalls" and live["lookahead_declared_s"] is None
    assert results["models"]["streams"]["latency"]["live"]["lookahead_s"]["value"] == pytest.approx(0.1)
    assert results["models"]["streams"]["latency"]["offline"]["verdict"] == "real-time"
    report = (out / "report.md").read_text()
    section = report.split("## Latency: how late the mouth follows the speech")[1]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith("| whole")]
    assert [r[1] for r in rows] == ["live", "offline"] and rows[0][-1] == "stalls" and rows[0][-2] == "clip"
    assert "live_latency.png" in report and (out / "live_latency.png").exists()
    assert "<h2>Latency: how late the mouth follows the speech</h2>" in (out / "report.html").read_text()
    rows = [json.loads(line) for line in (out / "per_clip.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["timing_protocol"] == "offline" and r["live"]["ttff_s"] > 0 for r in rows)


def test_compare_has_the_live_columns(synth_set, tmp_path):
    from lipbench.report.compare import compare_runs

    runs = []
    for work in (0.0, 0.3):
        models = [{"name": "m", "model": "tests.helpers:Listens", "args": {"chunk": 25, "work_s": work}}]
        config = config_file(tmp_path / f"c{work}.yaml", synth_set, models, timing_protocols=["offline", "live"])
        runs.append(tmp_path / f"run{work}")
        assert main(["generate", config, "--out", str(runs[-1])]) == 0
        assert main(["eval", str(runs[-1])]) == 0
    found = compare_runs(*runs, force=True, resamples=200)
    rows = {r["metric"]: r for r in found["rows"]}
    assert {"ttff_s@live", "latency_p95_s@live", "playback_delay_s@live"} <= set(rows)
    assert rows["latency_p95_s@live"]["verdict"] == "regressed" and rows["latency_p95_s@live"]["difference"] > 0.25


def test_adding_the_live_protocol_retimes_the_units(synth_set, tmp_path, capsys):
    from lipbench.rundir import RunDir
    from lipbench.runner import generate
    from tests.test_runner import make_config

    models = [{"name": "m", "model": "tests.helpers:Listens", "args": {"chunk": 25}}]
    run = RunDir(tmp_path / "run")
    generate(make_config(synth_set, models), synth_set, run, progress=False)
    assert "live" not in run.read_unit("m", "synth_000")
    counts = generate(make_config(synth_set, models, timing_protocols=["offline", "live"]), synth_set, run)
    assert counts["done"] == 2 and "generate m: 2 units, timing protocols changed" in capsys.readouterr().out
    assert run.read_unit("m", "synth_000")["live"]["ttff_s"] >= 25 / 25.0


@pytest.mark.parametrize("bad", [["live"], ["offline", "later"], "offline", ["offline", "offline"]])
def test_timing_protocols_are_checked(synth_set, bad):
    from lipbench.config import ConfigError
    from tests.test_runner import make_config

    with pytest.raises(ConfigError, match="timing_protocols: expected a list of offline, live holding offline"):
        make_config(synth_set, ["ground_truth"], timing_protocols=bad)


def test_procedural_follows_live_speech_by_its_compute(synth_set):
    """The procedural model hears each chunk's speech up to its last frame and no further
    (lookahead 0), so live, a chunk's last frame comes its compute after its speech:
    never before it, and about as long after as the chunk takes offline (loose bound: a
    busy machine slows either stream)."""
    from lipbench.models import create

    model = create("procedural")
    model.load("cpu")
    request = synth_set.clip("synth_000").request()
    _, offline = run_stream(model, request, "cpu")
    _, live = run_stream(model, request.live(), "cpu")
    assert live["lookahead_s"] == 0.0 == live["lookahead_declared_s"]
    ends = np.cumsum(live["chunk_frames"]) / request.fps
    last_frame_latency = np.cumsum(live["chunk_s"]) - ends
    assert (last_frame_latency >= -1e-3).all()
    assert np.median(last_frame_latency) <= 3 * np.median(offline["chunk_s"]) + 0.1
