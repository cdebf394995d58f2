import numpy as np
import pytest

from lipbench import latency
from lipbench.models.base import LipSyncModel
from lipbench.timing import time_stream
from lipbench.types import Request
from tests.helpers import Sleeper


def request(n_frames=24):
    return Request("c", np.zeros((n_frames, 8, 8, 3), np.uint8), np.zeros(n_frames * 640, np.float32), 16000, 25.0)


def test_known_delays_are_measured_within_two_percent():
    frames, row = time_stream(Sleeper(first_s=0.15, chunk_s=0.05, frames_per_chunk=4), request(24))
    expected_total = 0.15 + 5 * 0.05
    assert len(frames) == 24 and row["n_chunks"] == 6
    assert row["ttff_s"] == pytest.approx(0.15, rel=0.02)
    assert row["fps"] == pytest.approx(24 / expected_total, rel=0.02)
    assert row["chunk_p50_s"] == pytest.approx(0.05, rel=0.02)
    assert row["chunk_max_s"] == pytest.approx(0.15, rel=0.02)
    assert row["rtf"] == pytest.approx(expected_total / (24 / 25), rel=0.02)
    assert row["stages_s"]["sleep"] == pytest.approx(expected_total, rel=0.02)
    assert row["total_s"] == pytest.approx(sum(row["chunk_s"]))
    assert row["timer"] == "perf_counter"


class Instant(LipSyncModel):
    """Chunks that already exist: what remains is the harness's own cost."""

    name = "instant"

    def __init__(self, chunks):
        super().__init__()
        self.chunks = chunks

    def stream(self, request):
        yield from self.chunks


def test_harness_overhead_per_chunk_is_small():
    chunks = [np.zeros((1, 8, 8, 3), np.uint8)] * 1000
    _, row = time_stream(Instant(chunks), request(1000))
    per_chunk = row["total_s"] / row["n_chunks"]
    assert per_chunk < 1e-4, per_chunk  # well under a millisecond per chunk on any CPU


def test_latency_floor_flags_a_unit_slip():
    # Lip Forcing 14B, bf16, 2 denoising steps + 1 cache update before the first chunk, on an H100
    floor = latency.check_ttff(0.54, 14_000_000_000, "bf16", 3, "NVIDIA H100 80GB HBM3")
    assert floor["floor_device"] == "H100" and floor["ttff_floor_s"] == pytest.approx(14e9 * 2 * 3 / 3350e9)
    assert not floor["ttff_below_floor"]
    assert latency.check_ttff(0.32e-3, 1_300_000_000, "bf16", 3, "H100")["ttff_below_floor"]
    assert latency.bandwidth_for("NVIDIA H200") == ("H200", 4800.0)
    assert latency.bandwidth_for("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert latency.check_ttff(0.1, 10, "bf16", 1, "x86_64")["ttff_floor_s"] is None
