"""CSIM against numbers from the paper's own script (eval_metrics eval/eval_csim.py run
on its own iresnet100 code with the same seeded random weights on the same frames;
see tests/fixtures/csim/README.md), plus the checkpoint's layout and loading errors.

The helpers here (weights, frames) are also what tests/fixtures/csim/make_fixtures.py
feeds the upstream script, so both sides see identical inputs.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lipbench import io
from lipbench.faces.arcface import iresnet100, load_iresnet100
from lipbench.metrics.base import Alignment, ClipContext, Video
from lipbench.metrics.csim import CSIM, WEIGHT_FILE, csim_per_frame
from lipbench.weights import MissingWeightError

FIXTURES = Path(__file__).parent / "fixtures" / "csim"
WEIGHT_SEED = 20240611
HDTF_CLIP = "RD_Radio33_000"


def seeded_iresnet100_state(seed: int = WEIGHT_SEED) -> dict:
    """Random iresnet100 weights drawn with NumPy's PCG64 (the same numbers on every
    machine and torch version), scaled so activations stay finite through 49
    residual blocks and embeddings of different images differ."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, template in iresnet100().state_dict().items():
        shape, leaf = tuple(template.shape), key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[key] = torch.tensor(0)
            continue
        if template.dim() in (2, 4):  # conv and fc weights: unit gain on average
            values = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        elif leaf == "running_var":
            values = rng.uniform(0.5, 2.0, shape)
        elif leaf in ("running_mean", "bias"):  # small: large offsets make all embeddings alike
            values = rng.normal(0.0, 0.01, shape)
        elif key.endswith(("prelu.weight", "bn3.weight")):  # small residual branches
            values = rng.uniform(0.1, 0.3, shape)
        else:  # BatchNorm scales
            values = rng.uniform(0.5, 1.5, shape)
        state[key] = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return state


