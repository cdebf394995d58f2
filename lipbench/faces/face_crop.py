"""The paper's MediaPipe face crops: one tight box per frame, resized to 224x224.

This is the crop the Lip Forcing authors' evaluation (repo jinhyukj/eval_metrics)
feeds to FID (eval/eval_fid_videos.py), SSIM (eval/eval_ssim_lmd.py) and, through
LatentSync's script, to FVD (eval/eval_fvd.py). Per frame, as their `FaceCropper`:

1. MediaPipe face detection, short-range model (model_selection 0), minimum
   confidence 0.5; when it finds nothing, a second detector at confidence 0.2.
   (LatentSync's FVD script has only the 0.5 detector: `fallback` marks the frames
   where it would have failed.)
2. The first detection's relative box, scaled to pixels with int() (truncation),
   its top-left corner clipped to 0 first and the far corner computed from the
   *clipped* corner plus the box size, then clipped to the frame. (So a box that
   sticks out on the left or top is shifted into the frame, not cut: as upstream.)
3. The crop, cv2.resize to 224x224 with INTER_AREA.

Upstream reads frames with cv2 (BGR) and converts them to RGB for MediaPipe; the crop
is cut from the BGR frame and written back to PNG, so what the networks finally see is
the RGB crop. lipbench frames are RGB already: detection runs on them directly and
crops stay RGB (INTER_AREA works per channel, so the order does not change a value).

A frame without a face is never dropped here: it is flagged in `missed` (its crop is
zeros). Each metric then does what its upstream script does with it (FID drops the
frame, LatentSync's FVD fails on it).

Inputs that are already face crops (`--crop none`, the metrics' `*_precropped`
protocols) skip all of this: `frames_as_crops` resizes each frame to 224x224 with the
same INTER_AREA and marks no frame missed.

Detection is per image: MediaPipe's face-detection graph keeps no state between frames
(the result of a frame does not depend on the frames before it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lipbench.faces.mesh import _native_stderr_silenced, built_quietly

CACHE_KEY = "mediapipe_face224"  # Video.shared key: FID, FVD and SSIM share one detection pass
CROP_SIZE = 224
MIN_CONFIDENCE = 0.5
FALLBACK_CONFIDENCE = 0.2


@dataclass(frozen=True)
class FaceCrops:
    """Face crops of every frame of one video."""

    crops: np.ndarray  # (T, 224, 224, 3) uint8, channel order of the frames (RGB); zeros where missed
    missed: np.ndarray  # (T,) bool: no face at either confidence (or an empty box)
    fallback: np.ndarray  # (T,) bool: found only by the fallback detector (confidence 0.2)
    boxes: np.ndarray  # (T, 4) int64 pixel box (x0, y0, x1, y1), end exclusive; -1 where missed

    @property
    def found(self) -> np.ndarray:
        return ~self.missed

    @property
    def missed_at_min_confidence(self) -> np.ndarray:
        """Frames with no face for a detector without fallback (LatentSync's FVD)."""
        return self.missed | self.fallback

    def counts(self, n: int | None = None) -> dict[str, int]:
        """Missed and fallback frames among the first n (as the upstream logs count them)."""
        return {
            "frames": len(self.missed[:n]),
            "missed": int(self.missed[:n].sum()),
            "fallback": int(self.fallback[:n].sum()),
        }


def pixel_box(relative_box, width: int, height: int) -> tuple[int, int, int, int]:
    """MediaPipe's relative bounding box -> (x0, y0, x1, y1) in pixels, as FaceCropper."""
    x0 = int(relative_box.xmin * width)
    y0 = int(relative_box.ymin * height)
    box_w = int(relative_box.width * width)
    box_h = int(relative_box.height * height)
    x0, y0 = max(0, x0), max(0, y0)
    return x0, y0, min(width, x0 + box_w), min(height, y0 + box_h)


class FaceCropper:
    """The two MediaPipe detectors, kept open for many frames; close() when done."""

    def __init__(
        self,
        size: int = CROP_SIZE,
        min_confidence: float = MIN_CONFIDENCE,
        fallback_confidence: float | None = FALLBACK_CONFIDENCE,
    ):
        import mediapipe as mp

        self.size = size
        self._primary = built_quietly(
            lambda: mp.solutions.face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=min_confidence
            )
        )
        # upstream builds the fallback only when its threshold is lower
        self._fallback = None
        if fallback_confidence is not None and fallback_confidence < min_confidence:
            self._fallback = built_quietly(
                lambda: mp.solutions.face_detection.FaceDetection(
                    model_selection=0, min_detection_confidence=fallback_confidence
                )
            )

    def _first_box(self, detector, frame: np.ndarray):
        with _native_stderr_silenced():
            result = detector.process(frame)
        if not result.detections:
            return None
        height, width = frame.shape[:2]
        return pixel_box(result.detections[0].location_data.relative_bounding_box, width, height)

    def box(self, frame: np.ndarray) -> tuple[tuple[int, int, int, int] | None, bool]:
        """(pixel box or None, whether the fallback detector found it) for one RGB frame."""
        box = self._first_box(self._primary, frame)
        if box is not None or self._fallback is None:
            return box, False
        box = self._first_box(self._fallback, frame)
        return box, box is not None

    def __call__(self, frames: np.ndarray) -> FaceCrops:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"face crops need uint8 RGB frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
        n = len(frames)
        crops = np.zeros((n, self.size, self.size, 3), np.uint8)
        missed, fallback = np.zeros(n, bool), np.zeros(n, bool)
        boxes = np.full((n, 4), -1, np.int64)
        for i, frame in enumerate(frames):
            frame = np.ascontiguousarray(frame)
            box, used_fallback = self.box(frame)
            # An empty box (a face detected entirely outside the frame) makes upstream's
            # cv2.resize raise; here it counts as a frame without a face.
            if box is None or box[2] <= box[0] or box[3] <= box[1]:
                missed[i] = True
                continue
            x0, y0, x1, y1 = box
            crops[i] = cv2.resize(frame[y0:y1, x0:x1], (self.size, self.size), interpolation=cv2.INTER_AREA)
            boxes[i], fallback[i] = box, used_fallback
        return FaceCrops(crops, missed, fallback, boxes)

    def close(self) -> None:
        self._primary.close()
        if self._fallback is not None:
            self._fallback.close()


