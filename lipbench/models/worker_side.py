"""The worker side of lipbench's worker protocol: one file, NumPy and the standard library.

A model that cannot share lipbench's environment (LatentSync's torch 2.5.1, a lab's own
pins) runs in its own interpreter. lipbench starts

    <the model's python> -I worker_side.py '<json: entry, path, args, shm_dir, out_fd>'

once per model. This file needs no lipbench install there: it imports the model class
named by `entry` ("module:Class") from the folders in `path` (the user's checkout, the
adapter's folder) and serves requests. Inside the worker it is importable as
`lipbench_worker`, for the base class `Model`:

    import lipbench_worker

    class MyModel(lipbench_worker.Model):
        def __init__(self, **args): ...        # the adapter's JSON args
        def load(self, device): ...            # once
        def prepare(self, request): ...        # untimed, per clip (optional)
        def stream(self, request):             # yield uint8 RGB (t, H, W, 3) as each chunk exists
            with self.stage("denoise"):
                ...
        def close(self): ...                   # optional

The protocol. Requests come as JSON lines on stdin: {"op": "load", "device"},
{"op": "prepare" | "stream", "request": {...}}, {"op": "close"}. A request's frames and
audio are .npy files in `shm_dir` (on /dev/shm: shared memory), opened memory-mapped; its
`protocol` ("offline" or "live") and `lead_s` set how the audio feed paces the audio
from the start of the stream, on this side (see `AudioFeed`).
Answers are JSON lines on the file descriptor `out_fd` (stdout is the model's own, sent to
the worker's log with stderr): {"event": "ready" | "loaded" | "prepared" | "closed"},
per chunk {"event": "chunk", "file", "shape", "arrival_s", "write_s", "audio_read_s"} (the frames
written as .npy into `shm_dir`), at the end of a stream {"event": "end", "timer",
"device", "stages_s", "stage_spans_s", ...}, and on a failure {"event": "error",
"error", "traceback"}.

Timing uses lipbench's definitions on this side of the boundary: a clock started when
`stream()` starts (CUDA events on a CUDA device, else perf_counter), read when each chunk
exists. Writing a chunk out is shipping, not generation: the clock leaves it out
(`arrival_s` counts only the model's own work) and reports it as `write_s`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback

import numpy as np

PROTOCOL = 1


TIMING_PROTOCOLS = ("offline", "live")


class AudioFeed:
    """When the driving audio exists, by the request's timing protocol.

    `offline` (the paper's): all of it when `stream()` starts. `live`: speech arriving at
    its real pace from the start of `stream()`, `lead_s` seconds ahead (samples up to t
    seconds exist at t - lead_s). Reading waits until what is read exists, and the
    furthest second read so far is kept (`read_s`): the harness compares it with each
    chunk's frames to measure how far ahead of its frames a model listens.
    """

    def __init__(self, protocol: str = "offline", lead_s: float = 0.0):
        if protocol not in TIMING_PROTOCOLS:
            raise ValueError(f"timing protocol must be one of {TIMING_PROTOCOLS}, got {protocol!r}")
        self.protocol, self.lead_s = protocol, float(lead_s)
        self.started, self.read_s = None, 0.0

    def start(self, at: float) -> None:
        """The speech starts arriving at `at` (perf_counter seconds): when the stream's
        clock starts (Stopwatch.host_origin)."""
        self.started, self.read_s = at, 0.0

    def arrival_s(self, seconds: float) -> float:
        """Seconds after the start at which the audio up to `seconds` exists."""
        return max(0.0, seconds - self.lead_s) if self.protocol == "live" else 0.0

    def wait_for(self, seconds: float) -> None:
        self.read_s = max(self.read_s, seconds)
        if self.protocol != "live" or self.started is None:
            return  # offline, or read outside a timed stream (load, prepare): nothing to wait for
        left = self.started + self.arrival_s(seconds) - time.perf_counter()
        if left > 0:
            time.sleep(left)


class Request:
    """What a lip-sync model is asked for: re-voice `frames` so the mouth follows the audio.

    The answer has as many frames as the reference, at the same size and fps. The
    reference frames are there from the start (an avatar's source footage); the driving
    audio comes through `feed`: `audio` is the whole track (in the live protocol it waits
    for the whole clip), `audio_until(seconds)` the track up to a time (waiting for it in
    live). Its length, `n_samples`, is known up front, like the frame count.
    `recorded_audio` is the whole track without waiting, for the harness after a stream
    (never for a model).
    """

    def __init__(self, clip_id, frames, audio, audio_rate, fps, feed: AudioFeed | None = None):
        self.clip_id, self.frames, self.recorded_audio = clip_id, frames, audio
        self.audio_rate, self.fps = int(audio_rate), float(fps)
        self.feed = feed or AudioFeed()

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def n_samples(self) -> int:
        return int(len(self.recorded_audio))

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.audio_rate

    def samples_per_frame(self) -> float:
        return self.audio_rate / self.fps

    @property
    def audio(self) -> np.ndarray:
        """The whole driving track (float32 mono); live: once all of it has arrived."""
        self.feed.wait_for(self.duration_s)
        return self.recorded_audio

    def audio_until(self, seconds: float) -> np.ndarray:
        """The driving track up to `seconds` (clipped to its end); live: once that has arrived."""
        seconds = min(max(float(seconds), 0.0), self.duration_s)
        self.feed.wait_for(seconds)
        return self.recorded_audio[: int(round(seconds * self.audio_rate))]

    def live(self, lead_s: float = 0.0) -> "Request":
        """The same request under the live protocol (a fresh feed)."""
        return Request(
            self.clip_id, self.frames, self.recorded_audio, self.audio_rate, self.fps, AudioFeed("live", lead_s)
        )


class Model:
    """Base class of a worker-side model (see the module docstring)."""

    stage_timer = None
    parameters = 0  # reported to lipbench for its latency floor
    dtype = "none"

    def load(self, device: str) -> None:
        self.device = device

    def prepare(self, request: Request) -> None:
        pass

    def stream(self, request: Request):
        raise NotImplementedError

    def close(self) -> None:
        pass

    def stage(self, name: str):
        return self.stage_timer(name) if self.stage_timer is not None else contextlib.nullcontext()


class Stopwatch:
    """lipbench's stream clock, on both sides of a worker (lipbench.timing uses this one):
    CUDA events on a CUDA device, recorded on the current stream and synchronised only
    when read; perf_counter elsewhere. `paused` seconds (a worker shipping chunks) are
    left out of `elapsed()`."""

    def __init__(self, device: str = "cpu"):
        self.device = str(device)
        self.cuda = self.device.startswith("cuda")
        if self.cuda:
            import torch

            self._torch = torch
        self.timer = "cuda_event" if self.cuda else "perf_counter"
        self.paused = 0.0

    def start(self) -> None:
        if self.cuda:
            self._torch.cuda.synchronize(self.device)
            self._torch.cuda.reset_peak_memory_stats(self.device)
            self.host_origin = time.perf_counter()  # the same instant on the host: the device is idle
        self.origin = self.mark()
        if not self.cuda:
            self.host_origin = self.origin

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
        """Seconds since start(), less pauses, once all work queued so far has finished."""
        return self.between(self.origin, self.mark()) - self.paused

    def memory_bytes(self) -> int | None:
        """Memory in use now: the device's allocated bytes on CUDA (no synchronisation),
        else this process's resident set (Linux /proc; None elsewhere). Sampled after
        each chunk, so a long stream shows whether memory grows."""
        if self.cuda:
            return int(self._torch.cuda.memory_allocated(self.device))
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def peak_memory_bytes(self) -> dict:
        if not self.cuda:
            return {}
        return {
            "peak_allocated_bytes": int(self._torch.cuda.max_memory_allocated(self.device)),
            "peak_reserved_bytes": int(self._torch.cuda.max_memory_reserved(self.device)),
        }


class StageTimer:
    """Collects the spans a model marks (`with model.stage(name)`) while a stream runs."""

    def __init__(self, watch: Stopwatch):
        self.watch, self.spans = watch, []

    @contextlib.contextmanager
    def __call__(self, name: str):
        start, paused = self.watch.mark(), self.watch.paused
        try:
            yield
        finally:
            self.spans.append((name, start, self.watch.mark(), paused))

    def totals(self) -> dict:
        out = {}
        for name, start, end, _ in self.spans:
            out[name] = out.get(name, 0.0) + self.watch.between(start, end)
        return out

    def offsets(self) -> list:
        """[stage, start_s, end_s] of every span, in seconds from the stopwatch's start less
        the pauses before it (so spans defined by other harnesses can be rebuilt from them)."""
        out = []
        for name, start, end, paused in self.spans:
            begin = self.watch.between(self.watch.origin, start) - paused
            out.append([name, begin, begin + self.watch.between(start, end)])
        return out


def host_frames(chunk) -> np.ndarray:
    if hasattr(chunk, "detach"):  # a torch tensor on any device
        chunk = chunk.detach().cpu().numpy()
    return np.ascontiguousarray(chunk)


class Server:
    def __init__(self, spec: dict):
        self.spec, self.shm_dir = spec, spec["shm_dir"]
        self.out = os.fdopen(spec["out_fd"], "w", buffering=1)
        self.model, self.device, self.n_written = None, "cpu", 0

    def send(self, event: str, **fields) -> None:
        self.out.write(json.dumps({"event": event, **fields}) + "\n")
        self.out.flush()

    def start(self) -> None:
        for folder in reversed(self.spec.get("path", [])):
            sys.path.insert(0, folder)
        module_name, _, class_name = self.spec["entry"].partition(":")
        import importlib

        cls = getattr(importlib.import_module(module_name), class_name)
        self.model = cls(**self.spec.get("args", {}))
        self.send("ready", protocol=PROTOCOL, python=sys.version.split()[0], pid=os.getpid())

    def request(self, fields: dict) -> Request:
        return Request(
            fields["clip_id"],
            np.load(fields["frames"], mmap_mode="r"),
            np.load(fields["audio"], mmap_mode="r"),
            fields["audio_rate"],
            fields["fps"],
            AudioFeed(fields.get("protocol", "offline"), fields.get("lead_s", 0.0)),
        )

    def load(self, message: dict) -> None:
        self.device = message["device"]
        self.model.load(self.device)
        self.send(
            "loaded",
            parameters=int(getattr(self.model, "parameters", 0) or 0),
            dtype=str(getattr(self.model, "dtype", "none")),
        )

    def prepare(self, message: dict) -> None:
        self.model.prepare(self.request(message["request"]))
        self.send("prepared")

    def stream(self, message: dict) -> None:
        request = self.request(message["request"])
        clock = Stopwatch(self.device)
        stages = StageTimer(clock)
        self.model.stage_timer = stages
        try:
            chunks = self.model.stream(request)
            clock.start()
            request.feed.start(clock.host_origin)  # live: the speech starts arriving now, on this side
            for chunk in chunks:
                arrival = clock.elapsed()
                read = request.feed.read_s
                memory = clock.memory_bytes()
                began = time.perf_counter()
                frames = host_frames(chunk)
                path = os.path.join(self.shm_dir, f"chunk-{os.getpid()}-{self.n_written}.npy")
                self.n_written += 1
                np.save(path, frames, allow_pickle=False)
                written = time.perf_counter() - began
                self.send(
                    "chunk",
                    file=path,
                    shape=list(frames.shape),
                    dtype=str(frames.dtype),
                    arrival_s=arrival,
                    write_s=written,
                    audio_read_s=read,
                    memory_bytes=memory,
                )
                clock.paused += time.perf_counter() - began
        finally:
            self.model.stage_timer = None
        self.send(
            "end",
            timer=clock.timer,
            device=clock.device,
            stages_s=stages.totals(),
            stage_spans_s=stages.offsets(),
            **clock.peak_memory_bytes(),
        )

    def close(self, message: dict) -> None:
        self.model.close()
        self.send("closed")

    def serve(self) -> None:
        try:
            self.start()
        except BaseException as exc:
            self.send("error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            raise
        for line in sys.stdin:
            message = json.loads(line)
            try:
                getattr(self, message["op"])(message)
            except Exception as exc:  # the model's own error, sent as text; the worker stays up
                self.send("error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            if message["op"] == "close":
                return


def main(argv) -> None:
    spec = json.loads(argv[1])
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # only `path` is the model's
    sys.modules.setdefault("lipbench_worker", sys.modules[__name__])
    sys.stdout = sys.stderr  # the model's prints go to the worker's log, not into the protocol
    Server(spec).serve()


if __name__ == "__main__":
    main(sys.argv)
