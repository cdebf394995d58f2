"""Audio-visual sync without SyncNet: does the mouth open when the speech is loud?

Mouth aperture per frame (face-mesh lip gap over face size) is correlated with the
driving audio's loudness per frame (dBFS, the window lipbench.audio uses) at every
lag in [-max_lag, max_lag]; the score is the peak Pearson correlation and the lag
where it peaks. A positive lag means the mouth moves after the sound.
"""

from __future__ import annotations

import numpy as np

from lipbench import audio as audio_features
from lipbench.faces import mesh
from lipbench.metrics.base import ClipContext, Metric, Value

MAX_LAG_FRAMES = 10
MIN_OVERLAP_FRAMES = 10  # fewer valid frame pairs than this at a lag: that lag is not scored


def lagged_correlation(video_signal: np.ndarray, audio_signal: np.ndarray, max_lag: int) -> np.ndarray:
    """Pearson r of video[t] against audio[t - lag] for lag = -max_lag..max_lag; NaN
    samples are left out, and a lag without MIN_OVERLAP_FRAMES pairs or without
    variance in either signal gets NaN."""
    n = len(video_signal)
    out = np.full(2 * max_lag + 1, np.nan)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        v = video_signal[max(lag, 0):n + min(lag, 0)]
        a = audio_signal[max(-lag, 0):n - max(lag, 0)]
        ok = np.isfinite(v) & np.isfinite(a)
        if ok.sum() < MIN_OVERLAP_FRAMES:
            continue
        v, a = v[ok] - v[ok].mean(), a[ok] - a[ok].mean()
        denom = np.sqrt((v ** 2).sum() * (a ** 2).sum())
        if denom > 1e-12:
            out[i] = (v * a).sum() / denom
    return out


def sync_score(aperture: np.ndarray, level_db: np.ndarray, max_lag: int = MAX_LAG_FRAMES) -> tuple[float, float]:
    """(peak correlation, lag in frames at the peak); (0, NaN) when the mouth never moves."""
    r = lagged_correlation(aperture, level_db, max_lag)
    if not np.isfinite(r).any():
        return 0.0, float("nan")
    best = int(np.nanargmax(r))
    return float(r[best]), float(best - max_lag)


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

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        video = ctx.generated
        aperture = mesh.mouth_aperture(ctx.generated_landmarks.astype(np.float64))
        level = audio_features.frame_energy_db(video.require_audio(), video.audio_rate, video.fps, ctx.n)
        ncc, lag = sync_score(aperture, level, self.max_lag)
        return {"av_ncc@mesh_energy": ncc, "av_lag@mesh_energy": lag}
