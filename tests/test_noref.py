"""No-reference quality (lipbench.metrics.noref) against its references: VBench's own
temporal_flickering (fixture made by tests/fixtures/noref/make_fixtures.py), the
video-evaluation-toolkit's sharpness and face-rate code, and closed forms."""

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lipbench import io, metrics
from lipbench.cli import main
from lipbench.faces import face_crop, mesh
from lipbench.metrics.base import ClipContext, Unavailable, Video
from lipbench.metrics.noref import NoReference, box_jitter, masked_flicker
from tests.fixtures.noref.make_fixtures import flicker_inputs

VBENCH = json.loads((Path(__file__).parent / "fixtures" / "noref" / "vbench_flicker.json").read_text())
KEYS = ["face_rate@mediapipe", "box_jitter@mediapipe", "mouth_sharpness@mediapipe", "flicker@mediapipe"]


def score(frames, clip_id="clip", source=None) -> dict:
    return NoReference().compute(ClipContext(clip_id, Video(frames, 25.0, source=source)))


@pytest.fixture(scope="module")
def face_frames(synth_set):
    """The first 10 frames of synthetic clip 0 (256x256, a moving talking head)."""
    return synth_set.clips[0].frames()[:10]


# ---------------------------------------------------------------- flicker: VBench


def test_flicker_equals_vbench_on_the_same_frames():
    """VBench 0.1.5 read the same frames back from PNG files: its temporal_flickering over
    the masked pairs, and its cal_score of the unmasked clip (side-0 boxes mask nothing).
    Measured here: 1.2e-10 and 3.0e-9 apart (VBench sums in float32)."""
    frames, boxes = flicker_inputs()
    assert int(frames.astype(np.int64).sum()) == VBENCH["inputs"]["frames_sum"], "inputs changed: rerun the script"
    assert boxes.tolist() == VBENCH["inputs"]["boxes"]
    assert masked_flicker(frames, boxes) == pytest.approx(VBENCH["masked"]["score"], abs=1e-7)
    assert masked_flicker(frames, np.zeros_like(boxes)) == pytest.approx(VBENCH["unmasked_clip"], abs=1e-7)
    # the pairs touching the frame without a face are left out, as the script left them out
    assert VBENCH["masked"]["pairs"] == [0, 1, 2, 5]
    assert VBENCH["masked"]["score"] > VBENCH["unmasked_clip"]  # the changing mouth is what was masked


def test_flicker_sees_change_outside_the_mouth_only(face_frames):
    """A still face whose lips get fresh noise every frame: nothing changes outside the
    mouth box, so the score is exactly 1; the same noise in a corner gives VBench's
    formula on that corner alone."""
    rng = np.random.default_rng(0)
    still = np.repeat(face_frames[:1], 6, axis=0)
    lips = mesh.detect_landmarks(still[:1], video=False)[0, mesh.LIPS]
    (x0, y0), (x1, y1) = np.floor(lips.min(0)).astype(int), np.ceil(lips.max(0)).astype(int)
    talking = still.copy()
    talking[:, y0:y1, x0:x1] = rng.integers(0, 256, (6, y1 - y0, x1 - x0, 3))
    values = score(talking)
    assert values["flicker@mediapipe"] == 1.0 and values["face_rate@mediapipe"] == 1.0

    corner = still.copy()
    corner[:, :20, :20] = rng.integers(0, 256, (6, 20, 20, 3))
    diffs = np.abs(np.diff(corner[:, :20, :20].astype(float), axis=0)).sum(axis=(1, 2, 3)) / still[0].size
    assert score(corner)["flicker@mediapipe"] == pytest.approx((255 - diffs.mean()) / 255, abs=1e-12)


# ---------------------------------------------------------------- mouth sharpness: the toolkit


def toolkit_mouth_boxes(landmarks, height, width):
    """lpips@mouth's box, rewritten here: side 1.5 x the median lip extent, centred on each
    frame's lip box, moved inside the frame."""
    lips = landmarks[:, mesh.LIPS].astype(np.float64)
    extent = (lips.max(1) - lips.min(1)).max(1)
    side = int(round(1.5 * float(np.median(extent))))
    centre = (lips.max(1) + lips.min(1)) / 2
    x0 = np.clip(np.round(centre[:, 0] - side / 2), 0, width - side).astype(int)
    y0 = np.clip(np.round(centre[:, 1] - side / 2), 0, height - side).astype(int)
    return [(x, y, side) for x, y in zip(x0, y0)]


