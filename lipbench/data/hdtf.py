"""The HDTF test split, prepared from the user's own downloads.

HDTF ships no videos, only annotation files (repository MRzzm/HDTF, folder
HDTF_dataset/), per subset RD, WDA and WRA:
- `XX_video_url.txt`: `Name.mp4 URL` (the YouTube source),
- `XX_annotion_time.txt`: `Name.mp4 00:02-02:25 03:00-06:45` (talking intervals),
- `XX_crop_wh.txt`: `Name_k.mp4 x width y height` (the face window of interval k),
- `XX_crop_ratio.txt`: `Name_k.mp4 ratio` (recorded, not applied: the paper authors'
  clips have exactly the crop_wh window, rounded down to even numbers).
Clip `{subset}_{Name}_{k:03d}` is the k-th interval (0-based) of `Name.mp4`.

`prepare` cuts interval k, converts it to constant 25 fps (each output frame takes
the source frame nearest in time, as ffmpeg's fps filter does), crops the HDTF
window, keeps the first N frames (81 for the paper) with the matching audio at its
own sample rate, writes `<id>_cfr25.mp4` and a manifest with content hashes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from lipbench import defaults, io
from lipbench.data.manifest import VIDEO_SUFFIXES, Manifest, describe_clip, load_manifest, save_manifest
from lipbench.errors import LipbenchError
from lipbench.storage import atomic_path

SUBSETS = ("RD", "WDA", "WRA")
CLIP_ID = re.compile(r"^(RD|WDA|WRA)_(.+)_(\d{3})$")
OUTPUT_FPS = 25


class HDTFError(LipbenchError, RuntimeError):
    pass


@dataclass
class Annotations:
    intervals: dict = field(default_factory=dict)  # (subset, name) -> [(start_s, end_s), ...]
    crops: dict = field(default_factory=dict)  # (subset, name, k) -> (x, width, y, height)
    ratios: dict = field(default_factory=dict)  # (subset, name, k) -> float
    urls: dict = field(default_factory=dict)  # (subset, name) -> url


def parse_time(text: str, where: str) -> float:
    parts = text.split(":")
    if not 2 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
        raise HDTFError(f"{where}: bad time stamp {text!r} (expected mm:ss or hh:mm:ss)")
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return float(seconds)


def _lines(path: Path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            yield f"{path}:{number}", line.split()


def _stem_and_index(token: str, where: str) -> tuple[str, int]:
    found = re.match(r"^(.+)_(\d+)\.mp4$", token)
    if not found:
        raise HDTFError(f"{where}: expected 'Name_k.mp4', got {token!r}")
    return found.group(1), int(found.group(2))


def load_annotations(folder) -> Annotations:
    """Read every subset's annotation files found in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HDTFError(f"{folder}: annotation folder not found")
    ann = Annotations()
    for subset in SUBSETS:
        times = folder / f"{subset}_annotion_time.txt"
        if not times.exists():
            continue
        for where, fields in _lines(times):
            name = fields[0].removesuffix(".mp4")
            spans = []
            for span in fields[1:]:
                start, sep, end = span.partition("-")
                if not sep:
                    raise HDTFError(f"{where}: bad interval {span!r} (expected start-end)")
                spans.append((parse_time(start, where), parse_time(end, where)))
            ann.intervals[(subset, name)] = spans
        for where, fields in (
            _lines(folder / f"{subset}_crop_wh.txt") if (folder / f"{subset}_crop_wh.txt").exists() else ()
        ):
            if len(fields) != 5:
                raise HDTFError(f"{where}: expected 'Name_k.mp4 x width y height'")
            name, k = _stem_and_index(fields[0], where)
            ann.crops[(subset, name, k)] = tuple(int(v) for v in fields[1:])
        ratio_file = folder / f"{subset}_crop_ratio.txt"
        for where, fields in _lines(ratio_file) if ratio_file.exists() else ():
            name, k = _stem_and_index(fields[0], where)
            ann.ratios[(subset, name, k)] = float(fields[1])
        url_file = folder / f"{subset}_video_url.txt"
        for where, fields in _lines(url_file) if url_file.exists() else ():
            ann.urls[(subset, fields[0].removesuffix(".mp4"))] = fields[1] if len(fields) > 1 else None
    if not ann.intervals:
        raise HDTFError(f"{folder}: no XX_annotion_time.txt files (XX in {', '.join(SUBSETS)})")
    return ann


