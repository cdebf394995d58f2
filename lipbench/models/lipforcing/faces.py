"""Face alignment, mouth mask and compositing for Lip Forcing (the LatentSync protocol).

Lip Forcing (T-64/LipForcing fc864771, scripts/inference/inference_streaming_e2e.py,
StreamingFaceSource) aligns every reference frame the way LatentSync's ImageProcessor
does (OmniAvatar/utils/latentsync/, the same code as bytedance/LatentSync a229c394
latentsync/utils/), masks the mouth of the aligned faces before the masked VAE encode,
and after generation pastes the generated face back with `composite_with_latentsync_float`
(scripts/inference/_common.py). This file does the same steps, in the same order:

1. three points per frame: the two eyebrow centres and the nose centre;
2. a similarity transform (Procrustes) from those points to a fixed 3-point template
   scaled to the resolution, plus upstream's forward-only EMA of the nose offset
   (`p_bias`: 0.2 previous, 0.8 current), warped to a (75, 100) * ratio crop with
   grey (127) borders, then resized to resolution x resolution (Lanczos);
3. a binary mouth mask (1 keep, 0 masked) multiplied into the aligned faces in [-1, 1];
4. compositing: optionally only the mouth region of the generated face (the rest from
   the aligned reference face), resized back to the crop, inverse-warped onto the
   frame, and blended with an eroded, blurred mask.

A frame where detection fails keeps the previous aligned face for conditioning and is
passed through unchanged by `composite`; a failure on the first frame after `reset`
is a NoFaceError.

Two protocols, named with every unit they produce:
- `latentsync` (the paper's): InsightFace buffalo_l (SCRFD det_10g.onnx at 512 input,
  2d106det.onnx landmarks) run with onnxruntime, LatentSync's mask.png;
- `mediapipe` (built in, nothing to download): MediaPipe face-mesh landmarks give the
  three points, and a procedural mouth mask drawn to follow mask.png's region. Its
  points are other landmarks than InsightFace's, so its crops differ from the paper's
  by a few pixels of position and scale: use it for smoke runs and where the
  buffalo_l files are not available, not for numbers compared with the paper.

Upstream runs the alignment warp in float16 on the GPU (AlignRestore's default dtype).
This file rounds the matrix to float16 as upstream does (the composite reuses that
matrix) and warps in float32 with kornia's sampling (written with torch's grid_sample);
upstream's float16 sampling grid adds noise of its own (about 1e-3 of the crop size in
sample position) that is not reproduced.

onnxruntime, mediapipe and torch are imported only where used, so this module loads
on machines without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lipbench.errors import LipbenchError, UnknownNameError

PROTOCOLS = ("latentsync", "mediapipe")
RESOLUTION = 512
DETECT_SIZE = 512  # LatentSync's INSIGHTFACE_DETECT_SIZE (insightface's own default is 640)
EMA_PREVIOUS = 0.2  # weight of the previous frame's nose offset in upstream's p_bias EMA
FILL = 127.0  # grey outside the frame, in the aligned crop (upstream's fill_value)

# LatentSync's 3-point template (eyebrow centres, nose centre) in a 75 x 100 box, which
# is scaled by resolution / 256 * 2.8 (AlignRestore with align_points=3).
TEMPLATE = np.array([[19 - 2, 30 - 10], [56 + 2, 30 - 10], [37.5, 45 - 5]])

# InsightFace 106-point indices that LatentSync averages (ImageProcessor.affine_transform).
INSIGHTFACE_LEFT_BROW = [43, 48, 49, 51, 50]
INSIGHTFACE_RIGHT_BROW = [101, 102, 103, 104, 105]
INSIGHTFACE_NOSE = [74, 77, 83, 86]

# MediaPipe face-mesh stand-ins. The brows: each brow's whole contour (image left is the
# subject's right). The nose: bridge-to-mid-nose points, chosen so that on frontal HDTF
# faces the nose sits at the template's depth below the brows (20 / 41 of the brow
# distance; 197/195/5 average 0.49 there, while the tip, 4/1, is at 0.7-0.8).
MESH_LEFT_BROW = [46, 53, 52, 65, 55, 70, 63, 105, 66, 107]
MESH_RIGHT_BROW = [276, 283, 282, 295, 285, 300, 293, 334, 296, 336]
MESH_NOSE = [197, 195, 5]

# LatentSync's FaceDetector keeps the largest face whose int box is at least this big,
# with width / height in this range and score >= 0.5.
MIN_FACE_W, MIN_FACE_H = 50, 80
ASPECT_RANGE = (0.2, 1.5)
SCORE_THRESHOLD = 0.5
NMS_THRESHOLD = 0.4
SCRFD_STRIDES = (8, 16, 32)
SCRFD_ANCHORS = 2
LANDMARK_SIZE = 192

# The procedural mouth mask of the `mediapipe` protocol, in mask.png's 256 x 256 frame
# (x, y): two cheek bands beside the nose from y 95 to 128, and the lower face from
# y 128 down to the chin, narrowing like a jaw. Traced by eye from mask.png's shape
# (IoU with it: tests/fixtures/lipforcing_faces/README.md).
MASK_CHEEKS = [[(9, 95), (78, 95), (78, 128), (9, 128)], [(178, 95), (247, 95), (247, 128), (178, 128)]]
MASK_JAW = [
    (9, 128),
    (247, 128),
    (245, 150),
    (244, 168),
    (240, 176),
    (234, 186),
    (226, 196),
    (216, 208),
    (204, 218),
    (190, 228),
    (176, 234),
    (161, 240),
    (152, 243),
    (131, 243),
    (104, 241),
    (90, 236),
    (76, 230),
    (61, 222),
    (49, 214),
    (38, 204),
    (28, 194),
    (20, 184),
    (14, 174),
    (12, 166),
    (11, 150),
]


class NoFaceError(LipbenchError, RuntimeError):
    """No usable face on a clip's first frame: nothing to fall back on."""


