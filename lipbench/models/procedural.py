"""A real streaming lip-sync model without learned weights.

It works as a real-time model must: chunk by chunk, hearing only the audio that has
arrived by the end of the chunk it is making. For each chunk it finds the face mesh in
the reference frames, reads how open the mouth should be from the loudness of the
audio so far (the mapping the synthetic set uses), lets the mouth follow that target
with a little inertia, and warps the reference mouth from its current gap to the
result with the synthesiser's landmark warp. Frames without a face pass through.
Chunks follow Lip Forcing's shape: 9 frames first, then 12 at a time.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from lipbench import loudness
from lipbench.faces import mesh, mouth_warp
from lipbench.models.base import LipSyncModel, chunk_bounds
from lipbench.types import Request


class Procedural(LipSyncModel):
    """Weight-free streaming lip sync: the reference mouth warped to the loudness heard so far."""

    name = "procedural"
    causal = True
    audio_lookahead_s = 0.0  # a chunk's frames follow the loudness up to their own end
    chunk_frames = (9, 12)

    def __init__(self, inertia: float = 0.3):
        super().__init__()
        self.inertia = float(inertia)  # share of the previous frame's opening kept (0: none)

    def load(self, device: str = "cpu") -> None:
        super().load(device)
        self._tracker = mesh.FaceMeshTracker()  # the graph starts once, not in the timed stream

    def stream(self, request: Request) -> Iterator[np.ndarray]:
        tracker = self._tracker
        tracker.reset()  # a new clip: forget the last clip's face
        opening = 0.0
        for start, end in chunk_bounds(request.n_frames, self.chunk_frames):
            heard = request.audio_until(end / request.fps)
            target = loudness.mouth_openness(heard, request.audio_rate, request.fps, end)[start:]
            out = request.frames[start:end].copy()
            for i, landmarks in enumerate(tracker.track(out)):
                opening = self.inertia * opening + (1 - self.inertia) * target[i]
                if np.isnan(landmarks).any():
                    continue
                lm = landmarks.astype(np.float64)
                gap = mouth_warp.target_gap(opening, float(mesh.face_scale(lm)))
                out[i] = mouth_warp.warp_mouth(out[i], lm, float(gap - mesh.lip_gap(lm)))
            yield out

    def describe(self) -> dict:
        return {**super().describe(), "inertia": self.inertia}
