"""How small may the face be before av_ncc/av_lag@mesh_energy stop being reliable?

Issue 11: the ground truth against its own audio scored a lag of -6 frames once its video
was downscaled to 96 px, 0 at 256 px. This script measures where the face mesh's lip gap
stops following the mouth, in the measure the metric itself can compute on any input
(`lipbench.metrics.avsync.face_size_px`: the median distance between the outer eye
corners, `mesh.face_scale`, over the frames with a face), and so records how the metric's
threshold `MIN_FACE_PX` was chosen.

Clips with known, correct sync:
- the synthetic talking heads (`lipbench.data.synthetic`, the mouth driven by the audio,
  256 px; written to --work/synth);
- the real HDTF clips under ../shared/data/hdtf_samples/real (ground truth; 376-776 px).

Each clip (its first --frames frames) is scored at full size, then downscaled (cv2
INTER_AREA, both sides, aspect kept) so that its long side is each of --sizes smaller
than the original, and scored again: landmarks from a fresh MediaPipe face mesh in video
mode (as `Video.landmarks`), `mesh.mouth_aperture`, `audio.frame_energy_db` of the clip's
own audio (16 kHz, as `Video.from_file` decodes it) and `avsync.sync_score`: exactly the
metric's computation, without its face-size refusal. Frames stay in memory (no re-encoding).

A size is reliable for a clip when the lag found is within +-1 frame of the lag found at
full size. Printed: one row per clip and size (face size, frames with a face, lag, ncc),
then the largest face size at which any clip was unreliable and the smallest at which all
were reliable from there up.

Usage (about 5 minutes on 2 CPU cores with the defaults):
  python benchmarks/perf/avsync_face_size.py --work /tmp/avsize [--json /tmp/avsize/result.json]

Measured for MIN_FACE_PX (lipbench/metrics/avsync.py), 2 CPU cores, mediapipe 0.10.21:
  (a) --synth-clips 8 --frames 100 --sizes 48 56 64 72 80 88 96 112 128 160 192 256 (+ the 5 HDTF clips)
  (b) --synth-clips 16 --frames 100 --hdtf-clips 0 --sizes 96 100 104 108 112 120 128 144
  (c) --synth-clips 16 --seed 1 --frames 50 --hdtf-clips 0 --sizes 96 104 112 120 128 144 160
  (d) as (c) with --interpolation linear
- Synthetic face (73 px at 256 px): lag 0 at full size on all 32 clips (ncc 0.85-0.94;
  (b) repeats (a)'s 8 clips). Downscaled, the lag left +-1 of 0 on faces of 13.8-29.7 px,
  by 2 to 10 frames: (a) 32/32 at 18.3-25.2 px, 13/16 at 13.8-16.3 px (the
  rest by chance), 1/8 at 27.3 px; (b) 1/16 at 27.3 px, 1/16 at 28.4 px; (c) 8/16 at
  27.2-27.6 px, 3/16 at 29.5-29.7 px; (d) 2/16 at 27.1-27.3 px; in no run on a face of
  31.8 px or more. av_ncc falls steadily as the face shrinks: at 36.3-36.7 px it
  keeps 74-92% of its full-size value, at 31.8-32.1 px 40-87%; the mouth aperture's
  correlation with its own full-size series is 0.81-0.96 at 36.3-36.7 px, 0.53-0.93 at
  31.8-32.1 px.
- Real HDTF ground truth (faces 102-199 px at full size): no lag reference for this
  metric: its full-size peak is weak (100 frames: ncc 0.09-0.36 at lags -9, -9, +10,
  +10, +10, at or next to the edge of the search; all 240-482 frames: ncc 0.04-0.19 at
  lags -7, -6, -6, -2, +10). Their mouth aperture correlates >= 0.95 with its full-size
  series on every face of 36 px and more (0.40-0.98 on smaller faces).
- Chosen: 36 px, a ~20% margin above the largest face with a wrong lag (29.7 px).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from lipbench import audio as audio_features
from lipbench import io
from lipbench.data.synthetic import SynthRecipe, synthesize
from lipbench.faces import mesh
from lipbench.metrics.avsync import MAX_LAG_FRAMES, face_size_px, sync_score

REPO = Path(__file__).resolve().parents[2]
DEFAULT_HDTF = REPO.parent / "shared" / "data" / "hdtf_samples"
DEFAULT_SIZES = [48, 64, 80, 96, 104, 112, 120, 128, 144, 160, 192, 256]
AUDIO_RATE = 16000
TOLERANCE_FRAMES = 1
MIN_REFERENCE_NCC = 0.5  # a clip's full-size lag is a reference only with a peak at least this clear
INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


def load_clips(args) -> list[tuple[str, np.ndarray, float, np.ndarray]]:
    """(name, frames, fps, audio at AUDIO_RATE) of every clip with known sync."""
    clips = []
    if args.synth_clips:
        manifest = synthesize(
            Path(args.work) / "synth",
            SynthRecipe(clips=args.synth_clips, frames=args.frames, seed=args.seed),
            progress=False,
        )
        paths = [(c.id, c.video) for c in manifest.clips]
    else:
        paths = []
    real = Path(args.hdtf) / "real"
    if args.hdtf_clips and real.is_dir():
        paths += [(p.stem.removesuffix("_cfr25"), p) for p in sorted(real.glob("*.mp4"))[: args.hdtf_clips]]
    for name, path in paths:
        frames, fps = io.read_video(path, max_frames=args.frames)
        clips.append((name, frames, fps, io.read_audio(path, AUDIO_RATE)))
    return clips


def downscale(frames: np.ndarray, long_side: int, interpolation: int) -> np.ndarray:
    height, width = frames.shape[1:3]
    factor = long_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.stack([cv2.resize(f, size, interpolation=interpolation) for f in frames])


def score(frames: np.ndarray, fps: float, audio: np.ndarray) -> tuple[dict, np.ndarray]:
    """The avsync metric's computation on these frames, without its face-size refusal:
    (a row of results, the mouth aperture per frame)."""
    landmarks = mesh.detect_landmarks(frames).astype(np.float64)
    aperture = mesh.mouth_aperture(landmarks)
    row = {
        "long_side": int(max(frames.shape[1:3])),
        "frames": len(frames),
        "with_face": int(np.isfinite(mesh.face_scale(landmarks)).sum()),
    }
    try:
        row["face_px"], _ = face_size_px(landmarks)
        level = audio_features.frame_energy_db(audio, AUDIO_RATE, fps, len(frames))
        row["ncc"], row["lag"] = sync_score(aperture, level, MAX_LAG_FRAMES)
    except ValueError as exc:  # no face, too few frames with one, or a still mouth
        row["error"] = str(exc)
    return row, aperture


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def measure(clips, sizes, interpolation) -> list[dict]:
    rows = []
    for name, frames, fps, audio in clips:
        full, full_aperture = score(frames, fps, audio)
        # The full-size lag is a reference only where the metric finds the clip's sync
        # there: a clear peak (ncc) inside the searched range.
        full["lag_reference"] = "lag" in full and full["ncc"] >= MIN_REFERENCE_NCC and abs(full["lag"]) < MAX_LAG_FRAMES
        full.update(clip=name, full_size=True, reliable=None, aperture_r=1.0)
        rows.append(full)
        print(
            f"{name}: full size {full['long_side']} px, face {full.get('face_px', float('nan')):.1f} px, "
            f"lag {full.get('lag')}, ncc {full.get('ncc', float('nan')):.3f}"
            + ("" if full["lag_reference"] else " (not a lag reference)"),
            flush=True,
        )
        for size in sorted(sizes, reverse=True):
            if size >= full["long_side"]:
                continue
            row, aperture = score(downscale(frames, size, interpolation), fps, audio)
            row.update(clip=name, full_size=False, aperture_r=pearson(aperture, full_aperture))
            row["reliable"] = (
                None
                if not full["lag_reference"]
                else "lag" in row and abs(row["lag"] - full["lag"]) <= TOLERANCE_FRAMES
            )
            rows.append(row)
    return rows


def table(rows) -> str:
    lines = [
        "| clip | long side (px) | face (px) | frames with a face | lag (frames) | ncc "
        "| aperture r vs full size | lag within +-1 of full size |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        face = f"{r['face_px']:.1f}" if "face_px" in r else "-"
        lag = f"{r['lag']:+.0f}" if "lag" in r else "-"
        ncc = f"{r['ncc']:.3f}" if "ncc" in r else "-"
        ap = f"{r['aperture_r']:.3f}" if r["aperture_r"] is not None else "-"
        if r["full_size"]:
            verdict = "(full size)" if r["lag_reference"] else "(full size: not a lag reference)"
        else:
            verdict = {None: "n/a", True: "yes", False: "**no**"}[r["reliable"]]
        if "error" in r:
            verdict += f" ({r['error']})"
        lines.append(
            f"| {r['clip']} | {r['long_side']} | {face} | {r['with_face']}/{r['frames']} | {lag} | {ncc} "
            f"| {ap} | {verdict} |"
        )
    return "\n".join(lines)


def summary(rows) -> str:
    """Where reliability ends, in face pixels (the metric's own measure)."""
    judged = [r for r in rows if r["reliable"] is not None]
    bad = [r for r in judged if not r["reliable"]]
    lines = [
        f"lag references (full-size ncc >= {MIN_REFERENCE_NCC}, |lag| < {MAX_LAG_FRAMES}): "
        + ", ".join(r["clip"] for r in rows if r["full_size"] and r["lag_reference"])
    ]
    if not bad:
        lines.append("every downscaled size of the lag references was reliable")
    else:
        worst = max(bad, key=lambda r: r.get("face_px", -1.0))
        largest_bad = worst.get("face_px", float("nan"))
        lines.append(
            f"largest face size with an unreliable lag: {largest_bad:.1f} px "
            f"({worst['clip']} at {worst['long_side']} px: lag {worst.get('lag')})"
        )
        above = [r["face_px"] for r in judged if r.get("face_px", -1.0) > largest_bad]
        if above:
            lines.append(f"smallest face size above that (all reliable from there up): {min(above):.1f} px")
    for floor in (0.95, 0.9, 0.8):
        low = [r for r in rows if not r["full_size"] and (r["aperture_r"] or 0.0) < floor and "face_px" in r]
        if low:
            worst = max(low, key=lambda r: r["face_px"])
            lines.append(
                f"largest face size with mouth aperture r < {floor} against full size: "
                f"{worst['face_px']:.1f} px ({worst['clip']} at {worst['long_side']} px)"
            )
    no_face = [r for r in rows if "face_px" not in r]
    if no_face:
        lines.append("no face found: " + ", ".join(f"{r['clip']}@{r['long_side']}" for r in no_face))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/avsync_face_size", help="folder for the synthetic clips")
    parser.add_argument("--hdtf", default=str(DEFAULT_HDTF), help="folder with real/*.mp4 (correct sync)")
    parser.add_argument("--hdtf-clips", type=int, default=5)
    parser.add_argument("--synth-clips", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="synthetic set's seed")
    parser.add_argument("--frames", type=int, default=100, help="first frames of each clip")
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="long sides to downscale to")
    parser.add_argument("--interpolation", choices=sorted(INTERPOLATION), default="area")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    clips = load_clips(args)
    rows = measure(clips, args.sizes, INTERPOLATION[args.interpolation])
    print()
    print(table(rows))
    print()
    print(summary(rows))
    print(
        f"\n{len(clips)} clips, {args.frames} frames each, {args.interpolation} downscaling, "
        f"{time.perf_counter() - start:.0f} s"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