@dataclass
class AlignedFace:
    face: np.ndarray  # (resolution, resolution, 3) uint8, RGB
    box: tuple | None  # (0, 0, crop width, crop height) as upstream; None: detection failed
    affine: np.ndarray | None  # (2, 3) float32, frame -> crop pixels; None: detection failed


def crop_size(resolution: int) -> tuple[int, int]:
    """(width, height) of the aligned crop before its resize, computed as upstream does
    (ratio first, then int): 420 x 560 at 512."""
    ratio = resolution / 256 * 2.8
    return int(75 * ratio), int(100 * ratio)


def template_points(resolution: int) -> np.ndarray:
    return TEMPLATE * (resolution / 256 * 2.8)


def similarity_to_template(points: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Procrustes similarity (rotation, one scale, translation) taking `points` (3, 2) to
    `template`, as upstream's transformation_from_points: both sets are centred and
    divided by their standard deviation over all six coordinates (n - 1), the rotation
    comes from the SVD of their cross-covariance, no reflection. Returns the (2, 3)
    matrix and the nose offset in normalised units (upstream's per-frame bias)."""
    p = np.asarray(points, np.float64)
    q = np.asarray(template, np.float64)
    cp, cq = p.mean(0), q.mean(0)
    sp, sq = (p - cp).std(ddof=1), (q - cq).std(ddof=1)
    pn, qn = (p - cp) / sp, (q - cq) / sq
    u, _, vt = np.linalg.svd(pn.T @ qn)
    rotation = vt.T @ u.T
    if np.linalg.det(rotation) < 0:
        vt[-1] *= -1
        rotation = vt.T @ u.T
    scale = sq / sp
    matrix = np.concatenate([scale * rotation, (cq - scale * rotation @ cp)[:, None]], axis=1)
    return matrix, qn[2] - pn[2]


def affine_warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], fill: float) -> np.ndarray:
    """(H, W, C) float32 image warped by the (2, 3) matrix to size (w, h), as kornia's
    warp_affine(align_corners=True, padding_mode='fill') that upstream uses: each output
    pixel samples the source bilinearly at the matrix's inverse image of it (pixel
    centres on integers), zeros outside, plus `fill` times the uncovered fraction. (OpenCV's
    warpAffine rounds sample positions to 1/32 pixel, off by several levels at the edge.)"""
    import torch
    import torch.nn.functional as F

    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    width, height = size
    ys, xs = np.mgrid[:height, :width].astype(np.float64)
    src_h, src_w = image.shape[:2]
    grid = np.stack(
        [
            (inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]) * 2 / (src_w - 1) - 1,
            (inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]) * 2 / (src_h - 1) - 1,
        ],
        -1,
    )
    grid = torch.from_numpy(grid.astype(np.float32))[None]
    source = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    source = torch.cat([source, torch.ones_like(source[:, :1])], 1)  # the last channel: coverage
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    out = out[:-1] + fill * (1 - out[-1:])
    return out.permute(1, 2, 0).numpy()


