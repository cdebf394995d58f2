"""`SyncNetMetric`, the three SyncNet protocols (see the package docstring) as a
lipbench metric: 16 kHz audio as int16 values, video resampled to 25 fps, S3FD face
tracks and their 224x224 crops (or the frames themselves, precropped), scored by
`scores.sync_scores`."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import cv2
import numpy as np

from lipbench.defaults import metric_batch_size
from lipbench.io import int16_values
from lipbench.metric_keys import metric_key
from lipbench.metrics.base import ClipContext, Metric, Value, Video
from lipbench.metrics.syncnet import s3fd, tracks
from lipbench.metrics.syncnet.network import SYNCNET_WEIGHTS, SyncNet, load_syncnet
from lipbench.metrics.syncnet.scores import AUDIO_RATE, FPS, SAMPLES_PER_FRAME, SyncResult, sync_scores
from lipbench.weights import find_weight

S3FD_WEIGHTS = "sfd_face.pth"
MIN_TRACK = {"syncnet_python": 100, "latentsync": 50}
SCENES = {"syncnet_python": tracks.SCENES_0_5_1, "latentsync": tracks.SCENES_0_6_1}


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
        self,
        protocol=None,
        device="cpu",
        weights_dir=None,
        batch_size: int | None = None,
        detector_batch_size: int | None = None,
    ):
        super().__init__(protocol, device, weights_dir)
        self.batch_size = batch_size or metric_batch_size(device)
        self.detector_batch_size = detector_batch_size or metric_batch_size(device)
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
            path = find_weight(SYNCNET_WEIGHTS, self.weights_dir, needed_by=metric_key(self.name, self.protocol))
            self._net = load_syncnet(path, self.device)
        return self._net

    @property
    def detector(self) -> s3fd.S3FD:
        if self._detector is None:
            path = find_weight(S3FD_WEIGHTS, self.weights_dir, needed_by=metric_key(self.name, self.protocol))
            self._detector = s3fd.S3FD(path, self.device, self.detector_batch_size)
        return self._detector

    def _key(self, value: str) -> str:
        return metric_key(value, self.protocol)

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        results = self.track_results(ctx.generated, ctx)
        if self.protocol == "precropped":
            ((_, result),) = results
            return self._values(result.av_offset, result.min_dist, result.conf)
        if abs(ctx.generated.fps - FPS) >= 1e-3:
            ctx.notes["syncnet_resampled_from_fps"] = ctx.generated.fps
        ctx.notes[self._key("syncnet_tracks")] = [[first, last] for (first, last), _ in results]
        scores = [r for _, r in results]
        if self.protocol == "latentsync":
            return self._values(
                int(statistics.fmean(r.av_offset for r in scores)),
                statistics.fmean(r.min_dist for r in scores),
                statistics.fmean(r.conf for r in scores),
            )
        best = max(scores, key=lambda r: r.conf)  # first of equals: upstream's track order
        return self._values(
            best.av_offset, statistics.fmean(r.min_dist for r in scores), statistics.fmean(r.conf for r in scores)
        )

    def track_results(self, video: Video, ctx: ClipContext) -> list[tuple[tuple[int, int], SyncResult]]:
        """((first, last) frame at 25 fps, SyncResult) per face track, the whole video as
        one track under `precropped`; computed once per video and protocol (drift@sync
        reads the same distances)."""
        weights = find_weight(SYNCNET_WEIGHTS, self.weights_dir, needed_by=metric_key(self.name, self.protocol))
        key = f"syncnet_results:{self.protocol}:{weights}"
        return video.shared(key, lambda: self._track_results(video, ctx))

    def _track_results(self, video: Video, ctx: ClipContext) -> list[tuple[tuple[int, int], SyncResult]]:
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
            frames = to_bgr(precrop(video.frames))
            scored = sync_scores(
                self.net, frames, audio, batch_size=self.batch_size, device=self.device, what=ctx.clip_id
            )
            return [((0, len(frames) - 1), scored)]
        found = self.face_crops(video)
        if not found:
            raise ValueError(
                f"{ctx.clip_id}: no face track for SyncNet ({self.protocol} protocol: S3FD faces "
                f"of mean size > {tracks.MIN_FACE_SIZE}px in more than "
                f"{MIN_TRACK[self.protocol]} frames of one shot); the clip has {len(video.frames)} frames"
            )
        results = []
        for item in found:  # each track with its own stretch of audio, as upstream crops it
            first, last = int(item.track.frames[0]), int(item.track.frames[-1])
            part = audio[first * SAMPLES_PER_FRAME : (last + 1) * SAMPLES_PER_FRAME]
            what = f"{ctx.clip_id} face track {first}-{last}"
            scored = sync_scores(
                self.net, to_bgr(item.crops), part, batch_size=self.batch_size, device=self.device, what=what
            )
            results.append(((first, last), scored))
        return results

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
