"""VBench background consistency: CLIP ViT-B/32 image features of each frame against the first and previous.

Protocol `clip_vitb32` is VBench 0.1.5's `background_consistency` dimension
(vbench/background_consistency.py `background_consistency(clip_model, preprocess,
video_list, device, read_frame=False)`, its default video path, the model from OpenAI's
`clip` package: `clip.load(vit_path, device=device)`, jit=False), step by step:

- the video is decoded to uint8 RGB (load_video, decord for .mp4), a (T, 3, H, W) tensor;
- vbench/utils.py `clip_transform(224)` on the whole video, on the CPU: torchvision
  `Resize(224, interpolation=BICUBIC, antialias=False)` on the uint8 tensor (the shorter
  side to 224, the longer to int(224 x long / short): 48x64 frames give 224x298;
  torchvision resizes in float32 and rounds back to uint8), `CenterCrop(224)` (the middle
  224 columns or rows: crop offsets int(round((298 - 224) / 2)) = 37), float32 / 255 and
  CLIP's Normalize (mean 0.48145466, 0.4578275, 0.40821073; std 0.26862954, 0.26130258,
  0.27577711);
- all T frames in one batch through `clip_model.encode_image`: OpenAI's CLIP ViT-B/32
  image tower (32x32 patches, a 7x7 grid and the class token, 12 pre-norm residual
  attention blocks of width 768 with QuickGELU, LayerNorm in float32, the class token's
  ln_post output times `visual.proj`, 512 features). `clip.load(path, jit=False)` reads
  the TorchScript archive ViT-B-32.pt, takes its state_dict and builds the model from it
  (clip/model.py `build_model`): Conv/Linear/attention weights and the projections in
  float16 (`convert_weights`), everything else float32. On the CPU it then calls
  `model.float()`: all float32. On CUDA the model stays so (float16 weights, input cast to
  float16, LayerNorm computed in float32), and the features come out float16;
- features L2-normalised (`F.normalize`, in the features' dtype); for each frame i >= 1,
  the mean of max(0, cos(f_i-1, f_i)) and max(0, cos(f_0, f_i)) (`.item()`, summed in
  Python floats); the video's value is their sum / (T - 1) (VBench's per-video
  `video_results`; its dimension score pools frames over all videos).

lipbench builds the same network with open_clip (`open_clip.model.
build_model_from_openai_state_dict`, the function `open_clip.load_openai_model` calls on
a file path: it torch.jit.loads the archive and builds from its state_dict, QuickGELU,
float32 LayerNorm under float16), from the state_dict that lipbench.checkpoints.
read_torchscript reads (a bad file: BadWeightError naming it). The file is checked to be
ViT-B/32 first (key names and shapes against open_clip's ViT-B-32 config): the builder
would otherwise build whatever CLIP the file holds. As `load_openai_model` does, the
model is float32 off CUDA (`precision="fp32"`, as clip.load's `model.float()`) and keeps
OpenAI's float16 weights on CUDA (`precision="fp16"`, as clip.load); the frames are cast
to the model's dtype (clip's `image.type(self.dtype)`; open_clip's encode_image does not
cast). On the same weights open_clip's encode_image equals clip's within 4e-6 in float32
(measured on the parity fixture: features up to 3.9 in magnitude); with the float16
weights both keep on CUDA, run on a CPU (no GPU here), within 5e-3 (float16 rounding
through 12 blocks; features up to 1.3).

Where lipbench differs: frames go through the network in batches (lipbench.defaults.
metric_batch_size) instead of all at once (float rounding only); the transform runs per
batch on the CPU (a per-image operation: the same pixels); cosines are taken in float64
from the features (lipbench.metrics.vbench.first_and_previous_consistency). On a CPU that
changes the value by float32 rounding (parity fixture: 1.1e-7 apart; the test allows
1e-6). On CUDA VBench takes the norms and cosines in float16 (each cosine rounded to a
multiple of 2^-11 near 1), lipbench in float64 from the same float16 features: up to
about 2.4e-4 per cosine, not measured here (no GPU).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lipbench.checkpoints import for_inference, read_torchscript
from lipbench.metrics.base import Value
from lipbench.metrics.vbench import require
from lipbench.metrics.vbench.consistency import ConsistencyMetric
from lipbench.random_weights import seeded_state
from lipbench.weights import BadWeightError

WEIGHT_FILE = "ViT-B-32.pt"
FAMILY = "background_consistency"
SIZE = 224  # clip_transform(224): the shorter side, then the centre crop
ARCH = "ViT-B-32"  # open_clip's config name of OpenAI's ViT-B/32
# scalars OpenAI's TorchScript archive carries beside the weights (both builders drop them)
META_KEYS = {"input_resolution": 224, "context_length": 77, "vocab_size": 49408}


def build_clip(device: str | torch.device = "meta") -> nn.Module:
    """open_clip's CLIP in OpenAI's layout for ViT-B/32 (QuickGELU, OpenAI's float16
    weights: open_clip's `convert_weights_to_lp`), as build_model_from_openai_state_dict
    builds it from the published file. On the meta device: names, shapes and dtypes."""
    model = require("open_clip.model", FAMILY)
    config = require("open_clip", FAMILY).get_model_config(ARCH)
    with torch.device(device):
        net = model.CLIP(
            config["embed_dim"],
            vision_cfg=model.CLIPVisionCfg(**config["vision_cfg"]),
            text_cfg=model.CLIPTextCfg(**config["text_cfg"]),
            quick_gelu=True,  # OpenAI's models were trained with QuickGELU
            cast_dtype=torch.float16,
        )
    model.convert_weights_to_lp(net)
    return net


def check_layout(state: dict, path) -> None:
    """BadWeightError unless `state` holds OpenAI's ViT-B/32 CLIP: its key names (the
    archive's scalars optional) and shapes."""
    expected = {key: tuple(value.shape) for key, value in build_clip("meta").state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected) - set(META_KEYS))
    if missing or unexpected:
        raise BadWeightError(
            path,
            "not OpenAI's CLIP ViT-B/32 (ViT-B-32.pt); "
            f"missing keys: {missing[:5] or 'none'}, unexpected keys: {unexpected[:5] or 'none'}",
            "mismatch",
        )
    wrong = [f"{k}: {tuple(state[k].shape)} vs {s}" for k, s in expected.items() if tuple(state[k].shape) != s]
    if wrong:
        raise BadWeightError(
            path,
            f"CLIP state_dict does not fit ViT-B/32 ({len(wrong)} shapes differ: {'; '.join(wrong[:3])})",
            "mismatch",
        )


