"""The SyncNet network (upstream `S`, syncnet_python SyncNetModel.py), its loader for
the published `syncnet_v2.model` and seeded stand-in weights."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from lipbench.checkpoints import for_inference, load_into, read_state_dict
from lipbench.random_weights import seeded_state

SYNCNET_WEIGHTS = "syncnet_v2.model"


# ---------------------------------------------------------------- network


def _conv_bn(conv: nn.Module, bn: nn.Module, relu: bool = True) -> list[nn.Module]:
    return [conv, bn] + ([nn.ReLU(inplace=True)] if relu else [])


def _head() -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 1024))


class SyncNet(nn.Module):
    """Upstream `S` (SyncNetModel.py), layer for layer: the Sequential indices are the
    state_dict keys (`netcnnaud.0.weight` ...), pools included."""

    def __init__(self):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_conv_bn(nn.Conv2d(1, 64, 3, 1, 1), nn.BatchNorm2d(64)),
            nn.MaxPool2d(1, 1),
            *_conv_bn(nn.Conv2d(64, 192, 3, 1, 1), nn.BatchNorm2d(192)),
            nn.MaxPool2d(3, (1, 2)),
            *_conv_bn(nn.Conv2d(192, 384, 3, padding=1), nn.BatchNorm2d(384)),
            *_conv_bn(nn.Conv2d(384, 256, 3, padding=1), nn.BatchNorm2d(256)),
            *_conv_bn(nn.Conv2d(256, 256, 3, padding=1), nn.BatchNorm2d(256)),
            nn.MaxPool2d(3, 2),
            *_conv_bn(nn.Conv2d(256, 512, (5, 4), padding=0), nn.BatchNorm2d(512)),
        )
        self.netfcaud = _head()
        self.netfclip = _head()
        self.netcnnlip = nn.Sequential(
            *_conv_bn(nn.Conv3d(3, 96, (5, 7, 7), (1, 2, 2), 0), nn.BatchNorm3d(96)),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_conv_bn(nn.Conv3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), nn.BatchNorm3d(256)),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            *_conv_bn(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_conv_bn(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_conv_bn(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_conv_bn(nn.Conv3d(256, 512, (1, 6, 6), padding=0), nn.BatchNorm3d(512)),
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, 1024), not normalised."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 windows -> (N, 1024), not normalised."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


def load_syncnet(path, device: str = "cpu") -> SyncNet:
    """The network with a `syncnet_v2.model`-format state_dict. Strict, except that
    BatchNorm `num_batches_tracked` counters may be absent (files saved by PyTorch
    before 0.4.1 have none; they play no part in evaluation; upstream copies
    parameters by name and does not need them either)."""
    state = read_state_dict(path, "SyncNet syncnet_v2.model")
    net = load_into(
        SyncNet(),
        state,
        path,
        "a SyncNet state_dict (upstream S key names)",
        "SyncNet",
        optional_suffixes=("num_batches_tracked",),
    )
    return for_inference(net, device)


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights with upstream's key names and shapes (tests), drawn with NumPy so
    every machine makes the same file. The first convolutions divide the input range
    (0-255 pixels, MFCC values in the tens) away and BatchNorm statistics are near
    identity, so features stay of order one."""
    rng = np.random.default_rng(seed)
    # Both heads end with the same bias, so audio and video features share a common
    # part: the padded (zero) audio features are then far, the minimum distance falls
    # inside the shift range and the offset is a real test, as with trained weights.
    shared_bias = rng.normal(0.0, 0.3, 1024)
    net = SyncNet()
    batchnorm = {f"{name}.weight" for name, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}

    def draw(key, shape, rng):
        if key.endswith("num_batches_tracked"):
            return None  # the template's 0
        if key.endswith("running_mean"):
            return rng.normal(0.0, 0.1, shape)
        if key.endswith("running_var"):
            return rng.uniform(0.5, 1.5, shape)
        if key in ("netfcaud.3.bias", "netfclip.3.bias"):
            return shared_bias
        if len(shape) == 1:  # BatchNorm weight / bias, layer biases
            return rng.uniform(0.5, 1.5, shape) if key in batchnorm else rng.normal(0.0, 0.1, shape)
        fan_in = int(np.prod(shape[1:]))
        array = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        array /= {"netcnnlip.0.weight": 128.0, "netcnnaud.0.weight": 20.0}.get(key, 1.0)
        if key.endswith(".3.weight") and key.startswith(("netfcaud", "netfclip")):
            array *= 0.05  # last Linear: distances of about 10, like the real network's
        return array

    return seeded_state(net.state_dict(), rng, draw)
