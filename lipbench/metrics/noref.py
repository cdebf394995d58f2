"""No-reference quality: what can be said of a generated video without its ground truth.

Peers score videos alone (harlanhong/video-evaluation-toolkit
core/video_metrics_calculator.py at 7eb909f8f58545049fda9b138928caf8a9b604be; VBench,
PyPI `vbench` 0.1.5). This family reads only the generated video (as given, or as
resampled to the reference's rate: lipbench.metrics.base.ClipContext) and reuses the
per-video analyses other metrics share (`Video.shared`): the MediaPipe face detection of
the face crops (lipbench.faces.face_crop, as ssim@face224, fid and fvd use it) and the
MediaPipe face mesh (lipbench.faces.mesh, as lmd and avsync use it). No frame is
detected twice, whichever of these metrics runs first (a generated video resized to its
reference's size is a separate input: the metrics comparing it detect on the resized frames).

Protocol `mediapipe`, per clip of T frames:

- `face_rate`: the share of the T frames where MediaPipe face detection (short-range
  model, confidence 0.5) finds a face: the toolkit's `face_detection_rate` (same model
  and threshold; lipbench's fallback detector at 0.2, used by the face crops, does not
  count here, as the toolkit has none).
- `box_jitter`: for each pair of consecutive frames t, t+1 that both have a face
  (confidence 0.5), the distance between the centres of their detection boxes divided
  by the box size, size = sqrt(width x height) averaged over the two boxes; mean over
  those pairs. Unit: box sizes per frame (`1/frame`). Why: the toolkit's `face_stability`
  (1 / (1 + mean centre distance in pixels)) changes with the resolution and the face's
  size; dividing by the box size does not. Why only consecutive frames: the toolkit
  pairs consecutive *detections*, so a gap of missed frames counts a move over several
  frames as one step; here such pairs are left out. It counts all movement of the box,
  the head's own motion included: compare it with the ground truth's value (score the
  real videos with `--fake`). A still video reads exactly 0 (identical frames get
  identical boxes). Boxes are whole pixels (face_crop.pixel_box truncates, as the
  paper's cropper does) and the detector is not exactly shift-equivariant, so its
  noise adds to the distance: a synthetic face moved k = 1..6 px per frame read
  k + 0.15 to k + 0.69 px per frame (tests/test_noref.py).
- `mouth_sharpness`: per frame with a face mesh, the mouth box (the box lpips@mouth
  cuts: a square of 1.5 x the clip's median lip extent, centred on the frame's 40 mesh
  lip points, kept inside the frame: lpips_metric.mouth_boxes) cut from the frame at
  its own resolution, converted to grayscale (cv2 RGB2GRAY) and scored with the
  toolkit's `sharpness_score` formula, cv2.Laplacian(gray, cv2.CV_64F).var(); mean
  over those frames. The toolkit scores whole frames; here the crop is the image (the
  Laplacian's border is OpenCV's default reflection inside the crop). It depends on
  the mouth's size in pixels: compare videos of similar resolution.
- `flicker`: VBench's temporal_flickering (vbench/temporal_flickering.py: `cal_score`,
  (255 - mean over consecutive frame pairs of the mean absolute difference) / 255,
  over all pixels and channels of uint8 frames) with the mouth masked out: for each
  pair t, t+1 that both have a face mesh, the union of the two frames' mouth boxes is
  set to 0 in both frames before the difference. 1 means nothing outside the mouth
  changed. Masked pixels stay in VBench's mean (as zero difference), so the score is
  VBench's on the masked frames; pairs without a mesh in either frame are left out.
  VBench averages `cal_score` over videos; its score of one video equals the mean over
  pairs here, since each pair adds one difference to the same mean. VBench asks for
  static videos; a talking head's own motion lowers the score as flicker does.

A clip with no face at all has `face_rate` 0 (a model that loses the face counts as such
in the mean); the values that need a face, or two consecutive frames with one, fail alone
on such a clip (`Unavailable`: recorded as that value's failure with its reason). Frames
must be uint8 RGB (T, H, W, 3) with T >= 2: other frames fail the whole family.
"""

from __future__ import annotations

import cv2
import numpy as np

