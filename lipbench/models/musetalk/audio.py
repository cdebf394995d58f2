"""MuseTalk's audio features: whisper-tiny encoder states cut into one window per frame.

Upstream (`musetalk/utils/audio_processor.py`, AudioProcessor at 0a89dec):

1. `get_audio_feature`: 16 kHz mono audio (librosa.load, sr=16000) split into 30 s
   segments; each goes through `WhisperFeatureExtractor` (log-mel, 80 bins, padded to
   3000 frames = 30 s), cast to the working dtype in realtime mode.
2. `get_whisper_chunk`: each segment's mel through `whisper.encoder(...,
   output_hidden_states=True)`; all hidden states (embedding output + each layer: 5 for
   whisper-tiny) stacked on a new axis 2 -> (1, 1500, 5, 384) per segment, segments
   concatenated in time (50 Hz), cut to floor(seconds * 50) rows, padded with
   2 * left = 4 zero rows before and 2 * 3 * right = 12 after (ceil(50 / fps) = 2
   rows per frame at 25 fps).
3. Frame i (of floor(seconds * fps)) takes padded rows [floor(i * 50 / fps),
   + 10): original rows [2i - 4, 2i + 6) at 25 fps, flattened time-major to
   (10 * 5, 384) = 50 tokens of 384.

lipbench's request fixes the frame count (the reference's); when it exceeds upstream's
floor(seconds * fps), the windows past the audio read zero rows (more zero padding on
the right); upstream's count and windows are unchanged otherwise (`frame_windows`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

SAMPLE_RATE = 16000
AUDIO_FPS = 50  # whisper encoder rows per second
SEGMENT_SECONDS = 30
PAD_LEFT = PAD_RIGHT = 2  # upstream's audio_padding_length_left / _right


def feature_extractor(config: dict | None = None):
    """transformers' WhisperFeatureExtractor from a preprocessor_config.json's values."""
    from transformers import WhisperFeatureExtractor

    from lipbench.models.musetalk.networks import PREPROCESSOR_CONFIG

    config = dict(config or PREPROCESSOR_CONFIG)
    keep = (
        "feature_size",
        "sampling_rate",
        "hop_length",
        "chunk_length",
        "n_fft",
        "padding_value",
        "return_attention_mask",
    )
    return WhisperFeatureExtractor(**{k: config[k] for k in keep if k in config})


def mel_segments(audio: np.ndarray, extractor, dtype=None) -> list[torch.Tensor]:
    """get_audio_feature: (1, 80, 3000) log-mel per 30 s segment of 16 kHz audio."""
    audio = np.asarray(audio, dtype=np.float32)
    step = SEGMENT_SECONDS * SAMPLE_RATE
    out = []
    for start in range(0, len(audio), step):
        mel = extractor(audio[start : start + step], return_tensors="pt", sampling_rate=SAMPLE_RATE).input_features
        out.append(mel if dtype is None else mel.to(dtype=dtype))
    return out


@torch.no_grad()
def encoder_states(whisper, mels: list[torch.Tensor], device, dtype) -> torch.Tensor:
    """All hidden states of whisper's encoder, (1, 1500 * segments, layers + 1, d_model)."""
    states = []
    for mel in mels:
        hidden = whisper.encoder(mel.to(device).to(dtype), output_hidden_states=True).hidden_states
        states.append(torch.stack(hidden, dim=2))
    return torch.cat(states, dim=1)


def frame_windows(
    states: torch.Tensor,
    n_samples: int,
    fps: float = 25,
    n_frames: int | None = None,
    left: int = PAD_LEFT,
    right: int = PAD_RIGHT,
) -> torch.Tensor:
    """get_whisper_chunk's cutting: (1, T, L, D) states -> (n_frames, 10 * L, D).

    `n_samples` (the audio's length at 16 kHz) fixes the rows kept and upstream's frame
    count floor(seconds * fps); `n_frames` (default that count) may be larger, the extra
    windows reading zeros beyond the right padding."""
    fps = int(fps)
    per_row = AUDIO_FPS / fps
    seconds = n_samples / SAMPLE_RATE
    upstream_frames = math.floor(seconds * fps)
    n_frames = upstream_frames if n_frames is None else int(n_frames)
    kept = states[:, : math.floor(seconds * AUDIO_FPS)]
    rows_per_frame = math.ceil(per_row)
    width = 2 * (left + right + 1)
    before = rows_per_frame * left
    after = rows_per_frame * 3 * right
    need = math.floor((n_frames - 1) * per_row) + width if n_frames > 0 else 0
    after = max(after, need - before - kept.shape[1])
    zeros = states.new_zeros((states.shape[0], 1) + tuple(states.shape[2:]))
    padded = torch.cat(
        [zeros.expand(-1, before, *states.shape[2:]), kept, zeros.expand(-1, after, *states.shape[2:])], dim=1
    )
    windows = [padded[:, math.floor(i * per_row) : math.floor(i * per_row) + width] for i in range(n_frames)]
    if not windows:
        return states.new_zeros((0, width * states.shape[2], states.shape[3]))
    out = torch.cat(windows, dim=0)  # (n, width, L, D)
    return out.reshape(out.shape[0], width * out.shape[2], out.shape[3])


def whisper_chunks(whisper, extractor, audio: np.ndarray, n_frames: int, fps: float, device, dtype) -> torch.Tensor:
    """The whole audio path: 16 kHz audio -> (n_frames, 50, 384) tokens (before the
    positional encoding), in `dtype` on `device`."""
    mels = mel_segments(audio, extractor, dtype=dtype)
    states = encoder_states(whisper, mels, device, dtype)
    return frame_windows(states, len(audio), fps, n_frames)


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """To 16 kHz as librosa.load(sr=16000) does (soxr_hq), when the request has another rate."""
    audio = np.asarray(audio, dtype=np.float32)
    if int(rate) == SAMPLE_RATE:
        return audio
    import librosa

    return librosa.resample(audio, orig_sr=int(rate), target_sr=SAMPLE_RATE).astype(np.float32)
