"""The data that flows between stages: clips from a manifest, requests to a model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lipbench import io

# One Request class for models here and in a worker process (the worker side needs it
# without lipbench), with the audio feed of the timing protocols.
from lipbench.models.worker_side import Request


@dataclass
class Clip:
    """One test clip: a reference video and its driving audio, decoded lazily and cached.

    `audio` names a separate driving-audio file; by default the video's own track drives.
    Under cross audio it is another clip's file (`audio_from`), fitted to this clip's length.
    The expected values (`n_frames`, `fps`, `audio_rate`, `sha256`) come from the manifest
    and are what `lipbench data verify` checks the files against.
    """

    id: str
    video: Path
    audio: Path | None = None
    n_frames: int | None = None
    fps: float | None = None
    audio_rate: int | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    info: dict = field(default_factory=dict)  # other manifest fields (subset, speaker, interval, ...)
    # The clip whose speech drives this one under cross audio (lipbench.data.pairing); `audio`
    # is then that clip's file, and its track is fitted to this clip's duration (io.fit_audio).
    audio_from: str | None = None
    _frames: np.ndarray | None = field(default=None, repr=False, compare=False)
    _audio: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def audio_source(self) -> Path:
        return self.audio or self.video

    def frames(self) -> np.ndarray:
        if self._frames is None:
            self._frames, fps = io.read_video(self.video)
            if self.fps is None:
                self.fps = fps
        return self._frames

    def driving_audio(self, rate: int = io.DEFAULT_AUDIO_RATE) -> np.ndarray:
        if rate not in self._audio:
            audio = io.read_audio(self.audio_source, rate)
            if self.audio_from is not None:
                audio = io.fit_audio(audio, int(round(len(self.frames()) / float(self.fps) * rate)))
            self._audio[rate] = audio
        return self._audio[rate]

    def request(self, audio_rate: int = io.DEFAULT_AUDIO_RATE) -> "Request":
        frames = self.frames()
        return Request(
            clip_id=self.id,
            frames=frames,
            audio=self.driving_audio(audio_rate),
            audio_rate=audio_rate,
            fps=float(self.fps),
        )

    def release(self) -> None:
        """Drop decoded data (a sweep keeps one clip in memory at a time)."""
        self._frames = None
        self._audio.clear()
