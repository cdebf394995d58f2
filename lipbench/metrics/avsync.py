"""Audio-visual sync without SyncNet: does the mouth open when the speech is loud?

Mouth aperture per frame (face-mesh lip gap over face size) is correlated with the
driving audio's loudness per frame (dBFS, the window lipbench.loudness uses) at every
lag in [-max_lag, max_lag]; the score is the peak Pearson correlation and the lag
where it peaks. A positive lag means the mouth moves after the sound.
"""

from __future__ import annotations

import numpy as np

from lipbench import loudness
from lipbench.faces import mesh
from lipbench.metrics.base import ClipContext, Metric, Value

MAX_LAG_FRAMES = 10
MIN_OVERLAP_FRAMES = 10  # fewer valid frame pairs than this at a lag: that lag is not scored
# Smallest face (`face_size_px`: median distance between the outer eye corners) the
# scores are given for. Measured by benchmarks/perf/avsync_face_size.py (issue 11) on 32
# synthetic clips with exact sync (16 of 100 frames, 16 of 50), downscaled until the lag
# moved: it left +-1 frame of its full-size value (0) on faces of up to 29.7 px (by up to
# 10 frames, the edge of the search) and was within it on every clip from 31.8 px up.
# 36 px keeps a ~20% margin above the largest failing face; at 36-37 px the synthetic
# mouth aperture still correlates >= 0.8 with its full-size series (real HDTF faces:
# >= 0.95) and av_ncc keeps 74-92% of its full-size value (it keeps falling as the face
# shrinks: compare av_ncc only between videos of similar face size). The real HDTF
# ground truth is no lag reference there: its full-size peak is weak (ncc 0.04-0.36).
MIN_FACE_PX = 36


def lagged_correlation(video_signal: np.ndarray, audio_signal: np.ndarray, max_lag: int) -> np.ndarray:
    """Pearson r of video[t] against audio[t - lag] for lag = -max_lag..max_lag; NaN
    samples are left out, and a lag without MIN_OVERLAP_FRAMES pairs or without
    variance in either signal gets NaN."""
    n = len(video_signal)
    out = np.full(2 * max_lag + 1, np.nan)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        v = video_signal[max(lag, 0) : n + min(lag, 0)]
        a = audio_signal[max(-lag, 0) : n - max(lag, 0)]
        ok = np.isfinite(v) & np.isfinite(a)
        if ok.sum() < MIN_OVERLAP_FRAMES:
            continue
        v, a = v[ok] - v[ok].mean(), a[ok] - a[ok].mean()
        denom = np.sqrt((v**2).sum() * (a**2).sum())
        if denom > 1e-12:
            out[i] = (v * a).sum() / denom
    return out


def sync_score(aperture: np.ndarray, level_db: np.ndarray, max_lag: int = MAX_LAG_FRAMES) -> tuple[float, float]:
    """(peak correlation, lag in frames at the peak). Raises ValueError, saying why, when
    no lag can be scored: too few frames with a face, or a signal without variance (a
    mouth that never moves, silent audio); no number stands in for "not computable"."""
    r = lagged_correlation(aperture, level_db, max_lag)
    if not np.isfinite(r).any():
        raise ValueError(
            _why_not_scored(np.asarray(aperture, dtype=np.float64), np.asarray(level_db, dtype=np.float64), max_lag)
        )
    best = int(np.nanargmax(r))
    return float(r[best]), float(best - max_lag)


def _why_not_scored(aperture: np.ndarray, level_db: np.ndarray, max_lag: int) -> str:
    ok = np.isfinite(aperture) & np.isfinite(level_db)
    k = int(ok.sum())
    if k < MIN_OVERLAP_FRAMES:
        return (
            f"only {k} of {len(aperture)} frames have a face (mouth aperture), "
            f"need MIN_OVERLAP_FRAMES = {MIN_OVERLAP_FRAMES} to correlate it with the audio"
        )
    if np.ptp(aperture[ok]) == 0:
        return f"mouth aperture has no variance over the {k} frames with a face (the mouth never moves)"
    if np.ptp(level_db[ok]) == 0:
        return f"speech loudness has no variance over the {k} frames with a face (silent or constant audio)"
    return (
        f"no lag in [-{max_lag}, {max_lag}] has {MIN_OVERLAP_FRAMES} frame pairs with variance in both "
        f"mouth aperture and speech loudness ({k} frames with a face)"
    )


def face_size_px(landmarks: np.ndarray) -> tuple[float, int]:
    """The face's size as this metric measures it, on any input: the median over frames
    with a face of `mesh.face_scale` (distance between the outer eye corners, pixels),
    and the number of those frames. Raises ValueError when no frame has a face."""
    scale = mesh.face_scale(np.asarray(landmarks, dtype=np.float64))
    found = np.isfinite(scale)
    if not found.any():
        raise ValueError(f"the face mesh found no face in any of the {len(scale)} frames")
    return float(np.median(scale[found])), int(found.sum())


class AVSync(Metric):
    name = "avsync"
    protocols = ("mesh_energy",)
    values = (
        Value("av_ncc", True, "", "peak correlation of mouth aperture (face mesh) with speech loudness"),
        Value("av_lag", None, "frames", "lag of that peak (+: mouth after sound)"),
    )
    needs_reference = False  # the generated video and its own audio track

    def __init__(self, protocol=None, device="cpu", weights_dir=None, max_lag: int = MAX_LAG_FRAMES):
        super().__init__(protocol, device, weights_dir)
        self.max_lag = max_lag

    def settings(self) -> dict:
        return {**super().settings(), "max_lag": self.max_lag}

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        video = ctx.generated
        landmarks = ctx.generated_landmarks.astype(np.float64)
        try:
            size, n_faces = face_size_px(landmarks)
        except ValueError as exc:
            raise ValueError(f"{ctx.clip_id}: {exc}") from None
        if size < MIN_FACE_PX:
            raise ValueError(
                f"{ctx.clip_id}: face is {size:.1f} px (median distance between the outer eye corners over the "
                f"{n_faces} frames with a face); av_ncc/av_lag need >= {MIN_FACE_PX} px: below that the face "
                f"mesh's lip gap is not reliable (measured: benchmarks/perf/avsync_face_size.py)"
            )
        aperture = mesh.mouth_aperture(landmarks)
        level = loudness.frame_energy_db(video.require_audio(), video.audio_rate, video.fps, ctx.n)
        try:
            ncc, lag = sync_score(aperture, level, self.max_lag)
        except ValueError as exc:
            raise ValueError(f"{ctx.clip_id}: {exc}") from None
        return {"av_ncc@mesh_energy": ncc, "av_lag@mesh_energy": lag}
