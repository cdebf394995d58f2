"""Drift: does a model's quality hold over a long stream?

Autoregressive students generate chunk after chunk from their own past output, so
errors can accumulate: the face and mouth slowly degrade the longer the stream runs.
No paper metric sees that (they average over 3.24 s clips). This family cuts each
clip into consecutive windows of `WINDOW_S` seconds, measures a per-frame quality in
each window and fits a straight line to it against time. Per protocol, the per-frame
qualities are those of lipbench's metrics, computed by their own code:

- `full`: PSNR and SSIM of generated against reference frames, exactly `psnr@full` and
  `ssim@full` (lipbench.metrics.image);
- `lpips`: LPIPS of generated against reference frames, exactly `lpips@full`
  (lipbench.metrics.lpips_metric, its weight file);
- `identity`: CSIM to the first frames: the ArcFace cosine (`csim@arcface112`'s network,
  input and cosine) of each generated frame with the mean embedding of the generated
  video's first window, so a face that slowly turns into someone else shows, whatever
  the reference does;
- `sync`: Sync-C per window, from `sync_c@latentsync`'s own SyncNet distances (the same
  face tracks, crops and network call, computed once per video): SyncNet scores each
  5-frame position against the audio at +-15 frame shifts; a window's Sync-C is
  upstream's confidence (median minus minimum over shifts of the mean distance) over the
  positions that start in that window, as the clip's Sync-C is over all of them. The
  shifted audio comes from the whole clip, so a window's edges see their neighbours'
  speech as in the clip's score (cutting the video first would pad them with zeros).
  Positions are on the 25 fps grid of the face tracks; a window counts when all its 25
  positions are in one track. It reads the generated video and its audio only.

Then, for every protocol:
- per window: the mean over its frames; only whole windows count (a trailing part
  window is left out);
- per clip (the values of `per_clip.jsonl`): the least-squares slope of the window
  values against the windows' centre times, in units per minute;
- per model (the table's value): the slope pooled over clips with a per-clip
  intercept (each clip's windows centred on that clip's own means: a within-clip
  fit, so clips that are simply better or worse do not tilt the line), its 95% CI by
  the set-level bootstrap over clips (each resample refits the pooled slope).

A model that does not drift has a slope whose CI holds 0; a PSNR, SSIM or CSIM slope
whose CI lies below 0 (an LPIPS slope above 0) is quality lost as the stream goes on.
The window series are kept (`features`), and the report plots their mean over clips
against time.
"""

from __future__ import annotations

import numpy as np

from lipbench.metric_keys import metric_key
from lipbench.metrics.base import ClipContext, SetMetric, Value
from lipbench.metrics.image import psnr_per_frame, ssim_per_frame

WINDOW_S = 1.0  # seconds per window: 25 frames at 25 fps, long enough to average a syllable's mouth motion
PER_MINUTE = 60.0

# protocol -> the qualities it measures per frame (each a value `<quality>_drift` of that protocol)
QUALITIES = {"full": ("psnr", "ssim"), "lpips": ("lpips",), "identity": ("csim_first",), "sync": ("sync_c",)}


