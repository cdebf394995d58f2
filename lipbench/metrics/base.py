"""What every metric reads (one shared context per clip) and what it declares.

A metric family (`Metric` subclass, registered by `name`) computes one or more values
under one protocol; each value is reported as `value@protocol` (`sync_c@latentsync`).
Per-clip values come from `compute`; a set-level metric (`SetMetric`) also returns
per-clip features, pooled over clips by `combine` (FID pooled, FVD).

Everything expensive about a video (decoding, face detection, crops, landmarks) is
computed at most once per video through `Video.shared`, whichever metrics ask for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, ClassVar

import cv2
import numpy as np

from lipbench import io
from lipbench.defaults import metric_batch_size
from lipbench.errors import UnknownProtocolError, UsageError
from lipbench.faces import mesh
from lipbench.metric_keys import metric_key, with_audio


@dataclass(frozen=True)
class Value:
    """One value a metric family reports."""

    name: str
    higher_is_better: bool | None  # None: no direction (a lag, an offset, a count)
    unit: str
    description: str
    protocols: tuple[str, ...] = ()  # the protocols that report it (empty: all of the family's)


@dataclass(frozen=True)
class Unavailable:
    """What `compute` gives for a value it cannot give on this clip while the family's other
    values stand (noref: a video without a face has face_rate 0 and no box to follow). It
    is recorded as that value's failure with `reason`, never as a number."""

    reason: str


@dataclass(frozen=True)
class Output:
    """A reported key: a value under a protocol."""

    key: str
    higher_is_better: bool | None
    unit: str
    description: str


