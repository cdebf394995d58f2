"""LPIPS (pip `lpips` 0.1.4, AlexNet trunk, linear heads v0.1) of generated against
reference frames; lower is better.

The network is the package's own `lpips.LPIPS(net="alex")`. Asked for its default
trunk, the package has torchvision fetch ImageNet AlexNet weights from the internet;
lipbench never downloads implicitly, so the trunk is built untrained (`pnet_rand=True`)
and torchvision's file `alexnet-owt-7be5be79.pth` (the same file torchvision would
fetch) is loaded into it from the weights directory. The linear heads ship inside the
package and load as usual. Frames go in as [0, 1] RGB with normalize=True, which the
package maps to [-1, 1].

Protocols:
  full   whole frames at their own resolution (generated frames resized to the
         reference's, as every full-frame metric sees them); mean over frames.
  mouth  a square mouth patch: per clip, side = MOUTH_BOX_SCALE x the median over
         frames of the reference's lip extent (the larger of width and height of the
         40 MediaPipe mesh lip points), so the patch keeps one scale through the clip;
         per frame, centred on the reference's lip box, moved inside the frame when
         it crosses an edge. The same box cuts the reference and the generated frame;
         both patches are resized to MOUTH_CROP_SIZE x MOUTH_CROP_SIZE (INTER_AREA).
         Frames where the reference has no face have no box and are skipped (their
         count is in ctx.notes); the generated frame's own landmarks are not needed,
         a generated frame without a mouth simply scores badly. Mean over frames.
  mouth_precropped  (`--crop none`: frames that are already face crops, no face mesh)
         one fixed square per clip, where the mouth of a face crop is: side half the
         shorter frame side, centred horizontally, touching the bottom edge; resized
         as above.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import torch

from lipbench.checkpoints import read_state_dict
from lipbench.faces import mesh
from lipbench.defaults import metric_batch_size
from lipbench.metric_keys import metric_key
from lipbench.metrics.base import ClipContext, NetworkMetric, Value
from lipbench.weights import BadWeightError

TRUNK_FILE = "alexnet-owt-7be5be79.pth"
# 1.5 x the lip extent keeps the lips, their corners and some chin and cheek.
MOUTH_BOX_SCALE = 1.5
# The size of the patches LPIPS was calibrated on (the BAPPS patches are 64x64).
MOUTH_CROP_SIZE = 64


def load_trunk(net, path) -> None:
    """Copy torchvision AlexNet weights (keys `features.N.weight/bias`; `classifier.*`
    is not used) into the trunk of an lpips.LPIPS(net="alex"), whose slices hold the
    same torchvision layers under their original indices N."""
    state = read_state_dict(path, "a torchvision AlexNet state_dict")
    params = {}
    for part in (net.net.slice1, net.net.slice2, net.net.slice3, net.net.slice4, net.net.slice5):
        params.update(part.named_parameters())  # names like "3.weight", as in features.3.weight
    missing = [f"features.{k}" for k in params if f"features.{k}" not in state]
    wrong = [
        f"features.{k} {tuple(state[f'features.{k}'].shape)} (expected {tuple(p.shape)})"
        for k, p in params.items()
        if f"features.{k}" in state and state[f"features.{k}"].shape != p.shape
    ]
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
        [f"wrong shapes: {', '.join(wrong)}"] if wrong else []
    )
    if problems:
        raise BadWeightError(path, f"not a torchvision AlexNet state_dict: {'; '.join(problems)}", "mismatch")
    with torch.no_grad():
        for key, param in params.items():
            param.copy_(state[f"features.{key}"])


def build_lpips(trunk_path, device: str = "cpu"):
    """lpips.LPIPS(net="alex") with its trunk from `trunk_path`, in eval mode; nothing
    is downloaded."""
    import lpips

    # The untrained trunk draws from torch's global generator: keep callers' seeds intact.
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(pretrained|weights).*", category=UserWarning)
        net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    load_trunk(net, trunk_path)
    return net.to(device).eval()


def to_unit_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (T, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))).float().div_(255)


@torch.inference_mode()
def lpips_per_frame(
    net, reference: np.ndarray, generated: np.ndarray, device: str = "cpu", batch_size: int | None = None
) -> np.ndarray:
    """LPIPS of each frame pair (same shapes, uint8 RGB)."""
    if reference.shape != generated.shape:
        raise ValueError(f"LPIPS compares frames of one shape: {reference.shape} vs {generated.shape}")
    out, batch_size = [], batch_size or metric_batch_size(device)
    for start in range(0, len(reference), batch_size):
        ref = to_unit_tensor(reference[start : start + batch_size]).to(device)
        gen = to_unit_tensor(generated[start : start + batch_size]).to(device)
        out.append(net(ref, gen, normalize=True).reshape(-1).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def mouth_boxes(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Square boxes (T, 3) = x0, y0, side in pixels around the lips of (T, 478, 2)
    landmarks (see the module docstring); rows of frames without a face are -1."""
    lips = landmarks[:, mesh.LIPS].astype(np.float64)
    found = np.isfinite(lips).all(axis=(1, 2))
    boxes = np.full((len(landmarks), 3), -1, dtype=np.int64)
    if not found.any():
        return boxes
    low, high = lips[found].min(axis=1), lips[found].max(axis=1)
    extent = (high - low).max(axis=1)
    side = int(round(MOUTH_BOX_SCALE * float(np.median(extent))))
    side = max(2, min(side, height, width))
    centre = (low + high) / 2
    x0 = np.clip(np.round(centre[:, 0] - side / 2), 0, width - side)
    y0 = np.clip(np.round(centre[:, 1] - side / 2), 0, height - side)
    boxes[found] = np.stack([x0, y0, np.full_like(x0, side)], axis=1).astype(np.int64)
    return boxes


