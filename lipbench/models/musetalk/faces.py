"""MuseTalk 1.5's face boxes, with a documented substitute for its DWPose landmarks.

Upstream (`musetalk/utils/preprocessing.py get_landmark_and_bbox`, v1.5 scripts) per frame:

1. DWPose (mmpose RTMPose-l whole-body, `dw-ll_ucoco_384.pth`) on the whole frame; the
   68 face points are keypoints 23..90, truncated to int32.
2. S3FD (face-alignment's, `get_detections_for_batch`, one frame per batch): only
   whether a face is there, and a fallback box. No face: the frame gets the
   placeholder (0, 0, 0, 0) and is left out of the latents (which shifts every later
   frame's latent in upstream; lipbench reuses the nearest frame's box instead).
3. From the landmarks: p = point 29 (on the nose bridge), bbox_shift moves p's y (v1.5
   sets it to 0), half = max(y) - p.y, top = max(0, p.y - half); the box is
   (min x, top, max x, max y). If it is empty or x1 < 0, the S3FD box is used instead.
4. v1.5: y2 += extra_margin (10), clipped to the frame height.

What differs here (the `mediapipe` substitute; mmpose needs mmcv, which has no wheel
for this environment, and DWPose's weights are not bundled):
- step 1 uses MediaPipe face mesh (the 478-point model inside the mediapipe wheel,
  tracking mode) and takes 68 of its points chosen to sit where the iBUG-68 points sit
  (`MESH_68`: jaw contour, brows, nose bridge and base, eyes, lips). The box rule then
  runs unchanged. MediaPipe's jaw contour follows the face outline, as DWPose's does,
  but its chin and temple points and its nose-bridge point 29 are not DWPose's, so the
  boxes differ by some pixels (not measured here: DWPose's weights and mmpose cannot
  be had in this environment);
- step 2 (`faces: "s3fd"`) runs lipbench's Wav2Lip S3FD port (the same face-alignment
  network and `s3fd.pth` file as upstream's) for presence and fallback, exactly as
  upstream; `faces: "mediapipe"` (default, no file) uses MediaPipe's own detection
  instead: a frame without mesh landmarks counts as a frame without a face;
- frames without a face reuse the nearest frame's box (upstream drops them, see 2.).
"""

from __future__ import annotations

import numpy as np

EXTRA_MARGIN = 10  # v1.5 scripts' --extra_margin
BBOX_SHIFT = 0  # v1.5 fixes bbox_shift at 0
FACE_PROTOCOLS = ("mediapipe", "s3fd")

# MediaPipe face-mesh indices standing in for the 68 iBUG points, in iBUG order:
# jaw 0-16, right brow 17-21, left brow 22-26, nose bridge 27-30, nose base 31-35,
# right eye 36-41, left eye 42-47, outer lips 48-59, inner lips 60-67.
MESH_68 = (
    162,
    234,
    93,
    58,
    172,
    136,
    149,
    148,
    152,
    377,
    378,
    365,
    397,
    288,
    323,
    454,
    389,
    71,
    63,
    105,
    66,
    107,
    336,
    296,
    334,
    293,
    301,
    168,
    197,
    5,
    4,
    75,
    97,
    2,
    326,
    305,
    33,
    160,
    158,
    133,
    153,
    144,
    362,
    385,
    387,
    263,
    373,
    380,
    61,
    39,
    37,
    0,
    267,
    269,
    291,
    405,
    314,
    17,
    84,
    181,
    78,
    82,
    13,
    312,
    308,
    317,
    14,
    87,
)
assert len(MESH_68) == 68


def box_from_landmarks(landmarks68: np.ndarray, fallback=None, bbox_shift: int = BBOX_SHIFT):
    """Upstream's box rule (step 3) on 68 points (truncated to int32 as upstream does):
    (x1, y1, x2, y2) ints, or `fallback` when the rule gives an empty box or x1 < 0."""
    points = np.asarray(landmarks68).astype(np.int32)
    anchor_y = int(points[29, 1]) + int(bbox_shift)
    bottom = int(np.max(points[:, 1]))
    half = bottom - anchor_y
    top = max(0, anchor_y - half)
    box = (int(np.min(points[:, 0])), int(top), int(np.max(points[:, 0])), bottom)
    x1, y1, x2, y2 = box
    if y2 - y1 <= 0 or x2 - x1 <= 0 or x1 < 0:
        return None if fallback is None else tuple(int(v) for v in fallback)
    return box


def with_margin(box, height: int, extra_margin: int = EXTRA_MARGIN):
    """v1.5: the box's bottom moved down by extra_margin, clipped to the frame."""
    x1, y1, x2, y2 = box
    return (int(x1), int(y1), int(x2), int(min(y2 + extra_margin, height)))


def fill_missing(boxes: list) -> list:
    """Frames without a face take the nearest earlier frame's box (else the next one's)."""
    known = [i for i, b in enumerate(boxes) if b is not None]
    if not known:
        raise ValueError("MuseTalk: no face found in any frame of the reference")
    out = list(boxes)
    for i, b in enumerate(out):
        if b is None:
            earlier = [k for k in known if k < i]
            out[i] = boxes[earlier[-1]] if earlier else boxes[known[0]]
    return out


class FaceBoxes:
    """Per-frame MuseTalk boxes (with v1.5's margin) for RGB uint8 frames."""

    def __init__(self, protocol: str = "mediapipe", s3fd=None, extra_margin: int = EXTRA_MARGIN):
        if protocol not in FACE_PROTOCOLS:
            raise ValueError(f"musetalk faces must be one of {FACE_PROTOCOLS}, got {protocol!r}")
        from lipbench.faces.mesh import FaceMeshTracker

        self.protocol, self.extra_margin = protocol, int(extra_margin)
        self.s3fd = s3fd  # a Wav2LipS3FD (batch size 1) for protocol "s3fd"
        self._tracker = FaceMeshTracker(video=True)

    def __call__(self, frames: np.ndarray) -> list[tuple[int, int, int, int]]:
        frames = np.asarray(frames)
        self._tracker.reset()
        meshes = self._tracker.track(frames)
        detections = self.s3fd(frames) if self.protocol == "s3fd" else [None] * len(frames)
        boxes = []
        for mesh, detection in zip(meshes, detections):
            found = not np.isnan(mesh).any()
            if self.protocol == "s3fd" and detection is None:
                boxes.append(None)
            elif not found:
                boxes.append(detection)  # s3fd: its box, as upstream's fallback; mediapipe: None
            else:
                boxes.append(box_from_landmarks(mesh[list(MESH_68)], fallback=detection))
        height = frames.shape[1]
        return [with_margin(b, height, self.extra_margin) for b in fill_missing(boxes)]

    def close(self) -> None:
        self._tracker.close()
