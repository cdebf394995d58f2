"""VBench subject consistency: DINO ViT-B/16 CLS features of each frame against the first and previous.

Protocol `dino_vitb16` is VBench 0.1.5's `subject_consistency` dimension
(vbench/subject_consistency.py `subject_consistency(model, videos, device,
read_frame=False)`, its default video path), step by step:

- the video is decoded to uint8 RGB (load_video, decord for .mp4), a (T, 3, H, W) tensor;
- vbench/utils.py `dino_transform(224)` on the whole video, on the CPU:
  torchvision `Resize(224, antialias=False)`, bilinear, the shorter side to 224 and the
  longer to int(224 x long / short) (48x64 frames give 224x298: the aspect ratio is
  kept, no crop), on the uint8 tensor (torchvision's v1 tensor resize: to float32,
  bilinear with align_corners False, rounded back to uint8); then float32 / 255 and
  ImageNet Normalize (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225);
- each frame through DINO's ViT-B/16 (facebookresearch/dino hubconf.py `dino_vitb16`,
  torch.hub with VBench's checkout; weights dino_vitbase16_pretrain.pth): 16x16 patches
  (a side that is not a multiple of 16 loses its last pixels: 298 -> 18 patches), the
  CLS token with the position embedding, 12 pre-norm blocks (LayerNorm eps 1e-6, exact
  GELU), the final LayerNorm, the CLS token's 768 features (no head), float32;
- the position embedding is DINO's `interpolate_pos_encoding`: kept as it is for a
  224x224 input; for any other input (any frame that is not square) its 14x14 grid is
  resampled by torch's bicubic interpolation (a = -0.75, no antialias, align_corners
  False) with scale factors ((H // 16 + 0.1) / 14, (W // 16 + 0.1) / 14), the class
  token's entry untouched. The 0.1 makes the output grid H // 16 x W // 16 but also
  sets the sampling positions, so even a 224x230 input (a 14x14 grid) gets a slightly
  resampled embedding;
- features L2-normalised; for each frame i >= 1, the mean of max(0, cos(f_i-1, f_i))
  and max(0, cos(f_0, f_i)); the video's value is their sum / (T - 1) (VBench's
  per-video `video_results`; its dimension score pools frames over all videos).

lipbench builds the network with timm (`vit_base_patch16_224`, timm's `.dino` config:
no classifier, `num_classes=0`, CLS-token output after the final norm) and loads the
published file into it: its key names and shapes are timm's, one to one. timm's own
resampling for other input sizes (`dynamic_img_size=True`: `resample_abs_pos_embed`,
bicubic to the target grid size with antialias, whose kernel is PIL's a = -0.5, and a
grid of the trained size left as it is) is not DINO's, so the timm network here
(`DinoVisionTransformer`, built lazily) replaces only that step with DINO's rule above;
everything else is timm's. With the seeded stand-in weights, timm's own rule would move
the score by 4.2e-3 on 48x64 frames and 9.6e-3 on 48x50 ones (224x233, a 14x14 grid).
timm's patch embedding also asserts sides that are multiples of 16: the input's last
H % 16 rows and W % 16 columns, which DINO's convolution never reads, are cut first.

Where lipbench differs: frames go through the network in batches (lipbench.defaults.
metric_batch_size) instead of one at a time, and timm computes attention with
scaled_dot_product_attention; both change float32 rounding only (the parity fixture:
equal to VBench's per-video value within 1e-6). The resize runs in chunks of a batch
(a per-image operation: the same pixels), on the CPU as VBench's does. Cosines are
taken in float64 (VBench: float32 `.item()` summed in Python floats).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lipbench.checkpoints import for_inference, load_into, read_state_dict
from lipbench.metrics.base import Value
from lipbench.metrics.vbench import require
from lipbench.metrics.vbench.consistency import ConsistencyMetric
from lipbench.random_weights import seeded_state

WEIGHT_FILE = "dino_vitbase16_pretrain.pth"
FAMILY = "subject_consistency"
SIZE = 224  # dino_transform(224): the shorter side
PATCH = 16
MEAN = (0.485, 0.456, 0.406)  # ImageNet, as dino_transform
STD = (0.229, 0.224, 0.225)


def dino_position_embedding(pos_embed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """DINO's position embedding (1, 1 + n, D) for an input of height x width pixels: as it
    is for a square input with the trained number of patches, else the patch grid
    resampled bicubically with scale factors (patches + 0.1) / side (the class token's
    entry kept), as facebookresearch/dino vision_transformer.py interpolate_pos_encoding."""
    trained = pos_embed.shape[1] - 1
    rows, cols = height // PATCH, width // PATCH
    if rows * cols == trained and height == width:
        return pos_embed
    side = int(math.sqrt(trained))
    grid = pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((rows + 0.1) / side, (cols + 0.1) / side), mode="bicubic")
    if grid.shape[-2:] != (rows, cols):  # DINO asserts the same
        raise ValueError(f"position embedding resampled to {tuple(grid.shape[-2:])}, not {(rows, cols)}")
    return torch.cat([pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)], dim=1)


_NETWORK_CLASS = None


def network_class():
    """timm's VisionTransformer with DINO's position-embedding rule (made once, on first use:
    timm is imported lazily)."""
    global _NETWORK_CLASS
    if _NETWORK_CLASS is None:
        vit = require("timm.models.vision_transformer", FAMILY)

        class DinoVisionTransformer(vit.VisionTransformer):
            """timm's ViT; only the position embedding of other input sizes is DINO's
            (`dino_position_embedding`), not timm's `resample_abs_pos_embed`."""

            def forward_features(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
                height, width = x.shape[-2:]
                self._pixels = (height, width)  # DINO's rule needs the input's size in pixels
                # DINO's stride-16 convolution never reads the last width % 16 columns (rows);
                # timm's asserts a multiple of 16: cut them first, the same patches
                x = x[..., : height - height % PATCH, : width - width % PATCH]
                return super().forward_features(x, *args, **kwargs)

            def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
                batch, rows, cols, dim = x.shape  # dynamic_img_size: the patches as a grid
                pixels = getattr(self, "_pixels", (rows * PATCH, cols * PATCH))  # forward_features sets it
                tokens = torch.cat([self.cls_token.expand(batch, -1, -1), x.reshape(batch, rows * cols, dim)], dim=1)
                return self.pos_drop(tokens + dino_position_embedding(self.pos_embed, *pixels))

        _NETWORK_CLASS = DinoVisionTransformer
    return _NETWORK_CLASS


def build_dino(device: str | torch.device = "cpu") -> torch.nn.Module:
    """DINO's ViT-B/16 backbone: timm's VisionTransformer with the arguments of timm's
    `vit_base_patch16_224` (its `.dino` weights: num_classes=0), timm's initial weights
    (on the meta device: shapes only)."""
    require("timm", FAMILY)
    with torch.device(device):
        return network_class()(
            img_size=SIZE,
            patch_size=PATCH,
            embed_dim=768,
            depth=12,
            num_heads=12,
            num_classes=0,  # timm's .dino config: no head, the CLS token after the final norm
            dynamic_img_size=True,  # any input size (patch grid out of the patch embedding)
        )


def load_dino(path, device: str = "cpu") -> torch.nn.Module:
    """The registry's loader: dino_vitbase16_pretrain.pth (a plain state_dict with DINO's
    key names, which are timm's) into timm's ViT-B/16, eval mode on `device`."""
    net = build_dino("meta").to_empty(device="cpu")  # no random init: every tensor comes from the file
    state = read_state_dict(path, "DINO ViT-B/16 backbone")
    net = load_into(net, state, path, "DINO's ViT-B/16 backbone (dino_vitbase16_pretrain.pth)", "DINO ViT-B/16")
    return for_inference(net, device)


def stand_in_state(seed: int) -> dict:
    """A seeded random state_dict in the published file's layout (its key order, shapes,
    float32), drawn with NumPy's PCG64 in key order: the class token N(0, 0.02^2), the
    position embedding N(0, 1), the patch projection N(0, 16 / fan_in), the blocks'
    linear weights N(0, 4 / fan_in), biases N(0, 0.02^2), LayerNorm scales U(0.8, 1.2).
    Large enough that features depend on the image (two random images: cosine about
    0.65) and on where things are (DINO's and timm's position-embedding rules differ
    visibly), and finite."""

    def draw(key, shape, rng):
        if key == "cls_token":
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
        if key == "pos_embed":
            return rng.standard_normal(shape, dtype=np.float32)
        if len(shape) == 1:
            if "norm" in key and key.endswith("weight"):
                return rng.uniform(0.8, 1.2, shape).astype(np.float32)
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
        gain = 4.0 if key.startswith("patch_embed.") else 2.0
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(gain / math.sqrt(np.prod(shape[1:])))

    return seeded_state(build_dino("meta").state_dict(), np.random.default_rng(seed), draw)


def write_stand_in(path, seed: int) -> None:
    """torch.save of `stand_in_state(seed)`: a plain state_dict, as the published file."""
    torch.save(stand_in_state(seed), path)


def dino_input(video: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) uint8 -> (T, 3, h, w) float32 as VBench's dino_transform(224): torchvision
    resize of the shorter side to 224 (bilinear, no antialias, on the uint8 tensor), / 255,
    ImageNet Normalize."""
    tv = require("torchvision.transforms.functional", FAMILY)
    x = tv.resize(video, SIZE, antialias=False).float().div(255.0)
    return tv.normalize(x, MEAN, STD)


@torch.inference_mode()
def frame_features(net: torch.nn.Module, video: torch.Tensor, device: str, batch_size: int) -> torch.Tensor:
    """DINO CLS features (T, 768) of a (T, 3, H, W) uint8 video, on the CPU; the frames are
    resized on the CPU (as VBench) and go through the network batch_size at a time."""
    return torch.cat([net(dino_input(part).to(device)).float().cpu() for part in torch.split(video, batch_size)])


class SubjectConsistency(ConsistencyMetric):
    name = FAMILY
    weight_file = WEIGHT_FILE
    load_network = staticmethod(load_dino)
    frame_features = staticmethod(frame_features)
    protocols = ("dino_vitb16",)
    values = (
        Value(
            "subject_consistency",
            True,
            "",
            "VBench subject consistency: DINO ViT-B/16 CLS features of frames resized to 224 on the shorter side, "
            "each frame's cosine with the previous and the first frame (mean of the two, clipped at 0), "
            "mean over frames 1..T-1",
        ),
    )
