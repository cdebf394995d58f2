"""ArcFace iresnet100, the identity embedder behind CSIM.

Written for lipbench; the module names, layer order, shapes and BatchNorm eps follow
insightface's arcface_torch `backbones/iresnet.py` (the copy in jinhyukj/eval_metrics
is the same network), so its published checkpoints load with strict=True:
`ms1mv3_arcface_r100_fp16.pth` is a plain state_dict of that module tree.

"fp16" in the file name is how the model was trained (mixed precision). The paper's
evaluation (eval_metrics eval/eval_csim.py) builds the network with fp16=False, so
inference here is float32 end to end, as there.
"""

from __future__ import annotations


import torch
from torch import nn

from lipbench.checkpoints import for_inference, load_into, read_state_dict

# Blocks per stage of iresnet100 (iresnet50 is 3,4,14,3); stage widths 64..512.
IRESNET100_LAYERS = (3, 13, 30, 3)
STAGE_WIDTHS = (64, 128, 256, 512)
EMBEDDING_SIZE = 512
INPUT_SIZE = 112  # 112x112 input -> 7x7 after four stride-2 stages
BN_EPS = 1e-5


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation residual block: BN, conv, BN, PReLU, conv (stride here), BN."""

    def __init__(self, cin: int, cout: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=BN_EPS)
        self.conv1 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """Input (N, 3, 112, 112) RGB in [-1, 1]; output (N, 512) embeddings, not normalised."""

    def __init__(self, layers=IRESNET100_LAYERS, num_features: int = EMBEDDING_SIZE):
        super().__init__()
        self.conv1 = _conv3x3(3, STAGE_WIDTHS[0])
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0], eps=BN_EPS)
        self.prelu = nn.PReLU(STAGE_WIDTHS[0])
        cin = STAGE_WIDTHS[0]
        for i, (width, blocks) in enumerate(zip(STAGE_WIDTHS, layers), start=1):
            # Every stage halves the resolution in its first block, so every first
            # block has a 1x1 stride-2 projection shortcut (`downsample.0/1`).
            downsample = nn.Sequential(
                nn.Conv2d(cin, width, kernel_size=1, stride=2, bias=False), nn.BatchNorm2d(width, eps=BN_EPS)
            )
            stage = [IBasicBlock(cin, width, 2, downsample)] + [IBasicBlock(width, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            cin = width
        self.bn2 = nn.BatchNorm2d(cin, eps=BN_EPS)
        self.dropout = nn.Dropout(p=0.0)  # no parameters; kept so the module tree matches
        self.fc = nn.Linear(cin * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def iresnet100() -> IResNet:
    return IResNet(IRESNET100_LAYERS)


def load_iresnet100(path, device: str = "cpu") -> IResNet:
    """iresnet100 in eval mode with the state_dict in `path` (strict: every key and
    shape must match), float32 on `device`."""
    state = read_state_dict(path, "ArcFace iresnet100")
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint wrapping the weights
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    # load_state_dict copies into the float32 parameters: a half-precision file is upcast.
    net = load_into(iresnet100(), state, path, "an ArcFace iresnet100 state_dict", "ArcFace iresnet100")
    return for_inference(net.float(), device)