def parse_clip_id(clip_id: str) -> tuple[str, str, int]:
    found = CLIP_ID.match(clip_id)
    if not found:
        raise HDTFError(f"{clip_id!r} is not an HDTF clip id (SUBSET_Name_kkk)")
    return found.group(1), found.group(2), int(found.group(3))


def find_source(raw: Path, subset: str, name: str) -> Path | None:
    """The downloaded video of `name`: raw/Name.*, raw/SUBSET_Name.* or raw/SUBSET/Name.*"""
    for folder, stem in ((raw, name), (raw, f"{subset}_{name}"), (raw / subset, name)):
        for suffix in VIDEO_SUFFIXES:
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    return None


def even_crop(x: int, width: int, y: int, height: int) -> tuple[int, int, int, int]:
    """Rounded down to even offsets and sizes, as ffmpeg's crop filter does for 4:2:0 video."""
    return x & ~1, width & ~1, y & ~1, height & ~1


def cfr_indices(source_times: np.ndarray, start_s: float, n_frames: int, fps: float = OUTPUT_FPS) -> np.ndarray:
    """For output frame i at start + i/fps, the index of the nearest source frame (ties:
    the earlier one)."""
    targets = start_s + np.arange(n_frames) / fps
    right = np.searchsorted(source_times, targets, side="left").clip(1, len(source_times) - 1)
    left = right - 1
    return np.where(np.abs(source_times[left] - targets) <= np.abs(source_times[right] - targets), left, right)


def cut_clip(source: Path, start_s: float, end_s: float, crop, n_frames: int, out_path: Path) -> None:
    """Write frames [start, start + n/25) of `source`, cropped, at 25 fps, with its audio."""
    duration = n_frames / OUTPUT_FPS
    if start_s + duration > end_s + 1e-6:
        raise HDTFError(f"interval {start_s:.2f}-{end_s:.2f} s is shorter than {n_frames} frames at 25 fps")
    x, w, y, h = even_crop(*crop)
    with av.open(str(source)) as container:
        if not container.streams.video:
            raise io.MediaError(source, "has no video stream")
        vstream = container.streams.video[0]
        frames, times = [], []
        container.seek(max(0, int((start_s - 1.0) / vstream.time_base)), stream=vstream, backward=True)
        for frame in container.decode(vstream):
            t = float(frame.pts * vstream.time_base)
            if t < start_s - 1.0:
                continue
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(t)
            if t > start_s + duration + 0.5:
                break
        audio, rate, channels = _audio_segment(container, source, start_s, duration)
    if not frames or times[-1] < start_s + duration - 1.5 / OUTPUT_FPS:
        raise HDTFError(f"{source}: video ends before {start_s + duration:.2f} s")
    picked = np.stack([frames[i] for i in cfr_indices(np.array(times), start_s, n_frames)])
    fh, fw = picked.shape[1:3]
    if x + w > fw or y + h > fh:
        raise HDTFError(f"{source}: crop window x={x} w={w} y={y} h={h} exceeds the {fw}x{fh} frame")
    with atomic_path(out_path) as tmp:
        io.write_video(tmp, picked[:, y : y + h, x : x + w], OUTPUT_FPS, audio, rate)


def _audio_segment(container, source, start_s: float, duration: float):
    """(samples (n, channels) float32, rate, channels) of [start, start + duration)."""
    if not container.streams.audio:
        raise io.MediaError(source, "has no audio stream (HDTF clips need their speech)")
    astream = container.streams.audio[0]
    rate = astream.rate
    layout = "mono" if astream.channels == 1 else "stereo"
    resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
    container.seek(max(0, int((start_s - 1.0) / astream.time_base)), stream=astream, backward=True)
    first_sample, chunks = None, []
    for frame in container.decode(astream):
        if first_sample is None:
            first_sample = int(round(float(frame.pts * astream.time_base) * rate))
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().reshape(-1, 1 if layout == "mono" else 2))
        if first_sample + sum(len(c) for c in chunks) > (start_s + duration + 0.5) * rate:
            break
    samples = np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)
    begin = int(round(start_s * rate)) - (first_sample or 0)
    segment = samples[max(begin, 0) : max(begin, 0) + int(round(duration * rate))]
    if len(segment) < int(round(duration * rate)) - 1:
        raise HDTFError(f"{source}: audio ends before {start_s + duration:.2f} s")
    return segment, rate, segment.shape[1]


