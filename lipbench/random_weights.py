"""Seeded random stand-ins for every registered weight file, in the real file formats.

For smoke tests, CI and timing benchmarks on machines without the published weights:
each file has the real network's state_dict keys and shapes (or, for the I3D
TorchScript file, its call signature), so every loading and inference path runs as
with the real file. The numbers they produce mean nothing. `lipbench weights random
DIR` writes them; results record their sha256, so they are never mistaken for real.

Values come from numpy's seeded generator (not torch's), so the files are the same on
every machine and torch version.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lipbench.errors import UnknownNameError
from lipbench.storage import atomic_path


def seeded_state(template: dict, rng: np.random.Generator, draw, keys=None) -> dict:
    """A state_dict with `template`'s keys, shapes and dtypes and values from `draw(key,
    shape, rng)` (an array, or None to keep the template's value), drawn in the order of
    `keys` (default: the template's). Every seeded stand-in is built by this one loop, so
    each network's rules are only its `draw`; NumPy's generator makes the same values on
    every machine."""
    out = {}
    for key in template if keys is None else keys:
        value = template[key]
        array = draw(key, tuple(value.shape), rng)
        out[key] = value.clone() if array is None else torch.from_numpy(np.asarray(array)).to(value.dtype)
    return out


def randomized(state: dict, seed: int, gain: float = 2.0) -> dict:
    """The same keys, shapes and dtypes with values drawn from `seed`: weights ~
    N(0, gain/fan_in) (gain 2, He's: activations keep their scale through deep plain
    ReLU stacks, so features are not all zeros; residual stacks want less), biases and
    BN shifts small, BN scales near 1, running variances positive; integer buffers (num_batches_tracked) kept."""

    def draw(key, shape, rng):
        if not torch.is_floating_point(state[key]):
            return None
        if key.endswith("running_var"):
            return rng.uniform(0.5, 1.5, shape)
        if key.endswith("running_mean") or len(shape) <= 1 and not key.endswith("weight"):
            return rng.normal(0.0, 0.01, shape)
        if len(shape) <= 1:  # norm scales (BN/PReLU/L2Norm weights)
            return rng.uniform(0.8, 1.2, shape)
        return rng.normal(0.0, np.sqrt(gain / int(np.prod(shape[1:]))), shape)

    return seeded_state(state, np.random.default_rng(seed), draw)


class I3DStandIn(nn.Module):
    """I3D's TorchScript call signature (x, rescale, resize, return_features) -> (B, 400):
    a pooled clip and one linear layer. Far cheaper than the real I3D."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.proj = nn.Linear(weight.shape[1], 400, bias=False)
        self.proj.weight.data.copy_(weight)

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = True
    ) -> torch.Tensor:
        x = x.float()
        if rescale:
            x = x / 127.5 - 1.0
        pooled = nn.functional.adaptive_avg_pool3d(x, (4, 8, 8))
        return torch.tanh(self.proj(pooled.flatten(1)))


def _sfd_finding_one_face(seed: int) -> dict:
    """S3FD with random trunk weights whose heads report one large face: every anchor of
    the 128-pixel level scores 1 and keeps its prior box, the other levels score 0, so
    after NMS each frame has one box and the SyncNet pipeline (tracks, crops) runs end to
    end. (Random heads score nothing above the pipeline's 0.9 and find no face at all.)"""
    from lipbench.metrics.syncnet import s3fd

    state = s3fd.random_state_dict(seed)
    for key in [k for k in state if k.startswith(("loc.", "conf."))]:
        state[key] = torch.zeros_like(state[key])
    state["conf.0.bias"] = torch.tensor([10.0, 10.0, 10.0, -10.0])  # maxed background, face
    for level in (1, 2, 4, 5):
        state[f"conf.{level}.bias"] = torch.tensor([10.0, -10.0])
    state["conf.3.bias"] = torch.tensor([-10.0, 10.0])
    return state


def _text_embedding(seed: int) -> torch.Tensor:
    """A prompt embedding's shape (1, 512, 4096), values N(0, 1): the real one is UMT5's output."""
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((1, 512, 4096)).astype(np.float32))


def _structures() -> dict:
    """File name -> function returning (the real network's state_dict, how to save it)."""
    from torchvision.models import alexnet

    from lipbench.models.wav2lip import adapter as wav2lip, detect as wav2lip_detect
    from lipbench.faces.arcface import iresnet100
    from lipbench.metrics.syncnet import network as syncnet
    from lipbench.metrics.fid import fid_inception_structure
    from lipbench.models.lipforcing import taehv, wan_vae

    return {
        "syncnet_v2.model": lambda seed: syncnet.random_state_dict(seed),
        "sfd_face.pth": _sfd_finding_one_face,
        "s3fd.pth": lambda seed: wav2lip_detect.random_state_dict(seed),
        "wav2lip.pth": lambda seed: {
            "state_dict": {f"module.{k}": v for k, v in wav2lip.random_state_dict(seed).items()}
        },
        "wav2lip_gan.pth": lambda seed: {"state_dict": wav2lip.random_state_dict(seed + 1)},
        "pt_inception-2015-12-05-6726825d.pth": lambda seed: randomized(fid_inception_structure().state_dict(), seed),
        "alexnet-owt-7be5be79.pth": lambda seed: randomized(alexnet(weights=None).state_dict(), seed),
        "taew2_1.pth": lambda seed: taehv.random_state_dict(seed),
        "Wan2.1_VAE.pth": lambda seed: wan_vae.random_state_dict(seed),
        "lipforcing_text_emb.pt": lambda seed: _text_embedding(seed),
        "omniavatar_negative_text_emb.pt": lambda seed: _text_embedding(seed + 1),
        "ms1mv3_arcface_r100_fp16.pth": lambda seed: {
            k: v.half() if torch.is_floating_point(v) else v
            for k, v in randomized(iresnet100().state_dict(), seed, gain=0.25).items()
        },
    }


def write_random_weights(folder, seed: int = 0, names=None) -> dict[str, Path]:
    """Write seeded random stand-ins for `names` (default: every registered file; the
    dlib landmark predictor only where dlib is installed)."""
    from lipbench.weights import WEIGHTS

    from lipbench.faces import dlib68

    folder = Path(folder)
    makers, writers = _structures(), _writers()
    special = {dlib68.PREDICTOR_FILE, "i3d_torchscript.pt"}
    names = default_stand_ins() if names is None else names
    for name in names:
        if name not in makers and name not in writers and name not in special:
            why = (
                ": build the model with `random_weights: true` instead (the same architecture, seeded, no file)"
                if name in WEIGHTS and WEIGHTS[name].large
                else ""
            )
            raise UnknownNameError(f"no random stand-in for weight file {name!r}{why}")
    written = {}
    for name in names:
        target = folder / name
        with atomic_path(target) as tmp:
            if name == dlib68.PREDICTOR_FILE:
                dlib68.train_stand_in(tmp, seed)
            elif name == "i3d_torchscript.pt":
                weight = torch.from_numpy(np.random.default_rng(seed).normal(0, 0.05, (400, 3 * 4 * 8 * 8))).float()
                torch.jit.save(torch.jit.script(I3DStandIn(weight)), str(tmp))
            elif name in writers:
                writers[name](tmp, seed)
            else:
                torch.save(makers[name](seed), tmp)
        written[name] = target
    return written


def _import(target: str):
    """The function behind 'module:function', imported when it is called."""

    def call(path, seed):
        module, _, function = target.partition(":")
        return getattr(importlib.import_module(module), function)(path, seed)

    return call


def default_stand_ins() -> list[str]:
    """What `lipbench weights random` writes without names: every file with a stand-in,
    except the large ones (named only) and the dlib predictor where dlib is missing
    (optional, lmd@dlib68)."""
    from lipbench.faces import dlib68
    from lipbench.weights import WEIGHTS

    have = set(_structures()) | set(_writers()) | {dlib68.PREDICTOR_FILE, "i3d_torchscript.pt"}
    names = [n for n, w in WEIGHTS.items() if n in have and not w.large]
    if importlib.util.find_spec("dlib") is None:
        names.remove(dlib68.PREDICTOR_FILE)
    return names


def _writers() -> dict:
    """File name -> function(path, seed) writing a stand-in that is not a torch.save'd dict,
    or one a model package declares (WeightFile.stand_in)."""
    from lipbench.models.lipforcing import audio_features, faces
    from lipbench.weights import WEIGHTS

    declared = {name: _import(entry.stand_in) for name, entry in WEIGHTS.items() if entry.stand_in}
    return {
        **declared,
        "wav2vec2-base-960h/config.json": lambda path, seed: audio_features.write_config(path),
        "wav2vec2-base-960h/preprocessor_config.json": lambda path, seed: audio_features.write_preprocessor(path),
        "wav2vec2-base-960h/model.safetensors": lambda path, seed: audio_features.write_random_weights(path, seed),
        "latentsync_mask.png": lambda path, seed: faces.write_mask(path),
    }
