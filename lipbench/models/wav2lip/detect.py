"""Wav2Lip's face boxes: its S3FD detector, inference.py's padding and 5-frame smoothing.

Wav2Lip ships a batch-mode copy of face-alignment's S3FD (face_detection/detection/sfd)
and loads `s3fd.pth` (face-alignment's s3fd-619a316812.pth) into it. That network is
not the one in `lipbench.metrics.syncnet.s3fd` (syncnet_python's S3FDNet): other state_dict keys
(`conv1_1.weight`, ... instead of `vgg.0.weight`, ...), fc6 is a plain 3x3 conv with
padding 3 (syncnet_python's is dilated 6 with padding 6), and every pool rounds down.
So it is written here; only the L2Norm layer is shared (same parameter, same formula).

Detection gives upstream's boxes (api.get_detections_for_batch, sfd_detector.detect_from_batch,
detect.batch_detect, bbox.nms):
- full-resolution frames, no resizing. Upstream flips its BGR frames to RGB and then
  subtracts the BGR mean (104, 117, 123) from them, so the network sees RGB minus
  (104, 117, 123): lipbench's RGB frames go in the same way;
- per feature level i (stride s = 2 ** (i + 2)): face probability (softmax), candidate
  positions where *any* frame of the batch scores > 0.05 (so each frame also gets the
  rows of positions found in other frames of its batch, once per frame that found
  them), pixel priors (s/2 + j*s, s/2 + i*s, 4s, 4s), decoding with variances (0.1, 0.2)
  in float32 in upstream's operation order;
- per frame, upstream runs greedy NMS (IoU 0.3), keeps boxes scoring > 0.5 and uses
  the first, clipped at 0 and truncated to int. The first box greedy NMS keeps is the
  best-scoring one, so the NMS cannot change the result and is skipped: the box is
  the best row if it scores > 0.5. Rows are built exactly in upstream's order
  (duplicates included) and ranked by the same NumPy call (`scores.argsort()[::-1]`),
  so even tied scores resolve as upstream's.

Then inference.py's face_detect: pads (top, bottom, left, right) = (0, 10, 0, 0)
clipped to the frame, and get_smoothened_boxes: box i becomes the mean of boxes
i..i+4, cast to int, computed in place in frame order (the last 4 frames average the
last 5 boxes, some of them already smoothed). `BoxSmoother` gives the same boxes while
frames arrive, as soon as the 4 frames after a frame are known.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lipbench.checkpoints import load_into, read_state_dict
from lipbench.metrics.syncnet.s3fd import L2Norm

MEAN = (104.0, 117.0, 123.0)  # subtracted from channels in RGB order (see above)
CANDIDATE_SCORE = 0.05
NMS_IOU = 0.3  # upstream's; it cannot change the box used (see above)
FACE_SCORE = 0.5
VARIANCES = (0.1, 0.2)
BATCH_SIZE = 16  # inference.py --face_det_batch_size
PADS = (0, 10, 0, 0)  # inference.py --pads: top, bottom, left, right
SMOOTH_WINDOW = 5  # inference.py get_smoothened_boxes(boxes, T=5)

# The VGG trunk: (name, in, out) convs, "pool" = 2x2 max pool (floor), in upstream's order.
_TRUNK = (
    ("conv1_1", 3, 64),
    ("conv1_2", 64, 64),
    "pool",
    ("conv2_1", 64, 128),
    ("conv2_2", 128, 128),
    "pool",
    ("conv3_1", 128, 256),
    ("conv3_2", 256, 256),
    ("conv3_3", 256, 256),
    "pool",
    ("conv4_1", 256, 512),
    ("conv4_2", 512, 512),
    ("conv4_3", 512, 512),
    "pool",
    ("conv5_1", 512, 512),
    ("conv5_2", 512, 512),
    ("conv5_3", 512, 512),
    "pool",
)
# The six sources the heads read: (source name, channels, conf channels); conv3_3's
# head has 3 background logits, max-pooled into one.
_SOURCES = (
    ("conv3_3_norm", 256, 4),
    ("conv4_3_norm", 512, 2),
    ("conv5_3_norm", 512, 2),
    ("fc7", 1024, 2),
    ("conv6_2", 512, 2),
    ("conv7_2", 256, 2),
)

RawBox = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels
Detector = Callable[[np.ndarray], Sequence[RawBox | None]]


class S3FDNet(nn.Module):
    """face-alignment's s3fd with its module names; forward gives, per level, the face
    probability (N, H, W) and the box regression (N, 4, H, W)."""

    def __init__(self):
        super().__init__()
        for item in _TRUNK:
            if item != "pool":
                name, cin, cout = item
                setattr(self, name, nn.Conv2d(cin, cout, 3, 1, padding=1))
        self.fc6 = nn.Conv2d(512, 1024, 3, 1, padding=3)
        self.fc7 = nn.Conv2d(1024, 1024, 1, 1)
        self.conv6_1 = nn.Conv2d(1024, 256, 1, 1)
        self.conv6_2 = nn.Conv2d(256, 512, 3, 2, padding=1)
        self.conv7_1 = nn.Conv2d(512, 128, 1, 1)
        self.conv7_2 = nn.Conv2d(128, 256, 3, 2, padding=1)
        self.conv3_3_norm = L2Norm(256, 10)
        self.conv4_3_norm = L2Norm(512, 8)
        self.conv5_3_norm = L2Norm(512, 5)
        for source, channels, conf in _SOURCES:
            setattr(self, f"{source}_mbox_conf", nn.Conv2d(channels, conf, 3, 1, padding=1))
            setattr(self, f"{source}_mbox_loc", nn.Conv2d(channels, 4, 3, 1, padding=1))

    def forward(self, x):
        taps = {}
        for item in _TRUNK:
            if item == "pool":
                x = F.max_pool2d(x, 2, 2)
            else:
                x = F.relu(getattr(self, item[0])(x))
                taps[item[0]] = x
        x = F.relu(self.fc7(F.relu(self.fc6(x))))
        sources = [
            self.conv3_3_norm(taps["conv3_3"]),
            self.conv4_3_norm(taps["conv4_3"]),
            self.conv5_3_norm(taps["conv5_3"]),
            x,
        ]
        x = F.relu(self.conv6_2(F.relu(self.conv6_1(x))))
        sources.append(x)
        x = F.relu(self.conv7_2(F.relu(self.conv7_1(x))))
        sources.append(x)
        out = []
        for (name, _, _), source in zip(_SOURCES, sources):
            conf = getattr(self, f"{name}_mbox_conf")(source)
            if conf.shape[1] == 4:  # max-out background
                conf = torch.cat((conf[:, :3].max(dim=1, keepdim=True).values, conf[:, 3:]), 1)
            face = F.softmax(conf, dim=1)[:, 1]
            out.append((face, getattr(self, f"{name}_mbox_loc")(source)))
        return out


def load_s3fd(path, device: str = "cpu") -> S3FDNet:
    state = read_state_dict(path, "Wav2Lip's s3fd.pth")
    net = load_into(S3FDNet(), state, path, "face-alignment's S3FD state_dict (Wav2Lip's s3fd.pth)", "S3FD")
    return net.to(device).eval()


def candidate_rows(levels) -> np.ndarray:
    """(rows, N, 5) float32 [x1, y1, x2, y2, score] in upstream batch_detect's order."""
    blocks = []
    for i, (face, loc) in enumerate(levels):
        face, loc = face.float().cpu(), loc.float().cpu()
        stride = 2 ** (i + 2)
        b, h, w = np.nonzero(face.numpy() > CANDIDATE_SCORE)  # np.where's (frame, row, col) order
        if len(b) == 0:
            continue
        h_t, w_t = torch.from_numpy(h), torch.from_numpy(w)
        centres = torch.stack((stride / 2 + w_t * stride, stride / 2 + h_t * stride), 1).float()  # (K, 2)
        size = float(stride * 4)
        offsets = loc[:, :, h_t, w_t].permute(2, 0, 1)  # (K, N, 4)
        centre = centres[:, None, :] + offsets[..., :2] * VARIANCES[0] * size
        extent = size * torch.exp(offsets[..., 2:] * VARIANCES[1])
        top_left = centre - extent / 2
        boxes = torch.cat((top_left, extent + top_left), 2)
        blocks.append(torch.cat((boxes, face[:, h_t, w_t].T[..., None]), 2).numpy())
    if not blocks:
        return np.zeros((1, len(levels[0][0]), 5), np.float32)  # upstream's empty result
    return np.concatenate(blocks)


