"""MediaPipe face mesh (the model ships inside the mediapipe 0.10.21 wheel: offline).

Landmarks come back as float32 pixel coordinates (T, 478, 2); a frame without a face
is all NaN, so callers can count and skip misses explicitly.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

N_LANDMARKS = 478

# Index sets of the 468-point canonical mesh (see mediapipe face_mesh_connections).
UPPER_LIP_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LOWER_LIP_OUTER = [146, 91, 181, 84, 17, 314, 405, 321, 375]
UPPER_LIP_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LOWER_LIP_INNER = [95, 88, 178, 87, 14, 317, 402, 318, 324]
LIPS = sorted(set(UPPER_LIP_OUTER + LOWER_LIP_OUTER + UPPER_LIP_INNER + LOWER_LIP_INNER))
UPPER_LIP_CENTRE, LOWER_LIP_CENTRE = 13, 14
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 33, 263


@contextlib.contextmanager
def _native_stderr_silenced():
    """MediaPipe's C++ side writes start-up warnings straight to file descriptor 2 (no
    Python logging to configure); they would break progress bars, so that descriptor
    points at /dev/null while MediaPipe runs. Python exceptions are unaffected."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def built_quietly(make_solution):
    """A MediaPipe solution built with its start-up logging kept off the terminal. The
    graph opens its calculators on worker threads, which log while opening, possibly
    after the constructor has returned (about one build in three, here): waiting until
    the graph is idle, still silenced, keeps those lines out of the progress bars."""
    with _native_stderr_silenced():
        solution = make_solution()
        _wait_until_open(solution)
    return solution


def _wait_until_open(solution) -> None:
    graph = getattr(solution, "_graph", None)  # SolutionBase's CalculatorGraph
    if graph is not None:
        graph.wait_until_idle()


class FaceMeshTracker:
    """Landmarks frame after frame, keeping MediaPipe's tracking state between calls
    (so a streaming model can feed it chunk by chunk).

    `video=True` runs MediaPipe's tracking mode (detection once, then tracking), which
    is faster and steadier on a clip; use False for unrelated images.
    """

    def __init__(self, video: bool = True):
        import mediapipe as mp

        self._mesh = built_quietly(
            lambda: mp.solutions.face_mesh.FaceMesh(
                static_image_mode=not video,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=0.5,
                min_tracking_confidence=0.5,
            )
        )

    def track(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        height, width = frames.shape[1:3]
        out = np.full((len(frames), N_LANDMARKS, 2), np.nan, dtype=np.float32)
        for i, frame in enumerate(frames):
            with _native_stderr_silenced():  # the graph logs when it (re)starts on a frame
                result = self._mesh.process(np.ascontiguousarray(frame))
            if result.multi_face_landmarks:
                pts = result.multi_face_landmarks[0].landmark
                out[i] = [(p.x * width, p.y * height) for p in pts]
        return out

    def reset(self) -> None:
        """Forget the tracked face: the next frame starts a new video."""
        with _native_stderr_silenced():  # a reset restarts the graph, which logs as it opens
            self._mesh.reset()
            _wait_until_open(self._mesh)

    def close(self) -> None:
        self._mesh.close()


def detect_landmarks(frames: np.ndarray, video: bool = True) -> np.ndarray:
    """Face-mesh landmarks (T, 478, 2) of the first face in each frame (NaN: no face)."""
    tracker = FaceMeshTracker(video=video)
    try:
        return tracker.track(frames)
    finally:
        tracker.close()


def lip_gap(landmarks: np.ndarray) -> np.ndarray:
    """Distance in pixels between the inner lips' centres; works on (..., 478, 2)."""
    return np.linalg.norm(landmarks[..., LOWER_LIP_CENTRE, :] - landmarks[..., UPPER_LIP_CENTRE, :], axis=-1)


def face_scale(landmarks: np.ndarray) -> np.ndarray:
    """Distance in pixels between the outer eye corners: the face's size, pose aside."""
    return np.linalg.norm(landmarks[..., RIGHT_EYE_OUTER, :] - landmarks[..., LEFT_EYE_OUTER, :], axis=-1)


def mouth_aperture(landmarks: np.ndarray) -> np.ndarray:
    """Lip gap relative to face size, so it does not change with zoom or resolution."""
    return lip_gap(landmarks) / face_scale(landmarks)
