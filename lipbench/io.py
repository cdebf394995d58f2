"""Video and audio decoding and encoding, all through PyAV (its wheels bundle FFmpeg).

Frames are uint8 RGB arrays shaped (T, H, W, 3). Audio is float32 mono in [-1, 1).

Audio is always passed through libswresample to 16-bit mono at the requested rate,
which is what `ffmpeg -ac 1 -ar 16000 out.wav` gives: every reference tool (SyncNet,
LatentSync's evaluation, Wav2Lip) reads such a wav, so lipbench sees the same samples.
The int16 values are returned divided by 32768.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from lipbench.errors import LipbenchError

DEFAULT_AUDIO_RATE = 16000


class MediaError(LipbenchError, RuntimeError):
    """A media file that cannot be used, with the file and the reason in the message."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class MediaInfo:
    width: int
    height: int
    fps: float
    n_frames: int  # from the container; exact for files lipbench writes and for CFR MP4
    audio_rate: int | None  # None when the file has no audio stream
    audio_channels: int
    duration_s: float


def not_a_file(path) -> str | None:
    """Why `path` is not a file that can be read (a folder, a broken or looping symlink,
    nothing there), or None when it is one."""
    path = Path(path)
    if path.is_file():
        return None
    if path.is_dir():
        return "is a folder, not a media file"
    return "is a broken or looping symlink" if path.is_symlink() else "file not found"


def _open(path) -> av.container.InputContainer:
    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise MediaError(path, problem)
    if path.stat().st_size == 0:
        raise MediaError(path, "is empty (0 bytes)")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"cannot be opened as media ({exc})") from exc


def _video_stream(container, path):
    if not container.streams.video:
        raise MediaError(path, "has no video stream")
    return container.streams.video[0]


def probe(path) -> MediaInfo:
    """Read stream parameters without decoding frames."""
    with _open(path) as container:
        video = _video_stream(container, path)
        audio = container.streams.audio[0] if container.streams.audio else None
        fps = float(video.average_rate or video.guessed_rate or 0)
        if fps <= 0:
            raise MediaError(path, "video stream has no frame rate")
        n_frames = video.frames
        duration_s = container.duration / av.time_base if container.duration else 0.0
        if not n_frames:  # MKV keeps no frame count: count packets, no decoding needed
            n_frames = sum(1 for p in container.demux(video) if p.size)
        return MediaInfo(
            width=video.codec_context.width,
            height=video.codec_context.height,
            fps=fps,
            n_frames=int(n_frames),
            audio_rate=audio.rate if audio else None,
            audio_channels=audio.channels if audio else 0,
            duration_s=float(duration_s),
        )


def audio_rate(path) -> int:
    """Sample rate of the first audio stream of any media file (a wav too)."""
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "has no audio stream")
        return container.streams.audio[0].rate


def read_video(path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode the first video stream into (frames uint8 RGB (T, H, W, 3), fps)."""
    frames, fps, _ = read_video_timed(path, max_frames)
    return frames, fps


def read_video_timed(path, max_frames: int | None = None) -> tuple[np.ndarray, float, np.ndarray | None]:
    """`read_video`, and each frame's presentation time in seconds (None when the
    container gives no timestamps): what tells a variable frame rate from a constant one.

    Every frame must have the size of the first: a stream whose resolution changes
    midway is refused, naming the frame (frames of one video are compared and stacked
    as one array)."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if fps <= 0:
            raise MediaError(path, "video stream has no frame rate")
        stream.thread_type = "AUTO"
        frames, times = [], []
        try:
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="rgb24")
                if frames and image.shape != frames[0].shape:
                    raise MediaError(
                        path,
                        f"frame size changes midway: frame {len(frames)} is "
                        f"{image.shape[1]}x{image.shape[0]}, the frames before are "
                        f"{frames[0].shape[1]}x{frames[0].shape[0]} (one size per video is needed)",
                    )
                frames.append(image)
                times.append(frame.time)
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except av.error.FFmpegError as exc:
            raise MediaError(path, f"video decoding failed after {len(frames)} frames ({exc})") from exc
    if not frames:
        raise MediaError(path, "video stream decodes to no frames")
    known = None if any(t is None for t in times) else np.asarray(times, dtype=np.float64)
    return np.stack(frames), fps, known


def variable_rate(times: np.ndarray | None, fps: float) -> str | None:
    """Why the frame times are not a constant `fps` (intervals off by more than a quarter
    of a frame), or None. Timestamps rounded by the container (MKV keeps milliseconds)
    stay well inside that."""
    if times is None or len(times) < 2:
        return None
    intervals = np.diff(times)
    if np.abs(intervals - 1 / fps).max() <= 0.25 / fps:
        return None
    return (
        f"variable frame rate: frame intervals from {intervals.min() * 1000:.1f} to "
        f"{intervals.max() * 1000:.1f} ms, nominal {1000 / fps:.1f} ms ({fps:g} fps)"
    )


