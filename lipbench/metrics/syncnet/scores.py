"""SyncNet's scores (upstream `SyncNetInstance.evaluate`, see the package docstring):
MFCC audio features, the 5-frame windows, Sync-C / Sync-D / AV offset (`sync_scores`)
and the distances over shifts (`shifted_distances`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import python_speech_features
import torch
import torch.nn.functional as F

from lipbench.defaults import metric_batch_size
from lipbench.metrics.syncnet.network import SyncNet

VSHIFT = 15
FPS = 25
AUDIO_RATE = 16000
SAMPLES_PER_FRAME = AUDIO_RATE // FPS  # 640
MFCC_PER_FRAME = 4  # 100 MFCC frames/s over 25 video frames/s
WINDOW = 5  # video frames per window (20 MFCC columns)


# ---------------------------------------------------------------- scores


@dataclass
class SyncResult:
    av_offset: int
    min_dist: float  # Sync-D
    conf: float  # Sync-C
    mean_dists: np.ndarray  # (2 vshift + 1,) mean distance per shift
    dists: np.ndarray  # (windows, 2 vshift + 1)


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
    batch_size: int | None = None,
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
    batch_size = batch_size or metric_batch_size(device)
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
