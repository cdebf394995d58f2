"""SyncNet Sync-C / Sync-D (LSE-C / LSE-D) and AV offset (joonson/syncnet_python).

The network (`SyncNet`) is written here with upstream `S`'s module names and shapes,
so the published `syncnet_v2.model` (a plain state_dict) loads strictly. The score
computation (`sync_scores`) is upstream `SyncNetInstance.evaluate`:

- video: 224x224 BGR frames as raw 0-255 floats, windows of 5 frames (v .. v+4);
- audio: 16 kHz mono int16 sample values (not rescaled), python_speech_features
  `mfcc` with its defaults (13 coefficients, 100 frames/s); window v = MFCC columns
  [4v, 4v + 20);
- windows v = 0 .. min(n_frames, floor(n_samples / 640)) - 6, further capped (as the
  paper's eval_metrics does) so every audio window has 20 MFCC columns; upstream
  would crash where that cap bites, so the two agree wherever upstream runs;
- audio features zero-padded by vshift = 15 on both sides; for window i and shift k,
  the L2 distance (torch pairwise_distance, eps 1e-6) between video feature i and
  audio feature i + k of the padded list; mean over windows per shift;
- Sync-D = min over shifts, Sync-C = median - min, AV offset = vshift - argmin.

The network runs batched over windows, and distances are computed for all windows
and shifts at once (upstream loops over windows; the values are the same).

Protocols:
- `latentsync`: the paper's evaluation (jinhyukj/eval_metrics eval/eval_sync.py, which
  runs LatentSync's eval/syncnet_detect.py + eval/syncnet/syncnet_eval.py): S3FD
  face tracks with min_track 50 (scenedetect 0.6.1 shots), each track cropped to 224
  and scored with its own stretch of audio; Sync-C and Sync-D are the means over
  tracks, AV offset int(mean) over tracks (truncated towards zero, as upstream).
  Upstream re-encodes each crop to MPEG-4 (mp4v) video + AAC audio and reads it
  back through JPEG frames (then resizes to 224, a no-op on 224 crops); lipbench
  scores the crops and the decoded 16-bit audio directly. eval_sync.py skips a
  video with no track (it prints the error and leaves the video out of the mean);
  lipbench raises an error naming the clip, so the run records the failure.
- `syncnet_python`: upstream run_pipeline.py + run_syncnet.py: the same detection
  and cropping with min_track 100 (so a clip needs more than 100 frames with a face)
  and scenedetect 0.5.1 shots. Upstream reports each track separately and has no
  per-video reduction; lipbench reports the mean over tracks of Sync-C and Sync-D
  (each track counts once, as when Wav2Lip's evaluation/scores_LSE averages its
  per-track lines) and the AV offset of the most confident track.
- `precropped`: Wav2Lip evaluation/scores_LSE calculate_scores_LRS.py: the frames
  are already face crops; every frame is resized to 224x224 (cv2 INTER_LINEAR), the
  whole audio is used, no detection. It assumes 25 fps, as upstream does.

Video at another frame rate is resampled to 25 fps for the two pipeline protocols
(upstream converts with `ffmpeg -r 25`; here each output frame k is the last input
frame whose time rounds to k/25 or earlier, as ffmpeg's fps filter picks them).

Known answer with the real weights (not checkable without them): upstream's demo
clip (data/example.avi, run through demo_syncnet.py) gives AV offset 3, min dist
5.353, confidence 10.021.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import cv2
import numpy as np
import python_speech_features
import torch
import torch.nn as nn
import torch.nn.functional as F

from lipbench.checkpoints import for_inference, load_into, read_state_dict
from lipbench.faces import s3fd, tracks
from lipbench.metrics.base import ClipContext, Metric, Value, Video
from lipbench.weights import find_weight

SYNCNET_WEIGHTS = "syncnet_v2.model"
S3FD_WEIGHTS = "sfd_face.pth"
VSHIFT = 15
FPS = 25
AUDIO_RATE = 16000
SAMPLES_PER_FRAME = AUDIO_RATE // FPS  # 640
MFCC_PER_FRAME = 4  # 100 MFCC frames/s over 25 video frames/s
WINDOW = 5  # video frames per window (20 MFCC columns)
MIN_TRACK = {"syncnet_python": 100, "latentsync": 50}
SCENES = {"syncnet_python": tracks.SCENES_0_5_1, "latentsync": tracks.SCENES_0_6_1}


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
    out = {}
    for key, value in net.state_dict().items():
        shape = tuple(value.shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0, dtype=torch.long)
            continue
        if key.endswith("running_mean"):
            array = rng.normal(0.0, 0.1, shape)
        elif key.endswith("running_var"):
            array = rng.uniform(0.5, 1.5, shape)
        elif key in ("netfcaud.3.bias", "netfclip.3.bias"):
            array = shared_bias
        elif len(shape) == 1:  # BatchNorm weight / bias, layer biases
            array = rng.uniform(0.5, 1.5, shape) if key in batchnorm else rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            array = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
            array /= {"netcnnlip.0.weight": 128.0, "netcnnaud.0.weight": 20.0}.get(key, 1.0)
            if key.endswith(".3.weight") and key.startswith(("netfcaud", "netfclip")):
                array *= 0.05  # last Linear: distances of about 10, like the real network's
        out[key] = torch.from_numpy(array.astype(np.float32))
    return out


# ---------------------------------------------------------------- scores


@dataclass
class SyncResult:
    av_offset: int
    min_dist: float  # Sync-D
    conf: float  # Sync-C
    mean_dists: np.ndarray  # (2 vshift + 1,) mean distance per shift
    dists: np.ndarray  # (windows, 2 vshift + 1)


def int16_values(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1) (lipbench.io) back to the int16 sample values upstream
    reads from its wav (exact for decoded 16-bit audio), as float64."""
    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767)


