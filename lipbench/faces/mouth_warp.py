"""Open or close a mouth in an image by a smooth landmark-driven warp.

Used by the synthetic set (to animate a still photo) and by the procedural model (to
re-animate a video), so both move lips the same way.

The warp is defined per unit change of the lip gap: the lower lip and the jaw move
down, the upper lip a little up, the rest of the face and the image border stay put.
Those control-point displacements are interpolated over the image with a thin-plate
spline (scipy's RBFInterpolator) on a coarse grid, then applied with cv2.remap. Where
the lips part, the mouth cavity is painted dark so the opening reads as one.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from lipbench.faces import mesh

# How open a mouth gets, in units of the face scale (outer eye-corner distance).
CLOSED_GAP = 0.02
MAX_EXTRA_GAP = 0.30

_JAW = [18, 83, 313, 200, 199, 175, 152, 148, 176, 377, 400]  # below the lower lip
_ANCHORS = [
    1,
    2,
    4,
    98,
    327,
    205,
    425,
    50,
    280,
    33,
    263,
    133,
    362,
    10,
    234,
    454,
    127,
    356,
    132,
    361,
    58,
    288,
]  # nose, cheeks, eyes, forehead, face sides
_GRID_STEP = 4  # pixels between evaluated grid points; the field is smooth
_CAVITY_RGB = np.array([70, 22, 28], dtype=np.float32)


def target_gap(openness: np.ndarray, scale: float) -> np.ndarray:
    """Lip gap in pixels for openness in [0, 1] on a face of the given scale."""
    return scale * (CLOSED_GAP + MAX_EXTRA_GAP * np.asarray(openness, dtype=np.float64))


def _control_points(landmarks: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """Control points (N, 2) and their displacement (N, 2) for a unit gap increase."""
    height, width = shape
    left, right = landmarks[61], landmarks[291]
    centre_x = 0.5 * (left[0] + right[0])
    half_width = max(0.5 * abs(right[0] - left[0]), 1.0)

    def taper(idx):  # 1 at the mouth's centre line, ~0.3 at its corners
        x = landmarks[idx, 0]
        return 1.0 - 0.7 * np.clip(((x - centre_x) / half_width) ** 2, 0, 1)

    lower = mesh.LOWER_LIP_OUTER + mesh.LOWER_LIP_INNER
    upper = [i for i in mesh.UPPER_LIP_OUTER + mesh.UPPER_LIP_INNER if i not in (61, 291, 78, 308)]
    corners = [61, 291, 78, 308]
    points = [landmarks[lower], landmarks[upper], landmarks[corners], landmarks[_JAW], landmarks[_ANCHORS]]
    dy = [
        0.85 * taper(lower),
        -0.15 * taper(upper),
        np.full(len(corners), 0.1),
        np.full(len(_JAW), 0.7),
        np.zeros(len(_ANCHORS)),
    ]
    border = np.array(
        [
            [x, y]
            for x in (0, width / 2, width - 1)
            for y in (0, height / 2, height - 1)
            if not (x == width / 2 and y == height / 2)
        ],
        dtype=np.float64,
    )
    points.append(border)
    dy.append(np.zeros(len(border)))
    pts = np.concatenate(points).astype(np.float64)
    disp = np.zeros_like(pts)
    disp[:, 1] = np.concatenate(dy)
    return pts, disp


def unit_field(landmarks: np.ndarray, shape) -> np.ndarray:
    """Dense displacement (H, W, 2) in pixels per pixel of lip-gap increase."""
    height, width = shape
    pts, disp = _control_points(landmarks, shape)
    gx = np.arange(0, width + _GRID_STEP, _GRID_STEP, dtype=np.float64)
    gy = np.arange(0, height + _GRID_STEP, _GRID_STEP, dtype=np.float64)
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    coarse = RBFInterpolator(pts, disp, kernel="thin_plate_spline", smoothing=1e-3)(grid)
    coarse = coarse.reshape(len(gy), len(gx), 2).astype(np.float32)
    # Sample the coarse grid at pixel positions (grid node k sits at pixel k * step).
    xs = np.arange(width, dtype=np.float32) / _GRID_STEP
    ys = np.arange(height, dtype=np.float32) / _GRID_STEP
    map_x, map_y = np.meshgrid(xs, ys)
    return cv2.remap(coarse, map_x, map_y, interpolation=cv2.INTER_LINEAR)


def warp_mouth(
    image: np.ndarray, landmarks: np.ndarray, gap_change: float, field: np.ndarray | None = None
) -> np.ndarray:
    """Change the lip gap of the face in `image` by `gap_change` pixels (negative closes).

    `landmarks` are the face-mesh points of `image`; `field` may be passed when the same
    face is warped many times (see `unit_field`).
    """
    height, width = image.shape[:2]
    if field is None:
        field = unit_field(landmarks, (height, width))
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    # Backward mapping: an output pixel takes its colour from where the warp came from.
    # For the small, smooth fields here, p - d(p) is close enough to the true inverse.
    map_x = grid_x - gap_change * field[..., 0]
    map_y = grid_y - gap_change * field[..., 1]
    out = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return _paint_cavity(out, landmarks, gap_change, field)


def _paint_cavity(image: np.ndarray, landmarks: np.ndarray, gap_change: float, field: np.ndarray) -> np.ndarray:
    inner = mesh.UPPER_LIP_INNER + mesh.LOWER_LIP_INNER[::-1]
    pts = landmarks[inner].astype(np.float64)
    ix = np.clip(np.round(pts[:, 0]).astype(int), 0, image.shape[1] - 1)
    iy = np.clip(np.round(pts[:, 1]).astype(int), 0, image.shape[0] - 1)
    moved = pts + gap_change * field[iy, ix].astype(np.float64)
    gap = np.linalg.norm(moved[inner.index(mesh.LOWER_LIP_CENTRE)] - moved[inner.index(mesh.UPPER_LIP_CENTRE)])
    strength = float(np.clip((gap - 2.0) / 6.0, 0.0, 1.0)) * 0.9
    if strength <= 0:
        return image
    mask = np.zeros(image.shape[:2], dtype=np.float32)
    cv2.fillPoly(mask, [np.round(moved * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0)[..., None] * strength
    blended = image.astype(np.float32) * (1 - mask) + _CAVITY_RGB * mask
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
