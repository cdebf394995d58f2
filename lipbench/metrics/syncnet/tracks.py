"""Face tracks and the SyncNet 224x224 face crops, as joonson/syncnet_python
run_pipeline.py makes them (LatentSync eval/syncnet_detect.py is the same code with
min_track 50), on decoded frames in memory.

Steps, with upstream's constants:
- shots: PySceneDetect ContentDetector cuts (see `scene_shots`); a shot shorter than
  min_track frames is skipped;
- tracks per shot: greedy IoU > 0.5 linking with at most 25 frames between
  detections; a track needs more than min_track detections and a mean box width or
  height above 100 px; boxes are linearly interpolated over missed frames;
- crops: box half-size s = max(w, h) / 2 and centre, each median-filtered (kernel 13,
  scipy's zero-padded medfilt, as upstream); the frame is padded with value 110; the
  crop spans rows [cy - s, cy + 1.8 s) and columns [cx - 1.4 s, cx + 1.4 s) (a square
  of side 2.8 s centred at (cx, cy + 0.4 s)), resized to 224 (cv2 INTER_LINEAR).

What differs from upstream, on purpose: upstream re-encodes the video (`-r 25`,
MPEG-4/H.264 plus MP3/AAC audio), extracts JPEG frames, writes each crop as an
XVID/mp4v video and reads it back through JPEG again; lipbench works on the decoded
frames and the decoded 16-bit audio, so its crops are the frames upstream writes
into the crop video, before any lossy encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import interp1d
from scipy.signal import medfilt

IOU_THRESHOLD = 0.5
NUM_FAILED_DET = 25
MIN_FACE_SIZE = 100  # pixels, mean box width or height over the track
CROP_SCALE = 0.4
MEDIAN_KERNEL = 13
PAD_VALUE = 110
CROP_SIZE = 224


@dataclass(frozen=True)
class SceneDetector:
    """PySceneDetect ContentDetector as each pipeline's pinned release runs it."""

    threshold: float
    min_scene_len: int
    downscale: str  # "subsample" (0.5.1: frame[::f, ::f]) or "resize" (0.6.1: cv2 INTER_LINEAR)
    first_cut_free: bool  # 0.5.1 allows a cut before min_scene_len frames have passed
    # 0.6.1 ends the last shot at the last frame's index (not after it) when there are
    # cuts, so that frame belongs to no shot; with no cut both give the whole video.
    last_shot_drops_last_frame: bool


# syncnet_python pins scenedetect==0.5.1; LatentSync pins 0.6.1 (the paper's authors'
# eval_metrics does not pin it; it is LatentSync's code).
SCENES_0_5_1 = SceneDetector(
    threshold=30.0, min_scene_len=15, downscale="subsample", first_cut_free=True, last_shot_drops_last_frame=False
)
SCENES_0_6_1 = SceneDetector(
    threshold=27.0, min_scene_len=15, downscale="resize", first_cut_free=False, last_shot_drops_last_frame=True
)

# scenedetect 0.5.1 video_manager.DEFAULT_DOWNSCALE_FACTORS: frame width -> factor.
_SUBSAMPLE_FACTORS = ((3200, 12), (2100, 8), (1700, 6), (1200, 5), (900, 4), (600, 3), (400, 2))


def _downscaled(frame: np.ndarray, detector: SceneDetector) -> np.ndarray:
    width = frame.shape[1]
    if detector.downscale == "subsample":
        factor = next((f for w, f in _SUBSAMPLE_FACTORS if width >= w), 1)
        return frame[::factor, ::factor] if factor > 1 else frame
    factor = 1 if width < 256 else width // 256  # 0.6.1 compute_downscale_factor
    if factor == 1:
        return frame
    size = (round(frame.shape[1] / factor), round(frame.shape[0] / factor))
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def content_scores(frames: np.ndarray, detector: SceneDetector = SCENES_0_6_1) -> np.ndarray:
    """Per frame, the mean absolute HSV change from the previous frame (0 for the
    first), averaged over H, S and V: ContentDetector's `content_val`."""
    scores = np.zeros(len(frames))
    previous = None
    for i, frame in enumerate(frames):
        # RGB2HSV on RGB gives what upstream's BGR2HSV gives on the same frame as BGR.
        hsv = cv2.cvtColor(np.ascontiguousarray(_downscaled(frame, detector)), cv2.COLOR_RGB2HSV).astype(np.int32)
        if previous is not None:
            per_channel = np.abs(hsv - previous).reshape(-1, 3).sum(0) / float(hsv.shape[0] * hsv.shape[1])
            scores[i] = sum(per_channel) / 3.0
        previous = hsv
    return scores


