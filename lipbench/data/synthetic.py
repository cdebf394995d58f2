"""A deterministic synthetic talking-head set, the embedded default data.

Each clip animates one real face photo (`skimage.data.astronaut()`, public domain, in
the scikit-image wheel): a procedurally synthesised speech track (voiced formant vowels
in syllables and phrases, with pauses) drives the mouth through the landmark warp of
`lipbench.faces.mouth_warp`, and a slow random head motion moves the whole face.
Clips are written losslessly (FFV1 + 16-bit PCM in MKV), so the same seed always
decodes to identical frames and samples.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.signal import lfilter
from tqdm import tqdm

from lipbench import defaults, io, loudness
from lipbench.data.manifest import Manifest, describe_clip, load_manifest, save_manifest
from lipbench.faces import mesh, mouth_warp
from lipbench.storage import atomic_path

SYNTH_VERSION = 1  # bump when the output of a given recipe changes (invalidates caches)
MANIFEST_NAME = "manifest.yaml"

# Formant frequencies (F1, F2, F3 in Hz) of five vowels, adult speaker averages.
VOWEL_FORMANTS = np.array(
    [(730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240)], dtype=np.float64
)
FORMANT_BANDWIDTHS = (90.0, 110.0, 170.0)


@dataclass(frozen=True)
class SynthRecipe:
    clips: int = defaults.SYNTH_CLIPS
    seed: int = defaults.SYNTH_SEED
    frames: int = defaults.SYNTH_FRAMES
    fps: float = defaults.SYNTH_FPS
    size: int = defaults.SYNTH_SIZE
    audio_rate: int = defaults.SYNTH_AUDIO_RATE

    def key(self) -> str:
        text = json.dumps({"version": SYNTH_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------- speech


def _resonator(signal: np.ndarray, freq: float, bandwidth: float, rate: int) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / rate)
    theta = 2 * np.pi * freq / rate
    return lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], signal)


def synth_speech(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Speech-like audio: phrases of 2-6 syllables separated by 0.25-0.6 s pauses.

    A syllable is a short noise burst (the consonant) and a vowel: a glottal sawtooth
    at a drifting pitch filtered by the vowel's three formant resonators, under a
    raised-cosine loudness envelope. Peak level -3 dBFS, noise floor about -70 dBFS.
    """
    n = int(round(duration_s * rate))
    out = np.zeros(n)
    f0_base = rng.uniform(110, 210)
    t = rng.uniform(0.05, 0.3)
    while t < duration_s - 0.15:
        for _ in range(rng.integers(2, 7)):
            dur = rng.uniform(0.12, 0.28)
            start, length = int(t * rate), int(dur * rate)
            if start + length >= n:
                break
            k = np.arange(length) / rate
            f0 = f0_base * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(1, 3) * k + rng.uniform(0, 6.3)))
            phase = np.cumsum(f0) / rate
            source = 2 * (phase % 1.0) - 1  # sawtooth: a crude but harmonic-rich glottal source
            formants = VOWEL_FORMANTS[rng.integers(len(VOWEL_FORMANTS))] * rng.uniform(0.92, 1.08)
            voiced = sum(
                _resonator(source, f, b, rate) * g for f, b, g in zip(formants, FORMANT_BANDWIDTHS, (1.0, 0.6, 0.3))
            )
            attack, release = int(0.03 * rate), int(0.06 * rate)
            env = np.ones(length)
            env[:attack] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, attack))
            env[-release:] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, release))
            voiced *= env * rng.uniform(0.5, 1.0) / (np.abs(voiced).max() + 1e-9)
            burst_len = int(rng.uniform(0.015, 0.04) * rate)
            burst = rng.standard_normal(burst_len) * np.hanning(burst_len) * rng.uniform(0.05, 0.2)
            out[start : start + length] += voiced
            out[start : start + burst_len] += np.diff(burst, prepend=0.0)  # high-passed noise
            t += dur + rng.uniform(0.02, 0.07)
        t += rng.uniform(0.25, 0.6)
    out *= 10 ** (-3 / 20) / (np.abs(out).max() + 1e-9)
    out += rng.standard_normal(n) * 10 ** (-70 / 20)
    # Quantise to the int16 grid the lossless file stores, so decoding gives these samples.
    return (io.int16_values(out) / 32768).astype(np.float32)


# ---------------------------------------------------------------- face


@dataclass
class _Face:
    image: np.ndarray  # uint8 RGB (size, size, 3)
    landmarks: np.ndarray  # (478, 2) pixels
    field: np.ndarray  # mouth_warp.unit_field of the image
    gap: float  # its lip gap in pixels
    scale: float  # its face scale in pixels


