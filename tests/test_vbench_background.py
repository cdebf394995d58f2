"""VBench background consistency (lipbench.metrics.vbench.background) against VBench's own
background_consistency with OpenAI's clip package on the same frames and the same seeded
stand-in weights (fixture made by tests/fixtures/vbench_background/make_fixtures.py),
against open_clip's own loader, and its behaviour."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lipbench.checkpoints import read_torchscript
from lipbench.metrics.base import ClipContext, Video
from lipbench.metrics.vbench import first_and_previous_consistency
from lipbench.weights import BadWeightError, MissingWeightError
from tests.conftest import require_module
from tests.fixtures.vbench_background.make_fixtures import SEED, background_inputs, state_digest

require_module("open_clip", "background_consistency needs open_clip (pip install 'lipbench[vbench]')")

from lipbench.metrics.vbench import background  # noqa: E402
from lipbench.metrics.vbench.background import (  # noqa: E402
    WEIGHT_FILE,
    BackgroundConsistency,
    build_clip,
    check_layout,
    clip_input,
    frame_features,
    load_clip,
)

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "vbench_background" / "vbench_background.json").read_text())
KEY = "background_consistency@clip_vitb32"


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """The seeded stand-in of ViT-B-32.pt the fixture was made with (350 MB, written once, removed after)."""
    folder = tmp_path_factory.mktemp("clip_weights")
    background.write_stand_in(folder / WEIGHT_FILE, SEED)
    yield folder
    (folder / WEIGHT_FILE).unlink()


@pytest.fixture(scope="module")
def metric(weights_dir):
    metric = BackgroundConsistency(weights_dir=weights_dir)
    metric.load()
    return metric


def score(metric, frames, clip_id="clip", source=None) -> float:
    return metric.compute(ClipContext(clip_id, Video(frames, 25.0, source=source)))[KEY]


# ---------------------------------------------------------------- parity: VBench 0.1.5 + clip


def test_stand_in_is_the_one_the_fixture_was_made_with(weights_dir):
    """Same keys, dtypes, shapes and bytes as the archive clip.load read for the fixture;
    OpenAI's layout: the three int64 scalars, float16 matrices, float32 norms and embeddings."""
    state = read_torchscript(weights_dir / WEIGHT_FILE).state_dict()
    assert state_digest(state) == FIXTURE["stand_in"]["state_digest"], "stand-in changed: rerun make_fixtures.py"
    assert {k: int(state[k]) for k in ("input_resolution", "context_length", "vocab_size")} == {
        "input_resolution": 224,
        "context_length": 77,
        "vocab_size": 49408,
    }
    assert state["visual.conv1.weight"].dtype == torch.float16 and state["visual.proj"].dtype == torch.float16
    assert state["visual.ln_pre.weight"].dtype == torch.float32
    assert state["token_embedding.weight"].shape == (49408, 512)  # the text tower is there too
    assert sum(v.numel() for v in state.values()) == 151_277_313 + 3


def test_transform_is_vbench_clip_transform():
    """The tensor encode_image was given in VBench (clip_transform(224) of the 48x64 frames:
    bicubic resize to 224x298, centre crop, normalise): same shape and sums (measured: equal)."""
    for name, frames in background_inputs().items():
        expected = FIXTURE["videos"][name]
        x = clip_input(torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))).double()
        assert list(x.shape) == expected["input_shape"]
        assert float(x.sum()) == pytest.approx(expected["input_sum"], rel=1e-9, abs=1e-6)
        assert float(x.abs().sum()) == pytest.approx(expected["input_abs_sum"], rel=1e-9)


def test_features_and_values_equal_vbench(metric):
    """VBench's background_consistency with clip.load(stand-in, device="cpu") (float32) on
    the same frames. open_clip's encode_image equals clip's up to float32 rounding (measured:
    features within 3.6e-6 of clip's, which reach 3.9; allowed 5e-5), so the per-video value
    (VBench's `video_results`) agrees to 1e-6 (measured: 1.1e-7 and 6e-8; VBench takes the
    cosines in float32, lipbench in float64). The moving video's
    features go through the network two frames at a time; the still one runs the metric
    (one batch, as VBench)."""
    assert FIXTURE["model_dtype"] == "torch.float32"
    inputs, expected = background_inputs(), FIXTURE["videos"]
    video = torch.from_numpy(np.ascontiguousarray(inputs["moving"].transpose(0, 3, 1, 2)))
    features = frame_features(metric.net, video, "cpu", 2)
    reference = torch.tensor(expected["moving"]["features"])
    assert features.shape == reference.shape == (5, 512)
    assert (features - reference).abs().max() < 5e-5
    values = {
        "moving": first_and_previous_consistency(features),  # what compute() returns from these features
        "still": score(metric, inputs["still"], "still"),
    }
    for name, value in values.items():
        assert value == pytest.approx(expected[name]["video_results"], abs=1e-6)
    # VBench's dimension score pools frames over videos: the clips' values weighted by T - 1
    counts = {name: expected[name]["cnt_per_video"] for name in values}
    assert counts == {"moving": 4, "still": 2}
    pooled = sum(values[n] * counts[n] for n in values) / sum(counts.values())
    assert pooled == pytest.approx(FIXTURE["score"], abs=1e-6)
    assert expected["moving"]["video_results"] < 0.99  # the moving square is seen
    assert expected["still"]["video_results"] == pytest.approx(1.0, abs=1e-6)  # identical frames


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch 2.10+ calls TorchScript deprecated
def test_load_clip_is_open_clips_load_openai_model(metric, weights_dir):
    """open_clip.load_openai_model on the file path (precision fp32 on the CPU) builds the
    same network: the same features (lipbench's CPU layout, channels-last, moves rounding only)."""
    import open_clip

    reference = open_clip.load_openai_model(str(weights_dir / WEIGHT_FILE), precision="fp32", device="cpu")
    x = clip_input(torch.from_numpy(background_inputs()["moving"][:1].transpose(0, 3, 1, 2).copy()))
    with torch.inference_mode():
        assert torch.allclose(metric.net.encode_image(x), reference.encode_image(x), atol=1e-5, rtol=0)
    assert metric.net.visual.conv1.weight.dtype == torch.float32  # clip.load on the CPU: model.float()