def read_audio(path, rate: int = DEFAULT_AUDIO_RATE) -> np.ndarray:
    """Decode the first audio stream to float32 mono at `rate` Hz (see module docstring)."""
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "has no audio stream (audio is needed here)")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples, not trust AAC timestamps
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))  # flush the filter
        except av.error.FFmpegError as exc:
            raise MediaError(path, f"audio decoding failed ({exc})") from exc
    if not chunks:
        raise MediaError(path, "audio stream decodes to no samples")
    return np.concatenate(chunks, axis=1).reshape(-1).astype(np.float32) / 32768.0


def fit_audio(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """`audio` cut to `n_samples`, or zero-padded (silence) at the end to it: another clip's
    speech fitted to a reference's duration (cross audio). It is the rule of the Lip Forcing
    pipeline (models/lipforcing/pipeline.py `padded_audio`, as upstream: cut or zero-padded
    to the video's duration), and MuseTalk's whisper windows past the audio read zeros;
    Wav2Lip's inference.py instead cuts the video at the audio's end or loops it, which no
    answer here may do (every model answers with the reference's frames)."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) >= n_samples:
        return audio[:n_samples]
    return np.pad(audio, (0, n_samples - len(audio)))


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def write_video(
    path, frames: np.ndarray, fps: float, audio: np.ndarray | None = None, audio_rate: int = DEFAULT_AUDIO_RATE
) -> None:
    """Write frames (T, H, W, 3) uint8 RGB and optional float32 audio: (n,) mono or
    (n, 2) stereo.

    `.mkv` is lossless: FFV1 in RGB (bgr0) and 16-bit PCM, so decoding returns exactly
    these frames and the audio quantised to int16. `.mp4` is H.264 + AAC for viewing;
    yuv420p needs even sizes, so odd-sized frames are written as yuv444p instead.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    suffix = path.suffix.lower()
    if suffix not in (".mkv", ".mp4"):
        raise ValueError(f"{path}: unsupported container {suffix!r}; use .mkv (lossless) or .mp4")
    height, width = frames.shape[1:3]
    with av.open(str(path), mode="w") as container:
        if suffix == ".mkv":
            video = container.add_stream("ffv1", rate=_fps_fraction(fps))
            video.pix_fmt = "bgr0"
        else:
            video = container.add_stream("libx264", rate=_fps_fraction(fps))
            video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
            video.options = {"crf": "18", "preset": "medium"}
        video.width, video.height = width, height
        audio_stream = None
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            audio = audio[:, None] if audio.ndim == 1 else audio
            if audio.ndim != 2 or audio.shape[1] not in (1, 2):
                raise ValueError(f"{path}: audio must be (n,) mono or (n, 2) stereo, got {audio.shape}")
            audio_stream = container.add_stream("pcm_s16le" if suffix == ".mkv" else "aac", rate=audio_rate)
            audio_stream.layout = "mono" if audio.shape[1] == 1 else "stereo"
        for index, image in enumerate(frames):
            frame = _encoder_frame(image, video.pix_fmt)
            frame.pts, frame.time_base = index, 1 / _fps_fraction(fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio, audio_rate)


def _encoder_frame(image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """The frame in the encoder's pixel format, with every plane's row padding zeroed.

    The encoder reads past the row ends of its input planes; with the padding left as
    whatever memory held before, the same frames encoded differently from run to run.
    Zeroing it removed most of that variation (some remains in libx264 itself, a grey
    level or so; lossless .mkv output is exact). The colour conversion is swscale's.
    """
    height, width = image.shape[:2]
    rgb = _zero_padded(av.VideoFrame(width, height, "rgb24"), [image.reshape(height, width * 3)])
    converted = rgb.reformat(format=pix_fmt)
    bytes_per_pixel = {"bgr0": 4, "rgb24": 3}.get(pix_fmt, 1)  # the others here are 8-bit planar
    planes = [
        np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width * bytes_per_pixel]
        for p in converted.planes
    ]
    return _zero_padded(av.VideoFrame(width, height, pix_fmt), planes)


def int16_values(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1) on the int16 grid a 16-bit file stores: the sample values
    (rounded, clipped to [-32768, 32767]) as float64. Exact for decoded 16-bit audio,
    whose values are those integers / 32768 (see `read_audio`)."""
    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767)


def _zero_padded(frame: av.VideoFrame, planes: list[np.ndarray]) -> av.VideoFrame:
    """Fill each plane of `frame` with the given rows, zeros after each row's end."""
    for rows, target in zip(planes, frame.planes):
        padded = np.zeros((target.height, target.line_size), dtype=np.uint8)
        padded[:, : rows.shape[1]] = rows
        target.update(padded)
    return frame


def _encode_audio(container, stream, audio: np.ndarray, rate: int) -> None:
    """audio: (n, channels) float32."""
    samples = int16_values(audio).astype(np.int16)
    layout = "mono" if samples.shape[1] == 1 else "stereo"
    # The encoder's own frame size (1024 for AAC, free for PCM) decides the chunking.
    frame_size = stream.codec_context.frame_size or 1024
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate)
    for start in range(0, len(samples), frame_size):
        # packed s16 is one plane of interleaved samples: shape (1, n * channels)
        chunk = np.ascontiguousarray(samples[start : start + frame_size]).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        for converted in resampler.resample(frame):
            container.mux(stream.encode(converted))
    container.mux(stream.encode(None))
