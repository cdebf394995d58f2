"""Outputs made elsewhere, driven through the same runner and evaluation.

Videos are matched to clips by clip id (file stem less a role suffix such as
`_synced`, as `lipbench eval` pairs them). Their timing cannot be measured here: it is
read from a sidecar JSON beside the video (`<video stem>.json` with `ttff_s` and `fps`,
as the tool that made them measured), and when there is none it is recorded as absent
(null), never as zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from lipbench import io
from lipbench.models.base import LipSyncModel
from lipbench.types import Request

TIMING_KEYS = ("ttff_s", "fps", "total_s", "rtf", "device", "device_name")


class Precomputed(LipSyncModel):
    """Videos made elsewhere, read from `folder` by clip id, with their sidecar timing."""

    name = "precomputed"
    exact_length = False  # outputs made elsewhere are often a few frames short; evaluation aligns

    def __init__(self, folder: str, pair_regex: str | None = None):
        super().__init__()
        self.folder = Path(folder)
        self.pair_regex = pair_regex

    def load(self, device: str = "cpu") -> None:
        from lipbench.evaluate import DEFAULT_PAIR_REGEX, clip_id, video_files

        super().load(device)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: folder of precomputed outputs not found")
        self.videos = {clip_id(p, self.pair_regex or DEFAULT_PAIR_REGEX): p for p in video_files([self.folder])}

    def video_for(self, request: Request) -> Path:
        return self._video(request.clip_id)

    def _video(self, clip_id: str) -> Path:
        if not hasattr(self, "videos"):
            self.load(self.device)
        if clip_id not in self.videos:
            raise FileNotFoundError(f"{self.folder}: no output video for clip {clip_id!r}")
        return self.videos[clip_id]

    def clip_files(self, clip_id: str) -> dict[str, Path]:
        """The output video and its timing sidecar: replacing either remakes the unit."""
        video = self._video(clip_id)
        sidecar = video.with_suffix(".json")
        return {"output": video, **({"sidecar": sidecar} if sidecar.exists() else {})}

    def stream(self, request: Request) -> Iterator[np.ndarray]:
        frames, _ = io.read_video(self.video_for(request))
        yield frames

    def timing(self, request: Request) -> dict:
        """The sidecar's timing fields (timer "sidecar"); without a sidecar, timer
        "absent" and every figure null: the harness only timed a file read."""
        sidecar = self.video_for(request).with_suffix(".json")
        if not sidecar.exists():
            return {"timer": "absent"}
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{sidecar}: not valid JSON ({exc})") from exc
        return {"timer": "sidecar", **{k: data[k] for k in TIMING_KEYS if k in data}}

    def describe(self) -> dict:
        return {**super().describe(), "folder": str(self.folder)}
