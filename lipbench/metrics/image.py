"""Pixel metrics of generated against reference frames (full frame)."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from lipbench.metric_keys import metric_key
from lipbench.metrics.base import ClipContext, Metric, Value

# Identical frames have infinite PSNR; a mean over frames needs a finite value, so a
# frame's PSNR is capped here (a per-pixel RMS error below 0.0026 grey levels).
PSNR_CAP_DB = 100.0


def psnr_per_frame(reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """10 log10(255^2 / MSE) per frame over all pixels and channels, capped."""
    diff = reference.astype(np.float64) - generated.astype(np.float64)
    mse = (diff**2).reshape(len(diff), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        psnr = 10 * np.log10(255.0**2 / mse)
    return np.minimum(psnr, PSNR_CAP_DB)


class PSNR(Metric):
    name = "psnr"
    protocols = ("full",)
    reference_comparison = "frames"  # pixel by pixel
    values = (Value("psnr", True, "dB", "PSNR over RGB full frames, mean over frames (capped at 100 dB)"),)

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        return {"psnr@full": float(psnr_per_frame(ctx.reference_frames, ctx.generated_frames).mean())}


SSIM_WINDOW = 7  # skimage's default win_size


def ssim_per_frame(reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """skimage's structural_similarity with its defaults (7x7 uniform window, sample
    covariance, data range 255) on grayscale frames: the call the paper's evaluation
    script (jinhyukj/eval_metrics eval/eval_ssim_lmd.py) makes per frame."""
    return np.array(
        [
            structural_similarity(cv2.cvtColor(r, cv2.COLOR_RGB2GRAY), cv2.cvtColor(g, cv2.COLOR_RGB2GRAY))
            for r, g in zip(reference, generated)
        ]
    )


class SSIM(Metric):
    """`face224` (the paper's, eval_metrics eval_ssim_lmd.py): generated frames resized
    to the reference's size, both cut to their MediaPipe 224x224 face crops, frames where
    either has no face skipped (counted in notes). `face224_precropped` (`--crop none`):
    the frames as compared, each resized to 224x224 as a crop is, no detection. `full`:
    whole frames."""

    name = "ssim"
    protocols = ("face224", "full", "face224_precropped")
    reference_comparison = "frames"  # pixel neighbourhoods, frame by frame
    precropped_variants = {"face224": "face224_precropped"}
    values = (Value("ssim", True, "", "SSIM (skimage defaults) on grayscale frames or face crops, mean"),)

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        if self.protocol == "full":
            reference = ctx.reference_frames
            height, width = reference.shape[1:3]
            if min(height, width) < SSIM_WINDOW:
                raise ValueError(
                    f"{ctx.clip_id}: frames are {width}x{height}; SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} "
                    f"window needs at least {SSIM_WINDOW}x{SSIM_WINDOW} (ssim@full)"
                )
            return {"ssim@full": float(ssim_per_frame(reference, ctx.generated_frames).mean())}
        key = metric_key("ssim", self.protocol)
        reference, generated = ctx.face224_crops(self.precropped)
        both = reference.found[: ctx.n] & generated.found[: ctx.n]
        if not self.precropped:
            ctx.notes["ssim_face224_frames_skipped"] = int(ctx.n - both.sum())
        if not both.any():
            raise ValueError(f"{ctx.clip_id}: no frame with a face in both videos ({key})")
        values = ssim_per_frame(reference.crops[: ctx.n][both], generated.crops[: ctx.n][both])
        return {key: float(values.mean())}
