"""Speech loudness at video frame rate, and the mouth opening it maps to: shared by the
synthetic set, the procedural model and the mesh-based sync score (so all three read
speech the same way)."""

from __future__ import annotations

import numpy as np

# Speech loudness mapped to mouth opening: quieter than FLOOR_DB is a closed mouth,
# louder than CEIL_DB is fully open. The span covers voiced speech normalised to a
# -3 dBFS peak (vowels sit near -15 dBFS RMS, pauses below -50).
FLOOR_DB = -42.0
CEIL_DB = -10.0


def frame_energy_db(audio: np.ndarray, rate: int, fps: float, n_frames: int) -> np.ndarray:
    """RMS level in dBFS of a two-frame window centred on each video frame.

    Frame t covers [t, t+1) / fps seconds; windows reaching past the audio are
    zero-padded, so every frame gets a value even when audio runs short.
    """
    spf = rate / fps
    half = int(round(spf))
    centres = np.round((np.arange(n_frames) + 0.5) * spf).astype(int)
    padded = np.pad(np.asarray(audio, dtype=np.float64), (half, half + int(np.ceil(spf)) * n_frames))
    power = np.concatenate([[0.0], np.cumsum(padded**2)])
    # window [c - half, c + half) in the unpadded signal = [c, c + 2*half) in the padded one
    mean_power = (power[centres + 2 * half] - power[centres]) / (2 * half)
    return 10.0 * np.log10(mean_power + 1e-10)


def mouth_openness(audio: np.ndarray, rate: int, fps: float, n_frames: int) -> np.ndarray:
    """How open the mouth should be at each frame, in [0, 1], from speech loudness."""
    level = frame_energy_db(audio, rate, fps, n_frames)
    return np.clip((level - FLOOR_DB) / (CEIL_DB - FLOOR_DB), 0.0, 1.0)
