"""AMT-S (Li et al., "AMT: All-Pairs Multi-Field Transforms for Efficient Frame
Interpolation", CVPR 2023), the frame interpolator behind VBench's motion smoothness.

No maintained library ships AMT (VBench vendors the authors' repository, MCG-NKU/AMT, in
vbench/third_party/amt), so the network is written here from that code's architecture and
arithmetic: networks/AMT-S.py with corr_radius 3, corr_lvls 4, num_flows 3 (cfgs/AMT-S.yaml)
and its blocks (feat_enc.SmallEncoder, ifrnet.Encoder / InitDecoder / IntermediateDecoder /
ResBlock, multi_flow.MultiFlowDecoder / multi_flow_combine, raft.SmallUpdateBlock /
BidirCorrBlock, utils/flow_utils.warp). The module names below are chosen so that the
published amt-s.pth (`{'state_dict': ...}`) loads strictly: every submodule's attribute
name and position is part of a key.

In short: a RAFT-style context encoder gives 1/8-resolution features of both frames, whose
all-pairs correlation (a 4-level pyramid, both directions) is looked up around where the
current flows point; an IFRNet-style pyramid (1/2 .. 1/16) is decoded coarse to fine into
the two flows from the middle frame to each input, each level refined by a small update
block that reads the correlation; the last level predicts three flow pairs, blend masks
and residuals, whose warped blends a 3x3 convolution merges into the middle frame.

Where lipbench differs: `forward` returns only the interpolated frame (the authors' eval
mode; their training-time outputs, every level's flows and features, are dropped), takes t
as a number or tensor (VBench passes 1/2), has no `scale_factor` (VBench's is 1 for
lipbench's inputs: see motion.py), and a batch may hold several frame pairs (every
operation is per sample, so a pair's result does not depend on its batch, up to float
rounding). Built plainly and fed one pair, it reproduces VBench's AMT-S bit for bit
(tests/test_vbench_motion.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# AMT-S's sizes (networks/AMT-S.py defaults with cfgs/AMT-S.yaml's parameters)
CORR_RADIUS = 3
CORR_LEVELS = 4
NUM_FLOWS = 3
PYRAMID = (20, 32, 44, 56)  # channels at 1/2, 1/4, 1/8, 1/16 of the frame
SKIP = 20  # channels of the residual blocks' side branch
CONTEXT_DIM = 84  # the context encoder's output, correlated at 1/8
# The padded frame's side must be a multiple of this (four stride-2 stages). It must also
# be at least 128: the correlation lives at 1/8 size and is halved 3 times, and a level
# one pixel wide (padded sides 64..112) makes the lookup divide by zero (2 x / (W - 1)),
# so every output is NaN, whatever the weights; below 64 the last level is empty and
# average pooling fails.
MULTIPLE = 16
MIN_SIDE = 128


def rescale(x: torch.Tensor, factor: float) -> torch.Tensor:
    # The authors resize by a factor (not to a size): PyTorch then maps coordinates with
    # that factor, which is what the trained weights saw.
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `image` at each pixel moved by `flow` (pixels, x then y); outside the image
    the border pixel repeats (flow_utils.warp: grid_sample, align_corners=True)."""
    b, _, h, w = flow.shape
    # a [-1, 1] grid plus the flow in the same units, as the authors build it (linspace
    # then division), so the sampling positions round the same way
    xs = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(b, -1, h, -1)
    ys = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(b, -1, -1, w)
    base = torch.cat([xs, ys], 1).to(image)
    step = torch.cat([flow[:, 0:1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)], 1)
    grid = (base + step).permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def pixel_grid(batch: int, height: int, width: int, device) -> torch.Tensor:
    """(B, 2, H, W) float: each pixel's own (x, y)."""
    y, x = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack([x, y]).float()[None].repeat(batch, 1, 1, 1)


def conv_prelu(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.PReLU(cout))