from lipbench.faces import face_crop
from lipbench.metric_keys import metric_key
from lipbench.metrics.base import ClipContext, Metric, Unavailable, Value
from lipbench.metrics.lpips_metric import mouth_boxes


def face_rate(found: np.ndarray) -> float:
    """Share of frames with a face."""
    return float(np.mean(found))


def box_jitter(boxes: np.ndarray, found: np.ndarray) -> float:
    """Mean over consecutive frame pairs that both have a face of the box centre's move
    over the pair's mean box size (sqrt(w h)); boxes (T, 4) as x0, y0, x1, y1."""
    boxes = boxes.astype(np.float64)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    pair = found[:-1] & found[1:]
    if not pair.any():
        raise ValueError(f"no two consecutive frames of {len(found)} have a face ({int(found.sum())} with one)")
    t = np.flatnonzero(pair)  # only these: a frame without a face has no box (-1s)
    moved = np.linalg.norm(centre[t + 1] - centre[t], axis=1)
    return float((moved / ((size[t + 1] + size[t]) / 2)).mean())


def laplacian_variance(image: np.ndarray) -> float:
    """The toolkit's sharpness of one RGB image: variance of the 64-bit Laplacian of its grayscale."""
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def mouth_sharpness(frames: np.ndarray, boxes: np.ndarray) -> float:
    """Mean over frames with a mouth box (x0, y0, side; -1 rows: none) of the crop's
    Laplacian variance."""
    values = [laplacian_variance(f[y : y + s, x : x + s]) for f, (x, y, s) in zip(frames, boxes) if s > 0]
    if not values:
        raise ValueError(f"the face mesh found no face in any of the {len(frames)} frames")
    return float(np.mean(values))


def masked_flicker(frames: np.ndarray, boxes: np.ndarray) -> float:
    """VBench's temporal-flickering score over the consecutive pairs whose frames both
    have a mouth box (x0, y0, side; -1 rows: no face; side 0 masks nothing), the union
    of the two boxes set to 0 in both frames."""
    differences = []
    for t in range(len(frames) - 1):
        if boxes[t, 2] < 0 or boxes[t + 1, 2] < 0:
            continue
        diff = np.abs(frames[t].astype(np.int16) - frames[t + 1].astype(np.int16))
        for x, y, side in boxes[t : t + 2]:
            diff[y : y + side, x : x + side] = 0  # zero in both frames: no difference there
        differences.append(diff.sum(dtype=np.int64) / diff.size)  # exact: integer sum
    if not differences:
        raise ValueError(f"no two consecutive frames of {len(frames)} have a face mesh")
    return (255.0 - float(np.mean(differences))) / 255.0


class NoReference(Metric):
    name = "noref"
    protocols = ("mediapipe",)
    needs_reference = False  # the generated video alone
    values = (
        Value("face_rate", True, "", "share of frames with a MediaPipe face detection (confidence 0.5)"),
        Value("box_jitter", False, "1/frame", "face box centre's move per frame over the box size, mean"),
        Value("mouth_sharpness", True, "", "variance of the Laplacian of the grayscale mouth box, mean over frames"),
        Value("flicker", True, "", "VBench temporal_flickering score with the mouth masked out (1: no change)"),
    )

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        video = ctx.generated
        frames = video.frames
        where = video.source or ctx.clip_id
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"{where}: noref needs uint8 RGB frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
        if len(frames) < 2:
            raise ValueError(f"{where}: {len(frames)} frame(s); box_jitter and flicker compare consecutive frames")
        detected = face_crop.video_face_crops(video)  # shared with the face-crop metrics
        found = ~detected.missed_at_min_confidence
        mouths = mouth_boxes(video.landmarks, *frames.shape[1:3])  # the mesh, shared with lmd and avsync
        values = {"face_rate": face_rate(found)}
        for name, value in (
            ("box_jitter", lambda: box_jitter(detected.boxes, found)),
            ("mouth_sharpness", lambda: mouth_sharpness(frames, mouths)),
            ("flicker", lambda: masked_flicker(frames, mouths)),
        ):
            try:
                values[name] = value()
            except ValueError as exc:  # this value has none on this clip; face_rate still stands
                values[name] = Unavailable(f"{ctx.clip_id}: {exc} ({metric_key(name, self.protocol)})")
        return {metric_key(name, self.protocol): value for name, value in values.items()}
