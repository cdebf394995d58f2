"""FID on the paper's MediaPipe face crops, computed with pytorch-fid 0.3.0 itself.

Network, input handling and Frechet distance are pytorch-fid's own (imported, not
rewritten): `InceptionV3` with the FID Inception weights (`pt_inception-2015-12-05-
6726825d.pth`), pool3 features (block 3, 2048-d); input RGB in [0, 1] (uint8 / 255, as
torchvision's ToTensor in its data loader), resized inside the network to 299x299
(bilinear, align_corners False) and scaled to [-1, 1]; activations kept in float64,
mean and covariance (ddof 1) as `calculate_activation_statistics`, distance by
`calculate_frechet_distance` (scipy sqrtm, eps retry, imaginary-part check).

Protocols
- per_video (the paper's, jinhyukj/eval_metrics eval/eval_fid_videos.py): for each
  clip, the first n frames of the reference and of the generated video (n the shorter
  length), each video at its own size, MediaPipe face crops (lipbench.faces.face_crop);
  frames without a face are dropped, each side on its own, as upstream deletes their
  PNGs; FID of the clip's real crops against its generated crops; the reported value
  is the mean over clips. A clip with no face at all on one side is skipped upstream;
  here it is an error for that clip (so it is left out of the mean, and said why).
  With 81 frames and 2048 dimensions the covariances are singular: that is the paper's
  protocol. pytorch-fid takes scipy's sqrtm of the 2048x2048 product (seconds to tens
  of seconds on a CPU, once per clip, and ill-conditioned); lipbench computes the same
  distance exactly from the centred activations (lipbench.metrics.frechet).
- pooled: the same crops, one FID over all clips' real frames against all generated
  frames (the usual set-level FID).
- per_video_precropped / pooled_precropped (`--crop none`): the same with each frame
  taken as its own face crop, resized to 224x224 (INTER_AREA) as the detected crops are;
  no detection, no frame dropped.

Upstream's script decodes each video to PNG files with the ffmpeg CLI and reads them
back (lossless); lipbench uses its own decoded frames (PyAV), with no PNG round trip.
"""

from __future__ import annotations

import contextlib
import io as text_io
import logging
import threading
import warnings
from functools import cached_property
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_fid import inception as fid_inception
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import InceptionV3

from lipbench.checkpoints import for_inference, load_into, read_state_dict
from lipbench.faces.face_crop import video_face_crops
from lipbench.defaults import metric_batch_size
from lipbench.metric_keys import metric_key
from lipbench.metrics.base import ClipContext, SetMetric, Value
from lipbench.metrics.frechet import frechet_distance_low_rank
from lipbench.weights import find_weight

log = logging.getLogger(__name__)

FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
DEFAULT_DIMS = 2048  # pool3; eval_fid_videos.py --dims default

_build_lock = threading.Lock()


def fid_inception_structure():
    """pytorch-fid's `fid_inception_v3()` network without its weights: torchvision's
    Inception3 with 1008 classes and no aux logits, the mixed blocks swapped for
    pytorch-fid's FID variants (TensorFlow's average pooling)."""
    net = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
    return net


def fid_inception_from_file(path):
    """`fid_inception_structure()` with the FID weights read from a local file (strictly)
    instead of downloaded."""
    return load_into(
        fid_inception_structure(),
        read_state_dict(path, "FID Inception"),
        path,
        "an FID Inception state_dict (pytorch-fid's FIDInceptionA/C/E key names)",
        "FID Inception",
    )


def build_inception(weights_path, dims: int = DEFAULT_DIMS) -> InceptionV3:
    """pytorch-fid's `InceptionV3([block for dims])` with the default input handling
    (resize to 299, normalize to [-1, 1]). Its constructor calls the module-level
    `fid_inception_v3()`, which downloads the weights; that one name is pointed at
    `fid_inception_from_file` while the network is built, and everything else is
    pytorch-fid's code."""
    if dims not in InceptionV3.BLOCK_INDEX_BY_DIM:
        raise ValueError(f"FID dims must be one of {sorted(InceptionV3.BLOCK_INDEX_BY_DIM)}, got {dims}")
    with (
        _build_lock,
        mock.patch.object(fid_inception, "fid_inception_v3", lambda: fid_inception_from_file(weights_path)),
    ):
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    return model.eval()


@torch.no_grad()
def activations(model: InceptionV3, images: np.ndarray, device="cpu", batch_size: int | None = None) -> np.ndarray:
    """pytorch-fid's `get_activations` on uint8 RGB images (N, H, W, 3) in memory:
    float32 (N, dims) (the network's own precision; pytorch-fid widens to float64)."""
    out, batch_size = [], batch_size or metric_batch_size(device)
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        batch = batch.permute(0, 3, 1, 2).contiguous().to(torch.float32).div(255)  # = torchvision ToTensor
        pred = model(batch)[0]
        if pred.size(2) != 1 or pred.size(3) != 1:  # blocks 0-2 are not pooled
            pred = F.adaptive_avg_pool2d(pred, output_size=(1, 1))
        out.append(pred.squeeze(3).squeeze(2).cpu().numpy())
    return np.concatenate(out)