def scene_shots(frames: np.ndarray, detector: SceneDetector = SCENES_0_6_1) -> list[tuple[int, int]]:
    """[(start, end)) frame ranges of the shots; one shot when there is no cut (what
    both pipelines fall back to). Written here rather than importing scenedetect: it
    is a few lines, and the pinned releases differ in threshold and downscaling."""
    cuts, last_cut = [], None if detector.first_cut_free else 0
    for i, score in enumerate(content_scores(frames, detector)):
        if i == 0 or score < detector.threshold:
            continue
        if last_cut is None or i - last_cut >= detector.min_scene_len:
            cuts.append(i)
            last_cut = i
    end = len(frames) - 1 if cuts and detector.last_shot_drops_last_frame else len(frames)
    bounds = [0, *cuts, end]
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass
class Track:
    frames: np.ndarray  # (N,) consecutive frame indices
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2, interpolated over missed frames


def box_iou(a, b) -> float:
    """IoU without the +1 pixel convention, as run_pipeline.py's bb_intersection_over_union."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0  # upstream divides by zero here; no track links on it


def _link(shot: list[list[tuple[int, np.ndarray]]], num_failed_det: int) -> list[tuple[int, np.ndarray]]:
    """One greedy track through the shot, removing its detections from `shot`.

    Reproduces upstream's loop exactly, including a quirk: it removes a detection
    from the frame's list while iterating over that list, so the detection after
    each taken one is not looked at in that pass (it stays for the next track)."""
    track = []
    for faces in shot:
        position = 0  # the list iterator's index, as Python's `for` keeps it
        while position < len(faces):
            frame, box = faces[position]
            position += 1
            if not track:
                track.append(faces.pop(position - 1))
            elif frame - track[-1][0] <= num_failed_det:
                if box_iou(box, track[-1][1]) > IOU_THRESHOLD:
                    track.append(faces.pop(position - 1))
            else:
                break  # this frame is too far from the track's end (and so is every later one)
    return track


def track_shot(
    detections,
    first_frame: int,
    min_track: int,
    num_failed_det: int = NUM_FAILED_DET,
    min_face_size: float = MIN_FACE_SIZE,
) -> list[Track]:
    """Tracks in one shot. `detections[i]` holds the boxes ((N, 4+) arrays, best
    first, as the detector returns them) of frame first_frame + i."""
    shot = [
        [(first_frame + i, np.asarray(box[:4], dtype=np.float64)) for box in boxes]
        for i, boxes in enumerate(detections)
    ]
    tracks = []
    while True:
        found = _link(shot, num_failed_det)
        if not found:
            return tracks
        if len(found) <= min_track:
            continue
        numbers = np.array([frame for frame, _ in found])
        boxes = np.stack([box for _, box in found])
        frames = np.arange(numbers[0], numbers[-1] + 1)
        filled = np.stack([interp1d(numbers, boxes[:, k])(frames) for k in range(4)], axis=1)
        size = max(np.mean(filled[:, 2] - filled[:, 0]), np.mean(filled[:, 3] - filled[:, 1]))
        if size > min_face_size:
            tracks.append(Track(frames, filled))


def face_tracks(
    detections, shots, min_track: int, num_failed_det: int = NUM_FAILED_DET, min_face_size: float = MIN_FACE_SIZE
) -> list[Track]:
    """Tracks over the whole video, shot by shot (shots shorter than min_track skipped)."""
    tracks = []
    for start, end in shots:
        if end - start >= min_track:
            tracks += track_shot(detections[start:end], start, min_track, num_failed_det, min_face_size)
    return tracks


def smoothed_track(track: Track) -> dict[str, np.ndarray]:
    """Median-filtered box half-size `s` and centre `x`, `y` per frame (upstream's
    `proc_track`)."""
    b = track.boxes
    raw = {
        "s": np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2,
        "x": (b[:, 0] + b[:, 2]) / 2,
        "y": (b[:, 1] + b[:, 3]) / 2,
    }
    return {k: medfilt(v, kernel_size=MEDIAN_KERNEL) for k, v in raw.items()}


def crop_face(
    frame: np.ndarray, s: float, x: float, y: float, crop_scale: float = CROP_SCALE, size: int = CROP_SIZE
) -> np.ndarray:
    """One SyncNet face crop, with upstream's integer truncations and padding."""
    pad = int(s * (1 + 2 * crop_scale))
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    my, mx = y + pad, x + pad
    face = padded[
        int(my - s) : int(my + s * (1 + 2 * crop_scale)),
        int(mx - s * (1 + crop_scale)) : int(mx + s * (1 + crop_scale)),
    ]
    if face.size == 0:
        raise ValueError(
            f"face crop is empty (box half-size {s:.1f} at ({x:.1f}, {y:.1f}) in a "
            f"{frame.shape[1]}x{frame.shape[0]} frame)"
        )
    return cv2.resize(face, (size, size))


def crop_track(frames: np.ndarray, track: Track) -> np.ndarray:
    """(N, 224, 224, 3) uint8 crops of the track's frames (same channel order as frames)."""
    smooth = smoothed_track(track)
    return np.stack(
        [crop_face(frames[f], smooth["s"][i], smooth["x"][i], smooth["y"][i]) for i, f in enumerate(track.frames)]
    )