def detect_face_crops(
    frames: np.ndarray,
    size: int = CROP_SIZE,
    min_confidence: float = MIN_CONFIDENCE,
    fallback_confidence: float | None = FALLBACK_CONFIDENCE,
) -> FaceCrops:
    """The paper's face crops of every frame (see the module docstring)."""
    cropper = FaceCropper(size, min_confidence, fallback_confidence)
    try:
        return cropper(frames)
    finally:
        cropper.close()


def frames_as_crops(frames: np.ndarray, size: int = CROP_SIZE) -> FaceCrops:
    """Frames that are already face crops (`--crop none`, the `*_precropped` protocols):
    each frame is its own crop, resized to `size` as detected crops are (INTER_AREA; a
    frame of that size is kept as it is); no detection, no frame missed."""
    frames = np.asarray(frames)
    n, height, width = frames.shape[:3]
    if (height, width) == (size, size):
        crops = frames.copy()
    else:
        crops = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
    boxes = np.tile(np.array([0, 0, width, height], np.int64), (n, 1))
    return FaceCrops(crops, np.zeros(n, bool), np.zeros(n, bool), boxes)


def cache_key(precropped: bool = False) -> str:
    return CACHE_KEY + ("_precropped" if precropped else "")


def video_face_crops(video, precropped: bool = False) -> FaceCrops:
    """Face crops of all of a `Video`'s own frames (at its own size, as the upstream
    scripts read each file), made once per video whichever metric asks first: detected,
    or with `precropped` the frames themselves (`frames_as_crops`)."""
    make = frames_as_crops if precropped else detect_face_crops
    return video.shared(cache_key(precropped), lambda: make(video.frames))