# ---------------------------------------------------------------- behaviour


def test_a_changed_frame_lowers_the_score(metric):
    still = np.repeat(background_inputs()["moving"][1:2], 3, axis=0)  # identical frames score 1 (parity test)
    changed = still.copy()
    changed[-1] = 255 - changed[-1]  # the last of the three frames inverted
    features = frame_features(metric.net, torch.from_numpy(changed.transpose(0, 3, 1, 2).copy()), "cpu", 16)
    c = torch.nn.functional.cosine_similarity(features[:1].double(), features[2:].double()).clamp(min=0).item()
    assert c < 0.99
    # frame 1 equals frame 0: 1; frame 2: (cos(f1, f2) + cos(f0, f2)) / 2 = c
    assert score(metric, changed) == pytest.approx((1 + c) / 2, abs=1e-6)


def test_batch_size_option(weights_dir):
    assert BackgroundConsistency(weights_dir=weights_dir, batch_size=2).batch_size == 2
    assert BackgroundConsistency(weights_dir=weights_dir).batch_size == 16  # lipbench.defaults on a CPU


def test_bad_frames_name_the_clip(metric):
    frames = background_inputs()["moving"]
    with pytest.raises(ValueError, match=r"clip_7.*uint8 RGB"):
        score(metric, frames.astype(np.float32), "clip_7")
    with pytest.raises(ValueError, match=r"clip_7.*uint8 RGB"):
        score(metric, frames[..., 0], "clip_7")
    with pytest.raises(ValueError, match=r"clip_7.*1 frame"):
        score(metric, frames[:1], "clip_7")


def test_missing_weight_file_is_named(tmp_path):
    metric = BackgroundConsistency(weights_dir=tmp_path)
    with pytest.raises(MissingWeightError, match=WEIGHT_FILE):
        metric.check_available()
    with pytest.raises(MissingWeightError, match=WEIGHT_FILE):
        metric.load()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch 2.10+ calls TorchScript deprecated
def test_bad_weight_files_are_named(tmp_path):
    path = tmp_path / WEIGHT_FILE
    path.write_bytes(b"")
    with pytest.raises(BadWeightError, match=r"ViT-B-32\.pt.*empty"):
        load_clip(path)
    path.write_text("<!DOCTYPE html><html><body>sign in</body></html>")
    with pytest.raises(BadWeightError, match=r"ViT-B-32\.pt.*HTML page"):
        load_clip(path)
    torch.save({"visual.proj": torch.zeros(768, 512)}, path)  # a torch.save'd state_dict, not the archive
    with pytest.raises(BadWeightError, match=r"ViT-B-32\.pt.*not a TorchScript module"):
        load_clip(path)
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), str(path))  # TorchScript, another network
    with pytest.raises(BadWeightError, match=r"ViT-B-32\.pt.*not OpenAI's CLIP ViT-B/32.*missing keys"):
        load_clip(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadWeightError, match=r"ViT-B-32\.pt.*truncated"):
        load_clip(path)
    assert not zipfile.is_zipfile(path)


def test_another_clip_is_refused_by_shape(tmp_path):
    """A CLIP of another size has OpenAI's key names: open_clip would build it; the layout
    check refuses it (e.g. ViT-B/16: a 16x16 patch embedding and 197 positions)."""
    state = build_clip("meta").state_dict()
    check_layout(state, tmp_path / WEIGHT_FILE)  # ViT-B/32's own layout passes
    state["visual.conv1.weight"] = torch.empty(768, 3, 16, 16, device="meta")
    state["visual.positional_embedding"] = torch.empty(197, 768, device="meta")
    with pytest.raises(BadWeightError, match=r"ViT-B-32\.pt.*2 shapes differ.*visual\.conv1\.weight"):
        check_layout(state, tmp_path / WEIGHT_FILE)


def test_declaration():
    assert BackgroundConsistency.name == "background_consistency"
    assert BackgroundConsistency.protocols == ("clip_vitb32",)
    assert [v.name for v in BackgroundConsistency.values] == ["background_consistency"]
    assert BackgroundConsistency.values[0].higher_is_better is True
    assert BackgroundConsistency.valid_under_cross_audio()  # reads the generated video alone
    assert BackgroundConsistency().weight_files() == (WEIGHT_FILE,)
    assert [o.key for o in BackgroundConsistency().outputs] == [KEY]
