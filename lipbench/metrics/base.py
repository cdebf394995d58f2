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
from lipbench.errors import UnknownProtocolError, UsageError
from lipbench.faces import mesh


@dataclass(frozen=True)
class Value:
    """One value a metric family reports."""

    name: str
    higher_is_better: bool | None  # None: no direction (a lag, an offset, a count)
    unit: str
    description: str


@dataclass(frozen=True)
class Output:
    """A reported key: a value under a protocol."""

    key: str
    higher_is_better: bool | None
    unit: str
    description: str


class Video:
    """One decoded video with its own audio track, and analyses of it made at most once."""

    def __init__(self, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
                 audio_rate: int = io.DEFAULT_AUDIO_RATE, source: Path | None = None):
        self.frames, self.fps, self.audio, self.audio_rate, self.source = frames, fps, audio, audio_rate, source
        self.is_face_crop = False  # True: frames are already face crops, detection is skipped
        self._shared: dict[str, Any] = {}

    @classmethod
    def from_file(cls, path, audio_rate: int = io.DEFAULT_AUDIO_RATE) -> "Video":
        frames, fps = io.read_video(path)
        try:
            audio = io.read_audio(path, audio_rate)
        except io.MediaError:
            audio = None  # metrics that need audio say so (`require_audio`)
        return cls(frames, fps, audio, audio_rate, Path(path))

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()` the first time `key` is asked for, the cached result after."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]

    def require_audio(self) -> np.ndarray:
        if self.audio is None:
            raise io.MediaError(self.source or "<video>", "has no audio stream (sync metrics need it)")
        return self.audio

    @property
    def landmarks(self) -> np.ndarray:
        return self.shared("mediapipe_mesh", lambda: mesh.detect_landmarks(self.frames))


@dataclass
class ClipContext:
    """A generated video and, when there is one, its reference, aligned: the first n
    frames of each, n the shorter length; generated frames of another size are resized
    to the reference's (bilinear, as the reference evaluation scripts do). Both facts
    are kept in `notes`."""

    clip_id: str
    generated: Video
    reference: Video | None = None
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        gen = self.generated.frames
        self.n = len(gen)
        if self.reference is None:
            return
        ref = self.reference.frames
        self.n = min(len(ref), len(gen))
        if len(ref) != len(gen):
            self.notes["frames_trimmed_from"] = {"reference": len(ref), "generated": len(gen)}
        if gen.shape[1:3] != ref.shape[1:3]:
            self.notes["generated_resized_from"] = list(gen.shape[1:3])

    def require_reference(self, metric: str) -> Video:
        if self.reference is None:
            raise UsageError(f"{self.clip_id}: {metric} compares with a reference video, and none was given")
        return self.reference

    @cached_property
    def generated_frames(self) -> np.ndarray:
        """Generated frames aligned to the reference (all of them when there is none)."""
        gen = self.generated.frames[:self.n]
        if self.reference is not None and gen.shape[1:3] != self.reference.frames.shape[1:3]:
            height, width = self.reference.frames.shape[1:3]
            gen = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in gen])
        return gen

    @property
    def reference_frames(self) -> np.ndarray:
        return self.require_reference("this metric").frames[:self.n]

    @property
    def reference_landmarks(self) -> np.ndarray:
        return self.require_reference("this metric").landmarks[:self.n]

    def face224_crops(self):
        """(reference, generated) MediaPipe 224x224 face crops (lipbench.faces.detect) of
        the frames as compared: a resized generated video is cropped after resizing, as
        eval_metrics' eval_ssim_lmd.py does."""
        from lipbench.faces import detect  # imports MediaPipe: only when a metric asks

        reference = detect.video_face_crops(self.require_reference("this metric"))
        if "generated_resized_from" in self.notes:
            generated = self.generated.shared(detect.CACHE_KEY + "_resized",
                                              lambda: detect.detect_face_crops(self.generated_frames))
        else:
            generated = detect.video_face_crops(self.generated)
        return reference, generated

    @property
    def generated_landmarks(self) -> np.ndarray:
        if "generated_resized_from" in self.notes:  # landmarks of the frames as compared
            return self.generated.shared("mediapipe_mesh_resized", lambda: mesh.detect_landmarks(self.generated_frames))
        return self.generated.landmarks[:self.n]


def default_batch_size(device: str) -> int:
    """Images per network call when a metric is not told otherwise. On a CPU, batches
    past about 16 images run slower per image (activations outgrow the caches): measured
    iresnet100 at 112x112 126 / 128 / 175 ms per image at 8 / 16 / 96 images, InceptionV3
    101 / 106 / 134 ms. On a GPU, larger batches fill the device."""
    return 16 if str(device).split(":")[0] == "cpu" else 64


class Metric:
    """A metric family. Subclasses set the class attributes and implement `compute`."""

    name: ClassVar[str]
    protocols: ClassVar[tuple[str, ...]]  # the first is the default (the paper's, where it has one)
    values: ClassVar[tuple[Value, ...]]
    needs_reference: ClassVar[bool] = True

    def __init__(self, protocol: str | None = None, device: str = "cpu", weights_dir=None):
        protocol = protocol or self.protocols[0]
        if protocol not in self.protocols:
            raise UnknownProtocolError(f"metric {self.name!r} has no protocol {protocol!r}; protocols: {', '.join(self.protocols)}")
        self.protocol, self.device, self.weights_dir = protocol, device, weights_dir

    @classmethod
    def outputs_for(cls, protocol: str | None = None) -> tuple[Output, ...]:
        protocol = protocol or cls.protocols[0]
        return tuple(Output(f"{v.name}@{protocol}", v.higher_is_better, v.unit, v.description) for v in cls.values)

    @property
    def outputs(self) -> tuple[Output, ...]:
        return self.outputs_for(self.protocol)

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
            find_weight(name, self.weights_dir, needed_by=f"{self.name}@{self.protocol}")

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        raise NotImplementedError


class SetMetric(Metric):
    """A metric over a set of clips: per-clip features, pooled by `combine`."""

    def features(self, ctx: ClipContext) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def combine(self, features: list[dict[str, np.ndarray]]) -> dict[str, float]:
        raise NotImplementedError

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        return {}  # set-level only, unless a subclass also has per-clip values