class FaceProtocol:
    """Per-clip state (the EMA, the last good face): call `reset()` between clips."""

    name = ""

    def __init__(self, resolution: int = RESOLUTION):
        self.resolution = int(resolution)
        self.crop_size = crop_size(self.resolution)
        self.template = template_points(self.resolution)
        self.reset()

    def reset(self) -> None:
        self._bias = None
        self._last_face = None
        self._frame = 0

    def close(self) -> None:
        """Release what the protocol holds open (MediaPipe's graph); a no-op here."""

    def points(self, frame: np.ndarray) -> np.ndarray | None:
        """(3, 2) eyebrow, eyebrow, nose points of the frame (pixels), or None: no face."""
        raise NotImplementedError

    def align(self, frame: np.ndarray) -> AlignedFace:
        """The frame's aligned face. A failed frame reuses the previous face (box and
        affine None, so `composite` passes the frame through); on the first frame
        after reset it raises NoFaceError."""
        frame = np.asarray(frame)
        index, self._frame = self._frame, self._frame + 1
        points = self.points(frame)
        if points is None:
            if self._last_face is None:
                raise NoFaceError(
                    f"faces={self.name}: no face detected on frame {index} of the clip, and "
                    f"none on an earlier frame to reuse"
                )
            return AlignedFace(self._last_face, None, None)
        matrix, bias = similarity_to_template(np.round(points), self.template)
        if self._bias is not None:
            bias = self._bias * EMA_PREVIOUS + bias * (1 - EMA_PREVIOUS)
        self._bias = bias
        matrix[:, 2] += bias  # normalised units added to pixels: upstream's smoothing, kept as is
        # upstream returns (and composites with) the float16 matrix it warped with
        matrix = matrix.astype(np.float16).astype(np.float32)
        crop = affine_warp(frame.astype(np.float32), matrix, self.crop_size, FILL)
        crop = crop.astype(np.uint8)  # truncation, as upstream's cast of the warped face
        face = cv2.resize(crop, (self.resolution, self.resolution), interpolation=cv2.INTER_LANCZOS4)
        self._last_face = face
        return AlignedFace(face, (0, 0) + self.crop_size, matrix)

    def mask(self) -> np.ndarray:
        """(resolution, resolution) float32, 1 keep, 0 mouth: multiplied into the aligned
        faces before the masked VAE encode."""
        raise NotImplementedError

    def composite_mask(self) -> np.ndarray:
        """The mask `composite(mouth_only=True)` blends with (1: reference face)."""
        return self.mask()

    def latent_mask(self, size: int) -> np.ndarray:
        """(size, size) float32 binary mask for the latents, as upstream's
        load_latentsync_mask: the mask image (mask.png's 256 x 256 grey, or the procedural
        one drawn at 256) resized bilinearly (torch, align_corners=False) and > 0.5."""
        import torch
        import torch.nn.functional as F

        grey = torch.from_numpy(self._mask_image.astype(np.float32) / 255.0)[None, None]
        return (
            (F.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False) > 0.5)[0, 0]
            .numpy()
            .astype(np.float32)
        )

    def apply_mask(self, faces):
        """Faces in [-1, 1] (array or tensor, the last two axes spatial, e.g. (1, 3, n, R, R)
        from `faces_to_tensor`) times the mask: the mouth becomes 0, mid-grey, as
        upstream's apply_spatial_mask."""
        mask = self.mask()
        if not isinstance(faces, np.ndarray):
            import torch

            mask = torch.from_numpy(mask).to(device=faces.device, dtype=faces.dtype)
        return faces * mask

    def composite(self, generated, originals, aligned, mouth_only: bool = True) -> np.ndarray:
        """Paste generated faces back into their frames, as composite_with_latentsync_float.

        generated: (n, 3, R, R) float in [0, 1] (tensor or array); originals: the n frames
        (H, W, 3) uint8; aligned: their AlignedFace. mouth_only takes only the mouth region
        from `generated` and the rest from the aligned reference face (upstream's default
        in the streaming script). Frames whose detection failed come back unchanged.
        Returns (n, H, W, 3) uint8."""
        import torch

        generated = torch.as_tensor(generated, dtype=torch.float32).cpu()
        keep = torch.from_numpy(self.composite_mask().astype(np.float32))
        out = []
        for gen, frame, unit in zip(generated, originals, aligned):
            frame = np.asarray(frame)
            if unit.affine is None:
                out.append(frame.copy())
                continue
            if mouth_only:
                reference = torch.from_numpy(unit.face).permute(2, 0, 1).float() / 255.0
                gen = gen * (1 - keep) + reference * keep
            out.append(self._restore(frame, gen, unit.affine))
        return np.stack(out)

    def _restore(self, frame: np.ndarray, face, matrix: np.ndarray) -> np.ndarray:
        """Upstream's AlignRestore.restore_img (float32 version) for one frame."""
        import torch.nn.functional as F

        width, height = self.crop_size
        face = F.interpolate(face[None], size=(height, width), mode="bicubic", align_corners=False, antialias=True)[0]
        face = (face * 2 - 1).permute(1, 2, 0).numpy()
        inverse = cv2.invertAffineTransform(matrix.astype(np.float64))
        size = (frame.shape[1], frame.shape[0])
        pasted = np.clip(affine_warp(face, inverse, size, FILL) / 2 + 0.5, 0, 1) * 255
        inside = affine_warp(np.ones((height, width, 1), np.float32), inverse, size, 0.0)[..., 0]
        # a 2 x 2 erosion trims the half-covered edge pixels of the warped face
        inside = cv2.erode(inside, np.ones((2, 2), np.uint8))
        edge = int(float(inside.sum()) ** 0.5) // 20
        # the soft edge: erode by twice the edge width, then Gaussian-blur (odd size 2 edge + 1)
        centre = cv2.erode(inside, np.ones((2 * edge, 2 * edge), np.uint8))
        blur = 2 * edge + 1
        sigma = 0.3 * ((blur - 1) * 0.5 - 1) + 0.8
        soft = cv2.GaussianBlur(centre, (blur, blur), sigma, borderType=cv2.BORDER_REFLECT_101)[..., None]
        inside = inside[..., None]
        blended = soft * (inside * pasted) + (1 - soft) * frame.astype(np.float32)
        return blended.astype(np.uint8)  # truncation, as upstream's .to(torch.uint8)


