"""BiSeNet face parsing as MuseTalk uses it for its blending masks.

The network is zllrunning/face-parsing.PyTorch's BiSeNet (19 classes, ResNet-18 trunk,
the spatial path replaced by the trunk's 1/8 features) as vendored by MuseTalk
(`musetalk/utils/face_parsing/model.py`, `resnet.py`), with its state_dict key names so
`79999_iter.pth` loads strictly. Upstream first loads torchvision's
`resnet18-5c106cde.pth` into the trunk and then the whole `79999_iter.pth`, which holds
the trunk too (`cp.resnet.*`), so the ResNet file's values never reach the output:
lipbench reads only `79999_iter.pth`.

`FaceParser` is upstream's `FaceParsing.__call__` (v1.5: cheek widths 90): a PIL image
resized to 512 x 512 (bilinear), ImageNet-normalized, argmax of the main output, then
the mask rule of the mode ("jaw", v1.5's default: class 1 (skin) dilated downwards by
a cone-and-stem kernel, eroded by a flat ellipse outside the cheek bands, nose (10)
excluded, lips and mouth (11, 12, 13) added; "neck"; "raw": classes 1, 11, 12, 13).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

N_CLASSES = 19
PARSE_SIZE = 512
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CHEEK_WIDTH = 90  # v1.5's --left_cheek_width / --right_cheek_width


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, ks: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class ResBlock(nn.Module):
    """ResNet basic block: two 3x3 convs, a 1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        branch = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(skip + branch)


class Trunk(nn.Module):
    """ResNet-18 without its classifier; returns the 1/8, 1/16 and 1/32 features."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = ((64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2))
        for i, (cin, cout, stride) in enumerate(widths, 1):
            setattr(self, f"layer{i}", nn.Sequential(ResBlock(cin, cout, stride), ResBlock(cout, cout)))

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        f8 = self.layer2(self.layer1(x))
        f16 = self.layer3(f8)
        return f8, f16, self.layer4(f16)


def _global_pool(x):
    return F.avg_pool2d(x, x.shape[2:])


class Refinement(nn.Module):
    """Attention refinement: features scaled by a sigmoid gate of their global mean."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x):
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(_global_pool(feat))))


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnet = Trunk()
        self.arm16 = Refinement(256, 128)
        self.arm32 = Refinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, ks=1, padding=0)

    def forward(self, x):
        f8, f16, f32 = self.resnet(x)
        context = self.conv_avg(_global_pool(f32))
        top = self.arm32(f32) + F.interpolate(context, f32.shape[2:], mode="nearest")
        up32 = self.conv_head32(F.interpolate(top, f16.shape[2:], mode="nearest"))
        mid = self.arm16(f16) + up32
        up16 = self.conv_head16(F.interpolate(mid, f8.shape[2:], mode="nearest"))
        return f8, up16, up32


class Fusion(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, ks=1, padding=0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, spatial, context):
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        gate = torch.sigmoid(self.conv2(F.relu(self.conv1(_global_pool(feat)))))
        return feat * gate + feat