def statistics(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`calculate_activation_statistics`: float64 mean and covariance (ddof 1)."""
    acts = np.asarray(acts, dtype=np.float64)
    return np.mean(acts, axis=0), np.cov(acts, rowvar=False)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two activation sets, in pytorch-fid's argument order (real first,
    as `calculate_fid_given_paths([inputs, previews])` in the paper's script).

    With more samples than dimensions this is pytorch-fid's `calculate_frechet_distance`.
    With fewer (every per-video FID: 81 frames against 2048 dimensions) both covariances
    are singular, scipy's sqrtm of their product is slow (about 14 s on a CPU core) and
    ill-conditioned, and the same value comes exactly from the centred activations:
    see lipbench.metrics.frechet (agrees with pytorch-fid to about 1e-6 relative).
    """
    for side, acts in (("real", real), ("generated", fake)):
        if len(acts) < 2:
            raise ValueError(f"FID needs at least 2 face crops per side; the {side} side has {len(acts)}")
    if min(len(real), len(fake)) <= np.shape(real)[1]:
        return frechet_distance_low_rank(real, fake)
    mu1, sigma1 = statistics(real)
    mu2, sigma2 = statistics(fake)
    printed = text_io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
        # scipy 1.16-1.17 deprecate sqrtm's `disp`, which pytorch-fid 0.3.0 passes; and
        # pytorch-fid prints its eps retry: keep both off the progress bars.
        warnings.filterwarnings("ignore", message=".*`disp` argument is deprecated.*")
        value = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    if printed.getvalue().strip():
        log.info("pytorch-fid: %s", printed.getvalue().strip())
    return float(value)


class FID(SetMetric):
    name = "fid"
    protocols = ("per_video", "pooled", "per_video_precropped", "pooled_precropped")
    reference_comparison = "appearance"  # feature statistics of the frames, in any order
    precropped_variants = {"per_video": "per_video_precropped", "pooled": "pooled_precropped"}
    values = (
        Value(
            "fid",
            False,
            "",
            "FID (pytorch-fid, Inception pool3) on 224x224 face crops: MediaPipe's, or for "
            "*_precropped the frames themselves",
        ),
    )

    def __init__(
        self, protocol=None, device="cpu", weights_dir=None, dims: int = DEFAULT_DIMS, batch_size: int | None = None
    ):
        super().__init__(protocol, device, weights_dir)
        if dims not in InceptionV3.BLOCK_INDEX_BY_DIM:
            raise ValueError(f"FID dims must be one of {sorted(InceptionV3.BLOCK_INDEX_BY_DIM)}, got {dims}")
        self.dims, self.batch_size = dims, batch_size or metric_batch_size(device)
        self.key = metric_key("fid", self.protocol)
        self.per_video = self.protocol.startswith("per_video")

    def weight_files(self) -> tuple[str, ...]:
        return (FID_WEIGHTS,)

    def settings(self) -> dict:
        return {**super().settings(), "dims": self.dims}

    @cached_property
    def weights_path(self):
        return find_weight(FID_WEIGHTS, self.weights_dir, needed_by=self.key)

    @cached_property
    def model(self) -> InceptionV3:
        return for_inference(build_inception(self.weights_path, self.dims), self.device)

    def load(self) -> None:
        self.model

    def _video_activations(self, video, n: int) -> np.ndarray:
        """Activations of the face crops among a video's first n frames (misses dropped)."""

        def run():
            faces = video_face_crops(video, self.precropped)
            crops = faces.crops[:n][faces.found[:n]]
            if len(crops) == 0:
                return np.zeros((0, self.dims), np.float32)
            return activations(self.model, crops, self.device, self.batch_size)

        # keyed by weights too: per_video and pooled FID with the same weights share it
        return video.shared(f"fid_inception{self.dims}:{self.weights_path}:first{n}:{self.precropped}", run)

    def clip_activations(self, ctx: ClipContext) -> tuple[np.ndarray, np.ndarray]:
        """(real, generated) activations of one clip; face-miss counts go to ctx.notes."""
        reference = ctx.require_reference(self.name)
        real = self._video_activations(reference, ctx.n)
        fake = self._video_activations(ctx.generated, ctx.n)
        if not self.precropped:
            ctx.notes["fid_face_crops"] = {
                "reference": video_face_crops(reference).counts(ctx.n),
                "generated": video_face_crops(ctx.generated).counts(ctx.n),
            }
        for side, acts in (("reference", real), ("generated", fake)):
            if len(acts) == 0:
                raise ValueError(
                    f"{ctx.clip_id}: no face found in any of the first {ctx.n} frames of the "
                    f"{side} video (the paper's FID script skips such a clip)"
                )
        return real, fake

    def _per_video(self, ctx: ClipContext) -> float:
        def run():
            real, fake = self.clip_activations(ctx)
            try:
                return frechet_distance(real, fake)
            except ValueError as exc:
                raise ValueError(f"{ctx.clip_id}: {exc}") from exc

        key = f"fid_per_video{self.dims}:{self.weights_path}:first{ctx.n}:ref{id(ctx.reference)}:{self.precropped}"
        return ctx.generated.shared(key, run)

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        if self.per_video:
            return {self.key: self._per_video(ctx)}
        return {}

    def features(self, ctx: ClipContext) -> dict[str, np.ndarray]:
        if self.per_video:
            # the clip's own FID: the set value is their mean (and its bootstrap CI)
            return {"fid": np.array([self._per_video(ctx)])}
        real, fake = self.clip_activations(ctx)
        return {"real": real, "fake": fake}

    def combine(self, features: list[dict[str, np.ndarray]]) -> dict[str, float]:
        if not features:
            raise ValueError(f"{self.key}: no clips to combine")
        if self.per_video:
            return {self.key: float(np.mean([f["fid"][0] for f in features]))}
        real = np.concatenate([f["real"] for f in features])
        fake = np.concatenate([f["fake"] for f in features])
        return {self.key: frechet_distance(real, fake)}
