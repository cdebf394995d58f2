"""Lip Forcing / OmniAvatar audio features against upstream's code: values, shapes, loading.

The fixtures were made by upstream's own code (OmniAvatar's Wav2VecModel and LipForcing's
encode_audio, under transformers 4.52.3) from the same seeded weights and audio
(tests/fixtures/lipforcing_audio/README.md gives the command)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lipbench.models.lipforcing import audio_features
from lipbench.models.lipforcing.audio_features import AudioEncoder
from tests.helpers import fixture_maker

FIXTURES, make = fixture_maker("lipforcing_audio")


@pytest.fixture(scope="module")
def parity():
    return np.load(FIXTURES / "parity.npz")


@pytest.fixture(scope="module")
def encoder():
    return AudioEncoder.random(make.WEIGHT_SEED, make.tiny_config())


def relative_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    return float(np.abs(ours.numpy() - reference).max() / np.abs(reference).max())


def test_seeds_and_cases_match_fixture(parity):
    assert parity["seeds"].tolist() == [make.WEIGHT_SEED, make.AUDIO_SEED]
    assert parity["n_frames"].tolist() == [n for _, n in make.CASES]


@pytest.mark.parametrize("name,n_frames", make.CASES)
def test_features_equal_upstream(encoder, parity, name, n_frames):
    features = encoder.features(make.seeded_audio(), n_frames)
    assert features.shape == parity[name].shape == (n_frames, 4 * 32)
    assert features.dtype == torch.float32
    # measured: 0.0 for all three cases (torch 2.14.1 CPU, transformers 5.24.0 here vs
    # 4.52.3 for upstream)
    assert relative_error(features, parity[name]) <= 1e-4


def test_normalization_equals_upstream_extractor(parity):
    ours = audio_features.normalize(make.seeded_audio())
    reference = parity["normalized"]
    assert ours.dtype == np.float32
    assert np.abs(ours[:: make.NORM_STRIDE] - reference).max() <= 1e-5 * np.abs(reference).max()
    assert abs(float(ours.mean())) < 1e-4 and abs(float(ours.std()) - 1) < 1e-3


def test_frames_past_the_audio_are_zero_padding(encoder):
    # encoding 41 frames of 33 frames' audio is encoding the audio followed by zeros
    audio = make.seeded_audio()
    padded = np.concatenate([audio_features.normalize(audio), np.zeros(41 * 640 - audio.size, np.float32)])
    with torch.no_grad():
        direct = encoder.encode(torch.from_numpy(padded)[None], 41)[0]
    assert torch.allclose(encoder.features(audio, 41), direct, atol=1e-6)


@pytest.mark.parametrize("n_frames", [1, 7, 25, 33, 45])
def test_shape_for_odd_frame_counts(encoder, n_frames):
    features = encoder.features(make.seeded_audio()[:5000], n_frames)
    assert features.shape == (n_frames, encoder.feature_size) == (n_frames, (2 + 2) * 32)
    assert torch.isfinite(features).all()


def test_blocks_are_last_state_then_all_hidden_states(encoder):
    # upstream concatenates last_hidden_state, then hidden_states (embeddings, layer 1..L),
    # so with a post-norm encoder the first and the last blocks are the same
    features = encoder.features(make.seeded_audio(), 9)
    blocks = features.reshape(9, 4, 32)
    assert torch.equal(blocks[:, 0], blocks[:, -1])
    assert not torch.allclose(blocks[:, 1], blocks[:, 2])


def test_base_960h_architecture_gives_10752_per_frame():
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config()
    assert (config.hidden_size, config.num_hidden_layers) == (768, 12)
    assert audio_features.feature_size(config) == 14 * 768 == 10752
    with torch.device("meta"):  # shapes only, nothing allocated
        encoder = AudioEncoder(Wav2Vec2Model(config))
    out = encoder.encode(torch.empty(1, 9 * 640, device="meta"), 9)
    assert out.shape == (1, 9, 10752)


@pytest.mark.parametrize(
    "audio,n_frames,problem",
    [
        (np.zeros(0, np.float32), 5, "empty"),
        (np.zeros(640, np.float32), 0, "n_frames"),
        (np.zeros((2, 640), np.float32), 5, "mono"),
    ],
)
def test_bad_input_is_a_clear_error(encoder, audio, n_frames, problem):
    with pytest.raises(ValueError, match=problem):
        encoder.features(audio, n_frames)


def test_from_pretrained_reads_a_ctc_checkpoint_folder(encoder, tmp_path):
    # facebook/wav2vec2-base-960h is a Wav2Vec2ForCTC folder: weights under "wav2vec2."
    from transformers import Wav2Vec2ForCTC

    ctc = Wav2Vec2ForCTC(make.tiny_config())
    missing, _ = ctc.load_state_dict({"wav2vec2." + k: v for k, v in encoder.model.state_dict().items()}, strict=False)
    assert all(key.startswith("lm_head") for key in missing)
    ctc.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))
    loaded = AudioEncoder.from_pretrained(tmp_path)
    assert loaded.do_normalize
    audio = make.seeded_audio()
    assert torch.allclose(loaded.features(audio, 20), encoder.features(audio, 20), atol=1e-6)


def test_from_pretrained_needs_a_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        AudioEncoder.from_pretrained(tmp_path)