def faces_to_tensor(aligned):
    """Aligned faces -> (1, 3, n, R, R) float32 tensor in [-1, 1] (upstream's frames_to_tensor)."""
    import torch

    faces = np.stack([unit.face for unit in aligned])
    return (torch.from_numpy(faces).float() / 255.0 * 2.0 - 1.0).permute(3, 0, 1, 2)[None]


def _binary_mask_from_png(gray: np.ndarray, resolution: int) -> np.ndarray:
    """Upstream's pixel mask: grey / 255, bilinear resize when not at the resolution, > 0.5."""
    mask = gray.astype(np.float32) / 255.0
    if mask.shape != (resolution, resolution):
        mask = cv2.resize(mask, (resolution, resolution), interpolation=cv2.INTER_LINEAR)
    return (mask > 0.5).astype(np.float32)


def load_mask_png(path) -> np.ndarray:
    """mask.png as an (H, W) uint8 grey image (PIL's 'L', as upstream reads it)."""
    from PIL import Image, UnidentifiedImageError

    from lipbench.weights import BadWeightError

    try:
        with Image.open(path) as image:
            return np.array(image.convert("L"))
    except (UnidentifiedImageError, OSError) as exc:
        raise BadWeightError(path, f"not a readable PNG image ({exc})") from exc


