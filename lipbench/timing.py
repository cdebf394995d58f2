"""Timing of a model's stream, by one definition for every model.

TTFF: seconds from the start of `stream()` (inputs decoded, model loaded and warmed
up) until the first chunk exists. FPS: frames / seconds from that start until the
last chunk exists. On CUDA the clock is CUDA events recorded on the current stream,
synchronised only when a chunk arrives (that is when its frames must exist);
elsewhere it is time.perf_counter. Stages an adapter marks (`with self.stage("decode")`)
are timed with unsynchronised events, resolved after the stream ends, so marking a
stage does not change the timing of the stream.

The harness does nothing between chunks but read the clock: chunks are kept as they
come (on host or device) and converted to host arrays after the last one.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

PERCENTILES = (50, 90, 99)


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
        self._start = self.mark()

    def mark(self):
        """A point in time, without waiting for queued device work (a CUDA event)."""
        if self.cuda:
            event = self._torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def between(self, a, b) -> float:
        """Seconds from mark a to mark b (waits for b on CUDA)."""
        if self.cuda:
            b.synchronize()
            return a.elapsed_time(b) / 1000.0
        return b - a

    def elapsed(self) -> float:
        """Seconds since start(), once all work queued so far has finished."""
        return self.between(self._start, self.mark())

    def peak_memory_bytes(self) -> dict:
        if not self.cuda:
            return {}
        return {"peak_allocated_bytes": int(self._torch.cuda.max_memory_allocated(self.device)),
                "peak_reserved_bytes": int(self._torch.cuda.max_memory_reserved(self.device))}


class StageTimer:
    """Collects (stage, start mark, end mark) spans while a stream runs."""

    def __init__(self, watch: Stopwatch):
        self.watch, self.spans = watch, []

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = self.watch.mark()
        try:
            yield
        finally:
            self.spans.append((name, start, self.watch.mark()))

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, start, end in self.spans:
            out[name] = out.get(name, 0.0) + self.watch.between(start, end)
        return out

    def offsets(self) -> list[list]:
        """[stage, start_s, end_s] of every span, in seconds from the stopwatch's start
        (so spans defined by other harnesses can be rebuilt from them)."""
        origin = self.watch._start
        return [[name, self.watch.between(origin, start), self.watch.between(origin, end)]
                for name, start, end in self.spans]


def _to_host(chunk) -> np.ndarray:
    if hasattr(chunk, "detach"):  # a torch tensor on any device
        chunk = chunk.detach().cpu().numpy()
    return np.asarray(chunk)


def latency_summary(chunk_s) -> dict:
    arr = np.asarray(chunk_s, dtype=np.float64)
    return {**{f"chunk_p{p}_s": float(np.percentile(arr, p)) for p in PERCENTILES}, "chunk_max_s": float(arr.max())}


def time_stream(model, request, device: str = "cpu") -> tuple[np.ndarray, dict]:
    """Run `model.stream(request)` to the end, timing each chunk; returns (frames, row)."""
    watch = Stopwatch(device)
    stages = StageTimer(watch)
    model.stage_timer = stages
    stream = model.stream(request)  # a generator: nothing has run yet
    arrivals, chunks = [], []
    try:
        watch.start()
        for chunk in stream:
            arrivals.append(watch.elapsed())
            chunks.append(chunk)
    finally:
        model.stage_timer = None
    if not chunks:
        raise RuntimeError("the model's stream yielded no chunk")
    frames = [_to_host(c) for c in chunks]
    out = np.concatenate(frames)
    total = arrivals[-1]
    chunk_s = np.diff([0.0] + arrivals)
    audio_s = request.n_frames / request.fps
    return out, {
        "ttff_s": arrivals[0],
        "total_s": total,
        "fps": len(out) / total if total > 0 else float("inf"),
        "rtf": total / audio_s,  # < 1: faster than real time
        "n_frames": int(len(out)),
        "n_chunks": len(frames),
        "chunk_frames": [int(len(f)) for f in frames],
        "chunk_s": [float(s) for s in chunk_s],
        **latency_summary(chunk_s),
        "stages_s": stages.totals(),
        "stage_spans_s": stages.offsets(),
        "timer": watch.timer,
        "device": watch.device,
        **watch.peak_memory_bytes(),
    }