class Head(nn.Module):
    def __init__(self, cin: int, mid: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, n_classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    def __init__(self, n_classes: int = N_CLASSES):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = Fusion(256, 256)
        self.conv_out = Head(256, 256, n_classes)
        self.conv_out16 = Head(128, 64, n_classes)
        self.conv_out32 = Head(128, 64, n_classes)

    def forward(self, x):
        """The three class maps (main, 1/8 aux, 1/16 aux) at the input's size."""
        size = x.shape[2:]
        f8, up16, up32 = self.cp(x)
        outs = (self.conv_out(self.ffm(f8, up16)), self.conv_out16(up16), self.conv_out32(up32))
        return tuple(F.interpolate(o, size, mode="bilinear", align_corners=True) for o in outs)


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded BiSeNet weights (NumPy), keys and shapes of 79999_iter.pth. The main head's
    skin class (1) weights are raised by 0.01 (its inputs are non-negative, after a ReLU),
    so the parsing finds skin in a good part of an image beside other classes and the
    blending masks are neither empty nor full (purely random heads find almost no skin)."""
    from lipbench.random_weights import randomized

    state = randomized(BiSeNet().state_dict(), seed, gain=1.0)
    head = state["conv_out.conv_out.weight"]
    head[1] += 0.01
    return state


def load_bisenet(path, device: str = "cpu") -> BiSeNet:
    from lipbench.checkpoints import load_into, read_state_dict

    state = read_state_dict(path, "face-parsing.PyTorch's 79999_iter.pth")
    net = load_into(BiSeNet(), state, path, "the BiSeNet face parsing state_dict (79999_iter.pth)", "BiSeNet")
    return net.to(device).eval().requires_grad_(False)


def write_random(path, seed: int = 0) -> None:
    torch.save(random_state_dict(seed), Path(path))


# -- FaceParsing --------------------------------------------------------------------


def jaw_kernel(cone: int = 21, stem: int = 12) -> np.ndarray:
    """The dilation kernel of the jaw mode: (cone + stem) square, empty upper half of
    the cone, rows of odd widths growing by 2 from the centre row, then a stem as wide
    as the cone's last row. Dilating with it extends the skin downwards."""
    size = cone + stem
    kernel = np.zeros((size, size), np.uint8)
    centre = size // 2
    for row in range(cone // 2, cone):
        half = row - cone // 2
        kernel[row, centre - half : centre + half + 1] = 1
    base = int(kernel[cone - 1].sum()) if cone > 0 else 1
    for row in range(cone, size):
        kernel[row, max(0, centre - base // 2) : min(size, centre + base // 2 + 1)] = 1
    return kernel


def cheek_bands(left: int = CHEEK_WIDTH, right: int = CHEEK_WIDTH, size: int = PARSE_SIZE) -> np.ndarray:
    """255 outside the central band [size/2 - left, size/2 + right] (cv2.rectangle's inclusive ends)."""
    mask = np.zeros((size, size), np.uint8)
    centre = size // 2
    cv2.rectangle(mask, (0, 0), (centre - left, size), 255, -1)
    cv2.rectangle(mask, (centre + right, 0), (size, size), 255, -1)
    return mask


class FaceParser:
    """MuseTalk's FaceParsing: PIL image -> PIL 'L' mask at 512 x 512 (255 keep)."""

    def __init__(
        self,
        net: BiSeNet,
        left_cheek_width: int = CHEEK_WIDTH,
        right_cheek_width: int = CHEEK_WIDTH,
        device: str = "cpu",
    ):
        self.net, self.device = net, device
        self.kernel = jaw_kernel()
        self.cheek_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (35, 3))
        self.cheeks = cheek_bands(left_cheek_width, right_cheek_width)

    @torch.no_grad()
    def classes(self, image) -> np.ndarray:
        """(512, 512) int64 class map of a PIL RGB image."""
        from PIL import Image

        image = image.resize((PARSE_SIZE, PARSE_SIZE), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
        x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
        dtype = next(self.net.parameters()).dtype
        out = self.net(x[None].to(self.device, dtype))[0]
        return out[0].float().cpu().numpy().argmax(0)

    def __call__(self, image, mode: str = "jaw"):
        from PIL import Image

        parsing = self.classes(image)
        if mode == "neck":
            keep = np.isin(parsing, [1, 11, 12, 13, 14])
        elif mode == "jaw":
            skin = (parsing == 1).astype(np.uint8) * 255
            grown = cv2.dilate(skin, self.kernel, iterations=1)
            eroded = cv2.erode(grown, self.cheek_kernel, iterations=2)
            region = cv2.bitwise_or(
                cv2.bitwise_and(eroded, self.cheeks), cv2.bitwise_and(grown, cv2.bitwise_not(self.cheeks))
            )
            keep = ((region == 255) & (parsing != 10)) | np.isin(parsing, [11, 12, 13])
        else:
            keep = np.isin(parsing, [1, 11, 12, 13])
        return Image.fromarray(np.where(keep, 255, 0).astype(np.uint8))