def toolkit_sharpness(bgr_images) -> float:
    """harlanhong/video-evaluation-toolkit core/video_metrics_calculator.py (7eb909f),
    per frame read by cv2 (BGR): BGR2RGB, RGB2GRAY, cv2.Laplacian(gray, cv2.CV_64F).var();
    `sharpness_score` is the mean over frames. Here the images are the mouth crops."""
    values = []
    for frame in bgr_images:
        gray = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), cv2.COLOR_RGB2GRAY)
        values.append(cv2.Laplacian(gray, cv2.CV_64F).var())
    return float(np.mean(values))


def test_mouth_sharpness_is_the_toolkits_sharpness_of_the_mouth(face_frames):
    video = Video(face_frames, 25.0)
    value = NoReference().compute(ClipContext("clip", video))["mouth_sharpness@mediapipe"]
    boxes = toolkit_mouth_boxes(video.landmarks, 256, 256)  # the mesh as the metric ran it (cached)
    crops = [np.ascontiguousarray(f[y : y + s, x : x + s, ::-1]) for f, (x, y, s) in zip(face_frames, boxes)]
    assert value == pytest.approx(toolkit_sharpness(crops), rel=1e-12)  # measured: equal
    blurred = np.stack([cv2.GaussianBlur(f, (5, 5), 1.5) for f in face_frames])
    assert score(blurred)["mouth_sharpness@mediapipe"] < 0.5 * value


# ---------------------------------------------------------------- face rate and box jitter: closed forms


def toolkit_face_rate(frames) -> float:
    """The toolkit's face_detection_rate: MediaPipe FaceDetection(model_selection=0,
    min_detection_confidence=0.5) on each RGB frame, frames with a detection / all."""
    import mediapipe as mp

    with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as detector:
        return sum(bool(detector.process(np.ascontiguousarray(f)).detections) for f in frames) / len(frames)


def test_face_rate_counts_the_frames_with_a_face(face_frames):
    frames = face_frames.copy()
    frames[[2, 5, 6]] = 128  # blank grey frames
    values = score(frames)
    assert values["face_rate@mediapipe"] == 0.7 == toolkit_face_rate(frames)
    assert values["flicker@mediapipe"] < 1  # the pairs of faces (0-1, 3-4, 7-8, 8-9) moved


def test_box_jitter_closed_form_on_boxes():
    """Centres move 3 then 4 px on boxes of size 10 and 20 (sqrt of w h); the pair
    touching the frame without a face is left out."""
    boxes = np.array([[0, 0, 10, 10], [3, 0, 13, 10], [3, 4, 23, 24], [0, 0, 5, 5], [9, 9, 19, 19]])
    found = np.array([True, True, True, False, True])
    # pair 0-1: 3 / 10; pair 1-2: centre (8, 5) -> (13, 14), |(5, 9)| / 15
    assert box_jitter(boxes, found) == pytest.approx((0.3 + np.hypot(5, 9) / 15) / 2, abs=1e-15)
    with pytest.raises(ValueError, match="no two consecutive frames of 3 have a face"):
        box_jitter(boxes[:3], np.array([True, False, True]))


def test_box_jitter_still_is_zero_and_a_shift_reads_its_pixels(face_frames):
    """MediaPipe's boxes on a face moved k px per frame (np.roll) move k px, give or take
    the detector's own noise (whole-pixel boxes, not exactly shift-equivariant), which
    adds to the distance: measured 0.15-0.69 px per frame too much over k = 1..6 in x
    and y on 8 frames; 1 px allowed. A still video gives exactly 0."""
    still = np.repeat(face_frames[:1], 6, axis=0)
    assert score(still)["box_jitter@mediapipe"] == 0.0
    errors = []
    for k in (1, 2, 3, 4, 6):
        for axis in (0, 1):
            moved = np.stack([np.roll(face_frames[0], k * t, axis=axis) for t in range(8)])
            video = Video(moved, 25.0)
            jitter = NoReference().compute(ClipContext("clip", video))["box_jitter@mediapipe"]
            boxes = face_crop.video_face_crops(video).boxes.astype(float)  # the detection the metric ran (cached)
            size = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).mean()
            errors.append(jitter * size - k)  # px per frame
    assert np.abs(errors).max() < 1.0, np.round(errors, 3)
    read = np.add(np.repeat([1, 2, 3, 4, 6], 2), errors).reshape(5, 2)  # px per frame, per axis
    assert (np.diff(read, axis=0) > 0).all()  # a larger shift always reads larger