# ----------------------------------------------------------------------------------------
# The context encoder (feat_encoder): RAFT's small encoder, instance-normalised bottlenecks


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1, each instance-normalised and rectified, plus the input
    (projected by a strided 1x1 when the block halves the size). InstanceNorm2d has no
    parameters, so only the convolutions have keys."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        inner = cout // 4
        self.conv1 = nn.Conv2d(cin, inner, 1)
        self.conv2 = nn.Conv2d(inner, inner, 3, stride, 1)
        self.conv3 = nn.Conv2d(inner, cout, 1)
        self.downsample = (
            None if stride == 1 else nn.Sequential(nn.Conv2d(cin, cout, 1, stride), nn.InstanceNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv in (self.conv1, self.conv2, self.conv3):
            y = F.relu(F.instance_norm(conv(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return F.relu(x + y)


class ContextEncoder(nn.Module):
    """Frames -> 84-channel features at 1/8 size, the correlation's inputs."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, 2, 3)
        stages, cin = [], 32
        for cout, stride in ((32, 1), (64, 2), (96, 2)):
            stages.append(nn.Sequential(Bottleneck(cin, cout, stride), Bottleneck(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = nn.Conv2d(96, CONTEXT_DIM, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.instance_norm(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


# ----------------------------------------------------------------------------------------
# The all-pairs correlation of the two frames' context features, looked up around flows


class Correlation:
    """For every 1/8-size pixel of frame 0, its dot products with every pixel of frame 1
    (and the transpose), each averaged down to CORR_LEVELS sizes. `lookup` samples a
    (2r+1)^2 window of each level around given positions."""

    def __init__(self, feat0: torch.Tensor, feat1: torch.Tensor):
        b, dim, h, w = feat0.shape
        volume = torch.matmul(feat0.view(b, dim, h * w).transpose(1, 2), feat1.view(b, dim, h * w))
        # scaled by sqrt(dim) as a float32 tensor, as the authors do (same rounding)
        volume = volume.view(b, h, w, 1, h, w) / torch.sqrt(torch.tensor(dim).float())
        transposed = volume.clone().permute(0, 4, 5, 3, 1, 2)
        # one 2-D "image" per source pixel, so average pooling shrinks the target side only
        forward, backward = volume.reshape(b * h * w, 1, h, w), transposed.reshape(b * h * w, 1, h, w)
        self.levels = [(forward, backward)]
        for _ in range(CORR_LEVELS - 1):
            forward, backward = F.avg_pool2d(forward, 2, stride=2), F.avg_pool2d(backward, 2, stride=2)
            self.levels.append((forward, backward))

    @staticmethod
    def _sample(volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        # pixel coordinates -> grid_sample's [-1, 1] with align_corners=True; outside: 0
        h, w = volume.shape[-2:]
        x, y = points.split([1, 1], dim=-1)
        grid = torch.cat([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], dim=-1)
        return F.grid_sample(volume, grid, align_corners=True)

    def lookup(self, at0: torch.Tensor, at1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows of the forward volume around `at0` and of the backward one around `at1`
        ((B, 2, h, w) positions in 1/8-size pixels), each (B, CORR_LEVELS (2r+1)^2, h, w)."""
        r = CORR_RADIUS
        at0, at1 = at0.permute(0, 2, 3, 1), at1.permute(0, 2, 3, 1)
        b, h, w, _ = at0.shape
        steps = torch.linspace(-r, r, 2 * r + 1, device=at0.device)
        # RAFT's window order: the offset added to x is the outer (slower) index and the
        # one added to y the inner, so the channel order matches the trained weights
        outer, inner = torch.meshgrid(steps, steps, indexing="ij")
        window = torch.stack([outer, inner], dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
        found0, found1 = [], []
        for level, (forward, backward) in enumerate(self.levels):
            centre0 = at0.reshape(b * h * w, 1, 1, 2) / 2**level
            centre1 = at1.reshape(b * h * w, 1, 1, 2) / 2**level
            found0.append(self._sample(forward, centre0 + window).view(b, h, w, -1))
            found1.append(self._sample(backward, centre1 + window).view(b, h, w, -1))
        return (
            torch.cat(found0, dim=-1).permute(0, 3, 1, 2).contiguous(),
            torch.cat(found1, dim=-1).permute(0, 3, 1, 2).contiguous(),
        )


class UpdateBlock(nn.Module):
    """RAFT's small update, without recurrence: from the correlation windows, the current
    flows and the decoder's features, a residual for both (at 1/8 size; `scale` > 1 for a
    finer level, whose inputs are shrunk to 1/8 and outputs grown back)."""

    def __init__(self, feature_dim: int, scale: int | None = None):
        super().__init__()
        self.scale = scale
        hidden, flow_dim, corr_dim, fc_dim = 76, 20, 64, 68
        windows = CORR_LEVELS * (2 * CORR_RADIUS + 1) ** 2
        self.convc1 = nn.Conv2d(2 * windows, corr_dim, 1)
        self.convf1 = nn.Conv2d(4, 2 * flow_dim, 7, padding=3)
        self.convf2 = nn.Conv2d(2 * flow_dim, flow_dim, 3, padding=1)
        self.conv = nn.Conv2d(corr_dim + flow_dim, fc_dim, 3, padding=1)

        def two_convs(cin, cout):  # conv, leaky ReLU, conv: the keys' .0 and .2
            return nn.Sequential(
                nn.Conv2d(cin, hidden, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(hidden, cout, 3, padding=1)
            )

        self.gru = two_convs(fc_dim + 4 + feature_dim, hidden)  # the authors' name; a plain conv stack
        self.feat_head = two_convs(hidden, feature_dim)
        self.flow_head = two_convs(hidden, 4)

    def forward(self, features, flows, windows):
        if self.scale is not None:
            features = rescale(features, 1 / self.scale)
        corr = F.leaky_relu(self.convc1(windows), 0.1)
        motion = F.leaky_relu(self.convf1(flows), 0.1)
        motion = F.leaky_relu(self.convf2(motion), 0.1)
        joined = F.leaky_relu(self.conv(torch.cat([corr, motion], dim=1)), 0.1)
        hidden = self.gru(torch.cat([joined, flows, features], dim=1))
        d_features, d_flows = self.feat_head(hidden), self.flow_head(hidden)
        if self.scale is not None:
            d_features = rescale(d_features, self.scale)
            d_flows = self.scale * rescale(d_flows, self.scale)  # flows in pixels grow with the size
        return d_features, d_flows


# ----------------------------------------------------------------------------------------
# The IFRNet-style pyramid and its coarse-to-fine decoders


class SideResBlock(nn.Module):
    """Residual block whose last `side` channels get an extra 3x3 convolution twice."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        self.side = side
        self.conv1 = conv_prelu(channels, channels)
        self.conv2 = conv_prelu(side, side)
        self.conv3 = conv_prelu(channels, channels)
        self.conv4 = conv_prelu(side, side)
        self.conv5 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.prelu = nn.PReLU(channels)

    def _side(self, x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
        return torch.cat([x[:, : -self.side], conv(x[:, -self.side :])], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self._side(self.conv1(x), self.conv2))
        y = self.conv5(self._side(y, self.conv4))
        return self.prelu(x + y)


class Pyramid(nn.Module):
    """Frame -> features at 1/2, 1/4, 1/8, 1/16 (two conv + PReLU per level, the first strided)."""

    def __init__(self):
        super().__init__()
        cin = 3
        for level, cout in enumerate(PYRAMID, 1):
            setattr(self, f"pyramid{level}", nn.Sequential(conv_prelu(cin, cout, 3, 2, 1), conv_prelu(cout, cout)))
            cin = cout

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = []
        for level in range(1, len(PYRAMID) + 1):
            x = getattr(self, f"pyramid{level}")(x)
            levels.append(x)
        return levels


class Decoder(nn.Module):
    """One level up: conv + PReLU, a residual block, then a stride-2 transposed convolution
    to twice the size. The caller splits its output into flows and features."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.convblock = nn.Sequential(
            conv_prelu(cin, mid), SideResBlock(mid, SKIP), nn.ConvTranspose2d(mid, cout, 4, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


# ----------------------------------------------------------------------------------------


class AMTS(nn.Module):
    """AMT-S: `forward(img0, img1, t)` -> the frame at time t in (0, 1) between them.
    Frames (B, 3, H, W) float in [0, 1], H and W multiples of 16 (pad first)."""

    def __init__(self):
        super().__init__()
        c1, c2, c3, c4 = PYRAMID
        self.feat_encoder = ContextEncoder()
        self.encoder = Pyramid()
        # inputs: both frames' features plus time (level 4), or the decoded features, both
        # warped frames' features and both flows (levels 3..1); outputs: two flows (4
        # channels) and the next level's features
        self.decoder4 = Decoder(2 * c4 + 1, 2 * c4, c3 + 4)
        self.decoder3 = Decoder(3 * c3 + 4, 3 * c3, c2 + 4)
        self.decoder2 = Decoder(3 * c2 + 4, 3 * c2, c1 + 4)
        # the last level: per flow field two flows (4), a mask (1) and an RGB residual (3)
        self.decoder1 = Decoder(3 * c1 + 4, 3 * c1, 8 * NUM_FLOWS)
        self.update4 = UpdateBlock(c3)
        self.update3 = UpdateBlock(c2, 2)
        self.update2 = UpdateBlock(c1, 4)
        self.comb_block = nn.Sequential(
            nn.Conv2d(3 * NUM_FLOWS, 6 * NUM_FLOWS, 3, 1, 1),
            nn.PReLU(6 * NUM_FLOWS),
            nn.Conv2d(6 * NUM_FLOWS, 3, 3, 1, 1),
        )

    @staticmethod
    def _refine(update, corr, grid, flow0, flow1, features, t, shrink):
        """Look the correlation up where the flows point and add the update's residuals.
        The flows go from time t to each frame; assuming straight motion, t -> 1 over t
        and t -> 0 over 1 - t give frame 0 -> 1 and frame 1 -> 0 at 1/8 size."""
        small0, small1 = flow0, flow1
        if shrink != 1:
            small0 = (1 / shrink) * rescale(flow0, 1 / shrink)
            small1 = (1 / shrink) * rescale(flow1, 1 / shrink)
        windows = torch.cat(corr.lookup(grid + small1 * (1.0 / t), grid + small0 * (1.0 / (1.0 - t))), dim=1)
        d_features, d_flows = update(features, torch.cat([small0, small1], dim=1), windows)
        d0, d1 = torch.chunk(d_flows, 2, 1)
        return flow0 + d0, flow1 + d1, features + d_features

    @staticmethod
    def _split(out: torch.Tensor, flow0_in=None, flow1_in=None):
        """A decoder's output -> (flow0, flow1, features); finer levels add the coarser
        flows, doubled in size and length."""
        flow0, flow1 = torch.chunk(out[:, :4], 2, 1)
        if flow0_in is not None:
            flow0 = flow0 + 2.0 * rescale(flow0_in, 2.0)
            flow1 = flow1 + 2.0 * rescale(flow1_in, 2.0)
        return flow0, flow1, out[:, 4:]

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor | float = 0.5) -> torch.Tensor:
        b, _, h, w = img0.shape
        if not torch.is_tensor(t):
            t = torch.tensor(float(t))
        t = t.float().to(img0.device).reshape(-1, 1, 1, 1).expand(b, 1, 1, 1)
        # both frames lose their joint mean (per pair; in the authors' order of reductions)
        mean = torch.cat([img0, img1], 2).mean(1, keepdim=True).mean(2, keepdim=True).mean(3, keepdim=True)
        img0, img1 = img0 - mean, img1 - mean

        grid = pixel_grid(b, h // 8, w // 8, img0.device)
        context0, context1 = torch.split(self.feat_encoder(torch.cat([img0, img1], 0)), [b, b], 0)
        corr = Correlation(context0, context1)
        f0 = self.encoder(img0)
        f1 = self.encoder(img1)

        # 1/16 -> 1/8: start from both frames' coarsest features and the time
        time_map = t.expand(b, 1, *f0[3].shape[2:])
        flow0, flow1, feat = self._split(self.decoder4(torch.cat([f0[3], f1[3], time_map], 1)))
        flow0, flow1, feat = self._refine(self.update4, corr, grid, flow0, flow1, feat, t, 1)
        # 1/8 -> 1/4 -> 1/2: warp each frame's features to time t with the current flows;
        # the update reads the correlation at 1/8, so flows shrink by 2, then 4
        levels = ((self.decoder3, self.update3, 2, 2), (self.decoder2, self.update2, 1, 4))
        for decoder, update, level, shrink in levels:
            x = torch.cat([feat, backward_warp(f0[level], flow0), backward_warp(f1[level], flow1), flow0, flow1], 1)
            flow0, flow1, feat = self._split(decoder(x), flow0, flow1)
            flow0, flow1, feat = self._refine(update, corr, grid, flow0, flow1, feat, t, shrink)
        # 1/2 -> full size: NUM_FLOWS flow pairs with blend masks and residuals
        x = torch.cat([feat, backward_warp(f0[0], flow0), backward_warp(f1[0], flow1), flow0, flow1], 1)
        n = NUM_FLOWS
        d0, d1, mask, residual = torch.split(self.decoder1(x), [2 * n, 2 * n, n, 3 * n], 1)
        flows0 = d0 + 2.0 * rescale(flow0, 2.0).repeat(1, n, 1, 1)
        flows1 = d1 + 2.0 * rescale(flow1, 2.0).repeat(1, n, 1, 1)
        return self._merge(img0, img1, flows0, flows1, torch.sigmoid(mask), residual, mean)

    def _merge(self, img0, img1, flows0, flows1, mask, residual, mean):
        """Each field: mask x warped frame 0 + (1 - mask) x warped frame 1 + mean +
        residual; the frame is their average plus comb_block's correction, in [0, 1]."""
        b, _, h, w = flows0.shape
        n = NUM_FLOWS

        def per_field(x, channels):  # (B, n * c, H, W) -> (B * n, c, H, W)
            return x.reshape(b, n, channels, h, w).reshape(-1, channels, h, w)

        def repeated(x):  # (B, ...) -> each sample n times in a row
            return torch.stack([x] * n, 1).reshape(-1, *x.shape[1:])

        warped0 = backward_warp(repeated(img0), per_field(flows0, 2))
        warped1 = backward_warp(repeated(img1), per_field(flows1, 2))
        m = per_field(mask, 1)
        fields = m * warped0 + (1 - m) * warped1 + repeated(mean) + per_field(residual, 3)
        fields = fields.reshape(b, n, 3, h, w)
        frame = fields.mean(1) + self.comb_block(fields.reshape(b, -1, h, w))
        return torch.clamp(frame, 0, 1)
