"""VBench imaging quality (lipbench.metrics.vbench.imaging) against VBench 0.1.5's own
`compute_imaging_quality` (fixture made by tests/fixtures/vbench_imaging/make_fixtures.py
on the same frames and the same seeded stand-in weights), and its behaviour."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lipbench import metrics
from lipbench.errors import MissingDependencyError
from lipbench.metrics.base import ClipContext, Video
from lipbench.weights import WEIGHTS, BadWeightError, MissingWeightError
from tests.conftest import require_module
from tests.fixtures.vbench_imaging.make_fixtures import SEED, imaging_inputs, state_checksum

require_module("pyiqa", "imaging_quality runs pyiqa's MUSIQ (pip install 'lipbench[vbench]')")

from lipbench.metrics.vbench import video_tensor  # noqa: E402
from lipbench.metrics.vbench.imaging import (  # noqa: E402
    WEIGHT_FILE,
    ImagingQuality,
    frame_scores,
    load_musiq,
    stand_in_state,
    vbench_longer_resize,
    write_stand_in,
)

VBENCH = json.loads((Path(__file__).parent / "fixtures" / "vbench_imaging" / "vbench_imaging.json").read_text())
KEY = "imaging_quality@musiq_spaq"
# VBench scores one frame at a time, lipbench in batches: the same float32 network, so the
# MOS-scale scores (about 50 here) differ by a few float32 steps (measured <= 3.9e-6, one
# ulp at 50; exactly 0 with batch size 1); allowed 5e-5 on the MOS scale, 5e-7 on lipbench's.
# Both on one torch thread, as make_fixtures.py ran: the uint8 resize rounds a few pixels
# the other way on another thread count (lipbench.metrics.vbench.imaging docstring).
TOLERANCE = 5e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """The stand-in VBench was given: write_stand_in(seed 16), about 109 MB, written once."""
    folder = tmp_path_factory.mktemp("musiq")
    write_stand_in(folder / WEIGHT_FILE, SEED)
    return folder


@pytest.fixture(scope="module")
def metric(weights_dir):
    metric = ImagingQuality(weights_dir=weights_dir)
    metric.load()
    return metric


def score(metric, frames, clip_id="clip", source=None) -> float:
    return metric.compute(ClipContext(clip_id, Video(frames, 25.0, source=source)))[KEY]


def test_stand_in_is_the_one_vbench_was_given(weights_dir):
    state = torch.load(weights_dir / WEIGHT_FILE, map_location="cpu", weights_only=True)
    expected = VBENCH["weights"]
    got = state_checksum(state)
    assert (got["keys"], got["values"]) == (expected["keys"], expected["values"])
    assert got["sum"] == pytest.approx(expected["sum"], rel=1e-9)
    assert got["sum_of_squares"] == pytest.approx(expected["sum_of_squares"], rel=1e-9)


def test_inputs_are_the_ones_vbench_was_given():
    for name, frames in imaging_inputs().items():
        assert list(frames.shape) == VBENCH["videos"][name]["shape"]
        assert int(frames.astype(np.int64).sum()) == VBENCH["videos"][name]["frames_sum"]


def test_parity_with_vbench_compute_imaging_quality(metric):
    """Per video: lipbench's value x 100 is VBench's `video_results` (its per-video mean on
    MUSIQ's scale); per frame, MUSIQ's scores; over the videos, VBench's average_score."""
    values = []
    for name, frames in imaging_inputs().items():
        reference = VBENCH["videos"][name]
        per_frame = frame_scores(metric.net, video_tensor(frames, name), "cpu", metric.batch_size)
        np.testing.assert_allclose(per_frame, reference["frame_scores"], rtol=0, atol=TOLERANCE)
        value = score(metric, frames, name)
        assert value * 100 == pytest.approx(reference["video_results"], abs=TOLERANCE)
        values.append(value)
    assert np.mean(values) == pytest.approx(VBENCH["average_score"], abs=TOLERANCE / 100)
    assert len({round(v, 4) for v in values}) == 3, "the stand-in scores the three videos apart"


def test_frames_one_at_a_time_give_vbench_numbers_exactly(metric):
    """With VBench's batch of one frame the network's scores are VBench's, bit for bit."""
    for name, frames in imaging_inputs().items():
        per_frame = frame_scores(metric.net, video_tensor(frames, name), "cpu", 1)
        assert per_frame.tolist() == VBENCH["videos"][name]["frame_scores"]


def test_training_attribute_alone_equals_eval(metric):
    """VBench sets `model.training = False` on the top module only; lipbench calls .eval():
    the submodules that depend on the mode (Dropout p=0, DropPath 0) do nothing either way."""
    net = metric.net
    video = video_tensor(imaging_inputs()["small"][:2], "small")
    evaluated = frame_scores(net, video, "cpu", 1)
    try:
        net.train()
        net.training = False  # as compute_imaging_quality
        assert any(m.training for m in net.modules())
        vbench_mode = frame_scores(net, video, "cpu", 1)
    finally:
        net.eval()
    np.testing.assert_array_equal(vbench_mode, evaluated)


def test_each_frame_is_scored_alone(metric):
    """The clip's value is the mean of its frames' values: order and company do not matter."""
    frames = imaging_inputs()["small"]
    alone = [score(metric, frames[i : i + 1]) for i in range(len(frames))]
    assert len(set(alone)) == len(frames)
    # batches of 4 frames against batches of 1: float32 rounding (see TOLERANCE)
    assert score(metric, frames[::-1].copy()) == pytest.approx(np.mean(alone), abs=TOLERANCE / 100)
    assert score(metric, frames[[0, 0, 0, 1]]) == pytest.approx((3 * alone[0] + alone[1]) / 4, abs=TOLERANCE / 100)


def test_changed_content_changes_the_score(metric):
    frames = imaging_inputs()["small"][:1]
    blurred = frames.copy()
    blurred[0] = (frames[0].astype(np.int64) // 16 * 16).astype(np.uint8)  # fewer grey levels
    assert abs(score(metric, blurred) - score(metric, frames)) > 1e-4


def test_longer_side_resize_rule():
    """VBench's `longer` mode: int(512 / max(H, W) * side), only when the longer side > 512."""
    for (height, width), expected in {
        (40, 600): (34, 512),
        (530, 44): (512, 42),
        (512, 300): (512, 300),
        (513, 513): (512, 512),
        (48, 64): (48, 64),
    }.items():
        video = torch.zeros((1, 3, height, width), dtype=torch.uint8)
        out = vbench_longer_resize(video)
        assert tuple(out.shape[2:]) == expected
        assert out.dtype == torch.uint8
    flat = torch.full((1, 3, 40, 600), 200, dtype=torch.uint8)
    assert torch.equal(vbench_longer_resize(flat), torch.full((1, 3, 34, 512), 200, dtype=torch.uint8))


def test_bad_frames_name_the_clip(weights_dir):
    metric = ImagingQuality(weights_dir=weights_dir)  # not loaded: frames are checked first
    with pytest.raises(ValueError, match=r"clip7.*uint8 RGB frames"):
        score(metric, np.zeros((3, 32, 32, 3), np.float32), "clip7")
    with pytest.raises(ValueError, match=r"gen\.mp4.*uint8 RGB frames"):
        score(metric, np.zeros((3, 32, 32), np.uint8), "clip7", Path("gen.mp4"))
    with pytest.raises(ValueError, match=r"clip7: 0 frame\(s\); the score needs at least 1"):
        score(metric, np.zeros((0, 32, 32, 3), np.uint8), "clip7")


def test_missing_weight_file_names_it(tmp_path):
    metric = ImagingQuality(weights_dir=tmp_path)
    with pytest.raises(MissingWeightError, match=rf"{WEIGHT_FILE}.*imaging_quality@musiq_spaq"):
        metric.check_available()


@pytest.mark.parametrize("kind", ["empty", "truncated", "other network", "wrapped"])
def test_bad_weight_file_names_it(tmp_path, weights_dir, kind):
    path = tmp_path / WEIGHT_FILE
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes((weights_dir / WEIGHT_FILE).read_bytes()[: 1 << 20])
    elif kind == "other network":
        torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, path)
    else:  # pyiqa reads the state_dict as it is: a {'params': ...} wrapper is not MUSIQ's file
        torch.save({"params": {"head.bias": torch.zeros(1)}}, path)
    with pytest.raises(BadWeightError, match=str(path)) as caught:
        ImagingQuality(weights_dir=tmp_path).load()
    assert caught.value.kind == {"empty": "empty", "truncated": "truncated"}.get(kind, "mismatch")


def test_ten_class_checkpoint_does_not_fit(tmp_path):
    """MUSIQ's AVA checkpoint has a 10-class head: the shapes do not fit VBench's one-score MUSIQ."""
    state = stand_in_state(1)
    state["head.weight"], state["head.bias"] = torch.zeros(10, 384), torch.zeros(10)
    torch.save(state, tmp_path / WEIGHT_FILE)
    with pytest.raises(BadWeightError, match=r"MUSIQ state_dict does not fit.*head") as caught:
        load_musiq(tmp_path / WEIGHT_FILE)
    assert caught.value.kind == "mismatch"


def test_missing_library_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyiqa.archs.musiq_arch", None)
    with pytest.raises(MissingDependencyError, match=r"lipbench\[vbench\]"):
        ImagingQuality(weights_dir=tmp_path).check_available()


def test_registered_metric_and_weight_file():
    metric = metrics.create("imaging_quality")
    assert isinstance(metric, ImagingQuality)
    assert [o.key for o in metric.outputs] == [KEY]
    assert metric.outputs[0].higher_is_better is True
    assert not ImagingQuality.needs_reference and ImagingQuality.valid_under_cross_audio()
    assert [o.key for o in ImagingQuality.outputs_for(audio="cross")] == [f"{KEY}+cross_audio"]
    entry = WEIGHTS[WEIGHT_FILE]
    assert entry.large and entry.loader.endswith("imaging:load_musiq") and entry.stand_in.endswith(":write_stand_in")


def test_eval_scores_videos_alone_and_names_bad_files(weights_dir, tmp_path, capsys):
    """`lipbench eval --fake --metrics imaging_quality`: each decoded video gets its value
    (the value of its frames as decoded), a text file named .mp4 fails naming itself."""
    from lipbench import io
    from lipbench.cli import main

    fake = tmp_path / "fake"
    fake.mkdir()
    frames = imaging_inputs()["small"][:2]
    io.write_video(fake / "good.mkv", frames, 25.0)
    (fake / "text.mp4").write_text("not a video\n")
    out = tmp_path / "scores.json"
    argv = ["eval", "--fake", str(fake), "--metrics", "imaging_quality", "--weights-dir", str(weights_dir)]
    assert main([*argv, "--out", str(out)]) == 1, capsys.readouterr().err
    model = json.loads(out.read_text())["models"]["fake"]
    clips = model["clips"]
    decoded = io.read_video(fake / "good.mkv")[0]
    expected = ImagingQuality(weights_dir=weights_dir).compute(ClipContext("good", Video(decoded, 25.0)))[KEY]
    assert clips["good"][KEY] == pytest.approx(expected, abs=1e-6)
    assert KEY not in clips["text"] and "text.mp4: cannot be opened" in model["metrics"][KEY]["failed"]["text"]
