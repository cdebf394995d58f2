"""What the worker protocol costs per chunk: frames shipped through shared memory
against the same frames pickled through a pipe (multiprocessing's default), on the same
machine, the same chunks.

    python benchmarks/perf/worker_transfer.py --size 512 --frames 81 --chunk 16 --repeats 5

A worker (this venv's Python, `tests/worker_models/toy_worker.py`, which echoes the
reference frames chunk by chunk) streams one clip; lipbench reports per chunk
`transfer_s` (the worker writing the .npy into /dev/shm plus lipbench reading it).
The baseline sends the same chunks through a multiprocessing.Pipe (pickled), timed
from send to receive. Prints medians over chunks and repeats, and their ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lipbench.models.worker import WorkerModel  # noqa: E402
from lipbench.types import Request  # noqa: E402


def pipe_sender(conn, frames: np.ndarray, chunk: int, repeats: int) -> None:
    for _ in range(repeats):
        for start in range(0, len(frames), chunk):
            conn.send((time.perf_counter(), frames[start : start + chunk]))
    conn.send(None)


def pipe_seconds(frames: np.ndarray, chunk: int, repeats: int) -> list[float]:
    """Per chunk: seconds from send (pickling included) to received and unpickled."""
    ours, theirs = multiprocessing.Pipe()
    sender = multiprocessing.Process(target=pipe_sender, args=(theirs, frames, chunk, repeats))
    sender.start()
    seconds = []
    while (item := ours.recv()) is not None:
        seconds.append(time.perf_counter() - item[0])
    sender.join()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (args.frames, args.size, args.size, 3), dtype=np.uint8)
    request = Request("bench", frames, np.zeros(args.frames * 640, np.float32), 16000, 25.0)

    model = WorkerModel(
        python=sys.executable,
        entry="toy_worker:Toy",
        path=[str(ROOT / "tests" / "worker_models")],
        causal=True,
        chunk_frames=[args.chunk],
        args={"chunk": args.chunk},
    )
    model.load("cpu")
    transfer, overhead = [], []
    try:
        for _ in range(args.repeats):
            model.prepare(request)
            out = np.concatenate(list(model.stream(request)))
            assert np.array_equal(out, frames)
            timing = model.timing(request)
            transfer += timing["transfer_s"]
            overhead.append(timing["harness_total_s"] - timing["total_s"])
    finally:
        model.close()
    piped = pipe_seconds(frames, args.chunk, args.repeats)
    mb = args.chunk * args.size * args.size * 3 / 1e6
    shm, pipe = statistics.median(transfer), statistics.median(piped)
    print(
        f"chunk of {args.chunk} frames at {args.size}x{args.size} ({mb:.1f} MB), {args.repeats} streams of "
        f"{args.frames} frames"
    )
    print(f"shared memory (lipbench worker): {shm * 1e3:.2f} ms per chunk (median), {mb / shm / 1e3:.2f} GB/s")
    print(f"pickled through a pipe:          {pipe * 1e3:.2f} ms per chunk (median), {mb / pipe / 1e3:.2f} GB/s")
    print(f"ratio pipe / shared memory: {pipe / shm:.2f}")
    print(
        f"stream on lipbench's clock minus the worker's: {statistics.median(overhead) * 1e3:.1f} ms per stream "
        f"(median; shipping, messages and the request's write)"
    )


if __name__ == "__main__":
    main()