class Wav2LipS3FD:
    """Wav2Lip's detector: called with RGB uint8 frames (N, H, W, 3), returns per frame
    the best face box (x1, y1, x2, y2) in pixels, or None where no face scores > 0.5."""

    def __init__(self, weights, device: str = "cpu", batch_size: int = BATCH_SIZE):
        self.net = weights.to(device).eval() if isinstance(weights, nn.Module) else load_s3fd(weights, device)
        self.device, self.batch_size = device, int(batch_size)

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> list[RawBox | None]:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"S3FD needs uint8 RGB frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
        out = []
        for start in range(0, len(frames), self.batch_size):
            batch = torch.from_numpy(frames[start : start + self.batch_size]).to(self.device)
            x = (batch.float() - torch.tensor(MEAN, device=self.device)).permute(0, 3, 1, 2).contiguous()
            rows = candidate_rows(self.net(x))
            for i in range(len(batch)):
                # upstream: NMS, then the boxes scoring > 0.5, then the first: the box
                # NMS takes first, the best by the same argsort call, whatever the rest
                best = rows[:, i][rows[:, i, 4].argsort()[::-1][0]]
                if best[4] <= FACE_SCORE:
                    out.append(None)
                    continue
                x1, y1, x2, y2 = (int(v) for v in np.clip(best, 0, None)[:4])
                out.append((x1, y1, x2, y2))
        return out


