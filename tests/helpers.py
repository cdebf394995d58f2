"""Models for tests, reachable as 'tests.helpers:Name' like any user's model."""

import json
import os
import signal
import time
from pathlib import Path

import numpy as np

from lipbench.models.base import LipSyncModel


def config_file(path, manifest, models, **settings) -> str:
    """A benchmark config file at `path` for `lipbench run`: `models` on `manifest`'s clips,
    psnr, no warm-up, and any other `settings`."""
    Path(path).write_text(
        json.dumps(
            {
                "name": "t",
                "data": {"manifest": str(manifest.path)},
                "warmup_clips": 0,
                "metrics": ["psnr"],
                "models": models,
                **settings,
            }
        )
    )
    return str(path)


class Interrupting(LipSyncModel):
    """Ground truth during which the user presses Ctrl-C (a real SIGINT) on a chosen clip."""

    name = "interrupting"
    interrupt_on: str | None = None
    calls: list = []

    def stream(self, request):
        Interrupting.calls.append(request.clip_id)
        if request.clip_id == Interrupting.interrupt_on:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the signal's handler raises before this ends
        yield request.frames.copy()


class RaisesBase(LipSyncModel):
    """A plug-in that raises SystemExit or KeyboardInterrupt itself on one clip."""

    name = "raises_base"

    def __init__(self, clip: str = "", exc: str = "SystemExit"):
        super().__init__()
        self.clip, self.exc = clip, exc

    def stream(self, request):
        if request.clip_id == self.clip:
            raise {"SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt}[self.exc](3)
        yield request.frames.copy()


class Hangs(LipSyncModel):
    """Never finishes on one clip (a model stuck in a loop); ground truth elsewhere."""

    name = "hangs"

    def __init__(self, clip: str = ""):
        super().__init__()
        self.clip = clip

    def stream(self, request):
        while request.clip_id == self.clip:
            try:
                time.sleep(0.05)
            except Exception:  # a model that swallows errors must still be stopped
                pass
        yield request.frames.copy()


class Gated(LipSyncModel):
    """Ground truth that, on one clip, waits until the file `gate` exists: a sweep held
    mid-way for as long as a test needs, however fast or busy the machine is."""

    name = "gated"

    def __init__(self, clip: str = "", gate: str = ""):
        super().__init__()
        self.clip, self.gate = clip, gate

    def stream(self, request):
        while request.clip_id == self.clip and not os.path.exists(self.gate):
            time.sleep(0.05)
        yield request.frames.copy()


class FailsOn(LipSyncModel):
    """Fails on one clip, in one of several ways; ground truth elsewhere."""

    name = "fails_on"

    def __init__(self, clip: str = "", how: str = "raise"):
        super().__init__()
        self.clip, self.how = clip, how

    def stream(self, request):
        if request.clip_id != self.clip:
            yield request.frames.copy()
        elif self.how == "raise":
            raise RuntimeError("simulated model failure")
        elif self.how == "short":
            yield request.frames[:-1].copy()
        elif self.how == "float":
            yield request.frames.astype(np.float32)


class Sleeper(LipSyncModel):
    """Known per-chunk work: `first_s` before the first chunk, `chunk_s` before each later one."""

    name = "sleeper"
    causal = True

    def __init__(self, first_s: float = 0.02, chunk_s: float = 0.02, frames_per_chunk: int = 4):
        super().__init__()
        self.first_s, self.chunk_s, self.frames_per_chunk = first_s, chunk_s, frames_per_chunk

    def stream(self, request):
        import time

        for start in range(0, request.n_frames, self.frames_per_chunk):
            with self.stage("sleep"):
                time.sleep(self.first_s if start == 0 else self.chunk_s)
            yield request.frames[start : start + self.frames_per_chunk]


class FailsToLoad(LipSyncModel):
    """A model whose weights cannot be read (a corrupt checkpoint)."""

    name = "fails_to_load"

    def load(self, device="cpu"):
        raise RuntimeError("checkpoint is corrupt")

    def stream(self, request):
        yield request.frames.copy()


class Instant(LipSyncModel):
    """Chunks that already exist: what remains is the harness's own cost."""

    name = "instant"

    def __init__(self, chunks):
        super().__init__()
        self.chunks = chunks

    def stream(self, request):
        yield from self.chunks


class Jittery(LipSyncModel):
    """Ground truth plus fresh noise on every stream: not deterministic under a fixed seed."""

    name = "jittery"
    causal = True
    chunk_frames = (9, 12)

    def stream(self, request):
        noise = np.random.default_rng().integers(0, 2, request.frames.shape, dtype=np.uint8)
        out = request.frames ^ noise
        yield out[:9]
        for start in range(9, len(out), 12):
            yield out[start : start + 12]


class MisChunked(LipSyncModel):
    """Declares chunks of 9 then 12 frames but yields chunks of 10."""

    name = "mischunked"
    causal = True
    chunk_frames = (9, 12)

    def stream(self, request):
        for start in range(0, request.n_frames, 10):
            yield request.frames[start : start + 10].copy()


def fixture_maker(name: str):
    """(tests/fixtures/<name>, its make_fixtures.py as a module): a parity test rebuilds its
    inputs with the same functions that made the fixture from upstream's code."""
    import importlib.util
    from pathlib import Path

    folder = Path(__file__).parent / "fixtures" / name
    spec = importlib.util.spec_from_file_location(f"{name}_make_fixtures", folder / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return folder, module


class ClaimsTrillion(LipSyncModel):
    """Ground truth that declares a trillion fp32 parameters: on any GPU its TTFF is far
    below the latency floor, which says its declared figures are wrong."""

    name = "claims_trillion"
    parameters = 10**12
    dtype = "fp32"

    def stream(self, request):
        yield request.frames.copy()


class Lifecycle(LipSyncModel):
    """Ground truth that records the runner's calls (`calls`, class-level), prepares for
    `prepare_s` seconds per clip, can fail on one clip's stream or at load, and offers
    fp16 and bf16 (for the run-wide dtype)."""

    name = "lifecycle"
    dtypes = ("fp16", "bf16")
    calls: list = []

    def __init__(
        self,
        prepare_s: float = 0.0,
        fail_clip: str = "",
        fail_load: bool = False,
        weights_dir=None,
        dtype: str = "auto",
    ):
        super().__init__()
        self.prepare_s, self.fail_clip, self.fail_load = prepare_s, fail_clip, fail_load
        self.weights_dir, self.dtype_name = weights_dir, dtype

    def load(self, device="cpu"):
        Lifecycle.calls.append("load")
        if self.fail_load:
            raise RuntimeError("simulated load failure")
        super().load(device)

    def prepare(self, request):
        Lifecycle.calls.append(f"prepare {request.clip_id}")
        time.sleep(self.prepare_s)

    def stream(self, request):
        Lifecycle.calls.append(f"stream {request.clip_id}")
        if request.clip_id == self.fail_clip:
            raise RuntimeError("simulated stream failure")
        yield request.frames.copy()

    def close(self):
        Lifecycle.calls.append("close")

    def describe(self):
        return {**super().describe(), "weights_dir": self.weights_dir, "dtype_asked": self.dtype_name}


class Listens(LipSyncModel):
    """Ground truth that listens like a streaming model: per chunk of `chunk` frames it
    reads the audio up to `lookahead_s` past the chunk's end, then works `work_s` seconds
    (time.sleep), `slowdown_s` more for each chunk than for the one before (a stream that
    slows down as it goes on). `whole: true` reads the whole track first and answers once
    (a bidirectional model)."""

    name = "listens"

    def __init__(
        self,
        chunk: int = 4,
        lookahead_s: float = 0.0,
        work_s: float = 0.0,
        whole: bool = False,
        slowdown_s: float = 0.0,
    ):
        super().__init__()
        self.chunk, self.work_s, self.whole, self.slowdown_s = int(chunk), float(work_s), bool(whole), float(slowdown_s)
        self.reads_ahead_s = float(lookahead_s)
        self.audio_lookahead_s = None if whole else self.reads_ahead_s  # declared as it reads
        self.causal = not whole
        self.chunk_frames = () if whole else (self.chunk,)

    def stream(self, request):
        if self.whole:
            request.audio
            time.sleep(self.work_s)
            yield request.frames.copy()
            return
        for k, start in enumerate(range(0, request.n_frames, self.chunk)):
            end = min(start + self.chunk, request.n_frames)
            request.audio_until(end / request.fps + self.reads_ahead_s)
            time.sleep(self.work_s + k * self.slowdown_s)
            yield request.frames[start:end].copy()


class Overhears(Listens):
    """Declares that it hears no further than each chunk's end, but reads 0.1 s past it."""

    name = "overhears"

    def __init__(self):
        super().__init__(chunk=4, lookahead_s=0.1)
        self.audio_lookahead_s = 0.0  # the declaration, not what it does


class DriftingMouth(LipSyncModel):
    """The reference frames with the mouth region worse by a known amount per chunk:
    chunk k (from 0) has the lower middle of the face faded toward mid-grey by
    min(1, k * `fade_per_chunk`). A stand-in for an autoregressive model whose errors
    accumulate."""

    name = "drifting_mouth"
    causal = True
    audio_lookahead_s = 0.0
    chunk_frames = (9, 12)

    def __init__(self, fade_per_chunk: float = 0.02):
        super().__init__()
        self.fade_per_chunk = float(fade_per_chunk)

    def stream(self, request):
        from lipbench.models.base import chunk_bounds

        height, width = request.frames.shape[1:3]
        rows, cols = slice(int(0.55 * height), int(0.85 * height)), slice(int(0.3 * width), int(0.7 * width))
        for k, (start, end) in enumerate(chunk_bounds(request.n_frames, self.chunk_frames)):
            out = request.frames[start:end].copy()
            fade = min(1.0, k * self.fade_per_chunk)
            out[:, rows, cols] = np.round((1 - fade) * out[:, rows, cols] + fade * 128.0).astype(np.uint8)
            yield out
