"""motion_smoothness@amt_s: VBench's motion smoothness with lipbench's AMT-S, against
VBench's own code on the same frames and stand-in weights (fixture made by
tests/fixtures/vbench_motion/make_fixtures.py), and how the score behaves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lipbench import metrics
from lipbench.checkpoints import for_inference, load_into
from lipbench.metrics.base import ClipContext, Video
from lipbench.metrics.vbench import amt, motion
from lipbench.random_weights import write_random_weights
from lipbench.weights import WEIGHTS, BadWeightError
from tests.fixtures.vbench_motion.make_fixtures import (
    STAND_IN_SEED,
    frames_digest,
    motion_inputs,
    state_digest,
    video_frames,
)

FIXTURES = Path(__file__).parent / "fixtures" / "vbench_motion"
VBENCH = json.loads((FIXTURES / "vbench_motion.json").read_text())
KEY = "motion_smoothness@amt_s"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """The seeded stand-in amt-s.pth VBench ran with, written as `lipbench weights random` writes it."""
    folder = tmp_path_factory.mktemp("amt_weights")
    write_random_weights(folder, STAND_IN_SEED, names=["amt-s.pth"])
    return folder


@pytest.fixture(scope="module")
def net(weights_dir):
    """As the metric loads it: channels-last convolutions on the CPU (for_inference)."""
    return motion.load_amt_s(weights_dir / "amt-s.pth")


def padded_even_frames(frames: np.ndarray) -> torch.Tensor:
    """The network's input as VBench makes it: even frames / 255, replicate-padded to 16."""
    left, right, top, bottom = motion.padding(*frames.shape[1:3])
    x = torch.from_numpy(np.ascontiguousarray(frames[0::2].transpose(0, 3, 1, 2))) / 255.0
    return torch.nn.functional.pad(x, (left, right, top, bottom), mode="replicate")


def linear_interpolator() -> torch.nn.Module:
    """AMT-S with the stand-in's weights but every flow, mask, residual and correction
    output layer zero: the flows stay 0, the masks 1/2, so it predicts the average of
    its two frames - what a perfect interpolator predicts for a static video or a fade."""
    state = motion.stand_in_state(3)
    for key in state:
        if ".convblock.2." in key or ".flow_head.2." in key or key.startswith("comb_block.2."):
            state[key] = torch.zeros_like(state[key])
    return for_inference(load_into(amt.AMTS(), state, "interpolator", "AMT-S", "AMT-S"))


def score(frames, metric, clip_id="clip") -> float:
    return metric.compute(ClipContext(clip_id, Video(frames, 25.0)))[KEY]


# ---------------------------------------------------------------- parity with VBench


def test_fixture_inputs_and_weights_are_what_vbench_ran():
    """The regenerated frames and stand-in weights are byte-identical to VBench's inputs."""
    assert state_digest(motion.stand_in_state(STAND_IN_SEED)) == VBENCH["stand_in_digest"], "rerun make_fixtures.py"
    for name, frames in {**motion_inputs(), **motion_inputs(small=True)}.items():
        assert frames_digest(frames) == VBENCH["videos"][name]["frames_digest"], f"{name}: rerun make_fixtures.py"


def test_network_equals_vbench_amt_s_on_one_pair(weights_dir, net):
    """VBench's raw imgt_pred (float32, padded 128x144, every 2nd row and column) for the
    first pair of video b. Measured: the plain network (contiguous, one pair) is equal to
    VBench's bit for bit (same operations in the same order); the metric's channels-last
    network 7e-7 apart at most (oneDNN's other convolution kernels: float32 rounding
    through ~60 layers). 1e-5 (0.003 grey levels) leaves room for other CPUs' kernels."""
    reference = np.load(FIXTURES / "prediction_b0.npy")
    x = padded_even_frames(motion_inputs()["b"])
    assert list(x.shape[-2:]) == VBENCH["videos"]["b"]["padded"]
    plain = load_into(amt.AMTS(), torch.load(weights_dir / "amt-s.pth")["state_dict"], "amt-s.pth", "AMT-S", "AMT-S")
    with torch.inference_mode():
        exact = plain.eval()(x[:1], x[1:2], 0.5)[0, :, ::2, ::2].numpy()
        fast = net(x[:1], x[1:2], 0.5)[0, :, ::2, ::2].numpy()
    assert np.abs(exact - reference).max() <= 1e-6
    assert np.abs(fast - reference).max() <= 1e-5
    assert reference.std() > 0.1 and 0.0 < reference.mean() < 1.0  # not saturated: a real comparison


