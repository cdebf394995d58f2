"""VBench imaging quality: MUSIQ trained on SPAQ (pyiqa), each frame scored alone.

Protocol `musiq_spaq` is VBench 0.1.5's `imaging_quality` dimension
(vbench/imaging_quality.py, `compute_imaging_quality` and `technical_quality`), step by step:

- the network: pyiqa's `pyiqa.archs.musiq_arch.MUSIQ` with its defaults (patch 32, hidden
  384, 14 layers, scales of longer side 224 and 384, one output: num_class 1), loaded from
  `musiq_spaq_ckpt-358bb6af.pth` (the file VBench downloads from pyiqa's v0.1-weights
  release); VBench sets `model.training = False` on the top module only (see below);
- the frames: the decoded video as a (T, 3, H, W) uint8 tensor (vbench.utils.load_video);
- preprocessing mode `longer`, the default of `technical_quality` and of VBench's command
  line (`--imaging_quality_preprocessing_mode`, passed on by vbench/launch/evaluate.py):
  when the longer side is above 512 pixels, the whole uint8 video goes through
  torchvision `Resize(size=(int(s * H), int(s * W)), antialias=False)` with
  s = 512. / max(H, W) (bilinear, without antialiasing, on uint8: the result is rounded
  back to uint8); a video whose longer side is at most 512 is not resized. Then / 255.
  (float32 in [0, 1]);
- each frame through MUSIQ, which rescales to [-1, 1] itself ((x - 0.5) * 2) and cuts its
  own multi-scale patches (bicubic resizes to longer side 224 and 384, 32-pixel patches,
  hashed spatial positions): pyiqa's `forward` does this whenever `model.training` is
  False; the score is the head's single output (`dist_to_mos` of one class is the output);
- a video's score: the mean of `float(score)` over its frames. VBench keeps that per-video
  number (`video_results`) on MUSIQ's scale (SPAQ MOS, 0..100) and divides only the
  average over videos by 100.

lipbench's value of a clip is that per-video mean divided by 100: one video's share of
VBench's reported `imaging_quality` (0..1), so a split's mean over clips is VBench's score
of the split.

Where lipbench differs, and why:

- `.eval()` on the whole network, where VBench sets `training = False` on the top module
  only, leaving every submodule in training mode. In pyiqa 0.1.16's MUSIQ the only
  modules that behave differently in training are Dropout layers with p = 0 (identity
  either way) and DropPath with rate 0 (built as nn.Identity); GroupNorm and LayerNorm do
  not depend on the mode. The two give the same scores bit for bit (tests/test_vbench_imaging.py);
- on a GPU frames go through the network `batch_size` at a time
  (lipbench.defaults.metric_batch_size), not one by one (on a CPU one at a time, as
  VBench, where more were slower: ImagingQuality.cpu_batch_size): MUSIQ scores each
  image of a batch alone (same size: the same patches and positions), equal up to float
  rounding (measured <= 4e-6 on the 0..100 scale).
- `torch.inference_mode()` (VBench builds autograd graphs it never uses: same numbers);
- the weight file is read with torch's safe loader (lipbench.checkpoints.read_state_dict)
  and loaded strictly, as pyiqa's `load_pretrained_network(net, path, strict=True)` does
  it (a state_dict of MUSIQ's keys, no wrapper; a `module.` prefix is stripped by pyiqa's
  own `clean_state_dict`), where pyiqa itself unpickles with `weights_only=False`.

The resize computes in float32 and rounds to uint8 (torchvision casts uint8 to float for
it), and torch's float bilinear kernel splits the work by thread, so a few pixels that land
on .5 round the other way under another thread count or another batch shape (measured on
3 frames of 40x600: 5 of 156672 values change by 1 between 1 and 2 threads, scores by up to
1.3e-3 on the 0..100 scale). VBench's own numbers vary the same way; lipbench resizes the
whole video in one call, as VBench, so on the same thread count it gives VBench's pixels.

The frames are lipbench's decoded video (uint8 RGB), the frames VBench decodes with decord.
A clip needs at least one frame; each frame is scored alone.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from lipbench.checkpoints import load_into, read_state_dict
from lipbench.metric_keys import metric_key
from lipbench.metrics.base import ClipContext, NetworkMetric, Value
from lipbench.metrics.vbench import require, video_tensor
from lipbench.random_weights import seeded_state

WEIGHT_FILE = "musiq_spaq_ckpt-358bb6af.pth"
FAMILY = "imaging_quality (pyiqa MUSIQ)"
LONGER_SIDE = 512  # VBench's `longer` preprocessing: videos with a longer side above it are resized to it
MOS_SCALE = 100.0  # VBench divides its reported score by 100 (SPAQ MOS, 0..100)


def _musiq_arch():
    return require("pyiqa.archs.musiq_arch", FAMILY)


def musiq_network():
    """pyiqa's MUSIQ as VBench builds it, without loading anything (one output: num_class 1)."""
    return _musiq_arch().MUSIQ(pretrained=False)


