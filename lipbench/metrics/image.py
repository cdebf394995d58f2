"""Pixel metrics of generated against reference frames (full frame)."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from lipbench.metrics.base import ClipContext, Metric, Value

# Identical frames have infinite PSNR; a mean over frames needs a finite value, so a
# frame's PSNR is capped here (a per-pixel RMS error below 0.0026 grey levels).
PSNR_CAP_DB = 100.0


def psnr_per_frame(reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """10 log10(255^2 / MSE) per frame over all pixels and channels, capped."""
    diff = reference.astype(np.float64) - generated.astype(np.float64)
    mse = (diff ** 2).reshape(len(diff), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        psnr = 10 * np.log10(255.0 ** 2 / mse)
    return np.minimum(psnr, PSNR_CAP_DB)


class PSNR(Metric):
    name = "psnr"
    protocols = ("full",)
    values = (Value("psnr", True, "dB", "PSNR over RGB full frames, mean over frames (capped at 100 dB)"),)

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        return {"psnr@full": float(psnr_per_frame(ctx.reference_frames, ctx.generated_frames).mean())}


def ssim_per_frame(reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """skimage's structural_similarity with its defaults (7x7 uniform window, sample
    covariance, data range 255) on grayscale frames: the call the paper's evaluation
    script (jinhyukj/eval_metrics eval/eval_ssim_lmd.py) makes per frame."""
    return np.array([structural_similarity(cv2.cvtColor(r, cv2.COLOR_RGB2GRAY), cv2.cvtColor(g, cv2.COLOR_RGB2GRAY))
                     for r, g in zip(reference, generated)])


class SSIM(Metric):
    """`face224` (the paper's, eval_metrics eval_ssim_lmd.py): generated frames resized
    to the reference's size, both cut to their MediaPipe 224x224 face crops, frames where
    either has no face skipped (counted in notes). `full`: whole frames."""

    name = "ssim"
    protocols = ("face224", "full")
    values = (Value("ssim", True, "", "SSIM (skimage defaults) on grayscale frames or face crops, mean"),)

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        if self.protocol == "full":
            return {"ssim@full": float(ssim_per_frame(ctx.reference_frames, ctx.generated_frames).mean())}
        reference, generated = ctx.face224_crops()
        both = reference.found[:ctx.n] & generated.found[:ctx.n]
        ctx.notes["ssim_face224_frames_skipped"] = int(ctx.n - both.sum())
        if not both.any():
            raise ValueError(f"{ctx.clip_id}: no frame with a face in both videos (ssim@face224)")
        values = ssim_per_frame(reference.crops[:ctx.n][both], generated.crops[:ctx.n][both])
        return {"ssim@face224": float(values.mean())}
