"""VBench motion smoothness: how well AMT-S predicts the odd frames from the even ones.

Protocol `amt_s` is VBench 0.1.5's `motion_smoothness` dimension
(vbench/motion_smoothness.py `MotionSmoothness.motion_score` with
vbench/third_party/amt/cfgs/AMT-S.yaml and the weights amt-s.pth), step by step:

- the video is decoded to uint8 RGB frames (cv2.VideoCapture, BGR -> RGB; or a folder of
  images), all of them kept;
- the even frames 0, 2, 4, ... (`FrameProcess.extract_frame(start_from=0)`) become float32
  tensors in [0, 1] (`img2tensor`: uint8 / 255.0, (1, 3, H, W)); `check_dim_and_resize`
  would resize frames of other sizes to the first's, which never happens in a video;
- every frame is padded to multiples of 16 (`InputPadder(shape, 16)`: replicate padding,
  the odd pixel at the bottom / right) - the divisor is 16 / scale, and the scale is 1
  (below);
- each consecutive pair of even frames goes through AMT-S at t = 1/2 (`embt` 0.5; one pair
  per call, float32, `eval=True`, `scale_factor` 1), giving the middle frame `imgt_pred`
  (clamped to [0, 1]);
- the interpolated frames are unpadded and turned back into uint8 by `tensor2img`:
  x * 255, clipped to [0, 255], cast with truncation (not rounding);
- the odd frames 1, 3, 5, ... are compared with the predictions in order
  (`vfi_score`): per pair, the mean of cv2.absdiff over all pixels and channels, then
  the mean over pairs. With an even number of frames the last odd frame has no
  prediction (there is no even frame after it) and is not compared;
- the video's score is (255 - that mean) / 255: 1 when every odd frame is exactly what
  AMT-S predicts. VBench's dimension score averages videos.

The scale: on the CPU VBench never downscales. On CUDA it computes scale =
1024 x 512 / (H x W) x sqrt((GPU memory - 2500 MiB) / 1500 MiB), capped at 1, and uses
16 / floor(16 / sqrt(scale)), which is below 1 only when the first value is below
(16/17)^2 ~ 0.886: for a 512x512 video only on a GPU with under ~2.7 GiB, for 1920x1080
under ~20 GiB. lipbench always uses scale 1 (VBench's CPU behaviour, and its GPU behaviour
on any GPU that would run the other networks).

AMT-S itself (lipbench.metrics.vbench.amt) is written in lipbench from the authors' code,
as no maintained library ships it; its module names keep the published file's keys, so
amt-s.pth loads strictly. Frames must be at least 128 pixels on each side after padding,
i.e. more than 112: on smaller frames the coarsest level of AMT-S's correlation pyramid is
one pixel wide and its lookup divides by zero, so VBench's prediction is NaN and its score
meaningless (NaN cast to uint8 is 0 on x86; below 64 pixels it fails outright); lipbench
raises an error instead. The video must have at least 3 frames (two even frames to
interpolate between, one odd frame to check).

Where lipbench differs: on a GPU several frame pairs go through the network per call
(every operation is per pair; float rounding only; one pair per call on a CPU, where more
were slower: MotionSmoothness.cpu_batch_size); the network's convolutions run channels-last
on a CPU (lipbench.checkpoints.for_inference, rounding only). The parity fixture
(tests/fixtures/vbench_motion) holds VBench's own scores and one raw prediction of the
seeded stand-in network.
"""

from __future__ import annotations

import numpy as np
import torch

from lipbench.checkpoints import for_inference, load_into, read_state_dict
from lipbench.metric_keys import metric_key
from lipbench.metrics.base import ClipContext, NetworkMetric, Value
from lipbench.metrics.vbench import amt, checked_frames
from lipbench.random_weights import seeded_state
from lipbench.weights import BadWeightError

WEIGHT_FILE = "amt-s.pth"
FAMILY = "motion_smoothness"
# the correlation volume of one pair, (H/8 x W/8)^2 floats in both directions with its
# pyramid, dominates the memory: pairs per call are capped to keep it near this size
CORRELATION_BYTES = 2 * 1024**3
# the last layer of each head, whose outputs are flows (pixels), feature residuals, masks and
# RGB residuals: smaller in the stand-in (stand_in_state)
OUTPUT_LAYERS = ("convblock.2.weight", "head.2.weight", "comb_block.2.weight")


def load_amt_s(path, device: str = "cpu") -> torch.nn.Module:
    """The registry's loader: amt-s.pth ({'state_dict': ...}, the authors' key names) into
    lipbench's AMT-S, eval mode on `device`."""
    checkpoint = read_state_dict(path, "an AMT checkpoint {'state_dict': ...}")
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise BadWeightError(
            path, f"an AMT checkpoint holds {{'state_dict': ...}}; found keys {sorted(checkpoint)[:5]}", "mismatch"
        )
    net = load_into(amt.AMTS(), state, path, "AMT-S's weights (amt-s.pth, MCG-NKU/AMT networks/AMT-S.py)", "AMT-S")
    return for_inference(net, device)


