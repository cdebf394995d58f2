"""LMD: landmark distance of the mouth.

Protocols
- mediapipe (weight-free, the default: it needs nothing beyond lipbench's own
  dependencies): the 40 lip points of the MediaPipe face mesh (lipbench.faces.mesh) of
  every frame, the generated frames resized to the reference's size.
- dlib68 (jinhyukj/eval_metrics eval/eval_ssim_lmd.py, what the paper's authors ran for
  LMD): dlib 68-point landmarks of the whole frames (lipbench.faces.dlib68), mouth
  points 48-67; the generated frame resized to the reference's size (cv2 bilinear).
  The script computes SSIM and LMD in one loop: a frame where either video has no
  MediaPipe face crop (ssim@face224's crops, fallback 0.2) is skipped for both, and a
  frame where dlib finds no face in either is skipped for LMD. Needs dlib
  (`pip install 'lipbench[dlib]'`) and `shape_predictor_68_face_landmarks.dat`.
Both: per frame, the mean over mouth points of the L2 distance between the reference
and generated points, each set centred on its own mean; mean over frames.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from lipbench.faces import mesh
from lipbench.faces.dlib68 import PREDICTOR_FILE, Dlib68, import_dlib
from lipbench.metrics.base import ClipContext, Metric, Value
from lipbench.weights import find_weight


def mouth_lmd(reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """Per frame: mean over mouth points of the L2 distance between reference and
    generated points, each set centred on its own mean first (so head position does
    not count, only mouth shape). Inputs (T, P, 2); NaN where either has no face.
    This is eval_metrics' formula."""
    ref = reference - reference.mean(axis=1, keepdims=True)
    gen = generated - generated.mean(axis=1, keepdims=True)
    return np.linalg.norm(ref - gen, axis=-1).mean(axis=1)


class LMD(Metric):
    name = "lmd"
    protocols = ("mediapipe", "dlib68")
    reference_comparison = "frames"  # the mouth's landmarks against the reference's, frame by frame
    values = (
        Value(
            "lmd",
            False,
            "px",
            "mouth landmark distance, centred (MediaPipe mesh: 40 lip points; "
            "dlib68: points 48-67 of dlib's 68), mean over frames",
        ),
    )

    def weight_files(self) -> tuple[str, ...]:
        return (PREDICTOR_FILE,) if self.protocol == "dlib68" else ()

    def check_available(self) -> None:
        super().check_available()
        if self.protocol == "dlib68":
            import_dlib()  # dlib is optional: say how to install it before any clip

    @cached_property
    def dlib68(self) -> Dlib68:
        return Dlib68(find_weight(PREDICTOR_FILE, self.weights_dir, needed_by="lmd@dlib68"))

    def load(self) -> None:
        if self.protocol == "dlib68":
            self.dlib68

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        if self.protocol == "dlib68":
            return self._dlib68(ctx)
        per_frame = mouth_lmd(ctx.reference_landmarks[:, mesh.LIPS], ctx.generated_landmarks[:, mesh.LIPS])
        found = f"the face mesh finds a face in both videos (of {len(per_frame)} compared; lmd@mediapipe)"
        return {"lmd@mediapipe": _mean_where_found(per_frame, ctx, "lmd_frames_with_faces", found)}

    def _dlib68(self, ctx: ClipContext) -> dict[str, float]:
        reference, generated = ctx.face224_crops()
        frames = np.flatnonzero(reference.found[: ctx.n] & generated.found[: ctx.n])  # the script's SSIM skip
        per_frame = mouth_lmd(
            self.dlib68.mouths(ctx.reference_frames[frames]), self.dlib68.mouths(ctx.generated_frames[frames])
        )
        found = (
            f"dlib finds a face in both videos ({len(frames)} of {ctx.n} frames have MediaPipe faces in both; "
            "lmd@dlib68)"
        )
        return {"lmd@dlib68": _mean_where_found(per_frame, ctx, "lmd_dlib68_frames", found)}


def _mean_where_found(per_frame: np.ndarray, ctx: ClipContext, note: str, found: str) -> float:
    """The mean over the frames with points in both videos (not NaN); their count goes
    to ctx.notes[note]; none raises ValueError ("no frame where {found}")."""
    valid = np.isfinite(per_frame)
    ctx.notes[note] = int(valid.sum())
    if not valid.any():
        raise ValueError(f"{ctx.clip_id}: no frame where {found}")
    return float(per_frame[valid].mean())
