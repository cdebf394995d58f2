"""LMD: landmark distance of the mouth, on MediaPipe face-mesh lips."""

from __future__ import annotations

import numpy as np

from lipbench.faces import mesh
from lipbench.metrics.base import ClipContext, Metric, Value


def mouth_lmd(reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """Per frame: mean over mouth points of the L2 distance between reference and
    generated points, each set centred on its own mean first (so head position does
    not count, only mouth shape). Inputs (T, P, 2); NaN where either has no face.
    This is eval_metrics' formula (dlib points 48-67 there, mesh lip points here)."""
    ref = reference - reference.mean(axis=1, keepdims=True)
    gen = generated - generated.mean(axis=1, keepdims=True)
    return np.linalg.norm(ref - gen, axis=-1).mean(axis=1)


class LMD(Metric):
    name = "lmd"
    protocols = ("mediapipe",)
    values = (Value("lmd", False, "px", "mouth landmark distance, 40 MediaPipe mesh lip points, centred; mean over frames"),)

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        per_frame = mouth_lmd(ctx.reference_landmarks[:, mesh.LIPS], ctx.generated_landmarks[:, mesh.LIPS])
        valid = np.isfinite(per_frame)
        ctx.notes["lmd_frames_with_faces"] = int(valid.sum())
        return {"lmd@mediapipe": float(per_frame[valid].mean()) if valid.any() else float("nan")}
