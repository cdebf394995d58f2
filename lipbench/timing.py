"""Timing of a model's stream, by one definition for every model.

TTFF: seconds from the start of `stream()` (inputs decoded, model loaded and warmed
up) until the first chunk exists. FPS: frames / seconds from that start until the
last chunk exists. On CUDA the clock is a pair of CUDA events on the current stream,
synchronised when a chunk arrives (that is when its frames must exist); elsewhere it
is time.perf_counter.
"""

from __future__ import annotations

import time
from typing import Iterator

import numpy as np


class Stopwatch:
    def __init__(self, device: str = "cpu"):
        self.device = str(device)
        self.cuda = self.device.startswith("cuda")
        if self.cuda:
            import torch

            self._torch = torch
        self.timer = "cuda_event" if self.cuda else "perf_counter"

    def start(self) -> None:
        if self.cuda:
            self._torch.cuda.synchronize(self.device)
            self._torch.cuda.reset_peak_memory_stats(self.device)
            self._start = self._torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since start(), once all work queued so far has finished."""
        if self.cuda:
            now = self._torch.cuda.Event(enable_timing=True)
            now.record()
            now.synchronize()
            return self._start.elapsed_time(now) / 1000.0
        return time.perf_counter() - self._start

    def peak_memory_bytes(self) -> dict:
        if not self.cuda:
            return {}
        return {"peak_allocated_bytes": int(self._torch.cuda.max_memory_allocated(self.device)),
                "peak_reserved_bytes": int(self._torch.cuda.max_memory_reserved(self.device))}


def _to_host(chunk) -> np.ndarray:
    if hasattr(chunk, "detach"):  # a torch tensor on any device
        chunk = chunk.detach().cpu().numpy()
    return np.asarray(chunk)


def time_stream(chunks: Iterator, device: str = "cpu") -> tuple[np.ndarray, dict]:
    """Drain a model's stream, timing each chunk; returns (frames, timing row).

    Pass the generator object returned by `model.stream(request)`: generators run
    lazily, so the clock starts before the model's first line of work.
    """
    watch = Stopwatch(device)
    arrivals, frames = [], []
    watch.start()
    for chunk in chunks:
        arrivals.append(watch.elapsed())
        frames.append(_to_host(chunk))  # copy-out after the clock: transfer is not generation
    if not frames:
        raise RuntimeError("the model's stream yielded no chunk")
    out = np.concatenate(frames)
    total = arrivals[-1]
    chunk_s = np.diff([0.0] + arrivals)
    return out, {
        "ttff_s": arrivals[0],
        "total_s": total,
        "fps": len(out) / total if total > 0 else float("inf"),
        "n_frames": int(len(out)),
        "n_chunks": len(frames),
        "chunk_frames": [int(len(f)) for f in frames],
        "chunk_s": [float(s) for s in chunk_s],
        "timer": watch.timer,
        "device": watch.device,
        **watch.peak_memory_bytes(),
    }
