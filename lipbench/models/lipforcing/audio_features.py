"""Audio features of Lip Forcing / OmniAvatar: wav2vec2-base-960h states at the video rate.

Upstream (T-64/LipForcing `scripts/inference/_common.py`: `load_wav2vec`, `encode_audio`,
used by `inference_streaming_e2e.py`; its `Wav2VecModel` is OmniAvatar's
`OmniAvatar/models/wav2vec.py`, Omni-Avatar/OmniAvatar commit
1536bf31abaec74364fb7d5883470d5b23ffa7f8) encodes the whole clip at once:

1. 16 kHz mono audio, normalized by `Wav2Vec2FeatureExtractor` (base-960h sets
   do_normalize): (x - mean) / sqrt(var + 1e-7), in float32 (`normalize`).
2. Zero-padded at the end to max(ceil(samples / 640), n_frames) frames of 640 samples
   (16000 // 25); the zeros come after normalization.
3. The CNN feature encoder's output (50 Hz) is resampled linearly, align_corners=True,
   to that frame count *before* the feature projection and the transformer, so every
   transformer position is one video frame.
4. The last hidden state followed by all hidden states (embedding output, then each of
   the layers) are concatenated: (layers + 2) x hidden = 14 x 768 = 10752 per frame for
   base-960h. The last hidden state thus appears twice (first and last block).
5. The first n_frames rows are kept.

Only steps 1-5 are written here; the network is transformers' own `Wav2Vec2Model`
(imported lazily, so this module imports without transformers). Upstream's subclass
differs from `Wav2Vec2Model.forward` only by step 3, which is added here as a forward
hook on the feature encoder. Spec-augment masking is a no-op in eval mode and is left
to transformers.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000  # wav2vec2's rate; upstream loads audio with librosa at this rate
FPS = 25  # OmniAvatar's video rate
UPSTREAM = "T-64/LipForcing scripts/inference/_common.py encode_audio + Omni-Avatar/OmniAvatar@1536bf31 wav2vec.py"
NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


def normalize(audio: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole clip, as Wav2Vec2FeatureExtractor does it."""
    x = np.asarray(audio, dtype=np.float32)  # the extractor casts float64 to float32 first
    return (x - x.mean()) / np.sqrt(x.var() + NORM_EPS)


def feature_size(config) -> int:
    """Values per frame: the last hidden state plus the (layers + 1) hidden states."""
    return (config.num_hidden_layers + 2) * config.hidden_size