# ---------------------------------------------------------------- failures


def test_a_clip_without_a_face_has_face_rate_0_and_the_rest_fail_alone():
    values = score(np.full((6, 64, 64, 3), 128, np.uint8), "grey")
    assert values["face_rate@mediapipe"] == 0.0
    for key in KEYS[1:]:
        assert isinstance(values[key], Unavailable) and values[key].reason.startswith("grey: ")
    assert "no two consecutive frames of 6 have a face (0 with one)" in values["box_jitter@mediapipe"].reason
    assert "the face mesh found no face in any of the 6 frames" in values["mouth_sharpness@mediapipe"].reason


def test_one_face_frame_has_no_pair_to_compare(face_frames):
    frames = np.full((4, 256, 256, 3), 128, np.uint8)
    frames[1] = face_frames[0]
    values = score(frames, "one")
    assert values["face_rate@mediapipe"] == 0.25
    assert values["box_jitter@mediapipe"] == Unavailable(
        "one: no two consecutive frames of 4 have a face (1 with one) (box_jitter@mediapipe)"
    )
    assert np.isfinite(values["mouth_sharpness@mediapipe"])  # one frame with a mouth is enough


def test_flicker_needs_two_consecutive_frames_with_a_mouth():
    frames, boxes = flicker_inputs()
    boxes[1::2] = -1  # every other frame without a face: no pair has both
    with pytest.raises(ValueError, match="no two consecutive frames of 7 have a face mesh"):
        masked_flicker(frames, boxes)


def test_bad_frames_name_the_file():
    with pytest.raises(ValueError, match=re.escape("/x/a.mkv: 1 frame(s); box_jitter and flicker compare")):
        score(np.zeros((1, 64, 64, 3), np.uint8), source=Path("/x/a.mkv"))
    with pytest.raises(ValueError, match=re.escape("/x/a.mkv: noref needs uint8 RGB frames (T, H, W, 3), got float32")):
        score(np.zeros((3, 64, 64, 3), np.float32), source=Path("/x/a.mkv"))


def test_eval_scores_videos_alone_and_names_bad_files(synth_set, tmp_path, capsys):
    """`lipbench eval --fake` with no reference: a good clip gets all four values; a
    one-frame video and a text file named .mp4 fail, each naming its file."""
    fake = tmp_path / "fake"
    fake.mkdir()
    shutil.copy(synth_set.clips[1].video, fake / "good.mkv")
    io.write_video(fake / "single.mkv", synth_set.clips[1].frames()[:1], 25.0)
    io.write_video(fake / "faceless.mkv", np.full((6, 64, 64, 3), 128, np.uint8), 25.0)
    (fake / "text.mp4").write_text("not a video\n")
    out = tmp_path / "scores.json"
    code = main(["eval", "--fake", str(fake), "--metrics", "noref", "--out", str(out)])
    assert code == 1, capsys.readouterr().err
    model = json.loads(out.read_text())["models"]["fake"]
    assert all(np.isfinite(model["clips"]["good"][key]) for key in KEYS), model["clips"]["good"]
    assert model["clips"]["good"]["face_rate@mediapipe"] == 1.0
    # a clip without a face counts as 0 in face_rate's mean; its other values fail alone, named
    assert model["clips"]["faceless"]["face_rate@mediapipe"] == 0.0
    assert model["metrics"]["face_rate@mediapipe"]["value"] == 0.5 and model["metrics"]["face_rate@mediapipe"]["n"] == 2
    for key in KEYS[1:]:
        assert model["metrics"][key]["failed"]["faceless"].startswith("faceless: ")
    for clip, says in (("single", "single.mkv: 1 frame(s)"), ("text", "text.mp4: cannot be opened as media")):
        for key in KEYS:
            assert key not in model["clips"][clip]
            assert says in model["metrics"][key]["failed"][clip], model["metrics"][key]["failed"]
    assert metrics.resolve_specs(["flicker"]) == ["noref@mediapipe"]  # a value name finds its family
    assert metrics.resolve_specs(["noref"], crop="none") == ["noref@mediapipe"]  # it detects faces on crops too


def test_crop_none_leaves_noref_as_it_is():
    from lipbench import metrics

    assert metrics.resolve_specs(["noref"], "none") == metrics.resolve_specs(["noref"], "auto") == ["noref@mediapipe"]
