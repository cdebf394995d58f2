"""S3FD face detector as the SyncNet pipelines run it (joonson/syncnet_python
detectors/s3fd; LatentSync eval/detectors is the same code).

The network is written here with the module names of upstream `S3FDNet`, so the
published `sfd_face.pth` (a plain state_dict) loads with strict=True. Detection
follows upstream `S3FD.detect_faces` step for step:

- the RGB frame is resized by `scale` (cv2 INTER_LINEAR; the pipelines use 0.25),
  the BGR mean (104, 117, 123) is subtracted per channel and the network sees RGB;
- per image: softmax face score, prior boxes (min sizes 16..512, steps 4..128,
  centres (j + 0.5) / (image size / step)), box decoding with variances (0.1, 0.2),
  candidates with score > 0.05, the 5000 best, NMS at IoU 0.3, the 750 best kept
  (upstream `Detect`);
- boxes with score > conf_th scaled to the frame's pixels, then NMS at IoU 0.1
  (upstream `nms_`).

What differs: frames are batched through the network (upstream runs one at a time),
and both NMS steps use torchvision.ops.nms, which keeps the same boxes as upstream's
greedy loops (same IoU without +1, same "suppress if IoU > threshold" rule); boxes
are handed to it in upstream's processing order, so tied scores resolve the same way.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from lipbench.defaults import metric_batch_size
from lipbench.checkpoints import for_inference, load_into, read_state_dict
from lipbench.random_weights import seeded_state

BGR_MEAN = (104.0, 117.0, 123.0)
MIN_SIZES = (16, 32, 64, 128, 256, 512)
STEPS = (4, 8, 16, 32, 64, 128)
VARIANCES = (0.1, 0.2)
CANDIDATE_SCORE = 0.05  # upstream Detect conf_thresh
CANDIDATE_TOP_K = 5000  # upstream Detect nms_top_k
CANDIDATE_NMS_IOU = 0.3
KEEP_TOP_K = 750
FINAL_NMS_IOU = 0.1  # upstream detect_faces: nms_(bboxes, 0.1)

# The pipelines' settings (run_pipeline.py inference_video, LatentSync syncnet_detect.py).
PIPELINE_SCALE = 0.25
PIPELINE_CONF = 0.9

# VGG16 trunk as upstream's `vgg` ModuleList: ints are conv output channels, "M" a
# 2x2 max pool, "C" the same with ceil_mode. Index positions (ReLUs and pools count)
# must match upstream, because the state_dict keys are `vgg.<index>.weight`.
_VGG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512, "M")


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x):
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10
        return self.weight.view(1, -1, 1, 1) * (x / norm)


class S3FDNet(nn.Module):
    """Returns raw head outputs: loc (N, P, 4) and face probability (N, P), plus the
    feature-map sizes the priors are laid on."""

    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for item in _VGG:
            if item in ("M", "C"):
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=item == "C"))
            else:
                layers += [nn.Conv2d(channels, item, 3, 1, padding=1), nn.ReLU(inplace=True)]
                channels = item
        layers += [
            nn.Conv2d(512, 1024, 3, 1, padding=6, dilation=6),
            nn.ReLU(inplace=True),
            nn.Conv2d(1024, 1024, 1, 1),
            nn.ReLU(inplace=True),
        ]
        self.vgg = nn.ModuleList(layers)
        self.L2Norm3_3 = L2Norm(256, 10)
        self.L2Norm4_3 = L2Norm(512, 8)
        self.L2Norm5_3 = L2Norm(512, 5)
        self.extras = nn.ModuleList(
            [
                nn.Conv2d(1024, 256, 1, 1),
                nn.Conv2d(256, 512, 3, 2, padding=1),
                nn.Conv2d(512, 128, 1, 1),
                nn.Conv2d(128, 256, 3, 2, padding=1),
            ]
        )
        source_channels = (256, 512, 512, 1024, 512, 256)
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, 3, 1, padding=1) for c in source_channels])
        # The first head has 3 background channels, max-pooled into one ("max-out").
        self.conf = nn.ModuleList(
            [nn.Conv2d(c, 4 if i == 0 else 2, 3, 1, padding=1) for i, c in enumerate(source_channels)]
        )

    def forward(self, x):
        # Upstream taps the trunk after conv3_3, conv4_3, conv5_3 (each L2-normalised) and fc7.
        taps = {15: self.L2Norm3_3, 22: self.L2Norm4_3, 29: self.L2Norm5_3}
        sources = []
        for k, layer in enumerate(self.vgg):
            x = layer(x)
            if k in taps:
                sources.append(taps[k](x))
        sources.append(x)
        for k, layer in enumerate(self.extras):
            x = F.relu(layer(x), inplace=True)
            if k % 2 == 1:
                sources.append(x)
        locs, confs, sizes = [], [], []
        for i, source in enumerate(sources):
            conf = self.conf[i](source)
            if i == 0:
                background = conf[:, 0:3].max(dim=1, keepdim=True).values
                conf = torch.cat((background, conf[:, 3:]), dim=1)
            loc = self.loc[i](source)
            sizes.append(tuple(loc.shape[2:]))
            locs.append(loc.permute(0, 2, 3, 1).reshape(loc.shape[0], -1, 4))
            confs.append(conf.permute(0, 2, 3, 1).reshape(conf.shape[0], -1, 2))
        loc = torch.cat(locs, 1)
        face = torch.softmax(torch.cat(confs, 1), dim=-1)[..., 1]
        return loc, face, sizes


def prior_boxes(image_hw: tuple[int, int], feature_sizes) -> torch.Tensor:
    """(P, 4) priors (cx, cy, w, h) relative to the image, in upstream's order."""
    imh, imw = image_hw
    out = []
    for (fh, fw), step, min_size in zip(feature_sizes, STEPS, MIN_SIZES):
        i, j = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = (j.ravel() + 0.5) / (imw / step)  # image size / step, not the feature size
        cy = (i.ravel() + 0.5) / (imh / step)
        out.append(np.stack([cx, cy, np.full_like(cx, min_size / imw), np.full_like(cy, min_size / imh)], 1))
    return torch.from_numpy(np.concatenate(out).astype(np.float32))


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2, y2) relative boxes, with upstream's operation order (float32)."""
    centres = priors[:, :2] + loc[:, :2] * VARIANCES[0] * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(loc[:, 2:] * VARIANCES[1])
    top_left = centres - sizes / 2
    return torch.cat((top_left, sizes + top_left), 1)