def download(url: str, target: Path) -> None:
    """Fetch a source with yt-dlp, when it is installed and the network allows."""
    exe = shutil.which("yt-dlp")
    if not exe:
        raise HDTFError(
            "source missing and yt-dlp is not installed (pip install yt-dlp), so it cannot be "
            "downloaded; put the video in the raw folder yourself"
        )
    result = subprocess.run(
        [
            exe,
            "-f",
            "bestvideo[ext=mp4]+bestaudio[ext=m4a]/best[ext=mp4]/best",
            "--merge-output-format",
            "mp4",
            "-o",
            str(target),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0 or not target.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HDTFError(f"yt-dlp could not download {url} (offline?): {tail[0]}")


def prepare(
    split: Manifest,
    raw,
    annotations,
    out,
    n_frames: int = defaults.CLIP_FRAMES,
    fetch: bool = False,
    progress: bool = True,
) -> tuple[Manifest, dict[str, str]]:
    """Prepare every clip of `split` into `out`; returns (manifest of the clips made,
    {clip id: problem} of those that could not be). A clip already prepared is kept."""
    raw, out = Path(raw), Path(out)
    ann = load_annotations(annotations)
    out.mkdir(parents=True, exist_ok=True)
    made, problems = [], {}
    for clip in tqdm(split.clips, desc="preparing HDTF clips", unit="clip", disable=not progress):
        target = out / f"{clip.id}_cfr25.mp4"
        try:
            subset, name, k = parse_clip_id(clip.id)
            if not target.exists():
                spans = ann.intervals.get((subset, name))
                if spans is None:
                    raise HDTFError(f"{name}.mp4 is not in {subset}_annotion_time.txt")
                if k >= len(spans):
                    raise HDTFError(f"{name}.mp4 has {len(spans)} annotated intervals, no interval {k}")
                if (subset, name, k) not in ann.crops:
                    raise HDTFError(f"{name}_{k}.mp4 is not in {subset}_crop_wh.txt")
                source = find_source(raw, subset, name)
                if source is None and fetch and ann.urls.get((subset, name)):
                    download(ann.urls[(subset, name)], raw / f"{name}.mp4")
                    source = find_source(raw, subset, name)
                if source is None:
                    raise HDTFError(
                        f"source video {name}.mp4 not found in {raw} (also tried {subset}_{name}.* "
                        f"and {subset}/{name}.*)"
                    )
                cut_clip(source, *spans[k], ann.crops[(subset, name, k)], n_frames, target)
            described = describe_clip(clip.id, target)
            described.info = {
                "subset": subset,
                "speaker": name,
                "interval": k,
                "crop_ratio": ann.ratios.get((subset, name, k)),
                "driving_audio_rate": 16000,
            }
            made.append(described)
        except (HDTFError, io.MediaError, av.error.FFmpegError) as exc:
            problems[clip.id] = str(exc)
    manifest = Manifest(name=split.name, clips=made, description=split.description)
    save_manifest(manifest, out / "manifest.yaml")
    return load_manifest(out / "manifest.yaml"), problems


def split_manifest(name_or_path) -> Manifest:
    """A split by path or by the name of a shipped one (lipbench/data/manifests/NAME.yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return load_manifest(path)
    shipped = resources.files("lipbench.data").joinpath("manifests", f"{name_or_path}.yaml")
    if shipped.is_file():
        with resources.as_file(shipped) as local:
            return load_manifest(local)
    raise HDTFError(f"{name_or_path}: no such split manifest (a path, or a name in lipbench/data/manifests/)")
