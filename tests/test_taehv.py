"""TAEHV (taew2_1) against upstream madebyollin/taehv: outputs, streaming, layout, loading.

The fixtures were made by upstream's own code from the same seeded weights and inputs
(tests/fixtures/taehv/README.md gives the command)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from lipbench.models.lipforcing import taehv
from lipbench.weights import BadWeightError
from tests.helpers import fixture_maker

FIXTURES, make = fixture_maker("taehv")


@pytest.fixture(scope="module")
def parity():
    return np.load(FIXTURES / "parity.npz")


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("taehv") / taehv.CHECKPOINT
    torch.save(taehv.random_state_dict(make.WEIGHT_SEED), path)
    return path


@pytest.fixture(scope="module")
def net(weight_file):
    return taehv.load_taehv(weight_file)


def relative_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    return float(np.abs(ours.numpy() - reference).max() / np.abs(reference).max())


def test_seeds_match_fixture(parity):
    assert parity["seeds"].tolist() == [make.WEIGHT_SEED, make.LATENT_SEED, make.FRAME_SEED]


def test_decode_equals_upstream(net, parity):
    frames = net.decode_video(make.seeded_latents())
    assert frames.shape == parity["decoded"].shape == (1, 4 * 5 - 3, 3, 32, 32)
    assert frames.dtype == torch.float32
    # measured: 0.0 (torch 2.14.1 CPU)
    assert relative_error(frames, parity["decoded"]) <= 1e-4


def test_encode_equals_upstream(net, parity):
    latents = net.encode_video(make.seeded_frames())
    assert latents.shape == parity["encoded"].shape
    assert relative_error(latents, parity["encoded"]) <= 1e-4


@pytest.mark.parametrize("sizes", [(1, 2, 2), (1, 1, 1, 1, 1), (2, 3), (5,)])
def test_streaming_equals_whole_clip(net, sizes):
    latents = make.seeded_latents()
    whole = net.decode_video(latents)
    bounds = np.cumsum((0,) + sizes)
    chunks = [latents[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    parts = list(taehv.stream_decode(net, chunks))
    # the first chunk loses the 3 lead-in frames, every later latent frame gives 4
    assert [p.shape[1] for p in parts] == [4 * sizes[0] - 3] + [4 * k for k in sizes[1:]]
    streamed = torch.cat(parts, dim=1)
    assert streamed.shape == whole.shape
    # convolutions over fewer frames at once may round differently: float noise only
    assert (streamed - whole).abs().max() <= 1e-5


def test_streaming_reset_starts_a_new_clip(net):
    latents = make.seeded_latents()
    decoder = net.streaming_decoder()
    first = decoder.push(latents[:, :2])
    decoder.push(latents[:, 2:])
    decoder.reset()
    assert torch.equal(decoder.push(latents[:, :2]), first)


def test_state_dict_layout_equals_upstream():
    layout = json.loads((FIXTURES / "state_dict.json").read_text())
    net = taehv.TAEHV()
    ours = [[key, list(value.shape)] for key, value in net.state_dict().items()]
    assert ours == layout["state_dict"]
    assert sum(p.numel() for p in net.parameters()) == layout["parameters"]


def test_tgrow_rows_fitted_as_upstream(tmp_path):
    """A file whose stride-1 TGrow has a stride-2 weight loads with its last rows."""
    state = taehv.random_state_dict(make.WEIGHT_SEED)
    key = "decoder.7.conv.weight"  # the first decoder stage: no time upscaling in taew2_1
    wide = torch.cat((torch.zeros_like(state[key]), state[key]), dim=0)
    path = tmp_path / taehv.CHECKPOINT
    torch.save({**state, key: wide}, path)
    assert torch.equal(taehv.load_taehv(path).state_dict()[key], state[key])


def test_other_network_file_fails_naming_it(tmp_path):
    path = tmp_path / taehv.CHECKPOINT
    torch.save(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 3, 1)).state_dict(), path)
    with pytest.raises(BadWeightError) as info:
        taehv.load_taehv(path)
    assert info.value.kind == "mismatch" and str(path) in str(info.value)


def test_wrong_shapes_fail_naming_the_file(tmp_path):
    state = taehv.random_state_dict(make.WEIGHT_SEED)
    state["decoder.1.weight"] = torch.zeros(256, 48, 3, 3)  # e.g. taew2_2's 48 latent channels
    path = tmp_path / taehv.CHECKPOINT
    torch.save(state, path)
    with pytest.raises(BadWeightError) as info:
        taehv.load_taehv(path)
    assert info.value.kind == "mismatch" and str(path) in str(info.value)


def test_truncated_file_fails_naming_it(weight_file, tmp_path):
    path = tmp_path / taehv.CHECKPOINT
    path.write_bytes(weight_file.read_bytes()[: weight_file.stat().st_size // 2])
    with pytest.raises(BadWeightError) as info:
        taehv.load_taehv(path)
    assert info.value.kind == "truncated" and str(path) in str(info.value)


def test_bad_input_shape_is_refused(net):
    with pytest.raises(ValueError, match="latents must be"):
        net.decode_video(torch.zeros(1, 2, 8, 4, 4))