def load_clip(path, device: str = "cpu") -> nn.Module:
    """The registry's loader: OpenAI's TorchScript archive ViT-B-32.pt into open_clip's
    CLIP (build_model_from_openai_state_dict on the archive's state_dict), eval mode on
    `device`: OpenAI's float16 weights on CUDA (as clip.load), float32 elsewhere (as
    clip.load's `model.float()` on the CPU)."""
    model = require("open_clip.model", FAMILY)
    state = dict(read_torchscript(path).state_dict())
    check_layout(state, path)
    fp16 = str(device).split(":")[0] == "cuda"
    try:
        net = model.build_model_from_openai_state_dict(state, cast_dtype=torch.float16 if fp16 else None)
    except (KeyError, RuntimeError, ValueError) as exc:  # checked above; whatever the builder still refuses
        raise BadWeightError(
            path, f"open_clip cannot build CLIP from it ({type(exc).__name__}: {exc})", "mismatch"
        ) from None
    return for_inference(net if fp16 else net.float(), device)  # load_openai_model: precision fp32 off CUDA


def stand_in_state(seed: int) -> dict:
    """A seeded random state_dict in the published archive's layout (open_clip's key order,
    then OpenAI's three int64 scalars; OpenAI's dtypes: float16 for Conv/Linear/attention
    weights and the projections, float32 for the rest), drawn with NumPy's PCG64 in key
    order: matrices N(0, 1/fan_in) (the projections, used as x @ proj: 1/rows), biases
    N(0, 0.01), LayerNorm scales U(0.8, 1.2), the class token N(0, 1/768), position
    embeddings N(0, 0.01), token embedding N(0, 0.02), logit_scale ln 100; the text tower
    too (the builders read its shapes). Features of different images differ and stay finite."""

    def draw(key: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        leaf = key.rsplit(".", 1)[-1]
        if key == "logit_scale":
            return np.full(shape, np.log(100.0), dtype=np.float32)
        if leaf == "class_embedding":
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(shape[0] ** -0.5)
        if leaf == "positional_embedding":
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.01)
        if key == "token_embedding.weight":
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
        if leaf in ("proj", "text_projection"):
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(shape[0] ** -0.5)
        if len(shape) >= 2:
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(int(np.prod(shape[1:])) ** -0.5)
        if leaf == "weight":  # LayerNorm scales
            return rng.uniform(0.8, 1.2, shape).astype(np.float32)
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.01)

    out = seeded_state(build_clip("meta").state_dict(), np.random.default_rng(seed), draw)
    out.update({key: torch.tensor(value, dtype=torch.int64) for key, value in META_KEYS.items()})
    return out