def stand_in_state(seed: int) -> dict:
    """A seeded random state_dict in amt-s.pth's layout (its key order, shapes, float32),
    drawn with NumPy's PCG64 in key order: convolution weights N(0, 1/fan_in) (a
    transposed convolution's fan-in counts the inputs one output pixel sees, in x k^2 / 4
    at stride 2; the heads' output layers, OUTPUT_LAYERS, 10x smaller), biases N(0, 0.01),
    PReLU slopes U(0.1, 0.3). The flows stay within a few pixels and the predictions mostly
    inside [0, 1], unlike the average of the two frames (finite, different for different
    frames, so the parity test compares something); the numbers mean nothing."""

    def draw(key: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        if len(shape) == 1 and key.endswith(".weight"):  # PReLU slopes (the only 1-D weights)
            return rng.uniform(0.1, 0.3, shape)
        if len(shape) == 1:
            return rng.normal(0.0, 0.01, shape)
        transposed = ".convblock.2." in key  # the decoders' ConvTranspose2d: (in, out, k, k)
        fan_in = shape[0] * shape[2] * shape[3] / 4 if transposed else int(np.prod(shape[1:]))
        # the layers that output flows, features, masks and residuals are 10x smaller:
        # at 1/fan_in the flows grow to tens of pixels over the levels and the frames saturate
        gain = 0.1 if key.endswith(OUTPUT_LAYERS) else 1.0
        return rng.normal(0.0, gain * np.sqrt(1.0 / fan_in), shape).astype(np.float32)

    return seeded_state(amt.AMTS().state_dict(), np.random.default_rng(seed), draw)


def write_stand_in(path, seed: int) -> None:
    """torch.save({'state_dict': stand_in_state(seed)}), the published file's format."""
    torch.save({"state_dict": stand_in_state(seed)}, path)


def padding(height: int, width: int) -> tuple[int, int, int, int]:
    """InputPadder(shape, 16)'s (left, right, top, bottom): up to a multiple of 16, the
    extra pixel on the right / bottom."""
    pad_h, pad_w = -height % amt.MULTIPLE, -width % amt.MULTIPLE
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


@torch.inference_mode()
def interpolate_middles(net, frames: np.ndarray, device: str, batch_size: int) -> np.ndarray:
    """AMT-S's middle frame (t = 1/2) of each consecutive pair of `frames` ((N, H, W, 3)
    uint8) -> (N - 1, H, W, 3) uint8, as VBench: / 255, replicate-padded to multiples of
    16, unpadded after, x 255 truncated to uint8."""
    n, height, width, _ = frames.shape
    left, right, top, bottom = padding(height, width)
    if height + top + bottom < amt.MIN_SIDE or width + left + right < amt.MIN_SIDE:
        raise ValueError(
            f"frames of {height}x{width} pixels: AMT-S needs more than {amt.MIN_SIDE - amt.MULTIPLE} on each side "
            f"({amt.MIN_SIDE} once padded to a multiple of {amt.MULTIPLE}); on smaller frames its coarsest "
            "correlation level is one pixel wide and VBench's prediction is NaN"
        )
    x = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))) / 255.0
    x = torch.nn.functional.pad(x, (left, right, top, bottom), mode="replicate")
    cells = (((height + top + bottom) // 8) * ((width + left + right) // 8)) ** 2
    per_call = max(1, min(batch_size, CORRELATION_BYTES // (4 * 3 * cells)))  # forward + backward + pyramid ~ 3x
    middles = []
    for start in range(0, n - 1, per_call):
        stop = min(start + per_call, n - 1)
        first, second = x[start:stop].to(device), x[start + 1 : stop + 1].to(device)
        predicted = net(first, second, torch.tensor(0.5))
        predicted = predicted[..., top : top + height, left : left + width]
        # tensor2img: x 255, clip, truncate (astype), on the CPU in float32
        middles.append((predicted.float().cpu() * 255.0).permute(0, 2, 3, 1).numpy().clip(0, 255).astype(np.uint8))
    return np.concatenate(middles)


def smoothness(frames: np.ndarray, middles: np.ndarray) -> float:
    """(255 - mean absolute difference of odd frame i and middle i, over all pixels,
    channels and pairs) / 255; pairs beyond the predictions are not compared."""
    odd = frames[1::2][: len(middles)]
    per_pair = [np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in zip(odd, middles)]
    return float((255.0 - np.mean(per_pair)) / 255.0)


def motion_smoothness(net, frames: np.ndarray, device: str = "cpu", batch_size: int = 1) -> float:
    """VBench's motion smoothness of one video, (T, H, W, 3) uint8 RGB, T >= 3."""
    if len(frames) < 3:
        raise ValueError(
            f"{len(frames)} frame(s); motion smoothness needs at least 3 "
            "(two even frames to interpolate between and an odd frame to compare)"
        )
    return smoothness(frames, interpolate_middles(net, frames[0::2], device, batch_size))


class MotionSmoothness(NetworkMetric):
    name = FAMILY
    weight_file = WEIGHT_FILE
    load_network = staticmethod(load_amt_s)
    # one image per call on a CPU: on 534x534 frames, 16 per call made this family about
    # twice as slow as VBench's one at a time, 1 per call about as fast
    # (benchmarks/perf/vbench_vs_reference.py, README there)
    cpu_batch_size = 1
    protocols = ("amt_s",)
    needs_reference = False  # the generated video alone
    values = (
        Value(
            "motion_smoothness",
            True,
            "",
            "VBench motion smoothness: AMT-S interpolates each pair of even frames at t = 1/2; "
            "(255 - mean absolute difference of the odd frames from the predictions, uint8) / 255",
        ),
    )

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        video = ctx.generated
        key = metric_key(self.name, self.protocol)
        where = f"{video.source or ctx.clip_id} ({key})"
        frames = checked_frames(video.frames, where)  # uint8 RGB (T, H, W, 3), or an error naming the clip
        try:
            value = motion_smoothness(self.net, frames, self.device, self.batch_size)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        return {key: value}
