"""S3FD detections, face tracks, shots and SyncNet crops against the upstream code's
numbers (tests/fixtures/syncnet/parity.json, made by make_fixtures.py there)."""

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from lipbench import io
from lipbench.metrics.syncnet import s3fd, tracks
from tests.fixtures.syncnet.make_fixtures import S3FD_SEED, cut_video

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "syncnet" / "parity.json").read_text())


@pytest.fixture(scope="module")
def frames(synth_set):
    """Clip 0 of SynthRecipe(frames=49, seed=7): the clip the fixture was made from."""
    out, _ = io.read_video(synth_set.clips[0].video)
    assert int(out.astype(np.int64).sum()) == FIXTURE["inputs"]["frames_sum"], (
        "the synthetic clip changed since the fixture was made: rerun make_fixtures.py"
    )
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


# Upstream's detection constants (detectors/s3fd: Detect(2, 0, 5000, 0.05, 0.3, 750),
# detect_faces' nms_(bboxes, 0.1)), written out here so a change in lipbench shows.
UPSTREAM_SCORE_MIN, UPSTREAM_TOP_K, UPSTREAM_NMS_IOU, UPSTREAM_KEEP, UPSTREAM_FINAL_IOU = 0.05, 5000, 0.3, 750, 0.1

# Cross-machine tolerances. Scores and (relative) box coordinates are float32 outputs of
# a 20-layer network. Measured: lipbench here vs the fixture's machine differ by at most
# 6.6e-7 (scores) / 4.8e-7 (coordinates); another convolution kernel on the same CPU
# (torch.backends.mkldnn.enabled = False) by 6e-7 / 2.4e-7; float32 vs a float64 run
# by 3e-7 / 2.4e-7. 1e-5 is 15x the largest of these, and far below what a wrong
# score or box changes.
SCORE_ATOL = 1e-5
BOX_ATOL = 1e-5  # relative coordinates; final boxes: times the frame size in pixels
# Two rows whose scores are closer than TIE may come out in either order on two
# machines (each side is within SCORE_ATOL of the exact score): a near-tie. 7.5% of the
# top 5000 scores of 1.0/0 lie within 1e-6 of their neighbour, so this happens.
TIE = 2 * SCORE_ATOL
# IoU moves by about 4 * BOX_ATOL / box width when coordinates move by BOX_ATOL; boxes
# here are > 0.01 wide (relative), so 5e-3 covers a box pair at the NMS threshold.
IOU_ATOL = 5e-3


def all_candidates(detector, frame, scale):
    """(P, 5) float64 rows (score, x1, y1, x2, y2), one per prior box: everything
    lipbench scores for the frame before any cut (score > 0.05, top-k, NMS)."""
    x = detector.preprocess(frame[None], scale)
    with torch.no_grad():
        loc, face, sizes = detector.net(x)
    boxes = s3fd.decode_boxes(loc[0], s3fd.prior_boxes(tuple(x.shape[2:]), sizes))
    return torch.cat((face[0, :, None], boxes), 1).double().numpy()


