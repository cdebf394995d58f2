"""Weight-free reference points: what perfect, frozen and mistimed output score.

They give every metric its anchors: `ground_truth` is the ceiling of the
reference-based metrics, `still` the floor of sync, and `av_shift` a known error
that a sync metric must measure exactly.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from lipbench.models.base import LipSyncModel
from lipbench.types import Request


class GroundTruth(LipSyncModel):
    """Returns the reference video itself."""

    name = "ground_truth"
    audio_lookahead_s = 0.0  # never listens
    reference = True

    def stream(self, request: Request) -> Iterator[np.ndarray]:
        yield request.frames.copy()


class Still(LipSyncModel):
    """Repeats the first reference frame: a face that never moves its lips."""

    name = "still"
    audio_lookahead_s = 0.0  # never listens
    reference = True

    def stream(self, request: Request) -> Iterator[np.ndarray]:
        yield np.repeat(request.frames[:1], request.n_frames, axis=0)


class AVShift(LipSyncModel):
    """The reference video delayed by `shift_frames` against its audio.

    Output frame t is reference frame t - k (clamped to the clip), so the mouth moves
    k frames after the sound for k > 0 and before it for k < 0.
    """

    name = "av_shift"
    audio_lookahead_s = 0.0  # never listens
    reference = True

    def __init__(self, shift_frames: int = 3):
        super().__init__()
        self.shift_frames = int(shift_frames)

    def stream(self, request: Request) -> Iterator[np.ndarray]:
        source = np.clip(np.arange(request.n_frames) - self.shift_frames, 0, request.n_frames - 1)
        yield request.frames[source]

    def describe(self) -> dict:
        return {**super().describe(), "shift_frames": self.shift_frames}