def procedural_mouth_mask(resolution: int) -> np.ndarray:
    """The `mediapipe` protocol's mask: MASK_CHEEKS and MASK_JAW filled at the resolution."""
    scale = resolution / 256
    drawn = np.ones((resolution, resolution), np.uint8)
    for polygon in MASK_CHEEKS + [MASK_JAW]:
        points = np.round(np.asarray(polygon, np.float64) * scale).astype(np.int32)
        cv2.fillPoly(drawn, [points], 0)
    return drawn.astype(np.float32)


def write_mask(path) -> None:
    """A stand-in for latentsync_mask.png in its format (256 x 256 RGB PNG, white keep,
    black mouth): the procedural mask (`lipbench weights random`)."""
    grey = (procedural_mouth_mask(256) * 255).astype(np.uint8)
    cv2.imwrite(str(path), np.repeat(grey[:, :, None], 3, axis=2))


class MediaPipeFaces(FaceProtocol):
    """Built-in protocol: MediaPipe face-mesh landmarks (no download), procedural mask."""

    name = "mediapipe"

    def __init__(self, resolution: int = RESOLUTION, video: bool = True):
        from lipbench.faces.mesh import FaceMeshTracker

        self._tracker = FaceMeshTracker(video=video)
        super().__init__(resolution)
        self._mask = procedural_mouth_mask(self.resolution)
        self._mask_image = procedural_mouth_mask(256) * 255

    def reset(self) -> None:
        super().reset()
        self._tracker.reset()

    def points(self, frame):
        landmarks = self._tracker.track(frame[None])[0]
        if np.isnan(landmarks).any():
            return None
        return np.stack(
            [landmarks[MESH_LEFT_BROW].mean(0), landmarks[MESH_RIGHT_BROW].mean(0), landmarks[MESH_NOSE].mean(0)]
        )

    def mask(self):
        return self._mask

    def close(self) -> None:
        self._tracker.close()


class ScrfdDetector:
    """InsightFace SCRFD (det_10g.onnx) run with onnxruntime, decoded as insightface's
    scrfd.py / retinaface.py: the image is scaled (aspect kept) into the top-left of an
    input_size square, 3 strides x 2 anchors per cell give a score, box distances and
    5 keypoint offsets (all x stride) from the cell's corner, scores >= threshold are
    kept and suppressed at IoU > nms (boxes with insightface's +1 areas)."""

    def __init__(
        self,
        path,
        input_size: int = DETECT_SIZE,
        threshold: float = SCORE_THRESHOLD,
        nms: float = NMS_THRESHOLD,
        providers=None,
    ):
        self.session = _onnx_session(path, providers)
        outputs = self.session.get_outputs()
        if len(outputs) != 9:
            from lipbench.weights import BadWeightError

            raise BadWeightError(
                path,
                f"{len(outputs)} outputs, not SCRFD's 9 (scores, boxes, keypoints at strides 8, 16, 32)",
                kind="unreadable",
            )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in outputs]
        self.input_size, self.threshold, self.nms_threshold = input_size, threshold, nms

    def detect(self, image: np.ndarray):
        """(boxes (n, 4) x1 y1 x2 y2, scores (n,), keypoints (n, 5, 2)), best first, in the
        image's pixels. `image` goes to the network as given, channels swapped
        (insightface expects BGR; LatentSync hands it RGB frames, and so does this file)."""
        size = self.input_size
        height, width = image.shape[:2]
        if height / width > 1:
            new_h, new_w = size, int(size / (height / width))
        else:
            new_w, new_h = size, int(size * (height / width))
        scale = new_h / height
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / 128.0, (size, size), (127.5,) * 3, swapRB=True)
        outs = self.session.run(self.output_names, {self.input_name: blob})
        scores, boxes, kpss = [], [], []
        for level, stride in enumerate(SCRFD_STRIDES):
            score = outs[level].reshape(-1)
            dist = outs[level + 3].reshape(-1, 4) * stride
            kdist = outs[level + 6].reshape(-1, 10) * stride
            cells = size // stride
            ys, xs = np.mgrid[:cells, :cells]
            centres = np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float32) * stride
            centres = np.repeat(centres, SCRFD_ANCHORS, axis=0)
            keep = np.where(score >= self.threshold)[0]
            scores.append(score[keep])
            boxes.append(np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], 1)[keep])
            kpss.append((np.tile(centres, 5) + kdist).reshape(-1, 5, 2)[keep])
        scores = np.concatenate(scores)
        order = scores.argsort()[::-1]
        boxes = (np.concatenate(boxes) / scale).astype(np.float32)[order]
        kpss = (np.concatenate(kpss) / scale)[order]
        scores = scores.astype(np.float32)[order]
        keep = _nms(boxes, scores, self.nms_threshold)
        return boxes[keep], scores[keep], kpss[keep]


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = w * h / (areas[best] + areas[rest] - w * h)
        order = rest[overlap <= threshold]
    return keep