class Video:
    """One decoded video with its own audio track, and analyses of it made at most once."""

    def __init__(
        self,
        frames: np.ndarray,
        fps: float,
        audio: np.ndarray | None = None,
        audio_rate: int = io.DEFAULT_AUDIO_RATE,
        source: Path | None = None,
        times: np.ndarray | None = None,
        audio_error: Exception | None = None,
    ):
        self.frames, self.fps, self.audio, self.audio_rate, self.source = frames, fps, audio, audio_rate, source
        self.times = times  # presentation time of each frame (s), None when unknown: a constant rate is assumed
        self.audio_error = audio_error  # why `audio` is None: no audio stream, or one that cannot be decoded
        self._shared: dict[str, Any] = {}

    @classmethod
    def from_file(cls, path, audio_rate: int = io.DEFAULT_AUDIO_RATE) -> "Video":
        frames, fps, times = io.read_video_timed(path)
        try:
            audio, error = io.read_audio(path, audio_rate), None
        except io.MediaError as exc:
            audio, error = None, exc  # metrics that need audio raise it (`require_audio`)
        return cls(frames, fps, audio, audio_rate, Path(path), times, error)

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()` the first time `key` is asked for, the cached result after."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]

    def require_audio(self) -> np.ndarray:
        if self.audio is None:
            if self.audio_error is not None:
                raise self.audio_error  # no audio stream, or one that cannot be decoded: its own words
            raise io.MediaError(self.source or "<video>", "has no audio stream (sync metrics need it)")
        return self.audio

    @property
    def landmarks(self) -> np.ndarray:
        return self.shared("mediapipe_mesh", lambda: mesh.detect_landmarks(self.frames))

    def frame_times(self) -> np.ndarray:
        """Each frame's time from the first frame (s): the decoded timestamps, else i / fps."""
        if self.times is None:
            return np.arange(len(self.frames)) / self.fps
        return self.times - self.times[0]

    def variable_rate(self) -> str | None:
        return io.variable_rate(self.times, self.fps)


@dataclass(frozen=True)
class Alignment:
    """How a generated video must line up with its reference before they are compared
    (`min_coverage`, `resample_fps`: config keys and `lipbench eval` flags)."""

    min_coverage: float = 0.9  # share of the reference's frames the generated video must have
    resample_fps: bool = False  # resample another or a variable frame rate to the reference's (else: fail)

    def __post_init__(self):
        if not 0 < self.min_coverage <= 1:
            raise UsageError(f"min_coverage must be in (0, 1], got {self.min_coverage!r}")


def resample_indices(times: np.ndarray, duration_s: float, fps: float) -> np.ndarray:
    """For each frame of a constant `fps` over `duration_s`, the index of the source frame
    shown at that moment (the last one whose time is not after it)."""
    targets = np.arange(int(np.floor(duration_s * fps + 1e-6))) / fps
    return np.clip(np.searchsorted(times, targets + 1e-6, side="right") - 1, 0, len(times) - 1)


@dataclass
class ClipContext:
    """A generated video and, when there is one, its reference, aligned: the first n
    frames of each, n the shorter length; generated frames of another size are resized
    to the reference's (bilinear, as the reference evaluation scripts do).

    The generated video must have the reference's frame rate, constant: another rate or
    a variable one is resampled to the reference's by frame time when
    `alignment.resample_fps`, else comparing with the reference fails (`reference_problem`).
    It must also cover `alignment.min_coverage` of the reference's frames. Every trim,
    resize and resampling is kept in `notes`. Metrics that need no reference (sync) read
    the generated video as given, or as resampled."""

    clip_id: str
    generated: Video
    reference: Video | None = None
    alignment: Alignment = field(default_factory=Alignment)
    notes: dict = field(default_factory=dict)
    reference_problem: str | None = None  # why the generated video cannot be compared with the reference

    def __post_init__(self):
        self.n = len(self.generated.frames)
        if self.reference is None:
            return
        ref, gen = self.reference, self.generated
        rate_problem = gen.variable_rate()
        if rate_problem is None and abs(gen.fps - ref.fps) > 1e-3 * ref.fps:
            rate_problem = f"frame rate {gen.fps:g} fps, the reference's is {ref.fps:g} fps"
        if rate_problem and not self.alignment.resample_fps:
            self.reference_problem = (
                f"{gen.source or 'generated video'}: {rate_problem}; pass --resample-fps "
                "(config: resample_fps: true) to resample it to the reference's rate"
            )
            return  # nothing is compared with the reference: no trimming or resizing to note
        if rate_problem:
            times = gen.frame_times()
            index = resample_indices(times, float(times[-1]) + 1 / gen.fps, ref.fps)
            self.notes["generated_resampled"] = {
                "from_fps": gen.fps,
                "to_fps": ref.fps,
                "why": rate_problem,
                "frames_before": len(gen.frames),
                "frames_after": len(index),
            }
            self.generated = gen = Video(
                gen.frames[index], ref.fps, gen.audio, gen.audio_rate, gen.source, audio_error=gen.audio_error
            )
        n_ref, n_gen = len(ref.frames), len(gen.frames)
        self.n = min(n_ref, n_gen)
        if n_ref != n_gen:
            self.notes["frames_trimmed_from"] = {"reference": n_ref, "generated": n_gen}
        if self.n < self.alignment.min_coverage * n_ref:
            self.reference_problem = (
                f"{gen.source or 'generated video'}: {n_gen} frames for the reference's {n_ref} "
                f"({100 * self.n / n_ref:.0f}% covered, {100 * self.alignment.min_coverage:.0f}% required: "
                "--min-coverage, config min_coverage)"
            )
        if gen.frames.shape[1:3] != ref.frames.shape[1:3]:
            self.notes["generated_resized_from"] = list(gen.frames.shape[1:3])

    def require_reference(self, metric: str) -> Video:
        if self.reference is None:
            raise UsageError(f"{self.clip_id}: {metric} compares with a reference video, and none was given")
        if self.reference_problem:
            raise ValueError(self.reference_problem)
        return self.reference

    @cached_property
    def generated_frames(self) -> np.ndarray:
        """Generated frames aligned to the reference (all of them when there is none)."""
        gen = self.generated.frames[: self.n]
        if self.reference is not None and gen.shape[1:3] != self.reference.frames.shape[1:3]:
            height, width = self.reference.frames.shape[1:3]
            gen = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in gen])
        return gen

    @property
    def reference_frames(self) -> np.ndarray:
        return self.require_reference("this metric").frames[: self.n]

    @property
    def reference_landmarks(self) -> np.ndarray:
        return self.require_reference("this metric").landmarks[: self.n]

    def face224_crops(self, precropped: bool = False):
        """(reference, generated) 224x224 face crops (lipbench.faces.face_crop) of the frames
        as compared: MediaPipe's, a resized generated video cropped after resizing, as
        eval_metrics' eval_ssim_lmd.py does; or with `precropped` the frames themselves
        resized to 224 (no detection)."""
        from lipbench.faces import face_crop  # imports MediaPipe: only when a metric asks

        reference = face_crop.video_face_crops(self.require_reference("this metric"), precropped)
        if "generated_resized_from" not in self.notes:
            return reference, face_crop.video_face_crops(self.generated, precropped)
        make = face_crop.frames_as_crops if precropped else face_crop.detect_face_crops
        key = f"{face_crop.cache_key(precropped)}_resized"
        return reference, self.generated.shared(key, lambda: make(self.generated_frames))

    @property
    def generated_landmarks(self) -> np.ndarray:
        if "generated_resized_from" in self.notes:  # landmarks of the frames as compared
            return self.generated.shared("mediapipe_mesh_resized", lambda: mesh.detect_landmarks(self.generated_frames))
        return self.generated.landmarks[: self.n]


class Metric:
    """A metric family. Subclasses set the class attributes and implement `compute`."""

    name: ClassVar[str]
    protocols: ClassVar[tuple[str, ...]]  # the first is the default (the paper's, where it has one)
    values: ClassVar[tuple[Value, ...]]
    needs_reference: ClassVar[bool] = True
    # What the values compare with the reference (when `needs_reference`): "frames", each
    # generated frame with the reference's frame at its time (PSNR, SSIM, LPIPS, LMD, FVD), or
    # "appearance", who is shown and how the frames look, not where the mouth is (CSIM, FID).
    # The reference's frames show the clip's own speech, so "frames" values mean nothing when
    # another clip's speech drives the mouth (cross audio, `valid_under_cross_audio`).
    reference_comparison: ClassVar[str] = "frames"
    # protocol -> its variant for inputs that are already face crops (`--crop none`,
    # config `crop: none`): the frames are the crops, no detector runs
    precropped_variants: ClassVar[dict[str, str]] = {}

    def __init__(self, protocol: str | None = None, device: str = "cpu", weights_dir=None):
        protocol = protocol or self.protocols[0]
        if protocol not in self.protocols:
            raise UnknownProtocolError(
                f"metric {self.name!r} has no protocol {protocol!r}; protocols: {', '.join(self.protocols)}"
            )
        self.protocol, self.device, self.weights_dir = protocol, device, weights_dir
        self.audio = "own"  # which speech drove the videos (metric_keys.AUDIO_CHOICES): part of every key

    @classmethod
    def valid_under_cross_audio(cls) -> bool:
        """Whether the values mean something when another clip's speech drives the mouth:
        they read only the generated video and its audio, or compare only appearance."""
        return not cls.needs_reference or cls.reference_comparison == "appearance"

    @classmethod
    def outputs_for(cls, protocol: str | None = None, audio: str = "own") -> tuple[Output, ...]:
        protocol = protocol or cls.protocols[0]
        return tuple(
            Output(metric_key(v.name, protocol, audio), v.higher_is_better, v.unit, v.description)
            for v in cls.values
            if not v.protocols or protocol in v.protocols
        )

    @property
    def outputs(self) -> tuple[Output, ...]:
        return self.outputs_for(self.protocol, self.audio)

    def keyed(self, values: dict) -> dict:
        """`compute`'s or `combine`'s values ({'sync_c@latentsync': ...}) under this metric's
        audio, the keys of `outputs`."""
        return {with_audio(k, self.audio): v for k, v in values.items()}

    @property
    def precropped(self) -> bool:
        """Whether this protocol takes the frames as face crops (no detection)."""
        return self.protocol in self.precropped_variants.values()

    def weight_files(self) -> tuple[str, ...]:
        """Names (in lipbench.weights) of the files this metric loads under its protocol."""
        return ()

    def settings(self) -> dict:
        """What besides the protocol and the weight files decides the values (a subclass
        with options returns them): part of each value's fingerprint, so a changed
        setting recomputes the values made under the old one."""
        return {"protocol": self.protocol}

    def check_available(self) -> None:
        """Fail before any clip is decoded when something this metric loads is missing:
        a weight file (MissingWeightError naming it, what needs it and how to get it)."""
        from lipbench.weights import find_weight

        for name in self.weight_files():
            find_weight(name, self.weights_dir, needed_by=metric_key(self.name, self.protocol))

    def load(self) -> None:
        """Open and load every network this metric needs, once, before any clip: a file
        that cannot be used (empty, truncated, not the format, a pickle of Python objects,
        another network's weights) stops here with lipbench.weights.BadWeightError naming
        it, what is wrong and how to get a good copy. The object keeps what it loaded, so
        clips reuse it. A metric with networks overrides this (weight-free: nothing)."""

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        raise NotImplementedError


class NetworkMetric(Metric):
    """A metric family whose values come from one network in one weight file (lipbench.weights):
    found when first needed, loaded once per metric object (by `load` before the first clip,
    or on first use) and kept for every clip. A subclass sets `weight_file` and
    `load_network` (path, device -> the network in eval mode), and runs `batch_size` images
    per call."""

    weight_file: ClassVar[str]
    # images per call on a CPU when not told otherwise, where the network's own differs
    # from defaults.metric_batch_size's (None: that one)
    cpu_batch_size: ClassVar[int | None] = None

    def __init__(self, protocol=None, device="cpu", weights_dir=None, batch_size: int | None = None):
        super().__init__(protocol, device, weights_dir)
        on_cpu = str(device).split(":")[0] == "cpu"
        self.batch_size = batch_size or (on_cpu and self.cpu_batch_size) or metric_batch_size(device)
        self._net = None

    @staticmethod
    def load_network(path, device: str):
        raise NotImplementedError

    def weight_files(self) -> tuple[str, ...]:
        return (self.weight_file,)

    @cached_property
    def weights_path(self) -> Path:
        from lipbench.weights import find_weight

        return find_weight(self.weight_file, self.weights_dir, needed_by=metric_key(self.name, self.protocol))

    @property
    def net(self):
        if self._net is None:
            self._net = self.load_network(self.weights_path, self.device)
        return self._net

    def load(self) -> None:
        self.net


class SetMetric(Metric):
    """A metric over a set of clips: per-clip features, pooled by `combine`."""

    def features(self, ctx: ClipContext) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def combine(self, features: list[dict[str, np.ndarray]]) -> dict[str, float]:
        raise NotImplementedError

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        return {}  # set-level only, unless a subclass also has per-clip values