class MediaPipeBoxes:
    """A stand-in detector for when Wav2Lip's s3fd.pth is not wanted (or, in tests,
    when random S3FD weights find nothing): MediaPipe's short-range face box (as
    `lipbench.faces.face_crop`), same interface as `Wav2LipS3FD`. Not upstream's method:
    results made with it are not Wav2Lip's published pipeline."""

    def __init__(self):
        from lipbench.faces.face_crop import FaceCropper

        self._cropper = FaceCropper()

    def __call__(self, frames: np.ndarray) -> list[RawBox | None]:
        return [self._cropper.box(np.ascontiguousarray(frame))[0] for frame in frames]

    def close(self) -> None:
        self._cropper.close()


def padded_box(raw: RawBox, height: int, width: int, pads=PADS) -> np.ndarray:
    """inference.py face_detect: (x1, y1, x2, y2) grown by the pads, clipped to the frame."""
    top, bottom, left, right = pads
    x1, y1, x2, y2 = raw
    return np.array([max(0, x1 - left), max(0, y1 - top), min(width, x2 + right), min(height, y2 + bottom)], np.int64)


def smooth_boxes(boxes: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """All of a clip's boxes smoothed at once (upstream get_smoothened_boxes)."""
    smoother = BoxSmoother(len(boxes), window)
    smoother.push(boxes)
    return smoother.take(len(boxes))


class BoxSmoother:
    """get_smoothened_boxes for boxes that arrive a few frames at a time.

    Upstream smooths in place in frame order: box i <- int(mean(boxes[i:i+T])), or for
    the last frames (i + T > n) int(mean(boxes[n-T:])), which already holds smoothed
    boxes before i (and, for clips shorter than T, is Python's negative-start slice).
    Box i is therefore ready once box min(i + T, n) - 1 has arrived, and doing the same
    steps in the same order as boxes arrive gives upstream's boxes exactly.
    """

    def __init__(self, n_frames: int, window: int = SMOOTH_WINDOW):
        self.n, self.window = int(n_frames), int(window)
        self.boxes = np.zeros((self.n, 4), np.int64)
        self.arrived = self.done = 0

    def push(self, boxes) -> None:
        boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
        if self.arrived + len(boxes) > self.n:
            raise ValueError(f"more boxes than the clip's {self.n} frames")
        self.boxes[self.arrived : self.arrived + len(boxes)] = boxes
        self.arrived += len(boxes)

    def ready(self) -> int:
        """Frames [0, ready) can be smoothed with the boxes so far."""
        return self.n if self.arrived == self.n else max(0, self.arrived - self.window + 1)

    def take(self, stop: int) -> np.ndarray:
        """Smoothed boxes of frames [first not taken, stop)."""
        if stop > self.ready():
            raise ValueError(
                f"box {stop - 1} needs the boxes up to frame {min(stop - 1 + self.window, self.n) - 1}; "
                f"{self.arrived} have arrived"
            )
        first = self.done
        n, t, b = self.n, self.window, self.boxes
        for i in range(self.done, stop):
            window = b[n - t :] if i + t > n else b[i : i + t]
            b[i] = np.mean(window, axis=0)  # assigning to int64 truncates, as upstream
        self.done = max(self.done, stop)
        return b[first:stop].copy()


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded S3FD weights with upstream's key names and shapes, drawn with NumPy so every
    machine makes the same file. Scaled so the face scores spread around 0.5 (some
    frames get boxes above the 0.5 threshold, scores are rarely tied) and the box
    regressions stay of order one: the first conv divides the 0-255 input range away,
    the trunk is He-scaled, the heads give logits of order one."""
    from lipbench.random_weights import seeded_state

    def draw(key, shape, rng):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        if "_norm." in key and "mbox" not in key:
            return rng.uniform(1.0, 3.0, shape)
        if key.endswith(".bias"):
            return rng.normal(0.0, 0.05, shape)
        if "mbox" in key:
            return rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape) / (100.0 if key == "conv1_1.weight" else 1.0)

    return seeded_state(S3FDNet().state_dict(), np.random.default_rng(seed), draw)