def test_predictions_equal_vbench_for_every_pair(net):
    """Every pair of every video in one batch: the statistics of the padded predictions
    (VBench: one pair per call) agree to float32 rounding (measured <= 6.4e-8)."""
    for name, frames in motion_inputs().items():
        x = padded_even_frames(frames)
        with torch.inference_mode():
            predicted = net(x[:-1], x[1:], 0.5).double()
        expected = VBENCH["videos"][name]["predictions"]
        assert len(predicted) == len(expected)
        for p, e in zip(predicted, expected):
            assert float(p.mean()) == pytest.approx(e["mean"], abs=1e-6)
            assert float(p.std()) == pytest.approx(e["std"], abs=1e-6)
            assert float(p.min()) == pytest.approx(e["min"], abs=1e-5)
            assert float(p.max()) == pytest.approx(e["max"], abs=1e-5)


@pytest.mark.parametrize("batch_size", [1, 16])
def test_scores_equal_vbench(weights_dir, batch_size):
    """VBench's motion_score of each video (5 frames 120x136, 6 frames 115x130 whose last
    odd frame goes uncompared, 3 frames 128x160), through the metric. Measured: 0 to
    1.2e-7 apart. The predictions match to ~1e-6 (of 1); cast to uint8 by truncation, a
    pixel whose value lies that close to a whole grey level may land one level off, which
    moves the score by 1 / (255 x the ~5e4 values per pair) each: 1e-5 allows a few
    hundred such pixels."""
    metric = motion.MotionSmoothness(weights_dir=weights_dir, batch_size=batch_size)
    for name, frames in motion_inputs().items():
        expected = VBENCH["videos"][name]
        assert score(frames, metric) == pytest.approx(expected["score"], abs=1e-5)
        middles = motion.interpolate_middles(metric.net, frames[0::2], "cpu", batch_size)
        assert len(middles) == len(expected["per_pair_diff"]) == (len(frames) + 1) // 2 - 1
        for odd, middle, diff in zip(frames[1::2], middles, expected["per_pair_diff"]):
            assert np.abs(odd.astype(int) - middle).mean() == pytest.approx(diff, abs=2e-3)


def test_frames_too_small_for_amt_s_are_refused(net, weights_dir):
    """100x120 frames (padded 112x128): AMT-S's coarsest correlation level is one pixel
    high, its lookup divides by zero and every prediction is NaN - VBench scored the
    video ~0.5 from NaN cast to uint8. lipbench says why instead."""
    frames = motion_inputs(small=True)["small"]
    assert 0.4 < VBENCH["videos"]["small"]["score"] < 0.6
    assert np.isnan(VBENCH["videos"]["small"]["predictions"][0]["mean"])
    x = padded_even_frames(frames)
    with torch.inference_mode():
        assert torch.isnan(net(x[:1], x[1:2], 0.5)).all()
    with pytest.raises(ValueError, match=r"small\.mp4.*100x120 pixels.*more than 112"):
        motion.MotionSmoothness(weights_dir=weights_dir).compute(
            ClipContext("small", Video(frames, 25.0, source=Path("small.mp4")))
        )


# ---------------------------------------------------------------- behaviour