def mfcc(audio_int16: np.ndarray) -> np.ndarray:
    """(13, M) MFCC of 16 kHz int16-valued samples, python_speech_features defaults."""
    return python_speech_features.mfcc(np.asarray(audio_int16, dtype=np.float64), AUDIO_RATE).T


def n_windows(n_frames: int, n_samples: int, n_mfcc: int) -> int:
    min_length = min(n_frames, math.floor(n_samples / SAMPLES_PER_FRAME))
    # eval_metrics' cap: every audio window must have its 20 MFCC columns
    return min(min_length - WINDOW, (n_mfcc - WINDOW * MFCC_PER_FRAME) // MFCC_PER_FRAME + 1)


@torch.no_grad()
def sync_scores(
    net: SyncNet,
    frames_bgr: np.ndarray,
    audio_int16: np.ndarray,
    vshift: int = VSHIFT,
    batch_size: int = 32,
    device: str = "cpu",
    what: str = "clip",
) -> SyncResult:
    """Upstream evaluate() on (T, 224, 224, 3) uint8 BGR frames and int16-valued audio."""
    frames_bgr = np.asarray(frames_bgr)
    if frames_bgr.ndim != 4 or frames_bgr.shape[1:] != (224, 224, 3):
        raise ValueError(f"{what}: SyncNet needs (T, 224, 224, 3) frames, got {frames_bgr.shape}")
    coeffs = mfcc(audio_int16) if len(audio_int16) else np.zeros((13, 0))
    count = n_windows(len(frames_bgr), len(audio_int16), coeffs.shape[1])
    if count <= 0:
        raise ValueError(
            f"{what}: too short for SyncNet: {len(frames_bgr)} frames and "
            f"{len(audio_int16) / AUDIO_RATE:.2f} s of audio give no 5-frame window "
            f"(needs more than 5 frames with 0.2 s of audio)"
        )
    video = torch.from_numpy(frames_bgr).permute(3, 0, 1, 2)  # (3, T, H, W) uint8
    audio = torch.from_numpy(coeffs.astype(np.float32))[None]  # (1, 13, M)
    video_feats, audio_feats = [], []
    for start in range(0, count, batch_size):
        stop = min(count, start + batch_size)
        clip = video[:, start : stop + WINDOW - 1].to(device=device, dtype=torch.float32)
        windows = clip.unfold(1, WINDOW, 1).permute(1, 0, 4, 2, 3)  # (n, 3, 5, H, W)
        video_feats.append(net.forward_lip(windows.contiguous()).cpu())
        span = audio[:, :, start * MFCC_PER_FRAME : (stop - 1) * MFCC_PER_FRAME + WINDOW * MFCC_PER_FRAME]
        mel = span.unfold(2, WINDOW * MFCC_PER_FRAME, MFCC_PER_FRAME).permute(2, 0, 1, 3)  # (n, 1, 13, 20)
        audio_feats.append(net.forward_aud(mel.contiguous().to(device)).cpu())
    video_feat, audio_feat = torch.cat(video_feats), torch.cat(audio_feats)
    dists = shifted_distances(video_feat, audio_feat, vshift)
    mean_dists = dists.T.contiguous().mean(1)  # upstream reduces (shifts, windows) over windows
    min_dist, min_idx = torch.min(mean_dists, 0)
    conf = torch.median(mean_dists) - min_dist
    return SyncResult(
        av_offset=int(vshift - min_idx),
        min_dist=float(min_dist),
        conf=float(conf),
        mean_dists=mean_dists.numpy(),
        dists=dists.numpy(),
    )


def shifted_distances(video_feat: torch.Tensor, audio_feat: torch.Tensor, vshift: int) -> torch.Tensor:
    """(windows, 2 vshift + 1): distance of video feature i to audio feature i + k - vshift
    (zero vector outside the clip), upstream calc_pdist without its loop."""
    padded = F.pad(audio_feat, (0, 0, vshift, vshift))
    n, shifts = len(video_feat), 2 * vshift + 1
    index = torch.arange(n)[:, None] + torch.arange(shifts)[None]
    other = padded[index].reshape(n * shifts, -1)
    mine = video_feat[:, None].expand(n, shifts, video_feat.shape[1]).reshape(n * shifts, -1)
    return F.pairwise_distance(mine, other).reshape(n, shifts)


# ---------------------------------------------------------------- video handling


def resample_to_25fps(frames: np.ndarray, fps: float) -> np.ndarray:
    """Frames at 25 fps: output frame k is the last input frame i with
    round(i * 25 / fps) <= k (ffmpeg's fps filter, rounding to nearest)."""
    if abs(fps - FPS) < 1e-3:
        return frames
    slots = np.floor(np.arange(len(frames)) * FPS / fps + 0.5).astype(int)
    n_out = int(math.floor(len(frames) * FPS / fps + 0.5))
    picks = np.searchsorted(slots, np.arange(n_out), side="right") - 1
    return frames[np.clip(picks, 0, len(frames) - 1)]


def to_bgr(frames_rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frames_rgb[..., ::-1])


def precrop(frames_rgb: np.ndarray) -> np.ndarray:
    """Wav2Lip scores_LSE: every frame force-resized to 224x224 (cv2 default, bilinear)."""
    if frames_rgb.shape[1:3] == (224, 224):
        return frames_rgb
    return np.stack([cv2.resize(f, (224, 224)) for f in frames_rgb])


@dataclass
class FaceTrackCrops:
    track: tracks.Track
    crops: np.ndarray  # (N, 224, 224, 3) uint8 RGB


class SyncNetMetric(Metric):
    name = "syncnet"
    protocols = ("latentsync", "syncnet_python", "precropped")
    precropped_variants = {"latentsync": "precropped", "syncnet_python": "precropped"}
    values = (
        Value(
            "sync_c",
            True,
            "",
            "SyncNet confidence (LSE-C): median minus minimum of the mean "
            "audio-video feature distance over +-15 frame shifts",
        ),
        Value("sync_d", False, "", "SyncNet distance (LSE-D): minimum over shifts of the mean distance"),
        Value("av_offset", None, "frames", "audio-video offset at the minimum distance (vshift - argmin)"),
    )
    needs_reference = False  # the generated video and its own audio track

    def __init__(
        self, protocol=None, device="cpu", weights_dir=None, batch_size: int = 32, detector_batch_size: int = 16
    ):
        super().__init__(protocol, device, weights_dir)
        self.batch_size, self.detector_batch_size = batch_size, detector_batch_size
        self._net = self._detector = None

    def weight_files(self) -> tuple[str, ...]:
        return (SYNCNET_WEIGHTS,) if self.protocol == "precropped" else (SYNCNET_WEIGHTS, S3FD_WEIGHTS)

    def load(self) -> None:
        self.net
        if self.protocol != "precropped":
            self.detector

    @property
    def net(self) -> SyncNet:
        if self._net is None:  # loaded once per metric object, on first use
            path = find_weight(SYNCNET_WEIGHTS, self.weights_dir, needed_by=f"syncnet@{self.protocol}")
            self._net = load_syncnet(path, self.device)
        return self._net

    @property
    def detector(self) -> s3fd.S3FD:
        if self._detector is None:
            path = find_weight(S3FD_WEIGHTS, self.weights_dir, needed_by=f"syncnet@{self.protocol}")
            self._detector = s3fd.S3FD(path, self.device, self.detector_batch_size)
        return self._detector

    def _key(self, value: str) -> str:
        return f"{value}@{self.protocol}"

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        video = ctx.generated
        audio = video.require_audio()
        if video.audio_rate != AUDIO_RATE:
            raise ValueError(f"{ctx.clip_id}: SyncNet needs 16 kHz audio, the video's audio is {video.audio_rate} Hz")
        audio = int16_values(audio)
        if self.protocol == "precropped":
            if abs(video.fps - FPS) >= 1e-3:
                raise ValueError(
                    f"{ctx.clip_id}: syncnet@precropped assumes 25 fps (as Wav2Lip's scores_LSE), "
                    f"the video is {video.fps:g} fps; use syncnet@latentsync, which resamples"
                )
            result = sync_scores(
                self.net,
                to_bgr(precrop(video.frames)),
                audio,
                batch_size=self.batch_size,
                device=self.device,
                what=ctx.clip_id,
            )
            return self._values(result.av_offset, result.min_dist, result.conf)
        if abs(video.fps - FPS) >= 1e-3:
            ctx.notes["syncnet_resampled_from_fps"] = video.fps
        found = self.face_crops(video)
        if not found:
            raise ValueError(
                f"{ctx.clip_id}: no face track for SyncNet ({self.protocol} protocol: S3FD faces "
                f"of mean size > {tracks.MIN_FACE_SIZE}px in more than {MIN_TRACK[self.protocol]} "
                f"frames of one shot); the clip has {len(video.frames)} frames"
            )
        results = []
        for item in found:  # each track with its own stretch of audio, as upstream crops it
            first, last = int(item.track.frames[0]), int(item.track.frames[-1])
            part = audio[first * SAMPLES_PER_FRAME : (last + 1) * SAMPLES_PER_FRAME]
            results.append(
                sync_scores(
                    self.net,
                    to_bgr(item.crops),
                    part,
                    batch_size=self.batch_size,
                    device=self.device,
                    what=f"{ctx.clip_id} face track {first}-{last}",
                )
            )
        ctx.notes[self._key("syncnet_tracks")] = [[int(i.track.frames[0]), int(i.track.frames[-1])] for i in found]
        if self.protocol == "latentsync":
            return self._values(
                int(statistics.fmean(r.av_offset for r in results)),
                statistics.fmean(r.min_dist for r in results),
                statistics.fmean(r.conf for r in results),
            )
        best = max(results, key=lambda r: r.conf)  # first of equals: upstream's track order
        return self._values(
            best.av_offset, statistics.fmean(r.min_dist for r in results), statistics.fmean(r.conf for r in results)
        )

    def _values(self, offset, min_dist, conf) -> dict[str, float]:
        return {
            self._key("sync_c"): float(conf),
            self._key("sync_d"): float(min_dist),
            self._key("av_offset"): float(offset),
        }

    # Shared per-video analyses, so other metrics (and the other protocol) reuse them.

    def frames_25fps(self, video: Video) -> np.ndarray:
        return video.shared("frames@25fps", lambda: resample_to_25fps(video.frames, video.fps))

    def detections(self, video: Video) -> list[np.ndarray]:
        """Per frame (25 fps), S3FD boxes (N, 5) [x1, y1, x2, y2, score] at the pipelines'
        scale 0.25 and confidence 0.9."""
        key = f"s3fd@{s3fd.PIPELINE_SCALE},{s3fd.PIPELINE_CONF}:{self.detector.source}"
        return video.shared(key, lambda: self.detector.detect(self.frames_25fps(video)))

    def face_crops(self, video: Video) -> list[FaceTrackCrops]:
        def run():
            frames = self.frames_25fps(video)
            scenes = SCENES[self.protocol]
            shots = video.shared(f"scene_shots:{scenes}", lambda: tracks.scene_shots(frames, scenes))
            found = tracks.face_tracks(self.detections(video), shots, MIN_TRACK[self.protocol])
            return [FaceTrackCrops(t, tracks.crop_track(frames, t)) for t in found]

        return video.shared(f"syncnet_face_crops:{self.protocol}:{self.detector.source}", run)
