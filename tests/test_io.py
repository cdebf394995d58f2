import numpy as np
import pytest

from lipbench import io
from tests.conftest import SAMPLE_NAMES


def smooth_frames(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        phase = rng.uniform(0, 6.28, 3)
        img = np.stack([127 + 100 * np.sin(x / 9 + y / 13 + t / 5 + p) for p in phase], -1)
        frames.append(img)
    return np.clip(frames, 0, 255).astype(np.uint8)


def test_mkv_round_trip_is_exact_for_odd_sizes(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 37, 45, 3), dtype=np.uint8)
    audio = (rng.integers(-30000, 30000, 5000) / 32768).astype(np.float32)
    path = tmp_path / "clip.mkv"
    io.write_video(path, frames, 25.0, audio, 16000)
    decoded, fps = io.read_video(path)
    assert fps == 25.0
    np.testing.assert_array_equal(decoded, frames)
    np.testing.assert_array_equal(io.read_audio(path, 16000), audio)
    info = io.probe(path)
    assert (info.width, info.height, info.n_frames, info.audio_rate) == (45, 37, 7, 16000)


@pytest.mark.parametrize("size", [(32, 48), (33, 47)])
def test_mp4_round_trip_is_close_and_audio_is_aligned(tmp_path, size):
    frames = smooth_frames(12, *size)
    t = np.arange(16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) * (t >= 0.25)).astype(np.float32)  # onset at sample 4000
    path = tmp_path / "clip.mp4"
    io.write_video(path, frames, 25.0, audio, 16000)
    decoded, fps = io.read_video(path)
    assert decoded.shape == frames.shape and fps == 25.0
    mse = np.mean((decoded.astype(float) - frames) ** 2)
    assert 10 * np.log10(255**2 / mse) > 30  # chroma subsampling of tiny frames costs a few dB
    back = io.read_audio(path, 16000)
    onset = int(np.argmax(np.abs(back) > 0.05))
    assert abs(onset - 4000) <= 2  # AAC priming delay is compensated


def test_hdtf_samples_decode_with_expected_fps_frames_and_rates(hdtf_samples):
    for name in SAMPLE_NAMES:
        real, fake = hdtf_samples / "real" / f"{name}_cfr25.mp4", hdtf_samples / "fake" / f"{name}_synced.mp4"
        real_info, fake_info = io.probe(real), io.probe(fake)
        assert (real_info.audio_rate, fake_info.audio_rate) == (44100, 16000)
        assert real_info.width == real_info.height == fake_info.width
        assert 0 <= real_info.n_frames - fake_info.n_frames <= 3
        frames, fps = io.read_video(fake)
        assert fps == 25.0 and len(frames) == fake_info.n_frames
        assert frames.shape[1:] == (fake_info.height, fake_info.width, 3)
        for path, info in ((real, real_info), (fake, fake_info)):
            audio = io.read_audio(path, 16000)
            assert audio.dtype == np.float32
            assert abs(len(audio) / 16000 - info.n_frames / 25) < 0.25


def test_resampled_44k_audio_matches_the_16k_track_of_the_same_speech(hdtf_samples):
    """The generated clip carries the real clip's speech at 16 kHz; our 44.1 kHz -> 16 kHz
    resampling of the real track must line up with it sample for sample."""
    name = SAMPLE_NAMES[2]
    real = io.read_audio(hdtf_samples / "real" / f"{name}_cfr25.mp4", 16000)
    fake = io.read_audio(hdtf_samples / "fake" / f"{name}_synced.mp4", 16000)
    n = min(len(real), len(fake), 5 * 16000)
    a, b = real[:n] - real[:n].mean(), fake[:n] - fake[:n].mean()
    corr = np.correlate(a, np.pad(b, 200), mode="valid")  # lags -200..200 samples
    lag = int(np.argmax(corr)) - 200
    r = corr.max() / np.sqrt((a**2).sum() * (b**2).sum())
    assert abs(lag) <= 2 and r > 0.9, (lag, r)


def test_the_real_sample_decodes_fully(hdtf_samples):
    path = hdtf_samples / "real" / f"{SAMPLE_NAMES[1]}_cfr25.mp4"
    frames, fps = io.read_video(path)
    assert fps == 25.0 and len(frames) == io.probe(path).n_frames == 363


def test_errors_name_the_file_and_the_reason(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(io.MediaError, match="nope.mp4: file not found"):
        io.read_video(missing)
    junk = tmp_path / "junk.mp4"
    junk.write_text("this is not a video")
    with pytest.raises(io.MediaError, match="junk.mp4: cannot be opened as media"):
        io.probe(junk)
    silent = tmp_path / "silent.mkv"
    io.write_video(silent, smooth_frames(3, 16, 16), 25.0)
    with pytest.raises(io.MediaError, match="silent.mkv: has no audio stream"):
        io.read_audio(silent)
    wav_only = tmp_path / "speech.mkv"
    import av

    with av.open(str(wav_only), "w") as c:
        s = c.add_stream("pcm_s16le", rate=16000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        f.sample_rate = 16000
        c.mux(s.encode(f))
        c.mux(s.encode(None))
    with pytest.raises(io.MediaError, match="speech.mkv: has no video stream"):
        io.read_video(wav_only)
    assert io.audio_rate(wav_only) == 16000


def test_truncated_file_fails_with_its_name(tmp_path):
    path = tmp_path / "whole.mp4"
    io.write_video(path, smooth_frames(20, 64, 64), 25.0)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(io.MediaError, match="cut.mp4"):
        io.read_video(cut)