class _Holder(nn.Module):
    """A module that only carries tensors under dotted names (a TorchScript archive's state_dict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def write_stand_in(path, seed: int) -> None:
    """torch.jit.save of a scripted module whose state_dict is `stand_in_state(seed)`
    (parameters; the three scalars as buffers): what clip.load(jit=False) and open_clip
    read from OpenAI's archive. It carries no encode_image (neither reads one)."""
    import warnings

    root = _Holder()
    for key, value in stand_in_state(seed).items():
        *parents, leaf = key.split(".")
        module = root
        for name in parents:
            if name not in module._modules:
                module.add_module(name, _Holder())
            module = module._modules[name]
        if value.is_floating_point():
            module.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
        else:
            module.register_buffer(leaf, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.10+ calls TorchScript deprecated
        torch.jit.save(torch.jit.script(root), str(path))


def clip_input(video: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) uint8 -> (T, 3, 224, 224) float32 as VBench's clip_transform(224):
    torchvision resize of the shorter side to 224 (bicubic, no antialias, on the uint8
    tensor), centre crop 224, / 255, CLIP's Normalize (open_clip's OpenAI constants)."""
    tv = require("torchvision.transforms.functional", FAMILY)
    constants = require("open_clip.constants", FAMILY)
    x = tv.resize(video, SIZE, interpolation=tv.InterpolationMode.BICUBIC, antialias=False)
    x = tv.center_crop(x, SIZE).float().div(255.0)
    return tv.normalize(x, constants.OPENAI_DATASET_MEAN, constants.OPENAI_DATASET_STD)


@torch.inference_mode()
def frame_features(net: nn.Module, video: torch.Tensor, device: str, batch_size: int) -> torch.Tensor:
    """CLIP image features (T, 512) of a (T, 3, H, W) uint8 video, float32 on the CPU; the
    frames are transformed on the CPU (as VBench) and go through encode_image batch_size at
    a time, in the model's dtype."""
    dtype = net.visual.conv1.weight.dtype
    parts = [
        net.encode_image(clip_input(part).to(device, dtype)).float().cpu() for part in torch.split(video, batch_size)
    ]
    return torch.cat(parts)


class BackgroundConsistency(ConsistencyMetric):
    name = FAMILY
    weight_file = WEIGHT_FILE
    load_network = staticmethod(load_clip)
    frame_features = staticmethod(frame_features)
    protocols = ("clip_vitb32",)
    values = (
        Value(
            "background_consistency",
            True,
            "",
            "VBench background consistency: CLIP ViT-B/32 image features of frames resized to 224 (bicubic) and "
            "centre-cropped to 224x224, each frame's cosine with the previous and the first frame (mean of the two, "
            "clipped at 0), mean over frames 1..T-1",
        ),
    )
