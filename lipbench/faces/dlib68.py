"""dlib's 68-point face landmarks, found as jinhyukj/eval_metrics eval/eval_ssim_lmd.py
finds them for its LMD: per frame, the grayscale frame (BGR2GRAY of the BGR frame =
RGB2GRAY of the RGB one), dlib's HOG frontal face detector upsampling once
(`detector(gray, 1)`), the largest box (the first of equal areas), the shape predictor
`shape_predictor_68_face_landmarks.dat` on it, points 48-67 (the mouth).

dlib is optional: `pip install 'lipbench[dlib]'` installs the `dlib-bin` wheels (a
build of dlib 20 from PyPI; a dlib built from source works the same).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lipbench.errors import MissingDependencyError

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
MOUTH = slice(48, 68)
UPSAMPLE = 1  # eval_ssim_lmd.py: detector(gray, 1)


def import_dlib():
    try:
        import dlib
    except ImportError as exc:
        raise MissingDependencyError(
            "dlib landmarks need the dlib package: pip install 'lipbench[dlib]' "
            "(the dlib-bin wheels) or a dlib build of your own"
        ) from exc
    return dlib


class Dlib68:
    """dlib's frontal face detector and a 68-point shape predictor loaded from `path`."""

    def __init__(self, path):
        from lipbench.checkpoints import describe_other_format, first_line
        from lipbench.weights import BadWeightError

        dlib = import_dlib()
        self.detector = dlib.get_frontal_face_detector()
        if Path(path).stat().st_size == 0:
            raise BadWeightError(path, "empty file (0 bytes)", "empty")
        try:
            self.predictor = dlib.shape_predictor(str(path))
        except RuntimeError as exc:  # dlib says which type it failed on, not why: another file, or one cut short
            other = describe_other_format(path)
            why = f"it is {other}" if other else "another file, or one cut short"
            raise BadWeightError(
                path,
                f"cannot be loaded as a dlib shape predictor ({why}; "
                f"dlib: {first_line(exc).removeprefix('RuntimeError: ')})",
            ) from None
        self.path = path

    def landmarks(self, frame_rgb: np.ndarray) -> np.ndarray | None:
        """(68, 2) float64 pixel coordinates of the largest face, or None without a face."""
        gray = cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)
        rects = self.detector(gray, UPSAMPLE)
        if len(rects) == 0:
            return None
        largest = max(rects, key=lambda r: r.width() * r.height())
        shape = self.predictor(gray, largest)
        if shape.num_parts != 68:
            raise ValueError(f"{self.path}: the shape predictor gives {shape.num_parts} points, not 68")
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def mouths(self, frames_rgb: np.ndarray) -> np.ndarray:
        """(T, 20, 2) mouth points per frame, NaN where no face was found."""
        out = np.full((len(frames_rgb), MOUTH.stop - MOUTH.start, 2), np.nan)
        for i, frame in enumerate(frames_rgb):
            points = self.landmarks(frame)
            if points is not None:
                out[i] = points[MOUTH]
        return out


def train_stand_in(path, seed: int = 0) -> None:
    """A seeded stand-in for the 68-point predictor, in dlib's own file format: trained
    by dlib on a few noise images with made-up landmarks, so it loads and runs like the
    real file (80 KB instead of 100 MB) and its points, which mean nothing, still
    depend on the pixels. Deterministic for a given dlib build (dlib seeds its trainer)."""
    dlib = import_dlib()
    rng = np.random.default_rng(seed)
    size, box = 96, dlib.rectangle(16, 16, 80, 80)
    layout = rng.uniform(20, 76, (68, 2))  # one made-up face shape, jittered per image
    images, shapes = [], []
    for _ in range(8):
        images.append(np.ascontiguousarray(rng.integers(0, 256, (size, size), dtype=np.uint8)))
        points = np.clip(layout + rng.normal(0, 8, layout.shape), 17, 79)
        parts = dlib.points([dlib.point(int(x), int(y)) for x, y in points])
        shapes.append([dlib.full_object_detection(box, parts)])
    options = dlib.shape_predictor_training_options()
    options.tree_depth, options.cascade_depth, options.num_trees_per_cascade_level = 2, 4, 6
    options.oversampling_amount, options.feature_pool_size, options.num_test_splits = 2, 40, 4
    options.random_seed, options.num_threads, options.be_verbose = str(seed), 1, False
    dlib.train_shape_predictor(images, shapes, options).save(str(path))
