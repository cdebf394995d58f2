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

Also here: how late frames follow the speech under each timing protocol
(`latency_figures`), and the TTFF latency floor (`check_ttff`).
"""

from __future__ import annotations

import numpy as np

# The clock lives in the worker protocol's one-file side, so that a model in another
# environment is timed by the very same code.
from lipbench.models.worker_side import StageTimer, Stopwatch, host_frames

PERCENTILES = (50, 90, 99)


def hold_figures(chunk_lengths, chunk_s, memory) -> dict:
    """Does a stream keep its pace and its memory over its length?

    - `fps_hold`: frames per second of the chunks in the last third of the stream over
      that of the first third, each the median over its chunks; the first chunk is left
      out (it carries the time to first frame), and so is a last chunk shorter than the
      one before it (a remainder: its fixed per-chunk costs weigh on fewer frames). 1:
      the pace holds; below 1: the stream slows down as it goes on. Absent with fewer
      than 3 chunks left to compare.
    - `chunk_memory_bytes`, `memory_growth_bytes`: memory in use after each chunk (the
      device's on CUDA, the process's resident set on a CPU) and its change from the
      first chunk to the last."""
    out = {}
    lengths, seconds = list(chunk_lengths[1:]), list(chunk_s[1:])
    if len(lengths) > 1 and lengths[-1] < lengths[-2]:
        lengths, seconds = lengths[:-1], seconds[:-1]
    rates = [n / s for n, s in zip(lengths, seconds) if s > 0]
    third = len(rates) // 3
    if third:
        out["fps_hold"] = float(np.median(rates[-third:]) / np.median(rates[:third]))
    known = [int(m) for m in memory if m is not None]
    if len(known) == len(memory) and known:
        out["chunk_memory_bytes"] = known
        out["memory_growth_bytes"] = known[-1] - known[0]
    return out


def latency_summary(chunk_s) -> dict:
    arr = np.asarray(chunk_s, dtype=np.float64)
    return {**{f"chunk_p{p}_s": float(np.percentile(arr, p)) for p in PERCENTILES}, "chunk_max_s": float(arr.max())}


def time_prepare(model, request, device: str = "cpu") -> float:
    """Seconds of `model.prepare(request)`, the untimed per-clip preparation, with its
    device work (reported as `prepare_s`, never inside TTFF or FPS)."""
    watch = Stopwatch(device)
    watch.start()
    model.prepare(request)
    return watch.elapsed()


def time_stream(model, request, device: str = "cpu") -> tuple[np.ndarray, dict]:
    """Run `model.stream(request)` to the end, timing each chunk; returns (frames, row)."""
    watch = Stopwatch(device)
    stages = StageTimer(watch)
    model.stage_timer = stages
    stream = model.stream(request)  # a generator: nothing has run yet
    arrivals, chunks, reads, memory = [], [], [], []
    try:
        watch.start()
        request.feed.start(watch.host_origin)  # live: the speech starts arriving now
        for chunk in stream:
            arrivals.append(watch.elapsed())
            reads.append(request.feed.read_s)
            memory.append(watch.memory_bytes())
            chunks.append(chunk)
    finally:
        model.stage_timer = None
    if not chunks:
        raise RuntimeError("the model's stream yielded no chunk")
    frames = [host_frames(c) for c in chunks]
    out = np.concatenate(frames)
    return out, {
        **stream_figures(arrivals, [len(f) for f in frames], request.n_frames / request.fps, memory),
        "stages_s": stages.totals(),
        "stage_spans_s": stages.offsets(),
        "audio_read_s": reads,
        "timing_protocol": request.feed.protocol,
        "timer": watch.timer,
        "device": watch.device,
        **watch.peak_memory_bytes(),
    }


def stream_figures(arrivals, chunk_lengths, audio_s: float, memory=None) -> dict:
    """TTFF, FPS and chunk latencies from when each chunk existed (seconds from the start
    of `stream()`) and its frame count: the one definition, for streams timed here and
    in a worker process. With `memory` (bytes in use after each chunk, None where not
    measurable) also whether the stream holds over its length: `fps_hold` and
    `memory_growth_bytes` (see `hold_figures`)."""
    total = arrivals[-1]
    n_frames = int(sum(chunk_lengths))
    chunk_s = np.diff([0.0] + list(arrivals))
    return {
        **hold_figures(chunk_lengths, chunk_s, memory or []),
        "ttff_s": float(arrivals[0]),
        "total_s": float(total),
        "fps": n_frames / total if total > 0 else float("inf"),
        "rtf": total / audio_s,  # < 1: faster than real time
        "n_frames": n_frames,
        "n_chunks": len(chunk_lengths),
        "chunk_frames": [int(n) for n in chunk_lengths],
        "chunk_s": [float(s) for s in chunk_s],
        **latency_summary(chunk_s),
    }


# the keys latency_figures returns (a unit's, and its live block's)
LATENCY_FIGURES = (
    "latency_p50_s",
    "latency_p95_s",
    "latency_max_s",
    "playback_delay_s",
    "stall_delay_s",
    "stalls",
    "lookahead_s",
    "lookahead_declared_s",
)


def latency_figures(row: dict, request, declared_lookahead_s: float | None, stall_delay_s: float) -> dict:
    """How late each frame follows the speech it shows, from a timed row (its chunk
    arrivals and sizes, and how far the model had read the audio at each chunk):

    - `latency_*_s`: per frame i, the time it exists minus the time the audio of its
      interval [i/fps, (i+1)/fps) has fully arrived (offline: at the start; live: at
      (i+1)/fps less the lead); p50, p95 and max over frames;
    - `playback_delay_s`: the least D for which a player showing frame i at D + i/fps
      never stalls (max over i of exists(i) - i/fps), and `stalls`: the frames late at
      `stall_delay_s`;
    - `lookahead_s`: how far past a chunk's last frame the model had read the audio when
      the chunk existed (max over chunks; None when it read no audio), beside the
      adapter's declared `lookahead_declared_s` (None: the whole clip).
    """
    fps, feed = request.fps, request.feed
    sizes = row["chunk_frames"]
    exists = np.repeat(np.asarray(row["chunk_s"]).cumsum(), sizes)
    index = np.arange(len(exists))
    heard = np.array([feed.arrival_s(min((i + 1) / fps, request.duration_s)) for i in index])
    latency = exists - heard
    ends = np.cumsum(sizes) / fps
    reads = row.get("audio_read_s") or []
    return {
        "latency_p50_s": float(np.percentile(latency, 50)),
        "latency_p95_s": float(np.percentile(latency, 95)),
        "latency_max_s": float(latency.max()),
        "playback_delay_s": float((exists - index / fps).max()),
        "stall_delay_s": float(stall_delay_s),
        "stalls": int((exists > stall_delay_s + index / fps).sum()),
        "lookahead_s": (
            float(max(r - e for r, e in zip(reads, ends))) if len(reads) == len(sizes) and max(reads) > 0 else None
        ),  # None: read no audio
        "lookahead_declared_s": declared_lookahead_s,
    }


# ------------------------------------------------------------------ the TTFF latency floor
# The latency floor: the least time a forward pass can take when every weight is read
# from device memory once, and the check that flags figures below it.
#
# floor = parameters x bytes per parameter x passes / memory bandwidth. Real models are
# slower (activations, kernels, launches), so a measured or reported time below the
# floor is a unit slip or a different measurement, never a fast model.

# Peak memory bandwidth in GB/s (vendor data sheets).
BANDWIDTH_GB_S = {
    "H200": 4800.0,
    "H100 SXM": 3350.0,
    "H100 NVL": 3900.0,
    "H100 PCIe": 2000.0,
    "H100": 3350.0,  # an unqualified H100 (the paper's) is taken as SXM
    "A100-SXM4-80GB": 2039.0,
    "A100 80GB": 2039.0,
    "A100-PCIE-40GB": 1555.0,
    "A100": 1555.0,
    "L40S": 864.0,
    "L40": 864.0,
    "RTX 4090": 1008.0,
    "RTX 3090": 936.0,
    "A10G": 600.0,
    "L4": 300.0,
    "V100": 900.0,
    "T4": 320.0,
}

DTYPE_BYTES = {
    "float32": 4,
    "fp32": 4,
    "tf32": 4,
    "float16": 2,
    "fp16": 2,
    "bfloat16": 2,
    "bf16": 2,
    "float8": 1,
    "fp8": 1,
    "int8": 1,
    "int4": 0.5,
}


def bandwidth_for(device_name: str) -> tuple[str, float] | None:
    """(table key, GB/s) for a device name such as 'NVIDIA H100 80GB HBM3'; longest match wins."""
    name = device_name.upper().replace("-", " ")
    for key in sorted(BANDWIDTH_GB_S, key=len, reverse=True):
        if key.upper().replace("-", " ") in name:
            return key, BANDWIDTH_GB_S[key]
    return None


def floor_s(parameters: int, dtype: str, passes: int, bandwidth_gb_s: float) -> float | None:
    """Seconds to read the weights `passes` times; None when it cannot be known."""
    if not parameters or dtype not in DTYPE_BYTES or not bandwidth_gb_s:
        return None
    return parameters * DTYPE_BYTES[dtype] * passes / (bandwidth_gb_s * 1e9)


def check_ttff(ttff_s: float | None, parameters: int, dtype: str, passes_first_chunk: int, device_name: str) -> dict:
    """The TTFF floor on that device and whether a TTFF lies below it."""
    found = bandwidth_for(device_name or "")
    floor = floor_s(parameters, dtype, passes_first_chunk, found[1]) if found else None
    return {
        "ttff_floor_s": floor,
        "floor_device": found[0] if found else None,
        "ttff_below_floor": bool(floor is not None and ttff_s is not None and ttff_s < floor),
    }