def _base_face(size: int) -> _Face:
    from skimage.data import astronaut

    photo = astronaut()
    found = mesh.detect_landmarks(photo[None], video=False)[0]
    if np.isnan(found).any():
        raise RuntimeError("MediaPipe found no face in skimage.data.astronaut(); is mediapipe==0.10.21 installed?")
    # A square crop twice the face's height, centred on the face.
    x0, y0 = found.min(0)
    x1, y1 = found.max(0)
    side = 2.0 * (y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = size / side
    affine = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]])
    image = cv2.warpAffine(photo, affine, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    landmarks = mesh.detect_landmarks(image[None], video=False)[0].astype(np.float64)
    if np.isnan(landmarks).any():
        raise RuntimeError(f"MediaPipe found no face in the {size}x{size} astronaut crop; use a larger size")
    return _Face(
        image=image,
        landmarks=landmarks,
        field=mouth_warp.unit_field(landmarks, (size, size)),
        gap=float(mesh.lip_gap(landmarks)),
        scale=float(mesh.face_scale(landmarks)),
    )


def _head_motion(n_frames: int, fps: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 2, 3) affine matrices: sums of slow sinusoids in angle, shift and zoom."""
    t = np.arange(n_frames) / fps

    def wobble(amplitude):
        freqs, phases = rng.uniform(0.15, 0.7, 2), rng.uniform(0, 2 * np.pi, 2)
        return (
            amplitude
            * 0.5
            * (np.sin(2 * np.pi * freqs[0] * t + phases[0]) + np.sin(2 * np.pi * freqs[1] * t + phases[1]))
        )

    angle, dx, dy, zoom = wobble(2.5), wobble(0.012 * size), wobble(0.008 * size), 1 + wobble(0.015)
    centre = (size / 2, size / 2)
    mats = []
    for i in range(n_frames):
        m = cv2.getRotationMatrix2D(centre, float(angle[i]), float(zoom[i]))
        m[:, 2] += (dx[i], dy[i])
        mats.append(m)
    return np.stack(mats)


def render_clip(face: _Face, recipe: SynthRecipe, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, S, S, 3) and audio for clip `index` of the recipe."""
    rng = np.random.default_rng([recipe.seed, index])
    duration = recipe.frames / recipe.fps
    speech = synth_speech(duration, recipe.audio_rate, rng)
    openness = loudness.mouth_openness(speech, recipe.audio_rate, recipe.fps, recipe.frames)
    gaps = mouth_warp.target_gap(openness, face.scale)
    motion = _head_motion(recipe.frames, recipe.fps, recipe.size, rng)
    frames = np.empty((recipe.frames, recipe.size, recipe.size, 3), dtype=np.uint8)
    for i in range(recipe.frames):
        talking = mouth_warp.warp_mouth(face.image, face.landmarks, gaps[i] - face.gap, face.field)
        frames[i] = cv2.warpAffine(
            talking, motion[i], (recipe.size, recipe.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
    return frames, speech


def synthesize(out_dir, recipe: SynthRecipe = SynthRecipe(), progress: bool = True) -> Manifest:
    """Write the recipe's clips and `manifest.yaml` into out_dir; return the manifest.

    A clip whose file already exists is kept (rerunning completes an interrupted set).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    face = _base_face(recipe.size)
    clips = []
    for index in tqdm(range(recipe.clips), desc="synthesising clips", unit="clip", disable=not progress):
        path = out_dir / f"synth_{index:03d}.mkv"
        if not path.exists():
            frames, speech = render_clip(face, recipe, index)
            with atomic_path(path) as tmp:
                io.write_video(tmp, frames, recipe.fps, speech, recipe.audio_rate)
        clips.append(describe_clip(path.stem, path))
    manifest = Manifest(
        name=f"synthetic_{recipe.key()}",
        clips=clips,
        description="lipbench synthetic talking heads (skimage astronaut, procedural speech)",
        extra={"recipe": {"version": SYNTH_VERSION, **asdict(recipe)}},
    )
    save_manifest(manifest, out_dir / MANIFEST_NAME)
    return load_manifest(out_dir / MANIFEST_NAME)


def cached_synthetic(recipe: SynthRecipe, cache_dir, progress: bool = True) -> Manifest:
    """The recipe's set from the cache, made on first use."""
    folder = Path(cache_dir) / "synthetic" / recipe.key()
    manifest_path = folder / MANIFEST_NAME
    if manifest_path.exists():
        manifest = load_manifest(manifest_path)
        if len(manifest.clips) == recipe.clips and all(c.video.exists() for c in manifest.clips):
            return manifest
    return synthesize(folder, recipe, progress=progress)