class Landmark106:
    """InsightFace 2d106det.onnx: the face box, grown 1.5 x around its centre, scaled to a
    192 x 192 crop; the network's 212 outputs are (x, y) in [-1, 1] of the crop, mapped
    back to the image. input_mean / input_std: the real 2d106det normalises inside its
    graph (insightface then feeds raw pixels: 0 and 1); other files may need 127.5 / 128."""

    def __init__(self, path, input_mean: float = 0.0, input_std: float = 1.0, providers=None):
        self.session = _onnx_session(path, providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.input_mean, self.input_std = input_mean, input_std

    def landmarks(self, image: np.ndarray, box) -> np.ndarray:
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
        scale = LANDMARK_SIZE / (max(x2 - x1, y2 - y1) * 1.5)
        half = LANDMARK_SIZE / 2
        matrix = np.array([[scale, 0, half - centre_x * scale], [0, scale, half - centre_y * scale]])
        crop = cv2.warpAffine(image, matrix, (LANDMARK_SIZE, LANDMARK_SIZE), borderValue=0.0)
        blob = cv2.dnn.blobFromImage(
            crop, 1.0 / self.input_std, (LANDMARK_SIZE, LANDMARK_SIZE), (self.input_mean,) * 3, swapRB=True
        )
        pred = self.session.run([self.output_name], {self.input_name: blob})[0][0].reshape(-1, 2)[-106:]
        pred = (pred + 1) * (LANDMARK_SIZE // 2)
        inverse = cv2.invertAffineTransform(matrix)
        return (pred @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)


def _onnx_session(path, providers):
    import onnxruntime

    from lipbench.weights import BadWeightError

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the CUDA/TensorRT provider notices are not the user's business
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise BadWeightError(path, f"onnxruntime cannot load it ({exc})") from exc


def latentsync_points(landmarks106: np.ndarray) -> np.ndarray:
    """LatentSync's three points from InsightFace's 106 landmarks (rounded to pixels first)."""
    lmk = np.round(landmarks106).astype(np.int64)
    return np.stack(
        [lmk[INSIGHTFACE_LEFT_BROW].mean(0), lmk[INSIGHTFACE_RIGHT_BROW].mean(0), lmk[INSIGHTFACE_NOSE].mean(0)]
    )


def pick_face(boxes: np.ndarray, scores: np.ndarray) -> int | None:
    """LatentSync's FaceDetector choice: the largest int box that is big enough, not too
    narrow or wide, and scored >= 0.5 (the first of equal sizes); None: no such face."""
    best, best_size = None, 0
    for i, (box, score) in enumerate(zip(boxes, scores)):
        x1, y1, x2, y2 = box.astype(np.int_).tolist()
        w, h = x2 - x1, y2 - y1
        if w < MIN_FACE_W or h < MIN_FACE_H or not ASPECT_RANGE[0] <= w / h <= ASPECT_RANGE[1]:
            continue
        if score < SCORE_THRESHOLD:
            continue
        if w * h > best_size:
            best, best_size = i, w * h
    return best


WEIGHT_NAMES = {"detector": "det_10g.onnx", "landmarks": "2d106det.onnx", "mask": "latentsync_mask.png"}


def _weight(name: str, path, weights_dir) -> Path:
    """An explicit path, else lipbench.weights' lookup (a name the registry does not
    know is looked for by file name in the same folders)."""
    from lipbench import weights

    if path is not None:
        if not Path(path).is_file():
            raise weights.MissingWeightError(f"{name} for lipforcing faces=latentsync: {path} is not a file")
        return Path(path)
    hint = "; or use the mediapipe face protocol, which needs no download"
    try:
        return weights.find_weight(name, weights_dir, needed_by="lipforcing faces=latentsync")
    except weights.MissingWeightError as exc:
        raise weights.MissingWeightError(f"{exc}{hint}") from None
    except UnknownNameError:
        dirs = weights.search_dirs(weights_dir)
        for folder in dirs:
            if (folder / name).is_file():
                return folder / name
        raise weights.MissingWeightError(
            f"weight file {name} (needed by lipforcing faces=latentsync) not found in "
            f"{', '.join(str(d) for d in dirs)}; buffalo_l's det_10g.onnx and 2d106det.onnx are in "
            f"https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip, LatentSync's "
            f"mask.png is bytedance/LatentSync latentsync/utils/mask.png (saved as {WEIGHT_NAMES['mask']})"
            f"{hint}"
        ) from None


def read_onnx(path):
    """The registry's loader for det_10g.onnx / 2d106det.onnx: an onnxruntime session
    (BadWeightError when onnxruntime cannot load the file)."""
    return _onnx_session(path, None)


def read_mask(path) -> np.ndarray:
    """The registry's loader for latentsync_mask.png: its grey image (H, W) uint8."""
    return load_mask_png(path)


class LatentSyncFaces(FaceProtocol):
    """The paper's protocol: InsightFace buffalo_l + LatentSync's template, EMA and mask.png."""

    name = "latentsync"

    def __init__(
        self,
        resolution: int = RESOLUTION,
        detector=None,
        landmarker=None,
        mask=None,
        weights_dir=None,
        providers=None,
        landmark_mean: float = 0.0,
        landmark_std: float = 1.0,
    ):
        super().__init__(resolution)
        self.detector = ScrfdDetector(_weight(WEIGHT_NAMES["detector"], detector, weights_dir), providers=providers)
        self.landmarker = Landmark106(
            _weight(WEIGHT_NAMES["landmarks"], landmarker, weights_dir),
            landmark_mean,
            landmark_std,
            providers=providers,
        )
        self._mask_image = load_mask_png(_weight(WEIGHT_NAMES["mask"], mask, weights_dir))
        self._mask = _binary_mask_from_png(self._mask_image, self.resolution)
        # mouth-only compositing blends with upstream's load_fixed_mask: the uint8 image
        # Lanczos-resized, / 255, not binarised (soft at the edge)
        self._soft_mask = (
            cv2.resize(self._mask_image, (self.resolution,) * 2, interpolation=cv2.INTER_LANCZOS4) / 255.0
        ).astype(np.float32)

    def landmarks106(self, frame: np.ndarray) -> np.ndarray | None:
        """The 106 landmarks of the face LatentSync would pick, or None."""
        boxes, scores, _ = self.detector.detect(frame)
        best = pick_face(boxes, scores)
        return None if best is None else self.landmarker.landmarks(frame, boxes[best])

    def points(self, frame):
        landmarks = self.landmarks106(frame)
        return None if landmarks is None else latentsync_points(landmarks)

    def mask(self):
        return self._mask

    def composite_mask(self):
        return self._soft_mask


def face_protocol(name: str, resolution: int = RESOLUTION, **options) -> FaceProtocol:
    """A protocol by name: 'latentsync' (options: detector, landmarker, mask paths,
    weights_dir, providers) or 'mediapipe' (options: video)."""
    if name == "latentsync":
        return LatentSyncFaces(resolution, **options)
    if name == "mediapipe":
        return MediaPipeFaces(resolution, **options)
    raise UnknownNameError(f"unknown face protocol {name!r}; known: {', '.join(PROTOCOLS)}")
