"""FVD: Frechet distance between I3D features of real and generated 16-frame clips.

Both protocols load the same TorchScript I3D (`i3d_torchscript.pt`, StyleGAN-V's
port of the tf.hub Kinetics-400 model) and take its 400-d features
(`return_features=True`); they differ in everything else, so each is reproduced
as its reference does it.

latentsync (the paper's: bytedance/LatentSync eval/eval_fvd.py + eval/fvd.py, run
through jinhyukj/eval_metrics eval/eval_fvd.py, whose fvd.py is the same file)
- one clip per video: frames [20:36] (16 frames) of each video at its own size;
- MediaPipe face crop of each (lipbench.faces.face_crop), with the 0.5 detector only:
  their script has no fallback and stops at the first frame without a face; here such
  a frame makes this clip's FVD fail with its frame numbers (the clip is left out);
  a video shorter than 36 frames fails the same way;
- uint8 crops / 255.0 -> float32 in [0, 1], laid out (B, C, T, H, W), I3D called
  with rescale=False, resize=False, so the network sees [0, 1], not the [-1, 1] it
  was trained on, at 224x224 (what the paper reports, kept);
- mean and np.cov (ddof 1) of the float32 features, distance
  |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), real part; no eps retry. The
  paper's script passes the real videos as the first set, so S1 is the real one.

latentsync_precropped (`--crop none`): the same with each frame taken as its own face
crop, resized to 224x224 (INTER_AREA) as the detected crops are; no detection.

stylegan_v (universome/stylegan-v src/metrics/frechet_video_distance.py, metric_utils)
- one clip per video: 16 consecutive frames of the video as compared (the generated
  one resized to the reference's size, lipbench.metrics.base.ClipContext), full frames.
  StyleGAN-V takes generated clips from frame 0 and real clips from a random offset
  (Python's unseeded `random`); lipbench takes frame 0 on both sides, so the result is
  reproducible. Videos shorter than 16 frames are dropped there (discard_short_videos);
  here they fail for that clip. StyleGAN-V caps sets at 2048 videos; lipbench does not;
- uint8 [0, 255] frames, (B, C, T, H, W), I3D called with rescale=True, resize=True
  (the network maps to [-1, 1] and resizes to 224x224 itself);
- float64 mean and biased covariance accumulated as FeatureStats (sum x / N,
  sum x x^T / N - mu mu^T), distance as above with S1 the generated set's.

With 33 clips and 400-d features the covariances have rank <= 32: FVD on such a
split carries large sampling noise; report it with its bootstrap interval. With no
more clips than feature dimensions lipbench computes the references' distance exactly
from the centred features (lipbench.metrics.frechet) instead of their 400x400 sqrtm,
which is ill-conditioned on such singular covariances and would be paid again on every
bootstrap resample; with more clips it runs their formula as written.
"""

from __future__ import annotations

import warnings
from functools import cached_property

import numpy as np
import scipy.linalg
import torch

from lipbench.checkpoints import read_torchscript
from lipbench.faces.face_crop import video_face_crops
from lipbench.metric_keys import metric_key
from lipbench.metrics.base import ClipContext, SetMetric, Value
from lipbench.metrics.frechet import frechet_distance_low_rank
from lipbench.weights import find_weight

I3D_WEIGHTS = "i3d_torchscript.pt"
CLIP_FRAMES = 16
LATENTSYNC_FIRST_FRAME = 20  # eval_fvd.py: vr[20:36]


def sqrtm(matrix: np.ndarray) -> np.ndarray:
    """scipy's matrix square root. Both references call sqrtm(..., disp=False) and drop
    the error estimate; SciPy 1.16-1.17 deprecate `disp` and 1.18 removes it, and the
    square root is the same without it."""
    with warnings.catch_warnings():
        # a singular product (fewer clips than feature dims) warns; the references ignore it
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*[Ss]ingular.*")
        return scipy.linalg.sqrtm(matrix)


def frechet(mu1, sigma1, mu2, sigma2) -> float:
    """Both references' formula, in their order of operations."""
    m = np.square(mu1 - mu2).sum()
    s = sqrtm(np.dot(sigma1, sigma2))
    return float(np.real(m + np.trace(sigma1 + sigma2 - s * 2)))


def _few_samples(real: np.ndarray, fake: np.ndarray) -> bool:
    return min(len(real), len(fake)) <= np.shape(real)[1]


def fvd_latentsync(real: np.ndarray, fake: np.ndarray) -> float:
    """LatentSync's compute_fvd as the paper's script calls it (real set first):
    float32 mean, np.cov with ddof 1."""
    if _few_samples(real, fake):
        return frechet_distance_low_rank(real, fake, ddof=1)
    return frechet(real.mean(axis=0), np.cov(real, rowvar=False), fake.mean(axis=0), np.cov(fake, rowvar=False))


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """StyleGAN-V's FeatureStats.get_mean_cov: float64 sums, biased covariance."""
    x = np.asarray(feats, dtype=np.float32).astype(np.float64)
    mean = x.sum(axis=0) / len(x)
    cov = x.T @ x / len(x) - np.outer(mean, mean)
    return mean, cov


