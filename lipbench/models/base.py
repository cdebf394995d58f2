"""The one interface every lip-sync model is driven through."""

from __future__ import annotations

import abc
import contextlib
from pathlib import Path
from typing import ClassVar, Iterator

import numpy as np

from lipbench.models.worker_side import Request


class LipSyncModel(abc.ABC):
    """A lip-sync model: `load(device)` once; per clip `prepare(request)` (untimed) and
    `stream(request)` (timed); `close()` at the end, also after a failure.

    `stream` yields uint8 RGB chunks (t, H, W, 3) as soon as each exists; together they
    hold exactly `request.n_frames` frames at the reference's size. A bidirectional
    model yields once at the end; a causal one yields chunk by chunk, which is what
    time-to-first-frame measures. Class attributes tell the runner what it drives.
    """

    name: ClassVar[str]
    causal: ClassVar[bool] = False  # True: emits chunks while it is still generating
    chunk_frames: ClassVar[tuple[int, ...]] = ()  # e.g. (9, 12): first chunk, then every later one
    parameters: ClassVar[int] = 0  # learned parameters (0 for weight-free models)
    dtype: ClassVar[str] = "none"  # dtype of the weights, for the latency floor
    # Full passes over the weights before the first chunk exists, and per later chunk
    # (denoising steps + cache updates + decoder), for the latency floor.
    forward_passes_first_chunk: ClassVar[int] = 1
    forward_passes_per_chunk: ClassVar[int] = 1
    # How far past a frame's interval the model must hear the speech before it can make
    # the frame (seconds; 0: up to the frame's end; None: the whole clip, e.g. an encoder
    # run over all the audio first). Live latency measures it too (`lookahead_s`): a model
    # reads the audio through `request.audio_until(t)`; reading `request.audio` reads all.
    audio_lookahead_s: ClassVar[float | None] = None
    stage_timer = None  # set by the harness while it times a stream
    exact_length: ClassVar[bool] = True  # False: frame count and size may differ (outputs made elsewhere)
    # True: a reference (the ground truth, an oracle), not a method: reports draw it as a
    # reference line on Pareto plots and mark it in tables, never on a front or in bold
    reference: ClassVar[bool] = False
    # dtypes the adapter can run in besides "auto"; empty: a fixed dtype (`dtype` above)
    dtypes: ClassVar[tuple[str, ...]] = ()
    weights_dir = None  # folder searched first for weight files (lipbench.weights.find_weight)
    dtype_name = "auto"  # the dtype asked for ("auto": the adapter's default on the device)

    def __init__(self, **kwargs):
        if kwargs:
            raise TypeError(f"model {self.name!r} takes no arguments {sorted(kwargs)}")
        self.device = "cpu"

    def configure(self, weights_dir=None, dtype: str = "auto") -> None:
        """Run-wide options (config keys `weights_dir`, `dtype`; flags `--weights-dir`,
        `--dtype`), given to every adapter after it is created. An adapter's own args
        win: a run-wide value only fills what the model entry left at its default. The
        run-wide dtype applies to adapters that offer it (`dtypes`); the others keep
        their fixed dtype, which their records show."""
        if weights_dir and self.weights_dir is None:
            self.weights_dir = str(weights_dir)
        if dtype != "auto" and self.dtype_name == "auto" and dtype in self.dtypes:
            self.dtype_name = dtype

    def load(self, device: str = "cpu") -> None:
        """Load weights onto `device`; called once before any stream."""
        self.device = device

    def prepare(self, request: Request) -> None:
        """Per-clip work the upstream pipeline really does ahead of time (MuseTalk's
        realtime mode prepares its avatar offline). Called before each `stream`, outside
        the clock; the runner records its seconds as `prepare_s`, beside TTFF and FPS."""

    def close(self) -> None:
        """Release what `load` took (device memory, worker processes). The runner calls
        it once after a model's last unit, also when a unit or the load failed."""

    def timing(self, request: Request) -> dict | None:
        """Timing figures measured elsewhere for the stream just run (a worker process,
        a sidecar file); they replace the harness's own. None: the harness's clock is
        the measure."""
        return None

    @abc.abstractmethod
    def stream(self, request: Request) -> Iterator[np.ndarray]: ...

    def stage(self, name: str):
        """`with self.stage("decode"): ...` times a part of a chunk's work when the harness
        is timing this stream (and costs nothing otherwise)."""
        return self.stage_timer(name) if self.stage_timer is not None else contextlib.nullcontext()

    def weight_files(self) -> dict[str, Path]:
        """{name: path} of every weight file `load` will read, resolved without loading
        (cheap): their sha256 go into each unit's fingerprint, so a replaced checkpoint
        regenerates the model's videos. A missing file raises the lookup's error."""
        return {}

    def clip_files(self, clip_id: str) -> dict[str, Path]:
        """{name: path} of per-clip inputs besides the clip itself (outputs made elsewhere),
        fingerprinted like weight files."""
        return {}

    def derived_timing(self, timing: dict) -> dict:
        """Figures another harness reports for this model, rebuilt from one timed stream's
        row (its `stage_spans_s`), stored in the unit beside lipbench's own; {} if none."""
        return {}

    def declared_lookahead_s(self, fps: float) -> float | None:
        """`audio_lookahead_s` at a clip's frame rate (an adapter whose lookahead depends
        on it overrides this)."""
        return self.audio_lookahead_s

    def generate(self, request: Request) -> np.ndarray:
        return np.concatenate(list(self.stream(request)))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "causal": self.causal,
            "chunk_frames": list(self.chunk_frames),
            "parameters": self.parameters,
            "dtype": self.dtype,
            "forward_passes_first_chunk": self.forward_passes_first_chunk,
            "forward_passes_per_chunk": self.forward_passes_per_chunk,
            "reference": self.reference,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
        }


def chunk_bounds(n_frames: int, chunk_frames: tuple[int, ...]) -> list[tuple[int, int]]:
    """[start, end) of each chunk: the first size for the first chunk, the last size for
    every later one ((9, 12) over 81 frames -> 9, 12, 12, 12, 12, 12, 12)."""
    bounds, start = [], 0
    sizes = list(chunk_frames) or [n_frames]
    while start < n_frames:
        size = sizes[min(len(bounds), len(sizes) - 1)]
        bounds.append((start, min(start + size, n_frames)))
        start = bounds[-1][1]
    return bounds