def precropped_mouth_box(height: int, width: int) -> np.ndarray:
    """(x0, y0, side) of the mouth_precropped protocol's fixed box (module docstring)."""
    side = max(2, min(height, width) // 2)
    return np.array([(width - side) // 2, height - side, side], dtype=np.int64)


def crop_patches(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The box of each frame, resized to MOUTH_CROP_SIZE square (boxes all valid)."""
    size = (MOUTH_CROP_SIZE, MOUTH_CROP_SIZE)
    return np.stack(
        [cv2.resize(f[y : y + s, x : x + s], size, interpolation=cv2.INTER_AREA) for f, (x, y, s) in zip(frames, boxes)]
    )


class LPIPS(NetworkMetric):
    name = "lpips"
    protocols = ("full", "mouth", "mouth_precropped")
    reference_comparison = "frames"  # deep features of each frame (or mouth) against the reference's
    precropped_variants = {"mouth": "mouth_precropped"}
    weight_file = TRUNK_FILE
    load_network = staticmethod(build_lpips)
    values = (
        Value(
            "lpips",
            False,
            "",
            "LPIPS (AlexNet, v0.1) of generated against reference frames, mean "
            "over frames; full: whole frames, mouth: a 64x64 lip patch",
        ),
    )

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        key = metric_key("lpips", self.protocol)
        reference, generated = ctx.reference_frames, ctx.generated_frames
        if self.protocol == "mouth_precropped":
            boxes = np.tile(precropped_mouth_box(*reference.shape[1:3]), (len(reference), 1))
            reference, generated = crop_patches(reference, boxes), crop_patches(generated, boxes)
        elif self.protocol == "mouth":
            boxes = mouth_boxes(ctx.reference_landmarks, *reference.shape[1:3])
            found = boxes[:, 2] > 0
            ctx.notes["lpips_mouth_frames_without_face"] = int((~found).sum())
            if not found.any():
                raise ValueError(
                    f"{ctx.clip_id}: no face mesh in any of the {len(found)} reference frames, "
                    f"so no mouth patch ({key})"
                )
            reference = crop_patches(reference[found], boxes[found])
            generated = crop_patches(generated[found], boxes[found])
        return {key: float(lpips_per_frame(self.net, reference, generated, self.device, self.batch_size).mean())}
