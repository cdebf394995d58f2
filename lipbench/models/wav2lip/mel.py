"""Wav2Lip's 80-bin mel spectrogram and its per-frame mel windows.

The values are those of Rudrabha/Wav2Lip `audio.melspectrogram` with `hparams.py`
(checked against both files): 16 kHz audio, pre-emphasis 0.97 (scipy lfilter
[1, -0.97]), STFT n_fft 800, hop 200, Hann window 800, centred frames with *reflect*
padding (the default of librosa 0.7.0, which upstream pins; librosa >= 0.10 pads
with zeros by default, so the mode is passed explicitly), complex64 STFT values,
magnitude, Slaney mel filters (librosa.filters.mel, 80 bands, 55-7600 Hz),
20 log10(max(1e-5, x)) - 20 dB, then the symmetric normalisation clipped to [-4, 4].
Every step after the FFT runs in float32, as upstream's arrays are float32.

librosa (0.11) computes the STFT frames and the filter bank; written here by hand:
pre-emphasis and the centre/reflect padding, so that any range of columns can be
computed from the samples that range needs (`mel_columns`). That is what lets a
streaming model compute the mel of a chunk without the audio after it while giving
exactly the columns of the whole-clip spectrogram.

Per frame, inference.py takes 16 mel columns starting at int(i * 80 / fps); a window
that would run past the last column is replaced by the last 16 columns (`window_start`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 800
HOP = 200
WIN = 800
PREEMPHASIS = 0.97
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS = 4.0
# A Python float (not a NumPy float64), so np.maximum keeps float32 under NumPy 1 and 2.
MIN_LEVEL = float(np.exp(MIN_LEVEL_DB / 20 * np.log(10)))

MEL_STEP = 16  # inference.py mel_step_size: columns per frame's window
COLUMNS_PER_SECOND = SAMPLE_RATE / HOP  # 80, inference.py's mel_idx_multiplier = 80. / fps


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)  # float32, Slaney


def n_columns(n_samples: int) -> int:
    """Columns of the centred STFT of n_samples samples."""
    return 1 + int(n_samples) // HOP


def samples_needed(stop_column: int) -> int:
    """How many leading samples columns [0, stop_column) depend on (the last one's
    window reaches half a window past its centre)."""
    return (int(stop_column) - 1) * HOP + N_FFT // 2


def _padded_preemphasised(wav: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Samples lo..hi-1 of the pre-emphasised signal after reflect padding, indexed in
    the original signal's coordinates (negative indices and indices >= len(wav) are
    the padding)."""
    n = len(wav)
    k = np.arange(lo, hi)
    k = np.where(k < 0, -k, k)  # reflect about the first sample (not repeating it)
    k = np.where(k >= n, 2 * (n - 1) - k, k)  # and about the last
    x = wav.astype(np.float64)
    previous = np.where(k > 0, x[np.maximum(k - 1, 0)], 0.0)  # lfilter starts from rest
    return x[k] - PREEMPHASIS * previous


def mel_columns(wav: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Columns [start, stop) of Wav2Lip's mel spectrogram of `wav` (float, 16 kHz mono),
    (80, stop - start) float32, reading only samples < samples_needed(stop) unless
    the window reaches the end of `wav` (where the reflect padding needs the last samples)."""
    import librosa

    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise ValueError(f"Wav2Lip's mel needs mono audio, got shape {wav.shape}")
    total = n_columns(len(wav))
    if len(wav) <= N_FFT // 2:
        raise ValueError(f"audio of {len(wav)} samples is too short for Wav2Lip's mel (needs > {N_FFT // 2})")
    if not 0 <= start < stop <= total:
        raise ValueError(f"mel columns [{start}, {stop}) out of range: the audio has {total}")
    y = _padded_preemphasised(wav, start * HOP - N_FFT // 2, (stop - 1) * HOP + N_FFT // 2)
    spec = librosa.stft(y, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hann", center=False, dtype=np.complex64)
    mel = np.dot(mel_basis(), np.abs(spec))
    db = 20 * np.log10(np.maximum(MIN_LEVEL, mel)) - REF_LEVEL_DB
    return np.clip((2 * MAX_ABS) * ((db - MIN_LEVEL_DB) / (-MIN_LEVEL_DB)) - MAX_ABS, -MAX_ABS, MAX_ABS)


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """The whole clip's mel spectrogram, (80, 1 + len(wav) // 200): upstream's
    audio.melspectrogram."""
    return mel_columns(wav, 0, n_columns(len(wav)))


def window_start(frame: int, fps: float, total_columns: int) -> int:
    """First mel column of frame `frame`'s 16-column window (inference.py's rule: the
    multiplier is computed first, as upstream, so the float rounding is the same)."""
    start = int(frame * (COLUMNS_PER_SECOND / float(fps)))
    if start + MEL_STEP > total_columns:
        start = total_columns - MEL_STEP
    return start


def upstream_frame_count(total_columns: int, fps: float) -> int:
    """How many frames inference.py makes: one per mel window up to and including the
    first window that would run past the end (the video is cut to that length)."""
    i = 0
    while int(i * (COLUMNS_PER_SECOND / float(fps))) + MEL_STEP <= total_columns:
        i += 1
    return i + 1
