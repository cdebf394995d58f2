"""The paper's MediaPipe face crops (lipbench.faces.face_crop) against a plain re-run of
jinhyukj/eval_metrics' FaceCropper call sequence (eval/eval_fid_videos.py) on the
same frames: frames as cv2 reads them (BGR), converted to RGB for MediaPipe, the first
detection's box cut from the BGR frame, INTER_AREA to 224."""

import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from lipbench.faces import face_crop
from lipbench.faces.mesh import _native_stderr_silenced
from lipbench.metrics.base import Video
from tests.fixtures.fvd.make_fixtures import decode_first, hdtf_pairs


def upstream_crops(frames_rgb: np.ndarray) -> list[tuple[np.ndarray | None, bool]]:
    """(BGR 224x224 crop or None, fallback used) per frame, as FaceCropper.crop_and_resize_or_none."""
    import mediapipe as mp

    with _native_stderr_silenced():
        primary = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)
        fallback = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.2)
    out = []
    try:
        for rgb in frames_rgb:
            image_bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # cv2.imread of ffmpeg's PNG
            result = None
            for detector, is_fallback in ((primary, False), (fallback, True)):
                with _native_stderr_silenced():
                    found = detector.process(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
                if found.detections:
                    bb = found.detections[0].location_data.relative_bounding_box
                    height, width = image_bgr.shape[:2]
                    xmin, ymin = int(bb.xmin * width), int(bb.ymin * height)
                    face_w, face_h = int(bb.width * width), int(bb.height * height)
                    xmin, ymin = max(0, xmin), max(0, ymin)
                    xmax, ymax = min(width, xmin + face_w), min(height, ymin + face_h)
                    face = image_bgr[ymin:ymax, xmin:xmax]
                    result = (cv2.resize(face, (224, 224), interpolation=cv2.INTER_AREA), is_fallback)
                    break
            out.append(result or (None, False))
    finally:
        primary.close()
        fallback.close()
    return out


def astronaut_frames(n: int, seed: int = 0, size: int = 192) -> np.ndarray:
    """A real face (skimage's astronaut photo) moving a little, with seeded noise."""
    rng = np.random.default_rng(seed)
    photo = skdata.astronaut()
    frames = []
    for _ in range(n):
        x, y = rng.integers(0, 48, size=2)
        window = photo[y : y + 448, x : x + 448]
        frame = cv2.resize(window, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
        frames.append(np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8))
    return np.stack(frames)


def assert_same_as_upstream(frames: np.ndarray, crops: face_crop.FaceCrops, where: str) -> None:
    for i, (crop_bgr, used_fallback) in enumerate(upstream_crops(frames)):
        if crop_bgr is None:
            assert crops.missed[i], f"{where} frame {i}: upstream finds no face, lipbench does"
            continue
        assert not crops.missed[i], f"{where} frame {i}: upstream finds a face, lipbench does not"
        assert crops.fallback[i] == used_fallback, f"{where} frame {i}: fallback flag differs"
        assert np.array_equal(crops.crops[i], cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB)), f"{where} frame {i}"


