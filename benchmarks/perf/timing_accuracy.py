"""How closely lipbench's stream timing (lipbench.timing.time_stream) measures known work
on this machine, and what the harness itself costs per chunk. Run by hand on a quiet
machine; the tests (tests/test_timing.py) check the harness's arithmetic with a fake
clock and only bounds that hold on a busy one.

    python benchmarks/perf/timing_accuracy.py [--repeats 5]

Checks (the bounds tests/test_timing.py used to assert on the real clock):
- a model that sleeps 0.15 s before its first chunk and 0.05 s before each of five more:
  TTFF, FPS, median and largest chunk time, RTF and the "sleep" stage within 2 % of
  the sleeps (time.sleep overshoots by the scheduler's wake-up latency: tens of
  microseconds on an idle Linux machine, milliseconds on a loaded one);
- 1000 chunks that already exist: the harness's time per chunk under 1e-4 s.
Prints one line per check and repeat; exits 1 if any check failed in every repeat.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lipbench.timing import time_stream  # noqa: E402
from lipbench.types import Request  # noqa: E402
from tests.helpers import Instant, Sleeper  # noqa: E402


def request(n_frames: int) -> Request:
    return Request("c", np.zeros((n_frames, 8, 8, 3), np.uint8), np.zeros(n_frames * 640, np.float32), 16000, 25.0)


def known_delays() -> dict[str, tuple[float, float]]:
    """(measured, expected) per figure, for 0.15 s then 5 x 0.05 s of sleep."""
    _, row = time_stream(Sleeper(first_s=0.15, chunk_s=0.05, frames_per_chunk=4), request(24))
    total = 0.15 + 5 * 0.05
    return {
        "ttff_s": (row["ttff_s"], 0.15),
        "fps": (row["fps"], 24 / total),
        "chunk_p50_s": (row["chunk_p50_s"], 0.05),
        "chunk_max_s": (row["chunk_max_s"], 0.15),
        "rtf": (row["rtf"], total / (24 / 25)),
        "stages_s.sleep": (row["stages_s"]["sleep"], total),
    }


def overhead_per_chunk() -> float:
    chunks = [np.zeros((1, 8, 8, 3), np.uint8)] * 1000
    _, row = time_stream(Instant(chunks), request(1000))
    return row["total_s"] / row["n_chunks"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    passed = {"delays within 2%": 0, "overhead < 1e-4 s/chunk": 0}
    for repeat in range(args.repeats):
        figures = known_delays()
        worst = max(abs(got - want) / want for got, want in figures.values())
        passed["delays within 2%"] += worst <= 0.02
        per_chunk = overhead_per_chunk()
        passed["overhead < 1e-4 s/chunk"] += per_chunk < 1e-4
        print(
            f"repeat {repeat + 1}: largest relative error of the known delays {worst:.4f} "
            f"({', '.join(f'{k} {got:.5g}/{want:.5g}' for k, (got, want) in figures.items())}); "
            f"harness {per_chunk * 1e6:.2f} us per chunk"
        )
    for check, count in passed.items():
        print(f"{check}: {count} of {args.repeats} repeats")
    return 0 if all(passed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