def test_static_and_fading_videos_score_near_1_noise_lower(weights_dir):
    """With an interpolator that averages its two frames (the ideal one for these videos),
    a still textured video (115x130: padded unevenly) and a linear fade score ~1 (the
    uint8 truncation of the prediction loses < 0.4 grey levels); odd frames of noise
    score far lower, and so do odd frames swapped with their neighbours."""
    metric = motion.MotionSmoothness(weights_dir=weights_dir, batch_size=2)
    metric._net = linear_interpolator()
    frames = video_frames(7, 115, 130, 3)
    still = np.repeat(frames[:1], 7, axis=0)
    assert score(still, metric) > 0.998
    a, b = frames[0].astype(float), frames[6].astype(float)
    fade = np.stack([np.round(a + (b - a) * t / 6) for t in range(7)]).astype(np.uint8)
    assert score(fade, metric) > 0.998
    noisy = fade.copy()
    noisy[1::2] = np.random.default_rng(0).integers(0, 256, noisy[1::2].shape)
    assert score(noisy, metric) < 0.8
    shuffled = fade[[0, 2, 1, 3, 4, 6, 5]]  # the same frames out of order
    assert score(shuffled, metric) < score(fade, metric) - 0.005


def test_registry_stand_in_and_keys(weights_dir):
    entry = WEIGHTS["amt-s.pth"]
    assert entry.loader == "lipbench.metrics.vbench.motion:load_amt_s"
    metric = metrics.create("motion_smoothness", weights_dir=weights_dir)
    assert isinstance(metric, motion.MotionSmoothness) and metric.weight_files() == ("amt-s.pth",)
    assert [o.key for o in metric.outputs] == [KEY] and metric.outputs[0].higher_is_better
    assert not metric.needs_reference and metric.valid_under_cross_audio()
    metric.load()
    first = metric.net
    metric.load()
    assert metric.net is first  # loaded once
    checkpoint = torch.load(weights_dir / "amt-s.pth")
    assert list(checkpoint) == ["state_dict"] and len(checkpoint["state_dict"]) == 213


def test_bad_weight_files_are_named(tmp_path):
    text = tmp_path / "text" / "amt-s.pth"
    text.parent.mkdir()
    text.write_text("<html>not found</html>")
    with pytest.raises(BadWeightError, match=r"text/amt-s\.pth.*HTML"):
        motion.MotionSmoothness(weights_dir=text.parent).load()

    bare = tmp_path / "bare.pth"  # the weights without the {'state_dict': ...} wrapper
    torch.save(motion.stand_in_state(0), bare)
    with pytest.raises(BadWeightError, match=r"bare\.pth.*state_dict"):
        motion.load_amt_s(bare)

    other = tmp_path / "other.pth"  # another network's keys
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, other)
    with pytest.raises(BadWeightError, match=r"other\.pth.*not AMT-S's weights.*missing keys"):
        motion.load_amt_s(other)

    wrong = tmp_path / "wrong.pth"  # AMT-S's keys, one shape changed
    state = motion.stand_in_state(0)
    state["comb_block.0.weight"] = torch.zeros(18, 9, 5, 5)
    torch.save({"state_dict": state}, wrong)
    with pytest.raises(BadWeightError, match=r"wrong\.pth.*AMT-S state_dict does not fit"):
        motion.load_amt_s(wrong)


def test_too_few_frames_and_wrong_frames_name_the_clip(weights_dir):
    metric = motion.MotionSmoothness(weights_dir=weights_dir)
    frames = video_frames(3, 128, 128, 1)
    with pytest.raises(ValueError, match=r"clip7 \(motion_smoothness@amt_s\).*2 frame\(s\).*at least 3"):
        score(frames[:2], metric, "clip7")
    with pytest.raises(ValueError, match=r"clip7 \(motion_smoothness@amt_s\).*uint8 RGB"):
        score(frames.astype(np.float32), metric, "clip7")
    with pytest.raises(ValueError, match=r"clip7.*uint8 RGB"):
        score(frames[..., :2], metric, "clip7")
