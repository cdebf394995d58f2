"""What every metric reads (one shared context per clip) and what it declares."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import cv2
import numpy as np

from lipbench.faces import mesh


@dataclass(frozen=True)
class Output:
    """One value a metric reports, keyed `metric@protocol`."""

    key: str
    higher_is_better: bool | None  # None: no direction (a lag, a count)
    unit: str
    description: str


class Metric:
    name: ClassVar[str]
    outputs: ClassVar[tuple[Output, ...]]

    def compute(self, ctx: "ClipContext") -> dict[str, float]:
        raise NotImplementedError


class Reference:
    """A clip's reference video and driving audio, analysed once for all models."""

    def __init__(self, frames: np.ndarray, audio: np.ndarray, audio_rate: int, fps: float):
        self.frames, self.audio, self.audio_rate, self.fps = frames, audio, audio_rate, fps

    @cached_property
    def landmarks(self) -> np.ndarray:
        return mesh.detect_landmarks(self.frames)


@dataclass
class ClipContext:
    """Reference and generated frames of one clip, aligned: the first n frames of each,
    n the shorter length; generated frames of another size are resized to the
    reference's (bilinear, as the reference evaluation scripts do). Both facts are
    kept in `notes`."""

    clip_id: str
    reference: Reference
    generated_raw: np.ndarray
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        ref, gen = self.reference.frames, self.generated_raw
        self.n = min(len(ref), len(gen))
        if len(ref) != len(gen):
            self.notes["frames_trimmed_from"] = {"reference": len(ref), "generated": len(gen)}
        if gen.shape[1:3] != ref.shape[1:3]:
            self.notes["generated_resized_from"] = list(gen.shape[1:3])

    @cached_property
    def generated(self) -> np.ndarray:
        gen = self.generated_raw[:self.n]
        height, width = self.reference.frames.shape[1:3]
        if gen.shape[1:3] != (height, width):
            gen = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in gen])
        return gen

    @property
    def reference_frames(self) -> np.ndarray:
        return self.reference.frames[:self.n]

    @property
    def reference_landmarks(self) -> np.ndarray:
        return self.reference.landmarks[:self.n]

    @cached_property
    def generated_landmarks(self) -> np.ndarray:
        return mesh.detect_landmarks(self.generated)
