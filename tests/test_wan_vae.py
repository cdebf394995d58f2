"""The Wan2.1 VAE against upstream Wan-Video/Wan2.1: outputs, streaming, layout, loading.

The fixtures were made by upstream's own code from the same seeded weights and inputs
at a tiny width (tests/fixtures/wan_vae/README.md gives the command); the full-size
layout is checked on the meta device, so no test builds the 127M-parameter network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lipbench.models.lipforcing import taehv, wan_vae
from lipbench.weights import BadWeightError
from tests.helpers import fixture_maker

FIXTURES, make = fixture_maker("wan_vae")


@pytest.fixture(scope="module")
def parity():
    return np.load(FIXTURES / "parity.npz")


@pytest.fixture(scope="module")
def layout():
    return json.loads((FIXTURES / "state_dict.json").read_text())


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory):
    """A file in the published format (a plain state_dict), at the tiny width."""
    path = tmp_path_factory.mktemp("wan_vae") / wan_vae.CHECKPOINT
    torch.save(wan_vae.random_state_dict(make.WEIGHT_SEED, **make.TINY), path)
    return path


@pytest.fixture(scope="module")
def net(weight_file):
    return wan_vae.load_wan_vae(weight_file, **make.TINY)


def relative_error(ours: torch.Tensor, reference) -> float:
    """max |ours - reference| / max |reference|."""
    reference = torch.as_tensor(reference)
    return float((ours - reference).abs().max() / reference.abs().max())


def seeded(shape, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32))


def test_seeds_match_fixture(parity):
    assert parity["seeds"].tolist() == [make.WEIGHT_SEED, make.LATENT_SEED, make.VIDEO_SEED]


def test_encode_equals_upstream(net, parity):
    latents = net.encode(make.seeded_video())
    assert latents.shape == parity["encoded"].shape == (1, 16, 4, 4, 4)
    assert latents.dtype == torch.float32
    # measured: 0.0 for both (torch 2.14.1 CPU; the same operations in the same order)
    assert relative_error(latents, parity["encoded"]) <= 1e-4
    assert relative_error(net.encode_mu(make.seeded_video()), parity["mu"]) <= 1e-4


def test_decode_equals_upstream(net, parity):
    frames = net.decode(make.seeded_latents())
    assert frames.shape == parity["decoded"].shape == (1, 3, 1 + 4 * 3, 32, 32)
    # measured: 0.0 (torch 2.14.1 CPU)
    assert relative_error(frames, parity["decoded"]) <= 1e-4
    # the seeded weights keep the output off the clamp, so the comparison sees every pixel
    assert frames.abs().max() < 1 and frames.std() > 0.05


def test_latent_statistics_equal_upstream(net, layout):
    # upstream's wrapper keeps 1 / std and multiplies by it: compared as such
    assert torch.equal(net.latent_mean.flatten(), torch.tensor(layout["latent_mean"]))
    assert torch.equal(net.latent_inv_std.flatten(), 1.0 / torch.tensor(layout["latent_std"]))


# streaming clips at 16x16 (latents 2x2): every cache path, at a quarter of the cost
@pytest.fixture(scope="module")
def clip(net):
    video = seeded((1, 3, 33, 16, 16), 5)
    return video, net.encode(video)


@pytest.fixture(scope="module")
def latent_clip(net):
    latents = torch.from_numpy(np.random.default_rng(7).standard_normal((1, 16, 9, 2, 2)).astype(np.float32))
    return latents, net.decode(latents)


@pytest.mark.parametrize("sizes", [(9, 12, 12), (1, 4, 28)])
def test_streaming_encoder_equals_whole_clip(net, clip, sizes):
    video, whole = clip
    encoder = net.streaming_encoder()
    bounds = np.cumsum((0,) + sizes)
    parts = [encoder.push(video[:, :, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    assert [p.shape[2] for p in parts] == [1 + (sizes[0] - 1) // 4] + [n // 4 for n in sizes[1:]]
    # chunks run in one pass, `encode` in upstream's groups of 4: float rounding only
    # (measured 3.9e-7 for 9, 12, 12 and 2.0e-7 for 1, 4, 28; 7e-16 in float64)
    assert relative_error(torch.cat(parts, dim=2), whole) <= 1e-5


@pytest.mark.parametrize("sizes", [(3, 3, 3), (1, 2, 6)])
def test_streaming_decoder_equals_whole_clip(net, latent_clip, sizes):
    latents, whole = latent_clip
    decoder = net.streaming_decoder()
    bounds = np.cumsum((0,) + sizes)
    parts = [decoder.push(latents[:, :, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    # the first latent frame makes one frame, every later one four
    assert [p.shape[2] for p in parts] == [1 + 4 * (sizes[0] - 1)] + [4 * n for n in sizes[1:]]
    # `decode` runs one latent at a time as upstream: float rounding only (measured 1.2e-6
    # for 3, 3, 3 and 1.1e-6 for 1, 2, 6; 0 in float64)
    assert relative_error(torch.cat(parts, dim=2), whole) <= 1e-5


def test_streaming_reset_starts_a_new_clip(net):
    video = seeded((1, 3, 9, 16, 16), 6)
    encoder = net.streaming_encoder()
    first = encoder.push(video)
    encoder.push(seeded((1, 3, 4, 16, 16), 8))
    encoder.reset()
    assert torch.equal(encoder.push(video), first)


def test_chunk_sizes_are_checked(net):
    encoder = net.streaming_encoder()
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        encoder.push(seeded((1, 3, 8, 16, 16), 9))
    encoder.push(seeded((1, 3, 5, 16, 16), 9))
    with pytest.raises(ValueError, match="4k"):
        encoder.push(seeded((1, 3, 5, 16, 16), 9))
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        net.encode(seeded((1, 3, 4, 16, 16), 9))
    with pytest.raises(ValueError, match="latents must be"):
        net.decode(torch.zeros(1, 4, 2, 4, 4))


def test_state_dict_layout_equals_upstream(layout):
    assert layout["config"] == {
        key: list(value) if isinstance(value, tuple) else value for key, value in wan_vae.CONFIG.items()
    }
    with torch.device("meta"):
        net = wan_vae.WanVAE()
    ours = [[key, list(value.shape)] for key, value in net.state_dict().items()]
    assert ours == layout["state_dict"]
    assert sum(p.numel() for p in net.parameters()) == layout["parameters"] == 126_892_531


def test_random_state_dict_is_seeded():
    first = wan_vae.random_state_dict(3, **make.TINY)
    again = wan_vae.random_state_dict(3, **make.TINY)
    other = wan_vae.random_state_dict(4, **make.TINY)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["encoder.conv1.weight"], other["encoder.conv1.weight"])


def test_published_format_loads_strictly(weight_file):
    state = torch.load(weight_file, weights_only=True)
    net = wan_vae.load_wan_vae(weight_file, dtype=torch.float64, **make.TINY)
    loaded = net.state_dict()
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k].double()) for k in state)
    assert net.latent_mean.dtype == torch.float64 and not net.training


def test_taehv_file_fails_naming_it(tmp_path):
    with torch.device("meta"):
        keys = taehv.TAEHV().state_dict()
    path = tmp_path / wan_vae.CHECKPOINT
    torch.save({key: torch.zeros(value.shape) for key, value in keys.items()}, path)  # taew2_1.pth's layout
    with pytest.raises(BadWeightError) as info:
        wan_vae.load_wan_vae(path)
    assert info.value.kind == "mismatch" and str(path) in str(info.value)


def test_wrong_size_fails_naming_the_file(weight_file):
    """The tiny file read as the published size: the keys agree, the shapes do not."""
    with pytest.raises(BadWeightError) as info:
        wan_vae.load_wan_vae(weight_file)
    assert info.value.kind == "mismatch" and str(weight_file) in str(info.value)


def test_truncated_file_fails_naming_it(weight_file, tmp_path):
    path = tmp_path / wan_vae.CHECKPOINT
    path.write_bytes(weight_file.read_bytes()[: weight_file.stat().st_size // 2])
    with pytest.raises(BadWeightError) as info:
        wan_vae.load_wan_vae(path)
    assert info.value.kind == "truncated" and str(path) in str(info.value)