def seeded_state_dict(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded values for every entry of `model`'s state dict, drawn in sorted key order.

    Drawn with NumPy (PCG64) rather than taken from transformers' initialization, so the
    same seed gives the same weights under any transformers or torch version. Norm scales
    are kept near 1 and other tensors small, so activations stay in a sane range."""
    from lipbench.random_weights import seeded_state

    def draw(key, shape, rng):
        values = 0.1 * rng.standard_normal(shape)
        return values + 1.0 if key.endswith("norm.weight") else values

    state = model.state_dict()
    return seeded_state(state, np.random.default_rng(seed), draw, keys=sorted(state))


class AudioEncoder:
    """A transformers `Wav2Vec2Model` with OmniAvatar's frame-rate features on top."""

    def __init__(self, model: torch.nn.Module, do_normalize: bool = True):
        self.model = model.float().eval()
        self.do_normalize = do_normalize

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "AudioEncoder":
        """Loads a local HF folder of wav2vec2-base-960h (config.json + weights).

        Eager attention, as upstream's `load_wav2vec`. The folder's Wav2Vec2ForCTC
        weights load into the bare model (the CTC head is unused)."""
        from transformers import Wav2Vec2Model

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory} has no config.json: not a wav2vec2 model folder")
        model = Wav2Vec2Model.from_pretrained(str(directory), local_files_only=True, attn_implementation="eager")
        do_normalize = True  # the extractor's default, and base-960h's setting
        preprocessor = directory / "preprocessor_config.json"
        if preprocessor.is_file():
            do_normalize = bool(json.loads(preprocessor.read_text()).get("do_normalize", True))
        return cls(model, do_normalize)

    @classmethod
    def random(cls, seed: int, config=None) -> "AudioEncoder":
        """Seeded random weights; `config` defaults to the base-960h architecture."""
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        # transformers' defaults are wav2vec2-base's encoder; a copy, as it is changed below
        config = Wav2Vec2Config() if config is None else copy.deepcopy(config)
        config._attn_implementation = "eager"  # as upstream's load_wav2vec
        model = Wav2Vec2Model(config)
        model.load_state_dict(seeded_state_dict(model, seed), strict=True)
        return cls(model)

    @property
    def feature_size(self) -> int:
        return feature_size(self.model.config)

    def encode(self, input_values: torch.Tensor, n_frames: int) -> torch.Tensor:
        """(batch, samples) prepared audio -> (batch, n_frames, feature_size).

        The CNN output is resampled to n_frames by a hook, so transformers' own forward
        runs the projection and the transformer at the video rate."""

        def resample(module, args, output):
            return F.interpolate(output, size=n_frames, mode="linear", align_corners=True)

        hook = self.model.feature_extractor.register_forward_hook(resample)
        try:
            out = self.model(input_values, output_hidden_states=True)
        finally:
            hook.remove()
        return torch.cat([out.last_hidden_state, *out.hidden_states], dim=-1)

    @torch.no_grad()
    def features(self, audio_16k: np.ndarray, n_frames: int, fps: int = FPS) -> torch.Tensor:
        """Mono 16 kHz audio of the whole clip -> (n_frames, feature_size) float32.

        Audio shorter than n_frames is zero-padded; longer audio is encoded whole (the
        transformer attends over all of it) and the first n_frames rows are kept."""
        audio = np.asarray(audio_16k)
        if audio.ndim != 1:
            raise ValueError(f"audio must be mono, one dimension; got shape {audio.shape}")
        if audio.size == 0:
            raise ValueError("audio is empty")
        if n_frames < 1:
            raise ValueError(f"n_frames must be at least 1, got {n_frames}")
        samples_per_frame = int(SAMPLE_RATE // fps)  # upstream: 16000 // 25 = 640
        if samples_per_frame < 1:
            raise ValueError(f"fps {fps} is above the audio rate {SAMPLE_RATE}")
        values = normalize(audio) if self.do_normalize else audio.astype(np.float32)
        total = max(math.ceil(values.size / samples_per_frame), n_frames)
        values = np.pad(values, (0, total * samples_per_frame - values.size))
        device = next(self.model.parameters()).device
        batch = torch.from_numpy(values)[None].to(device)
        return self.encode(batch, total)[0, :n_frames]


def read_folder_file(path) -> object:
    """One file of the wav2vec2 folder, read as `from_pretrained` reads it (for `lipbench
    weights verify`): JSON parsed, safetensors opened; BadWeightError when it cannot be."""
    from lipbench.weights import BadWeightError

    path = Path(path)
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        from safetensors.torch import load_file

        return load_file(str(path))
    except Exception as exc:  # the parsers' own errors, in words
        kind = "JSON" if path.suffix == ".json" else "safetensors"
        raise BadWeightError(path, f"not a readable {kind} file ({type(exc).__name__}: {exc})", "unreadable") from None


# Stand-ins in the folder's real formats (`lipbench weights random`): wav2vec2-base's
# architecture with seeded weights, the extractor's settings of base-960h.
PREPROCESSOR = {
    "do_normalize": True,
    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0.0,
    "return_attention_mask": False,
    "sampling_rate": SAMPLE_RATE,
}


def write_config(path) -> None:
    from transformers import Wav2Vec2Config

    Path(path).write_text(Wav2Vec2Config().to_json_string())


def write_preprocessor(path) -> None:
    Path(path).write_text(json.dumps(PREPROCESSOR, indent=2))


def write_random_weights(path, seed: int) -> None:
    from safetensors.torch import save_file
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    with torch.device("meta"):
        model = Wav2Vec2Model(Wav2Vec2Config())
    state = seeded_state_dict(model.to_empty(device="cpu"), seed)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