def window_series(per_frame: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(centre times in s, mean of each whole window) of a per-frame series."""
    size = max(1, int(round(fps * WINDOW_S)))
    n = len(per_frame) // size
    means = np.asarray(per_frame[: n * size], dtype=np.float64).reshape(n, size).mean(axis=1)
    return (np.arange(n) + 0.5) * size / fps, means


def sync_windows(tracks) -> tuple[np.ndarray, np.ndarray]:
    """(centre times in s, Sync-C of each whole window) from SyncNet's per-position
    distances: `tracks` is [((first, last) frame at 25 fps, SyncResult)], as
    SyncNetMetric.track_results gives them; position i of a track starts at frame first + i."""
    from lipbench.metrics.syncnet.scores import FPS

    size = int(round(FPS * WINDOW_S))
    times, confs = [], []
    for (first, _), result in tracks:
        start = first + np.arange(len(result.dists))
        for window in np.unique(start // size):
            rows = result.dists[start // size == window]
            if len(rows) < size:  # a window the track does not cover whole
                continue
            mean_dists = rows.mean(axis=0)
            times.append((window + 0.5) * WINDOW_S)
            confs.append(float(np.median(mean_dists) - mean_dists.min()))
    order = np.argsort(times, kind="stable")
    return np.asarray(times)[order], np.asarray(confs)[order]


def within_slope(series: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Least-squares slope of y on t over several clips, each centred on its own means
    (one intercept per clip), in y units per second."""
    num = den = 0.0
    for t, y in series:
        dt = t - t.mean()
        num += float(dt @ (y - y.mean()))
        den += float(dt @ dt)
    if den == 0:
        raise ValueError("drift needs at least two windows in some clip")
    return num / den


class Drift(SetMetric):
    name = "drift"
    protocols = tuple(QUALITIES)
    window_s = WINDOW_S
    values = (
        Value("psnr_drift", True, "dB/min", "slope of PSNR (full frames) over 1-s windows against time", ("full",)),
        Value(
            "ssim_drift",
            True,
            "1/min",
            "slope of SSIM (grayscale full frames) over 1-s windows against time",
            ("full",),
        ),
        Value("lpips_drift", False, "1/min", "slope of LPIPS (full frames) over 1-s windows against time", ("lpips",)),
        Value(
            "csim_first_drift",
            True,
            "1/min",
            "slope of the ArcFace cosine to the first window's mean face over 1-s windows against time",
            ("identity",),
        ),
        Value(
            "sync_c_drift",
            True,
            "1/min",
            "slope of Sync-C (sync_c@latentsync's SyncNet distances) over 1-s windows against time",
            ("sync",),
        ),
    )

    def __init__(self, protocol=None, device="cpu", weights_dir=None):
        super().__init__(protocol, device, weights_dir)
        # the metric whose network (and weight file) measures this protocol's quality
        self.inner = None
        if self.protocol == "lpips":
            from lipbench.metrics.lpips_metric import LPIPS

            self.inner = LPIPS("full", device, weights_dir)
        elif self.protocol == "identity":
            from lipbench.metrics.csim import CSIM

            self.inner = CSIM("arcface112", device, weights_dir)
        elif self.protocol == "sync":
            from lipbench.metrics.syncnet.metric import SyncNetMetric

            self.inner = SyncNetMetric("latentsync", device, weights_dir)

    def weight_files(self) -> tuple[str, ...]:
        return self.inner.weight_files() if self.inner else ()

    def load(self) -> None:
        if self.inner:
            self.inner.load()

    def per_frame(self, quality: str, reference: np.ndarray, generated: np.ndarray, fps: float) -> np.ndarray:
        if quality == "psnr":
            return psnr_per_frame(reference, generated)
        if quality == "ssim":
            return ssim_per_frame(reference, generated)
        if quality == "lpips":
            from lipbench.metrics.lpips_metric import lpips_per_frame

            return lpips_per_frame(self.inner.net, reference, generated, self.device, self.inner.batch_size)
        # csim_first: each generated frame against the mean face of the first window
        from lipbench.metrics.csim import csim_per_frame

        embeddings = self.inner.embeddings(generated)
        first = embeddings[: max(1, int(round(fps * WINDOW_S)))].mean(dim=0, keepdim=True)
        return csim_per_frame(first.expand_as(embeddings), embeddings)

    def features(self, ctx: ClipContext) -> dict[str, np.ndarray]:
        # compute() and the set-level features both need the windows: measured once per video
        return ctx.generated.shared(f"drift_windows_{self.protocol}", lambda: self._windows(ctx))

    def _windows(self, ctx: ClipContext) -> dict[str, np.ndarray]:
        out = {}
        if self.protocol == "sync":
            video = ctx.generated
            seconds = len(video.frames) / video.fps
            t, out["sync_c"] = sync_windows(self.inner.track_results(video, ctx))
        else:
            reference, generated = ctx.reference_frames, ctx.generated_frames
            fps = float(ctx.reference.fps)
            seconds = len(reference) / fps
            for quality in QUALITIES[self.protocol]:
                t, out[quality] = window_series(self.per_frame(quality, reference, generated, fps), fps)
        if len(t) < 2:
            raise ValueError(
                f"{ctx.clip_id}: {seconds:.2f} s gives {len(t)} whole {WINDOW_S:g}-s window(s); "
                f"drift needs at least two ({metric_key(self.name, self.protocol)})"
            )
        out["t"] = t
        return out

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        return self.combine([self.features(ctx)])

    def combine(self, features: list[dict[str, np.ndarray]]) -> dict[str, float]:
        return {
            metric_key(f"{quality}_drift", self.protocol): PER_MINUTE
            * within_slope([(f["t"], f[quality]) for f in features])
            for quality in QUALITIES[self.protocol]
        }

    @staticmethod
    def mean_over_clips(features: list[dict[str, np.ndarray]], quality: str) -> tuple[np.ndarray, np.ndarray]:
        """(times, mean over the clips that reach each window): the curve the report plots."""
        by_time: dict[float, list[float]] = {}
        for f in features:
            for t, y in zip(f["t"], f[quality]):
                by_time.setdefault(round(float(t), 6), []).append(float(y))
        times = np.array(sorted(by_time))
        return times, np.array([np.mean(by_time[t]) for t in times])