def iou(box, boxes):
    """IoU of one (x1, y1, x2, y2) box with each of boxes (no +1, as upstream's nms)."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / ((box[2] - box[0]) * (box[3] - box[1]) + areas - inter)


def assert_same_detections(mine, want, universe, nms_iou, cuts, inherited=(), *, box_atol):
    """Tie-aware parity of two NMS outputs, rows (score, x1, y1, x2, y2) best first.

    Rows are matched one to one (score within SCORE_ATOL, every coordinate within
    box_atol); matched rows are the same detection. Every row of either side must be
    one of lipbench's own candidates (`universe`, before any cut): upstream's rows are
    boxes lipbench's network and decoding produce with the same score. A row on one
    side only is accepted only where float rounding can legitimately decide it:
      - its score is within TIE of a cut (`cuts`: a score threshold, the k-th score
        before NMS, the last score kept): in on one machine, out on the other;
      - it is a difference an earlier stage already accepted (`inherited`);
      - a row of the other side scored at least as high (within TIE) overlaps it
        enough to have suppressed it there: a row the other side has only (a near-tie
        flipped which of two overlapping boxes NMS keeps, or such a flip or cut
        upstream of it in the NMS order), or a row both have whose IoU with it is at
        the threshold (within IOU_ATOL).
    Anything else fails: a wrong score or box, a confident detection missing or extra.
    Since both sides are sorted by score and matched scores agree within SCORE_ATOL,
    the order of matched rows can only differ between rows within TIE (near-ties).
    Returns the rows on one side only: (lipbench's, upstream's)."""
    mine, want = np.asarray(mine, np.float64).reshape(-1, 5), np.asarray(want, np.float64).reshape(-1, 5)
    assert (np.diff(mine[:, 0]) <= 0).all(), "lipbench's rows are not best first"

    def close(row, rows):
        return np.flatnonzero(
            (np.abs(rows[:, 0] - row[0]) <= SCORE_ATOL) & (np.abs(rows[:, 1:] - row[1:]).max(1) <= box_atol)
        )

    free = np.ones(len(mine), bool)
    want_only = []
    for j, row in enumerate(want):
        hits = [i for i in close(row, mine) if free[i]]
        if hits:
            free[min(hits, key=lambda i: np.abs(mine[i] - row).max())] = False
        else:
            want_only.append(j)
    mine_only = np.flatnonzero(free)

    problems = [
        f"lipbench row {i} {mine[i].round(6).tolist()} is none of its own candidates"
        for i in range(len(mine))
        if not len(close(mine[i], universe))
    ]
    sides = (("lipbench", mine, mine_only, want, want_only), ("upstream", want, want_only, mine, mine_only))
    for name, rows, only, other, other_only in sides:
        other_shared = np.ones(len(other), bool)
        other_shared[list(other_only)] = False
        for k in only:
            row = rows[k]
            text = f"{name} row {k} {row.round(6).tolist()} (only on this side)"
            if name == "upstream" and not len(close(row, universe)):
                problems.append(f"{text} is none of lipbench's candidates: a different score or box")
                continue
            if any(abs(row[0] - cut) <= TIE for cut in cuts):
                continue
            if any(len(close(row, np.asarray(r)[None])) for r in inherited):
                continue
            overlap = iou(row[1:], other[:, 1:])
            suppressor = (other[:, 0] >= row[0] - TIE) & np.where(
                other_shared, np.abs(overlap - nms_iou) <= IOU_ATOL, overlap > nms_iou - IOU_ATOL
            )
            if not suppressor.any():
                problems.append(f"{text}: not near a cut, nor suppressible by a row of the other side")
    assert not problems, f"{len(problems)} differences float rounding does not explain:\n" + "\n".join(problems)
    return mine[mine_only], want[want_only]


@pytest.mark.parametrize("case", [k for k in FIXTURE["s3fd"] if "/" in k])
def test_detections_match_upstream(detector, frames, case):
    """Raw candidates (upstream Detect output) and final boxes (detect_faces) at a
    threshold random weights reach; at scale 1.0 the 5000-candidate cut applies.
    Near-tied scores may order, cut and suppress differently on another CPU: see
    assert_same_detections for what may differ (nothing a real bug changes)."""
    scale, index = float(case.split("/")[0]), int(case.split("/")[1])
    frame, expected = frames[index], FIXTURE["s3fd"][case]
    universe = all_candidates(detector, frame, scale)

    raw = detector.raw(frame[None], scale)[0].numpy()
    want = np.array(expected["raw"], dtype=np.float64).reshape(-1, 5)
    scores = np.sort(universe[universe[:, 0] > UPSTREAM_SCORE_MIN, 0])[::-1]
    cuts = [UPSTREAM_SCORE_MIN] + ([scores[UPSTREAM_TOP_K - 1]] if len(scores) > UPSTREAM_TOP_K else [])
    cuts += [rows[-1, 0] for rows in (raw, want) if len(rows) == UPSTREAM_KEEP]
    raw_only = assert_same_detections(raw, want, universe, UPSTREAM_NMS_IOU, cuts, box_atol=BOX_ATOL)

    conf = FIXTURE["inputs"]["s3fd_conf"]
    height, width = frame.shape[:2]
    to_pixels = np.array([1, width, height, width, height], np.float64)
    boxes = detector.detect(frame[None], scale, conf)[0]
    want = np.array(expected["boxes"], dtype=np.float64).reshape(-1, 5)
    assert len(want) > 0
    inherited = [row * to_pixels for side in raw_only for row in side if row[0] > conf]
    assert_same_detections(
        boxes[:, [4, 0, 1, 2, 3]],
        want[:, [4, 0, 1, 2, 3]],
        universe * to_pixels,
        UPSTREAM_FINAL_IOU,
        [conf],
        inherited,
        box_atol=BOX_ATOL * max(width, height),
    )


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