def fvd_stylegan_v(real: np.ndarray, fake: np.ndarray) -> float:
    """StyleGAN-V's compute_fvd (generated set first)."""
    if _few_samples(real, fake):
        return frechet_distance_low_rank(fake, real, ddof=0)
    mu_real, sigma_real = feature_stats(real)
    mu_gen, sigma_gen = feature_stats(fake)
    return frechet(mu_gen, sigma_gen, mu_real, sigma_real)


class FVD(SetMetric):
    name = "fvd"
    protocols = ("latentsync", "stylegan_v", "latentsync_precropped")
    # motion statistics of the reference's frames, whose mouth follows its own speech
    reference_comparison = "frames"
    precropped_variants = {"latentsync": "latentsync_precropped"}
    values = (Value("fvd", False, "", "Frechet video distance of I3D features of 16-frame clips"),)

    def __init__(self, protocol=None, device="cpu", weights_dir=None):
        super().__init__(protocol, device, weights_dir)
        self.key = metric_key("fvd", self.protocol)

    def weight_files(self) -> tuple[str, ...]:
        return (I3D_WEIGHTS,)

    @cached_property
    def weights_path(self):
        return find_weight(I3D_WEIGHTS, self.weights_dir, needed_by=self.key)

    @cached_property
    def i3d(self) -> torch.jit.ScriptModule:
        return read_torchscript(self.weights_path, self.device)

    def load(self) -> None:
        self.i3d

    @torch.no_grad()
    def _features(self, clip: torch.Tensor, rescale: bool, resize: bool) -> np.ndarray:
        feats = self.i3d(clip.to(self.device), rescale=rescale, resize=resize, return_features=True)
        return feats.cpu().numpy()

    def _latentsync_clip(self, ctx: ClipContext, video, side: str) -> np.ndarray:
        first, end = LATENTSYNC_FIRST_FRAME, LATENTSYNC_FIRST_FRAME + CLIP_FRAMES
        if len(video.frames) < end:
            raise ValueError(
                f"{ctx.clip_id}: the {side} video has {len(video.frames)} frames; "
                f"FVD@latentsync reads frames [{first}:{end}]"
            )
        faces = video_face_crops(video, self.precropped)
        missed = np.flatnonzero(faces.missed_at_min_confidence[first:end]) + first
        if len(missed):
            raise ValueError(
                f"{ctx.clip_id}: no face at confidence 0.5 in frame(s) {missed.tolist()} of the "
                f"{side} video (LatentSync's FVD script stops on such a frame)"
            )
        clip = torch.from_numpy(faces.crops[first:end]).unsqueeze(0) / 255.0  # (1, T, H, W, C) float32
        return self._features(clip.permute(0, 4, 1, 2, 3), rescale=False, resize=False)

    def _stylegan_v_clip(self, ctx: ClipContext, frames: np.ndarray, side: str) -> np.ndarray:
        if len(frames) < CLIP_FRAMES:
            raise ValueError(f"{ctx.clip_id}: {len(frames)} frames compared, FVD@stylegan_v needs {CLIP_FRAMES}")
        clip = torch.from_numpy(np.ascontiguousarray(frames[:CLIP_FRAMES]))  # (T, H, W, C) uint8
        clip = clip.permute(3, 0, 1, 2).unsqueeze(0).contiguous()  # (1, C, T, H, W)
        return self._features(clip, rescale=True, resize=True)

    def features(self, ctx: ClipContext) -> dict[str, np.ndarray]:
        reference = ctx.require_reference(self.name)
        # the reference's clip features are kept with its decoded video: every model
        # compared with it on this clip reuses them
        key = f"{self.key}:{self.weights_path}"
        if self.protocol != "stylegan_v":
            return {
                "real": reference.shared(key, lambda: self._latentsync_clip(ctx, reference, "reference")),
                "fake": self._latentsync_clip(ctx, ctx.generated, "generated"),
            }
        key += f":first{min(ctx.n, CLIP_FRAMES)}"  # the frames compared (fewer than 16: an error)
        return {
            "real": reference.shared(key, lambda: self._stylegan_v_clip(ctx, ctx.reference_frames, "reference")),
            "fake": self._stylegan_v_clip(ctx, ctx.generated_frames, "generated"),
        }

    def combine(self, features: list[dict[str, np.ndarray]]) -> dict[str, float]:
        if len(features) < 2:
            raise ValueError(f"{self.key}: needs at least 2 clips, got {len(features)}")
        real = np.concatenate([f["real"] for f in features])
        fake = np.concatenate([f["fake"] for f in features])
        if self.protocol != "stylegan_v":
            return {self.key: fvd_latentsync(real, fake)}
        return {self.key: fvd_stylegan_v(real, fake)}
