"""The evaluate phase: metrics for generated videos, one clip at a time.

Each clip's videos are decoded once and analysed once (`Video.shared`), and every metric
reads that shared context. A metric that fails on a clip records its error there and
the others still run. Two entry points use the same scoring:
- `evaluate`: the run directory's videos, one metrics row per (model, clip), written as
  it is made; a finished row is not recomputed on a rerun.
- `evaluate_files`: videos made elsewhere (`lipbench eval --fake ... --real ...`).
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lipbench import io, metrics
from lipbench.config import BenchmarkConfig
from lipbench.data.manifest import VIDEO_SUFFIXES, Manifest
from lipbench.metrics.base import ClipContext, SetMetric, Video
from lipbench.rundir import RunDir
from lipbench.storage import write_json

# Clip ids from file names: the stem less a suffix that marks the role of the file.
DEFAULT_PAIR_REGEX = r"^(?P<id>.+?)(?:_cfr25|_synced|_generated|_gen|_fake|_real|_gt)?$"


def create_metrics(specs, device: str = "cpu", weights_dir=None) -> list:
    """Metric objects for 'family@protocol' specs, after checking that every weight file
    and optional package they need is there (a missing one fails here, before any clip
    is decoded)."""
    objects = [metrics.create(spec, device=device, weights_dir=weights_dir) for spec in specs]
    for metric in objects:
        metric.check_available()
    return objects


def weight_hashes(metric_objects, weights_dir=None) -> dict[str, str]:
    from lipbench.weights import file_sha256, find_weight

    return {name: file_sha256(find_weight(name, weights_dir))
            for m in metric_objects for name in m.weight_files()}


def score_clip(metric_objects, ctx: ClipContext) -> tuple[dict, dict, dict]:
    """(values, errors, set-level features by metric spec) of one clip."""
    values, errors, features = {}, {}, {}
    for metric in metric_objects:
        spec = f"{metric.name}@{metric.protocol}"
        try:
            values.update(metric.compute(ctx))
            if isinstance(metric, SetMetric):
                features[spec] = metric.features(ctx)
        except Exception as exc:  # one broken metric must not cost the others
            errors[spec] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    return values, errors, features


# ------------------------------------------------------------------ run directory

def evaluate(config: BenchmarkConfig, manifest: Manifest, run: RunDir, progress: bool = True) -> dict:
    """Score every generated video of the run that has no metrics row yet; returns counts."""
    metric_objects = create_metrics(metrics.resolve_specs(config.metrics), config.device, config.weights_dir)
    write_json(run.root / "weights.json", weight_hashes(metric_objects, config.weights_dir))
    counts = {"done": 0, "skipped": 0, "missing": 0}
    bar = tqdm(total=len(config.models) * len(manifest.clips), desc="evaluating", unit="video", disable=not progress)
    for clip in manifest.clips:
        pending = []
        for spec in config.models:
            unit = run.read_unit(spec.label, clip.id)
            if not unit or unit.get("status") != "ok":
                counts["missing"] += 1
            elif run.metrics(spec.label, clip.id).exists():
                counts["skipped"] += 1
            else:
                pending.append((spec.label, run.root / unit["video"]))
        bar.update(len(config.models) - len(pending))
        if not pending:
            continue
        reference = Video(clip.frames(), float(clip.fps), clip.driving_audio(), io.DEFAULT_AUDIO_RATE, clip.video)
        for label, video in pending:
            bar.set_postfix_str(f"{label}/{clip.id}")
            row = {"model": label, "clip": clip.id, "values": {}, "errors": {}}
            try:
                ctx = ClipContext(clip.id, Video.from_file(video), reference)
            except io.MediaError as exc:
                row["errors"]["decode"] = str(exc)
            else:
                row["values"], row["errors"], features = score_clip(metric_objects, ctx)
                row.update(n_frames_compared=ctx.n, notes=ctx.notes)
                for spec, arrays in features.items():
                    run.save_features(label, clip.id, spec, arrays)
            write_json(run.metrics(label, clip.id), row)
            counts["done"] += 1
            bar.update(1)
        clip.release()
    bar.close()
    return counts


# ------------------------------------------------------------------ files made elsewhere

def video_files(paths) -> list[Path]:
    """Files as given, and the video files inside folders (sorted)."""
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES))
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    if not out:
        raise FileNotFoundError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return out


def clip_id(path: Path, pair_regex: str = DEFAULT_PAIR_REGEX) -> str:
    found = re.match(pair_regex, path.stem)
    if not found:
        raise ValueError(f"{path}: file name does not match the pairing pattern {pair_regex!r}")
    if "id" in found.groupdict():
        return found.group("id")
    return found.group(1) if found.groups() else found.group(0)


def pair_files(fake, real=None, pair_regex: str = DEFAULT_PAIR_REGEX) -> list[tuple[str, Path, Path | None]]:
    """(clip id, fake file, matching real file or None) for every fake video."""
    fakes = video_files(fake)
    reals = {clip_id(p, pair_regex): p for p in video_files([real])} if real else {}
    pairs, seen = [], set()
    for path in fakes:
        cid = clip_id(path, pair_regex)
        if cid in seen:
            raise ValueError(f"{path}: clip id {cid!r} appears twice among the fake videos")
        seen.add(cid)
        pairs.append((cid, path, reals.get(cid)))
    return pairs


def evaluate_files(pairs, specs, device: str = "cpu", weights_dir=None, face_crops: bool = False,
                   set_resamples: int = 200, progress: bool = True) -> dict:
    """Score (clip id, fake, real) pairs; returns the JSON document of `lipbench eval`."""
    from lipbench.report.results import environment
    from lipbench.report.stats import bootstrap_mean_ci, bootstrap_set_ci

    metric_objects = create_metrics(specs, device, weights_dir)
    needs_reference = any(m.needs_reference for m in metric_objects)
    clips, failed, features = {}, {}, {m: [] for m in metric_objects if isinstance(m, SetMetric)}
    for cid, fake, real in tqdm(pairs, desc="evaluating", unit="clip", disable=not progress):
        if needs_reference and real is None:
            failed[cid] = f"{fake}: no real video with clip id {cid!r} to compare with"
            continue
        try:
            generated = Video.from_file(fake)
            reference = Video.from_file(real) if real is not None else None
        except io.MediaError as exc:
            failed[cid] = str(exc)
            continue
        for video in filter(None, (generated, reference)):
            video.is_face_crop = face_crops
        ctx = ClipContext(cid, generated, reference)
        values, errors, clip_features = score_clip(metric_objects, ctx)
        clips[cid] = values
        if errors:
            failed[cid] = "; ".join(f"{k}: {v.splitlines()[0]}" for k, v in errors.items())
        for metric in features:
            spec = f"{metric.name}@{metric.protocol}"
            if spec in clip_features:
                features[metric].append(clip_features[spec])

    aggregate = {}
    for metric in metric_objects:
        for out in metric.outputs:
            if isinstance(metric, SetMetric) and metric in features:
                items = features[metric]
                if not items:
                    continue
                try:
                    value = metric.combine(items)[out.key]
                except ValueError as exc:  # e.g. too few clips for a covariance
                    aggregate[out.key] = {"value": None, "ci95": None, "n": len(items), "error": str(exc)}
                    continue
                ci = bootstrap_set_ci(items, lambda sample, m=metric, k=out.key: m.combine(sample)[k], set_resamples,
                                      label=out.key)
                aggregate[out.key] = {"value": value, "ci95": ci, "n": len(items),
                                      "ci_method": f"bootstrap over clips, {set_resamples} resamples, recomputed"}
            else:
                per_clip = [v[out.key] for v in clips.values() if out.key in v and v[out.key] is not None]
                if not per_clip:
                    continue
                aggregate[out.key] = {"value": float(np.nanmean(per_clip)), "ci95": bootstrap_mean_ci(per_clip),
                                      "n": len(per_clip), "ci_method": "bootstrap of the mean over clips, 2000 resamples"}
    return {
        "n_clips": len(pairs),
        "n_failed": len(failed),
        "metrics": specs,
        "aggregate": aggregate,
        "clips": clips,
        "failed": failed,
        "pairs": {cid: {"fake": str(f), "real": str(r) if r else None} for cid, f, r in pairs},
        "weights": weight_hashes(metric_objects, weights_dir),
        "env": {**environment(), "device": device},
    }