def load_musiq(path, device: str = "cpu") -> torch.nn.Module:
    """pyiqa's MUSIQ with the weights in `path` (a state_dict, as the musiq_*_ckpt files),
    in eval mode on `device`; BadWeightError naming the file when it is not MUSIQ's."""
    clean_state_dict = require("pyiqa.archs.arch_util", FAMILY).clean_state_dict
    state = read_state_dict(path, "MUSIQ's parameters")
    state = clean_state_dict(state)  # pyiqa's load_pretrained_network: strips a DataParallel `module.` prefix
    net = load_into(
        musiq_network(),
        state,
        path,
        "MUSIQ's weights with one output (pyiqa musiq_arch.MUSIQ: musiq_spaq / musiq_koniq checkpoints)",
        "MUSIQ",
    )
    return net.to(device).eval()


def _draw(key: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Stand-in values: linear and convolution weights N(0, 1 / fan_in) (the convolutions
    standardise their own weights), norm scales near 1, biases and embeddings small, the
    head on MUSIQ's scale: N(0, 100 / fan_in) weights and a bias near 50, so scores spread
    over tens of points around 50 and differ between images."""
    if key == "head.bias":
        return rng.normal(50.0, 1.0, shape)
    if key.endswith(("cls", "position_emb", "scale_emb")) or len(shape) == 1 and not key.endswith("weight"):
        return rng.normal(0.0, 0.02, shape)
    if len(shape) == 1:  # GroupNorm and LayerNorm scales
        return rng.uniform(0.8, 1.2, shape)
    gain = 100.0 if key == "head.weight" else 1.0
    return rng.normal(0.0, np.sqrt(gain / int(np.prod(shape[1:]))), shape)


def stand_in_state(seed: int) -> OrderedDict:
    """MUSIQ's state_dict (keys, order, shapes, float32) with values drawn from NumPy's
    PCG64 generator seeded with `seed`, in key order."""
    return OrderedDict(seeded_state(musiq_network().state_dict(), np.random.default_rng(seed), _draw))


def write_stand_in(path, seed: int) -> None:
    """A seeded random file in the published checkpoint's format: pyiqa's
    scripts/convert_musiq_to_pth.py saves `MUSIQ(pretrained=False).state_dict()` (an
    OrderedDict of tensors, no wrapper) with torch.save."""
    torch.save(stand_in_state(seed), path)


def vbench_longer_resize(video: torch.Tensor) -> torch.Tensor:
    """VBench's `longer` resize of a (T, 3, H, W) uint8 video: when max(H, W) > 512,
    torchvision's bilinear resize without antialiasing of the whole video to
    (int(s H), int(s W)), s = 512. / max(H, W), still uint8; else the video as it is."""
    from torchvision.transforms import functional as TF

    _, _, height, width = video.shape
    if max(height, width) > LONGER_SIDE:
        scale = float(LONGER_SIDE) / max(height, width)
        video = TF.resize(video, [int(scale * height), int(scale * width)], antialias=False)
    return video


@torch.inference_mode()
def frame_scores(net: torch.nn.Module, video: torch.Tensor, device: str, batch_size: int) -> np.ndarray:
    """MUSIQ's score (MOS scale) of each frame of a (T, 3, H, W) uint8 video, float64: the
    video resized at once as VBench does (vbench_longer_resize), then / 255. (float32 in
    [0, 1]) and through the network `batch_size` frames at a time."""
    video = vbench_longer_resize(video)
    scores = [net((part / 255.0).to(device)).reshape(-1).double().cpu() for part in torch.split(video, batch_size)]
    return torch.cat(scores).numpy()


class ImagingQuality(NetworkMetric):
    name = "imaging_quality"
    weight_file = WEIGHT_FILE
    load_network = staticmethod(load_musiq)
    # one image per call on a CPU: on 534x534 frames, 16 per call made this family about
    # twice as slow as VBench's one at a time, 1 per call about as fast
    # (benchmarks/perf/vbench_vs_reference.py, README there)
    cpu_batch_size = 1
    protocols = ("musiq_spaq",)
    needs_reference = False  # the generated video alone
    values = (
        Value(
            "imaging_quality",
            True,
            "",
            "VBench imaging quality: MUSIQ (pyiqa, SPAQ weights) score of each frame, longer side "
            "resized to 512 when above; mean over frames / 100 (0..1)",
        ),
    )

    def check_available(self) -> None:
        _musiq_arch()  # pyiqa missing: MissingDependencyError saying what to install, before any clip
        super().check_available()

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        video = video_tensor(ctx.generated.frames, str(ctx.generated.source or ctx.clip_id), min_frames=1)
        scores = frame_scores(self.net, video, self.device, self.batch_size)
        return {metric_key("imaging_quality", self.protocol): float(scores.mean()) / MOS_SCALE}
