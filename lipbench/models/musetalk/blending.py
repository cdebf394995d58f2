"""Pasting a generated 256 px face back into the frame, as MuseTalk 1.5 does.

Upstream (`musetalk/utils/blending.py` at 0a89dec), on BGR frames through PIL:

- the paste region is the face box (x1, y1, x2, y2) (v1.5: y2 already extended by
  `extra_margin`); around it a square "large" box of half side
  int(max(w, h) // 2 * 1.5) centred on the box's integer centre (may leave the frame:
  PIL's crop fills with black, its paste clips);
- the mask: face parsing of the large crop (FaceParsing, mode "jaw" in v1.5), resized
  back to the crop, kept only inside the face box and only below half the large box's
  height, then Gaussian-blurred with an odd kernel: int(0.05 * side // 2 * 2) + 1 in
  `get_image` (normal mode, every frame in the timed loop) or int(0.1 * side // 2 * 2) + 1
  in `get_image_prepare_material` (realtime mode, made ahead per frame);
- the generated face (resized to the box) is pasted into the large crop, and the
  crop pasted onto the frame through the mask (PIL's 8-bit alpha blend).

Functions here take and return RGB arrays (lipbench's frames); PIL's operations are
per channel, so the result equals upstream's BGR result with the channels reversed.
"""

from __future__ import annotations

import cv2
import numpy as np

EXPAND = 1.5
UPPER_BOUNDARY_RATIO = 0.5


def crop_box(box, expand: float = EXPAND) -> tuple[list[int], int]:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    half = int(max(x2 - x1, y2 - y1) // 2 * expand)
    return [cx - half, cy - half, cx + half, cy + half], half


def blend_mask(frame_rgb: np.ndarray, box, parser, mode: str = "jaw", blur_ratio: float = 0.1):
    """(mask uint8 (side, side), large box): the parsing mask of the face box's large crop."""
    from PIL import Image

    x1, y1, x2, y2 = (int(v) for v in box)
    large, _ = crop_box((x1, y1, x2, y2))
    xs, ys = large[0], large[1]
    crop = Image.fromarray(np.ascontiguousarray(frame_rgb)).crop(large)
    size = crop.size
    parsed = parser(crop, mode=mode).resize(size)
    inner = (x1 - xs, y1 - ys, x2 - xs, y2 - ys)
    only_face = Image.new("L", size, 0)
    only_face.paste(parsed.crop(inner), inner)
    width, height = size
    top = int(height * UPPER_BOUNDARY_RATIO)
    lower = Image.new("L", size, 0)
    lower.paste(only_face.crop((0, top, width, height)), (0, top))
    kernel = int(blur_ratio * size[0] // 2 * 2) + 1
    return cv2.GaussianBlur(np.array(lower), (kernel, kernel), 0), large


def paste(frame_rgb: np.ndarray, face_rgb: np.ndarray, box, mask: np.ndarray, large) -> np.ndarray:
    """get_image_blending: the face (already the box's size) into the frame through `mask`."""
    from PIL import Image

    x1, y1, x2, y2 = (int(v) for v in box)
    xs, ys = large[0], large[1]
    body = Image.fromarray(np.ascontiguousarray(frame_rgb))
    region = body.crop(tuple(large))
    region.paste(Image.fromarray(np.ascontiguousarray(face_rgb)), (x1 - xs, y1 - ys, x2 - xs, y2 - ys))
    body.paste(region, tuple(large[:2]), Image.fromarray(mask).convert("L"))
    return np.array(body)


def blend_normal(frame_rgb: np.ndarray, face_rgb: np.ndarray, box, parser, mode: str = "jaw") -> np.ndarray:
    """get_image: mask made now (blur 0.05 of the side), then pasted."""
    mask, large = blend_mask(frame_rgb, box, parser, mode, blur_ratio=0.05)
    return paste(frame_rgb, face_rgb, box, mask, large)


def resize_face(face_rgb: np.ndarray, box) -> np.ndarray:
    """The 256 px output resized to the box (cv2.resize, bilinear), as the scripts do."""
    x1, y1, x2, y2 = (int(v) for v in box)
    return cv2.resize(face_rgb.astype(np.uint8), (x2 - x1, y2 - y1))
