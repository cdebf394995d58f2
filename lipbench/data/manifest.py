"""Clip manifests (YAML): which files make a test split, and what they must contain.

lipbench_manifest: 1
name: demo_synthetic
clips:
  - id: synth_000
    video: synth_000.mkv        # relative to the manifest's folder
    audio: null                 # optional separate driving audio
    audio_from: null            # cross audio: the clip whose speech drives (`audio` is its file)
    frames: 81
    fps: 25.0
    width: 256
    height: 256
    audio_rate: 16000           # the file's own rate (before any resampling)
    sha256: 3f2a...             # of the video file's bytes
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm import tqdm

from lipbench import io
from lipbench.errors import LipbenchError, UnknownNameError
from lipbench.storage import file_sha256, parse_yaml, resolved, write_text
from lipbench.types import Clip

FORMAT_VERSION = 1
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")


class ManifestError(LipbenchError, ValueError):
    """A manifest that cannot be read or used, or a folder that cannot become one."""


@dataclass
class Manifest:
    name: str
    clips: list[Clip]
    path: Path | None = None
    description: str = ""
    extra: dict = field(default_factory=dict)

    def clip(self, clip_id: str) -> Clip:
        for clip in self.clips:
            if clip.id == clip_id:
                return clip
        raise UnknownNameError(f"manifest {self.name!r} has no clip {clip_id!r}")

    def input_hash(self) -> str:
        """One hash over every clip's id and content hash: two runs that report the
        same value saw the same inputs."""
        h = hashlib.sha256()
        for clip in sorted(self.clips, key=lambda c: c.id):
            h.update(f"{clip.id}:{clip.sha256}\n".encode())
        return h.hexdigest()


# a clip entry's own fields; any others are kept in `Clip.info`
CLIP_KEYS = frozenset(
    ("id", "video", "audio", "audio_from", "frames", "fps", "audio_rate", "width", "height", "sha256")
)


def load_manifest(path) -> Manifest:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    data = parse_yaml(path.read_text(encoding="utf-8"), path, ManifestError)
    if not isinstance(data, dict) or not isinstance(data.get("clips"), list):
        raise ManifestError(f"{path}: a manifest is a mapping with a 'clips' list")
    root = path.parent
    clips, seen = [], set()
    for i, entry in enumerate(data["clips"]):
        if not isinstance(entry, dict) or "id" not in entry or "video" not in entry:
            raise ManifestError(f"{path}: clip #{i} needs at least 'id' and 'video'")
        clip_id = str(entry["id"])
        if clip_id in seen:
            raise ManifestError(f"{path}: clip id {clip_id!r} appears twice")
        seen.add(clip_id)
        clips.append(
            Clip(
                info={k: v for k, v in entry.items() if k not in CLIP_KEYS},
                id=clip_id,
                video=(root / entry["video"]),
                audio=(root / entry["audio"]) if entry.get("audio") else None,
                audio_from=str(entry["audio_from"]) if entry.get("audio_from") is not None else None,
                n_frames=entry.get("frames"),
                fps=float(entry["fps"]) if entry.get("fps") is not None else None,
                audio_rate=entry.get("audio_rate"),
                width=entry.get("width"),
                height=entry.get("height"),
                sha256=entry.get("sha256"),
            )
        )
    known = {"lipbench_manifest", "name", "description", "clips"}
    return Manifest(
        name=str(data.get("name", path.stem)),
        clips=clips,
        path=path,
        description=str(data.get("description", "")),
        extra={k: v for k, v in data.items() if k not in known},
    )


def save_manifest(manifest: Manifest, path) -> None:
    path = Path(path)
    root = path.parent.resolve()

    def rel(p):  # relative to the manifest, so a checkout or data folder can move as a whole
        return Path(os.path.relpath(resolved(p), root)).as_posix()  # a symlink loop keeps its name

    entries = []
    for c in manifest.clips:
        entry = {"id": c.id, "video": rel(c.video)}
        if c.audio:
            entry["audio"] = rel(c.audio)
        if c.audio_from is not None:
            entry["audio_from"] = c.audio_from
        entry.update(c.info)
        entry.update(
            frames=c.n_frames, fps=c.fps, width=c.width, height=c.height, audio_rate=c.audio_rate, sha256=c.sha256
        )
        entries.append(entry)
    data = {"lipbench_manifest": FORMAT_VERSION, "name": manifest.name}
    if manifest.description:
        data["description"] = manifest.description
    data.update(manifest.extra)
    data["clips"] = entries
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def describe_clip(clip_id: str, video, audio=None) -> Clip:
    """A Clip with every expected value read from the files as they are now."""
    info = io.probe(video)
    return Clip(
        id=clip_id,
        video=Path(video),
        audio=Path(audio) if audio else None,
        n_frames=info.n_frames,
        fps=info.fps,
        width=info.width,
        height=info.height,
        audio_rate=io.audio_rate(audio) if audio else info.audio_rate,
        sha256=file_sha256(video, cached=False),
    )


def build_manifest(folder, name: str | None = None, strip_suffix: str = "") -> Manifest:
    """Describe every video file in `folder`. The clip id is the file's stem, less
    `strip_suffix` (`_cfr25` turns RD_Radio1_000_cfr25.mp4 into RD_Radio1_000)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise ManifestError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")

    def clip_id(stem):
        return stem[: -len(strip_suffix)] if strip_suffix and stem.endswith(strip_suffix) else stem

    return Manifest(name=name or folder.name, clips=[describe_clip(clip_id(p.stem), p) for p in files])


def verify(manifest: Manifest, check_hash: bool = True, progress: bool = False) -> list[str]:
    """Problems found, one line each ('clip: file: what is wrong'); empty when all is well."""
    problems = []
    for clip in tqdm(manifest.clips, desc="verifying", unit="clip", disable=not progress):
        missing = [p for p in (clip.video, clip.audio) if p is not None and not Path(p).is_file()]
        if missing:
            problems.extend(f"{clip.id}: {p}: {io.not_a_file(p)}" for p in missing)
            continue
        try:
            info = io.probe(clip.video)
            io.read_video(clip.video)  # a truncated file probes fine but fails to decode
            io.read_audio(clip.audio_source)  # the driving audio: there, and decodable
            audio_rate = io.audio_rate(clip.audio) if clip.audio else info.audio_rate
        except io.MediaError as exc:
            problems.append(f"{clip.id}: {exc}")
            continue
        expected = {
            "frames": (clip.n_frames, info.n_frames),
            "fps": (clip.fps, info.fps),
            "width": (clip.width, info.width),
            "height": (clip.height, info.height),
            "audio_rate": (clip.audio_rate, audio_rate),
        }
        for key, (want, got) in expected.items():
            if want is not None and (got is None or abs(float(want) - float(got)) > 1e-6):
                problems.append(f"{clip.id}: {clip.video}: {key} is {got}, manifest says {want}")
        if check_hash and clip.sha256 and file_sha256(clip.video, cached=False) != clip.sha256:
            problems.append(f"{clip.id}: {clip.video}: content changed (sha256 differs from the manifest)")
    return problems