def test_crops_match_eval_metrics_facecropper_on_hdtf(hdtf_samples):
    for name, real, fake in hdtf_pairs(hdtf_samples):
        for side, path in (("real", real), ("fake", fake)):
            frames = decode_first(path, 24)[::2]  # every other frame: less time, same coverage
            crops = face_crop.detect_face_crops(frames)
            assert crops.crops.shape == (len(frames), 224, 224, 3) and crops.crops.dtype == np.uint8
            if side == "real":
                assert crops.found.all(), f"{name}: a face is missed in real frames {np.flatnonzero(crops.missed)}"
            assert_same_as_upstream(frames, crops, f"{name} {side}")
            box_w = crops.boxes[crops.found, 2] - crops.boxes[crops.found, 0]
            assert (box_w > frames.shape[2] // 8).all(), f"{name} {side}: implausibly small face boxes"


def test_missed_frame_is_flagged_not_dropped():
    frames = astronaut_frames(4)
    frames[2] = 0  # a black frame: no face at any confidence
    crops = face_crop.detect_face_crops(frames)
    assert crops.missed.tolist() == [False, False, True, False]
    assert not crops.crops[2].any() and (crops.boxes[2] == -1).all()
    assert crops.counts() == {"frames": 4, "missed": 1, "fallback": 0}
    assert_same_as_upstream(frames, crops, "astronaut")


def _stub(box):
    """A MediaPipe detector stand-in that finds `box` (relative x, y, w, h) or nothing."""

    def process(_frame):
        if box is None:
            return types.SimpleNamespace(detections=[])
        rel = types.SimpleNamespace(xmin=box[0], ymin=box[1], width=box[2], height=box[3])
        return types.SimpleNamespace(
            detections=[types.SimpleNamespace(location_data=types.SimpleNamespace(relative_bounding_box=rel))]
        )

    return types.SimpleNamespace(process=process, close=lambda: None)


def test_fallback_and_box_rules():
    frame = np.random.default_rng(1).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    cropper = face_crop.FaceCropper()
    cropper.close()
    # primary finds nothing, fallback a box sticking out on the left: the box is shifted
    # into the frame (x0 clipped to 0, x1 = clipped x0 + int(width)), as upstream
    cropper._primary, cropper._fallback = _stub(None), _stub((-0.1, 0.25, 0.5, 0.5))
    crops = cropper(frame[None])
    assert crops.fallback.tolist() == [True] and crops.missed.tolist() == [False]
    assert crops.boxes[0].tolist() == [0, 25, 100, 75]
    expected = cv2.resize(frame[25:75, 0:100], (224, 224), interpolation=cv2.INTER_AREA)
    assert np.array_equal(crops.crops[0], expected)
    # found by the primary: never the fallback; int() truncates
    cropper._primary = _stub((0.2555, 0.1, 0.3, 0.99))
    crops = cropper(frame[None])
    assert crops.boxes[0].tolist() == [51, 10, 111, 100] and not crops.fallback[0]
    # neither finds a face, or the box is empty: missed
    cropper._primary, cropper._fallback = _stub(None), _stub(None)
    assert cropper(frame[None]).missed.tolist() == [True]
    cropper._primary = _stub((1.2, 0.1, 0.2, 0.2))
    assert cropper(frame[None]).missed.tolist() == [True]


def test_one_detection_pass_per_video(monkeypatch):
    video = Video(astronaut_frames(3, seed=2), 25.0)
    first = face_crop.video_face_crops(video)
    monkeypatch.setattr(face_crop, "detect_face_crops", lambda *a, **k: pytest.fail("detected twice"))
    assert face_crop.video_face_crops(video) is first
    assert first.found.all()


def test_rejects_frames_that_are_not_uint8_rgb():
    with pytest.raises(ValueError, match="uint8 RGB"):
        face_crop.detect_face_crops(np.zeros((2, 32, 32, 3), np.float32))


def test_mediapipe_start_up_logging_stays_off_the_terminal():
    """MediaPipe's graph threads log while they open, sometimes after the constructor (or
    a reset) returns (one start in three or so without waiting for the graph): across
    several builds and resets in a fresh process, as `lipbench eval` and the procedural
    model make them, nothing of it may reach file descriptor 2, where the progress bars
    are."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from lipbench.faces import face_crop\n"
        "from lipbench.faces.mesh import FaceMeshTracker\n"
        "from tests.test_face_crop import astronaut_frames\n"
        "frames = astronaut_frames(1, seed=2, size=128)\n"
        "for _ in range(20):\n"
        "    face_crop.FaceCropper().box(frames[0])\n"
        "    tracker = FaceMeshTracker()\n"
        "    tracker.track(frames)\n"
        "    tracker.reset()\n"  # restarts the graph, as the procedural model does per clip
        "    tracker.track(frames)\n"
        "    tracker.close()\n"
        "print('built 40 solutions', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1]
    )
    assert done.returncode == 0 and "built 40 solutions" in done.stdout, done.stderr
    assert "inference_feedback_manager" not in done.stderr and "W0000" not in done.stderr, done.stderr
