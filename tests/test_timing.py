import time
import types

import numpy as np
import pytest

from lipbench.models import worker_side  # where the stream clock lives
from lipbench.timing import bandwidth_for, check_ttff, time_stream
from lipbench.types import Request
from tests.helpers import Instant, Sleeper


def request(n_frames=24):
    return Request("c", np.zeros((n_frames, 8, 8, 3), np.uint8), np.zeros(n_frames * 640, np.float32), 16000, 25.0)


class FakeClock:
    """lipbench.timing's perf_counter, moved only by the model's time.sleep (or by a fixed
    tick per read): the harness's arithmetic checked exactly, however busy the machine.
    How closely the real clock measures real work is checked by hand, not here:
    benchmarks/perf/timing_accuracy.py."""

    def __init__(self, tick: float = 0.0):
        self.now, self.tick, self.reads = 1000.0, tick, 0

    def perf_counter(self) -> float:
        self.reads += 1
        self.now += self.tick
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(worker_side, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    monkeypatch.setattr(time, "sleep", fake.sleep)  # what Sleeper calls
    return fake


def test_known_delays_are_measured_exactly(clock):
    # durations that are exact in binary, so every sum and difference below is exact
    frames, row = time_stream(Sleeper(first_s=0.125, chunk_s=0.0625, frames_per_chunk=4), request(24))
    total = 0.125 + 5 * 0.0625
    assert len(frames) == 24 and row["n_chunks"] == 6 and row["chunk_frames"] == [4] * 6
    assert row["ttff_s"] == 0.125 and row["total_s"] == total
    assert row["chunk_s"] == [0.125] + [0.0625] * 5
    assert row["fps"] == 24 / total and row["rtf"] == total / (24 / 25.0)
    # p90 of five 0.0625 and one 0.125: NumPy's linear interpolation, halfway
    assert (row["chunk_p50_s"], row["chunk_p90_s"], row["chunk_max_s"]) == (0.0625, 0.09375, 0.125)
    assert row["stages_s"] == {"sleep": total}
    assert row["timer"] == "perf_counter" and row["device"] == "cpu"


def test_real_sleeps_are_measured_in_seconds_and_never_short():
    """The real clock, with bounds no busy machine can break: time.sleep never returns
    early (Python >= 3.5; 1 ms allowed for clock granularity elsewhere than Linux), the
    stages lie inside the stream, and 0.09 s of sleeps take less than a minute."""
    frames, row = time_stream(Sleeper(first_s=0.05, chunk_s=0.02, frames_per_chunk=4), request(12))
    assert len(frames) == 12 and row["n_chunks"] == 3 and row["timer"] == "perf_counter"
    assert row["ttff_s"] >= 0.049 and min(row["chunk_s"][1:]) >= 0.019
    assert 0.089 <= row["stages_s"]["sleep"] <= row["total_s"] < 60
    assert row["total_s"] == pytest.approx(sum(row["chunk_s"]), rel=1e-9)


class Chunk:
    """A chunk that notes how many clock reads had happened when it was converted."""

    def __init__(self, clock):
        self.clock, self.converted_after = clock, None

    def __array__(self, dtype=None, copy=None):
        self.converted_after = self.clock.reads
        return np.zeros((1, 8, 8, 3), np.uint8)


def test_harness_reads_the_clock_once_per_chunk_and_converts_after_the_last(monkeypatch):
    """All the harness does between chunks is one clock read (lipbench.timing): with a
    clock that advances one tick per read, every chunk takes exactly one tick. What
    that read costs on a real CPU is measured by benchmarks/perf/timing_accuracy.py."""
    tick = 2.0**-20
    fake = FakeClock(tick)
    monkeypatch.setattr(worker_side, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    chunks = [Chunk(fake) for _ in range(1000)]
    frames, row = time_stream(Instant(chunks), request(1000))
    assert len(frames) == 1000 and row["n_chunks"] == 1000
    assert row["chunk_s"] == [tick] * 1000 and row["total_s"] == 1000 * tick
    assert {c.converted_after for c in chunks} == {1001}  # the start, then one read per chunk


def test_latency_floor_flags_a_unit_slip():
    # Lip Forcing 14B, bf16, 2 denoising steps + 1 cache update before the first chunk, on an H100
    floor = check_ttff(0.54, 14_000_000_000, "bf16", 3, "NVIDIA H100 80GB HBM3")
    assert floor["floor_device"] == "H100" and floor["ttff_floor_s"] == pytest.approx(14e9 * 2 * 3 / 3350e9)
    assert not floor["ttff_below_floor"]
    assert check_ttff(0.32e-3, 1_300_000_000, "bf16", 3, "H100")["ttff_below_floor"]
    assert bandwidth_for("NVIDIA H200") == ("H200", 4800.0)
    assert bandwidth_for("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert check_ttff(0.1, 10, "bf16", 1, "x86_64")["ttff_floor_s"] is None
