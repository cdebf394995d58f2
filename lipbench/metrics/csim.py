"""CSIM: identity similarity of generated to reference frames (ArcFace iresnet100).

Protocol `arcface112` is the paper's evaluation script, jinhyukj/eval_metrics
eval/eval_csim.py (commit 37cf44c), step by step:
  - whole frames, no face crop: each decoded RGB frame is resized straight to
    112x112 with cv2.resize's default (bilinear, INTER_LINEAR). The generated video
    is resized from its own size, not first to the reference's (unlike most metrics,
    which read ctx.generated_frames), because the script resizes each video alone;
  - a clip whose two videos differ in length keeps the first min(n_ref, n_gen)
    frames of each (ClipContext already aligns them that way);
  - pixels to float32, (x / 255 - 0.5) / 0.5, NCHW, RGB order;
  - iresnet100 built with fp16=False (float32 inference) in eval mode, embeddings
    not normalised;
  - torch.nn.functional.cosine_similarity of frame t's two embeddings, mean.
The script pools frames over all videos before the mean; per clip that is this mean,
and over a split of equal-length clips (the 33 HDTF clips are 81 frames each) the
mean of clip values equals the pooled mean.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lipbench.faces.arcface import INPUT_SIZE, load_iresnet100
from lipbench.metrics.base import ClipContext, NetworkMetric, Value

WEIGHT_FILE = "ms1mv3_arcface_r100_fp16.pth"


def arcface_input(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (T, 3, 112, 112) float32 in [-1, 1], as eval_csim.py."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"CSIM needs uint8 RGB frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    resized = np.stack([cv2.resize(f, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR) for f in frames])
    x = torch.from_numpy(resized.transpose(0, 3, 1, 2).copy()).float()
    return x.div_(255).sub_(0.5).div_(0.5)


@torch.inference_mode()
def embed(net: torch.nn.Module, x: torch.Tensor, device: str, batch_size: int) -> torch.Tensor:
    """Embeddings (N, 512) on the CPU, computed batch_size images at a time."""
    return torch.cat([net(part.to(device)).float().cpu() for part in torch.split(x, batch_size)])


def csim_per_frame(ref_feats: torch.Tensor, gen_feats: torch.Tensor) -> np.ndarray:
    """Cosine similarity of frame t's two embeddings (eval_csim.py: F.cosine_similarity)."""
    if len(ref_feats) != len(gen_feats):
        raise ValueError(f"CSIM pairs frames one to one: {len(ref_feats)} reference vs {len(gen_feats)} generated")
    return F.cosine_similarity(ref_feats, gen_feats).numpy()


class CSIM(NetworkMetric):
    name = "csim"
    protocols = ("arcface112",)
    reference_comparison = "appearance"  # identity embeddings: who is shown, not where the mouth is
    weight_file = WEIGHT_FILE
    load_network = staticmethod(load_iresnet100)
    values = (
        Value(
            "csim",
            True,
            "",
            "ArcFace iresnet100 cosine similarity of reference and generated full frames resized to "
            "112x112 (eval_metrics eval_csim.py); mean over frames",
        ),
    )

    def embeddings(self, frames: np.ndarray) -> torch.Tensor:
        return embed(self.net, arcface_input(frames), self.device, self.batch_size)

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        reference = ctx.require_reference(self.name)
        if ctx.n == 0:
            raise ValueError(f"{ctx.clip_id}: no frames to compare (csim@arcface112)")
        # The reference's embeddings are kept with its decoded video, so every model
        # compared with it on this clip reuses them (eval_csim.py embeds both each time;
        # an embedding does not depend on what else is in the batch, up to rounding).
        ref_feats = reference.shared(
            f"arcface112:{self.weights_path}:first{ctx.n}", lambda: self.embeddings(ctx.reference_frames)
        )
        gen_feats = self.embeddings(ctx.generated.frames[: ctx.n])  # own size: see the module docstring
        return {"csim@arcface112": float(csim_per_frame(ref_feats, gen_feats).mean())}
