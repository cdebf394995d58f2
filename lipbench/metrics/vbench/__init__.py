"""VBench's quality dimensions that apply to a talking head, each its own metric family.

VBench (Huang et al., CVPR 2024; PyPI `vbench` 0.1.5) scores a generated video alone, no
ground truth. lipbench runs the four dimensions that mean something for a talking head,
each through the library VBench itself imports for its network, with that network's
published weights from lipbench's registry (lipbench.weights):

- `subject_consistency@dino_vitb16` (subject.py): DINO ViT-B/16 (timm) CLS features,
  each frame's cosine with the previous and the first frame;
- `background_consistency@clip_vitb32` (background.py): the same over CLIP ViT-B/32
  image features (open_clip, building OpenAI's model from its archive as OpenAI's `clip`
  package, which VBench imports, does);
- `motion_smoothness@amt_s` (motion.py): how well AMT-S interpolates the odd frames
  from the even ones (the network written here: no library ships it);
- `imaging_quality@musiq_spaq` (imaging.py): MUSIQ trained on SPAQ (pyiqa), per frame.

Each reads only the generated video, as decoded (uint8 RGB; VBench decodes the file with
decord or OpenCV, the same frames), and is valid under cross audio. VBench's score of a
set pools frames (the consistencies) or averages videos (the others); lipbench's value of
a clip is VBench's score of that one video, and a split's mean is over clips (equal to
VBench's pooled mean when the clips have equal lengths, as the 33 HDTF clips do).

The libraries are the optional extra `lipbench[vbench]` (in `[test]`): a family whose
library is missing says which to install when the run starts, before any clip.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch
import torch.nn.functional as F

from lipbench.errors import MissingDependencyError


def require(module: str, family: str):
    """Import `module` or say how to install what `family` needs."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{family} needs the Python package that provides {module!r} ({exc}); "
            "install it with: pip install 'lipbench[vbench]'"
        ) from None


def checked_frames(frames: np.ndarray, where: str, min_frames: int = 2) -> np.ndarray:
    """`frames` as an array when they are (T, H, W, 3) uint8 RGB with at least `min_frames`
    frames (the consistencies compare frames with each other), else an error naming `where`."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or 0 in frames.shape[1:3]:
        raise ValueError(f"{where}: needs uint8 RGB frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) < min_frames:
        raise ValueError(f"{where}: {len(frames)} frame(s); the score needs at least {min_frames}")
    return frames


def video_tensor(frames: np.ndarray, where: str, min_frames: int = 2) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (T, 3, H, W) uint8, what VBench's load_video returns
    (checked_frames first)."""
    frames = checked_frames(frames, where, min_frames)
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


def first_and_previous_consistency(features: torch.Tensor) -> float:
    """VBench's subject and background consistency of one video from its per-frame features
    (T, D): for each frame i >= 1, the mean of max(0, cos(f_i-1, f_i)) and max(0, cos(f_0,
    f_i)) over L2-normalised features; mean over the T - 1 frames."""
    features = F.normalize(features.double(), dim=-1, p=2)
    previous = F.cosine_similarity(features[:-1], features[1:]).clamp(min=0.0)
    first = F.cosine_similarity(features[:1], features[1:]).clamp(min=0.0)
    return float(((previous + first) / 2).mean())