def candidates(loc: torch.Tensor, face: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """One image's (K, 5) rows (score, x1, y1, x2, y2), best first: what upstream's
    `Detect` writes into output[0, 1, :K]."""
    boxes = decode_boxes(loc, priors)
    keep = face > CANDIDATE_SCORE
    boxes, scores = boxes[keep], face[keep]
    # Upstream sorts ascending and takes boxes from the end: the same order here
    # (torchvision's NMS sorts stably, so exactly tied scores keep this order).
    order = torch.sort(scores, 0).indices[-CANDIDATE_TOP_K:].flip(0)
    boxes, scores = boxes[order], scores[order]
    kept = torchvision.ops.nms(boxes, scores, CANDIDATE_NMS_IOU)[:KEEP_TOP_K]
    return torch.cat((scores[kept, None], boxes[kept]), 1)


def final_boxes(rows: torch.Tensor, width: int, height: int, conf_th: float) -> np.ndarray:
    """(N, 5) float64 [x1, y1, x2, y2, score] in frame pixels (upstream detect_faces)."""
    rows = rows[rows[:, 0] > conf_th]
    pixels = rows[:, 1:] * torch.tensor([width, height, width, height], dtype=torch.float32)
    boxes = torch.cat((pixels, rows[:, :1]), 1).double().numpy()
    boxes = boxes[np.argsort(boxes[:, 4])[::-1]]  # upstream nms_'s order, ties included
    keep = torchvision.ops.nms(torch.from_numpy(boxes[:, :4]), torch.from_numpy(boxes[:, 4]), FINAL_NMS_IOU)
    return boxes[keep.numpy()]


def load_s3fd(path, device: str = "cpu") -> S3FDNet:
    state = read_state_dict(path, "S3FD sfd_face.pth")
    net = load_into(S3FDNet(), state, path, "an S3FD state_dict (upstream S3FDNet key names)", "S3FD")
    return for_inference(net, device)


class S3FD:
    """The detector with its weights; `detect` takes RGB uint8 frames (T, H, W, 3)."""

    def __init__(self, weights, device: str = "cpu", batch_size: int | None = None):
        """`weights`: a sfd_face.pth path, or an S3FDNet already built."""
        if isinstance(weights, nn.Module):
            self.net, self.source = weights.to(device).eval(), f"<{type(weights).__name__} object>"
        else:
            self.net, self.source = load_s3fd(weights, device), str(weights)
        self.device, self.batch_size = device, batch_size or metric_batch_size(device)

    def preprocess(self, frames: np.ndarray, scale: float) -> torch.Tensor:
        """(N, 3, h, w) float32: resized, BGR mean subtracted, RGB channel order."""
        resized = np.stack(
            [cv2.resize(f, dsize=(0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) for f in frames]
        ).astype(np.float32)
        resized -= np.array(BGR_MEAN[::-1], dtype=np.float32)  # RGB order, so the mean reversed
        return torch.from_numpy(resized).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def raw(self, frames: np.ndarray, scale: float = PIPELINE_SCALE) -> list[torch.Tensor]:
        """Per frame, the (K, 5) candidate rows (score, relative box) before conf_th."""
        out = []
        for start in range(0, len(frames), self.batch_size):
            x = self.preprocess(frames[start : start + self.batch_size], scale).to(self.device)
            loc, face, sizes = self.net(x)
            priors = prior_boxes(tuple(x.shape[2:]), sizes).to(self.device)
            out.extend(candidates(loc[i], face[i], priors).float().cpu() for i in range(len(x)))
        return out

    def detect(
        self, frames: np.ndarray, scale: float = PIPELINE_SCALE, conf_th: float = PIPELINE_CONF
    ) -> list[np.ndarray]:
        """Per frame, (N, 5) float64 [x1, y1, x2, y2, score] in frame pixels."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"S3FD needs uint8 RGB frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
        height, width = frames.shape[1:3]
        return [final_boxes(rows, width, height, conf_th) for rows in self.raw(frames, scale)]


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights with upstream's key names and shapes, drawn with NumPy so every
    machine makes the same file (tests: no published weights can be downloaded).
    Scaled so scores are not saturated: the first conv divides the 0-255 input range
    away, the trunk is He-scaled, and the heads give logits of order one (saturated
    scores would tie at 1.0 and make the box order arbitrary)."""

    def draw(key, shape, rng):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        if key.startswith("L2Norm"):
            return rng.uniform(1.0, 3.0, shape)
        if key.endswith(".bias"):
            return rng.normal(0.0, 0.05, shape)
        if key.startswith(("loc.", "conf.")):
            return rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        array = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        if key == "vgg.0.weight":
            array /= 100.0
        return array

    return seeded_state(S3FDNet().state_dict(), np.random.default_rng(seed), draw)