def _smooth_image(rng, height: int, width: int) -> np.ndarray:
    """Blocky random colours box-blurred, in integer arithmetic (exact everywhere)."""
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3)).repeat(8, 0).repeat(8, 1)
    padded = np.pad(coarse, ((4, 4), (4, 4), (0, 0)), mode="edge").astype(np.int64)
    total = np.zeros((height, width, 3), np.int64)
    for dy in range(9):
        for dx in range(9):
            total += padded[dy : dy + height, dx : dx + width]
    return (total // 81).astype(np.uint8)


def synthetic_clip(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A 5-frame 120x136 reference and a 4-frame 150x150 "generated" video: another
    size and one frame shorter, as real outputs are; frame t of the generated video
    is the reference's frame t stretched to 150x150 plus noise growing with t."""
    rng = np.random.default_rng(seed)
    reference = np.stack([_smooth_image(rng, 120, 136) for _ in range(5)])
    rows, cols = np.arange(150) * 120 // 150, np.arange(150) * 136 // 150  # nearest neighbour
    generated = []
    for t, noise in enumerate((2, 12, 40, 90)):
        frame = reference[t][rows][:, cols].astype(np.int64) + rng.integers(-noise, noise + 1, (150, 150, 3))
        generated.append(np.clip(frame, 0, 255).astype(np.uint8))
    return reference, np.stack(generated)


def hdtf_clip(samples: Path) -> tuple[np.ndarray, np.ndarray]:
    """First 5 reference and first 4 generated frames of one shared HDTF pair."""
    reference, _ = io.read_video(samples / "real" / f"{HDTF_CLIP}_cfr25.mp4", max_frames=5)
    generated, _ = io.read_video(samples / "fake" / f"{HDTF_CLIP}_synced.mp4", max_frames=4)
    return reference, generated


@pytest.fixture(scope="session")
def seeded_state() -> dict:
    return seeded_iresnet100_state()


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory, seeded_state) -> Path:
    folder = tmp_path_factory.mktemp("arcface_weights")
    torch.save(seeded_state, folder / WEIGHT_FILE)
    return folder


@pytest.fixture(scope="session")
def metric(weights_dir) -> CSIM:
    # batch_size 3 splits the 8 images unevenly (upstream ran them in one batch):
    # the numbers must not depend on batching.
    return CSIM(weights_dir=weights_dir, batch_size=3)


def _upstream(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_module_tree_is_upstreams():
    """Same keys, in the same order, with the same shapes as arcface_torch's iresnet100
    (list written by make_fixtures.py from the upstream module)."""
    upstream = _upstream("iresnet100_state_dict")
    ours = {k: list(v.shape) for k, v in iresnet100().state_dict().items()}
    assert list(ours) == list(upstream)
    assert ours == upstream
    assert sum(int(np.prod(s)) for s in ours.values()) == 65_225_946


def test_strict_load_and_float32(weights_dir, seeded_state, tmp_path):
    state = seeded_state
    net = load_iresnet100(weights_dir / WEIGHT_FILE)
    assert not net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
    # a half-precision file with DataParallel prefixes loads too, upcast to float32
    half = {f"module.{k}": (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    torch.save(half, tmp_path / "half.pth")
    net = load_iresnet100(tmp_path / "half.pth")
    assert net.conv1.weight.dtype == torch.float32
    assert torch.equal(net.conv1.weight, state["conv1.weight"].half().float())


@pytest.mark.parametrize("damage", ["missing", "unexpected", "shape", "not_a_dict", "garbage"])
def test_wrong_files_are_named(tmp_path, damage):
    path = tmp_path / f"{damage}.pth"
    if damage == "garbage":
        path.write_bytes(b"<html>not a checkpoint</html>")
    else:
        # zeros expanded from one element: real shapes in a file of a few kilobytes
        state = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in iresnet100().state_dict().items()}
        if damage == "missing":
            del state["layer3.29.bn3.weight"]
        elif damage == "unexpected":
            state["head.weight"] = torch.zeros(3)
        elif damage == "shape":
            state["fc.weight"] = torch.zeros(()).expand(512, 512)
        else:
            state = list(state.values())
        torch.save(state, path)
    with pytest.raises(ValueError, match=damage + r"\.pth") as error:
        load_iresnet100(path)
    expected = {
        "missing": "layer3.29.bn3.weight",
        "unexpected": "head.weight",
        "shape": "size mismatch for fc.weight",
        "not_a_dict": "list",
        "garbage": "cannot be read",
    }[damage]
    assert expected in str(error.value)


def test_missing_weights_say_which_file(tmp_path, monkeypatch):
    monkeypatch.delenv("LIPBENCH_WEIGHTS", raising=False)
    metric = CSIM(weights_dir=tmp_path)
    assert metric.weight_files() == (WEIGHT_FILE,)
    assert metric.outputs[0].key == "csim@arcface112" and metric.outputs[0].higher_is_better
    with pytest.raises(MissingWeightError, match=WEIGHT_FILE):
        metric.net


def _check_against_upstream(metric, name, reference, generated, monkeypatch):
    """The metric's value, and the per-frame cosines and embeddings it computed on the
    way (recorded, not recomputed: one pass of the big network per test)."""
    expected = _upstream(name)
    seen = []
    original = CSIM.embeddings

    def recording(self, frames):
        seen.append(original(self, frames))
        return seen[-1]

    monkeypatch.setattr(CSIM, "embeddings", recording)
    # the fixtures pair clips of unequal length (compared on the common frames, as
    # eval_csim.py does): below lipbench's default coverage, so the threshold is lowered
    ctx = ClipContext(name, Video(generated, 25.0), Video(reference, 25.0), Alignment(min_coverage=0.5))
    got = metric.compute(ctx)["csim@arcface112"]
    assert abs(got - expected["csim"]) <= 1e-4, (got, expected["csim"])

    ref_feats, gen_feats = seen  # the reference first
    cos = csim_per_frame(ref_feats, gen_feats)
    np.testing.assert_allclose(cos, expected["cosine_per_frame"], rtol=0, atol=1e-4)
    for ours, key in ((ref_feats, "reference_embeddings"), (gen_feats, "generated_embeddings")):
        theirs = np.asarray(expected[key], dtype=np.float32)
        scale = np.linalg.norm(theirs, axis=1, keepdims=True)
        np.testing.assert_allclose(ours.numpy() / scale, theirs / scale, rtol=0, atol=1e-4)
    # another model's video of the same clip reuses the reference's embeddings
    again = ClipContext(name, Video(generated[::-1].copy(), 25.0), ctx.reference, ctx.alignment)
    metric.compute(again)
    assert len(seen) == 3 and seen[2] is not gen_feats
    return cos


def test_synthetic_frames_match_upstream(metric, monkeypatch):
    reference, generated = synthetic_clip()
    cos = _check_against_upstream(metric, "synthetic", reference, generated, monkeypatch)
    # the weights tell images apart: more noise, less similar
    assert cos[0] > cos[-1] + 0.05


def test_hdtf_frames_match_upstream(metric, hdtf_samples, monkeypatch):
    reference, generated = hdtf_clip(hdtf_samples)
    _check_against_upstream(metric, "hdtf", reference, generated, monkeypatch)
