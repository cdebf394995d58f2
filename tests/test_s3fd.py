"""S3FD detections, face tracks, shots and SyncNet crops against the upstream code's
numbers (tests/fixtures/syncnet/parity.json, made by make_fixtures.py there)."""

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from lipbench import io
from lipbench.faces import s3fd, tracks
from tests.fixtures.syncnet.make_fixtures import S3FD_SEED, cut_video

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "syncnet" / "parity.json").read_text())


@pytest.fixture(scope="module")
def frames(synth_set):
    """Clip 0 of SynthRecipe(frames=49, seed=7): the clip the fixture was made from."""
    out, _ = io.read_video(synth_set.clips[0].video)
    assert int(out.astype(np.int64).sum()) == FIXTURE["inputs"]["frames_sum"], \
        "the synthetic clip changed since the fixture was made: rerun make_fixtures.py"
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("s3fd") / "sfd_face.pth"
    torch.save(OrderedDict(s3fd.random_state_dict(S3FD_SEED)), path)
    return path


@pytest.fixture(scope="module")
def detector(weights):
    return s3fd.S3FD(weights)


def test_state_dict_is_upstreams():
    mine = {k: list(v.shape) for k, v in s3fd.S3FDNet().state_dict().items()}
    assert mine == FIXTURE["s3fd"]["state_dict_shapes"]


def test_real_format_loads_strictly_and_bad_files_are_named(weights, tmp_path):
    net = s3fd.load_s3fd(weights)
    assert torch.equal(net.state_dict()["vgg.0.weight"], s3fd.random_state_dict(S3FD_SEED)["vgg.0.weight"])
    state = s3fd.random_state_dict(S3FD_SEED)
    del state["L2Norm3_3.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing\.pth.*L2Norm3_3\.weight"):
        s3fd.load_s3fd(tmp_path / "missing.pth")
    state = s3fd.random_state_dict(S3FD_SEED)
    state["conf.0.weight"] = torch.zeros(2, 256, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"shape\.pth.*does not fit"):
        s3fd.load_s3fd(tmp_path / "shape.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pth"):
        s3fd.load_s3fd(tmp_path / "junk.pth")


@pytest.mark.parametrize("case", [k for k in FIXTURE["s3fd"] if "/" in k])
def test_detections_match_upstream(detector, frames, case):
    """Raw candidates (upstream Detect output) and final boxes (detect_faces) at a
    threshold random weights reach; at scale 1.0 the 5000-candidate cut applies."""
    scale, index = case.split("/")
    expected = FIXTURE["s3fd"][case]
    raw = detector.raw(frames[int(index)][None], float(scale))[0].numpy()
    want = np.array(expected["raw"], dtype=np.float64)
    assert raw.shape == want.shape
    np.testing.assert_allclose(raw, want, atol=1e-4, rtol=0)
    boxes = detector.detect(frames[int(index)][None], float(scale), FIXTURE["inputs"]["s3fd_conf"])[0]
    want = np.array(expected["boxes"], dtype=np.float64).reshape(-1, 5)
    assert boxes.shape == want.shape and len(want) > 0
    np.testing.assert_allclose(boxes, want, atol=1e-3, rtol=0)


def test_detect_rejects_float_frames(detector):
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect(np.zeros((1, 64, 64, 3), np.float32))


@pytest.mark.parametrize("min_track", ["50", "100"])
def test_tracks_match_upstream(min_track):
    detections = [np.array(d, dtype=np.float64).reshape(-1, 5) for d in FIXTURE["tracking"]["detections"]]
    found = tracks.track_shot(detections, 0, int(min_track))
    expected = FIXTURE["tracking"]["tracks"][min_track]
    assert [list(t.frames) for t in found] == [t["frames"] for t in expected]
    for mine, want in zip(found, expected):
        np.testing.assert_allclose(mine.boxes, np.array(want["bbox"]), atol=1e-9, rtol=0)


def test_face_tracks_skip_short_shots():
    detections = [np.array(d, dtype=np.float64).reshape(-1, 5) for d in FIXTURE["tracking"]["detections"]]
    whole = tracks.face_tracks(detections, [(0, len(detections))], 50)
    assert len(whole) == len(FIXTURE["tracking"]["tracks"]["50"])
    # a shot of 40 frames is shorter than min_track: nothing is tracked in it
    assert tracks.face_tracks(detections, [(0, 40)], 50) == []


@pytest.mark.parametrize("version", ["0.5.1", "0.6.1"])
def test_scene_shots_match_scenedetect(frames, version):
    detector = {"0.5.1": tracks.SCENES_0_5_1, "0.6.1": tracks.SCENES_0_6_1}[version]
    expected = FIXTURE["scenes"][version]
    video = cut_video(frames)
    assert [list(s) for s in tracks.scene_shots(video, detector)] == expected["shots"]
    scores = tracks.content_scores(video, detector)
    want = np.array([np.nan if v is None else v for v in expected["content_val"]])
    np.testing.assert_allclose(scores[1:], want[1:], atol=1e-9, rtol=0)


def test_crops_match_upstream(frames):
    """run_pipeline / syncnet_detect crop_video: the frames it writes into the crop
    video (recorded before encoding), from the same track."""
    fixture = FIXTURE["crops"]
    detections = [np.array(d, dtype=np.float64).reshape(-1, 5) for d in fixture["detections"]]
    found = tracks.track_shot(detections, 0, FIXTURE["inputs"]["crop_min_track"])
    assert len(found) == 1 and list(found[0].frames) == fixture["track"]["frames"]
    np.testing.assert_allclose(found[0].boxes, np.array(fixture["track"]["bbox"]), atol=1e-9, rtol=0)
    smooth = tracks.smoothed_track(found[0])
    for key in ("s", "x", "y"):
        np.testing.assert_allclose(smooth[key], fixture["smoothed"][key], atol=1e-9, rtol=0)
    crops = tracks.crop_track(frames, found[0])
    assert crops.shape == (len(frames), 224, 224, 3) and crops.dtype == np.uint8
    sums = crops[..., ::-1].reshape(len(crops), -1, 3).astype(np.int64).sum(1)  # upstream's crops are BGR
    np.testing.assert_array_equal(sums, np.array(fixture["crop_channel_sums"]))


def test_crop_pads_with_110_outside_the_frame():
    frame = np.full((100, 100, 3), 7, np.uint8)
    crop = tracks.crop_face(frame, s=20.0, x=5.0, y=5.0)  # face in the corner: most of the crop is padding
    assert crop.shape == (224, 224, 3)
    assert (crop[:20, :20] == 110).all() and (crop[-10:, -10:] == 7).all()
