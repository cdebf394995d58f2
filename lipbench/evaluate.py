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

from tqdm import tqdm

from lipbench import io, metrics
from lipbench.config import BenchmarkConfig
from lipbench.data.manifest import VIDEO_SUFFIXES, Manifest
from lipbench.errors import MissingInputError, UsageError
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

def spec_of(metric) -> str:
    return f"{metric.name}@{metric.protocol}"


def metric_fingerprints(metric_objects, weights_dir=None) -> dict[str, dict]:
    """What makes each metric's values besides the videos: its protocol and settings and
    the sha256 of its weight files."""
    from lipbench.weights import file_sha256, find_weight

    return {spec_of(m): {"settings": m.settings(),
                         "weights": {name: file_sha256(find_weight(name, m.weights_dir)) for name in m.weight_files()}}
            for m in metric_objects}


def metric_pending_reason(row: dict | None, spec: str, fingerprint: dict) -> str | None:
    """Why a metric value of a (model, clip) must be (re)computed, or None when it is current."""
    if row is None:
        return "not computed yet"
    if spec in (row.get("errors") or {}):
        return "failed before"
    old = (row.get("fingerprints") or {}).get(spec)
    if old is None:
        return "metric added"
    for key, reason in (("video_sha256", "video regenerated"), ("clip_sha256", "clip file changed on disk"),
                        ("settings", "settings changed")):
        if old.get(key) != fingerprint.get(key):
            return reason
    if old.get("weights") != fingerprint.get("weights"):
        was, now = old.get("weights") or {}, fingerprint.get("weights") or {}
        return f"weight file {', '.join(sorted(n for n in set(was) | set(now) if was.get(n) != now.get(n)))} changed"
    return None


def evaluate(config: BenchmarkConfig, manifest: Manifest, run: RunDir, progress: bool = True) -> dict:
    """Compute every metric value of the run's videos that is not current: new videos,
    added metrics, values whose video, clip or weight files changed, values that failed
    before. One line per reason is printed first. Returns counts."""
    from collections import Counter

    from lipbench.rundir import format_reasons

    metric_objects = create_metrics(metrics.resolve_specs(config.metrics), config.device, config.weights_dir)
    settings = metric_fingerprints(metric_objects, config.weights_dir)
    counts = {"done": 0, "skipped": 0, "missing": 0, "failed": 0}
    work, reasons = {}, Counter()  # clip id -> [(label, unit, row, metrics to compute)]
    for clip in manifest.clips:
        for spec in config.models:
            unit = run.read_unit(spec.label, clip.id)
            if not unit or unit.get("status") != "ok":
                counts["missing"] += 1
                continue
            row = run.read_metrics(spec.label, clip.id)
            todo = []
            for metric in metric_objects:
                fingerprint = {**settings[spec_of(metric)], "video_sha256": unit.get("video_sha256"),
                               "clip_sha256": unit.get("clip_sha256")}
                why = metric_pending_reason(row, spec_of(metric), fingerprint)
                if why:
                    todo.append((metric, fingerprint))
                    reasons[(spec_of(metric), why)] += 1
            if todo:
                work.setdefault(clip.id, []).append((spec.label, unit, row, todo))
            else:
                counts["skipped"] += 1
    if progress:
        for line in format_reasons("evaluate", reasons):
            print(line)
    bar = tqdm(total=sum(map(len, work.values())), desc="evaluating", unit="video", disable=not progress)
    for clip in manifest.clips:
        mine = work.get(clip.id)
        if not mine:
            continue
        try:
            reference = Video(clip.frames(), float(clip.fps), clip.driving_audio(), io.DEFAULT_AUDIO_RATE, clip.video)
        except io.MediaError as exc:
            reference = exc
        for label, unit, row, todo in mine:
            bar.set_postfix_str(f"{label}/{clip.id}")
            counts["failed"] += _score_unit(run, clip, label, unit, row, todo, reference)
            counts["done"] += 1
            bar.update(1)
        clip.release()
    bar.close()
    return counts


def _score_unit(run: RunDir, clip, label: str, unit: dict, row: dict | None, todo, reference) -> int:
    """Compute `todo` [(metric, fingerprint)] for one video and merge them into its row:
    the values of every recomputed metric are replaced, the others kept. Returns the
    number of metrics that failed."""
    row = row or {"model": label, "clip": clip.id, "values": {}, "errors": {}, "fingerprints": {}}
    row.setdefault("fingerprints", {})
    for metric, _ in todo:
        spec = spec_of(metric)
        for out in metric.outputs:
            row["values"].pop(out.key, None)
        row["errors"].pop(spec, None)
        row["fingerprints"].pop(spec, None)
    objects = [m for m, _ in todo]
    try:
        if isinstance(reference, Exception):
            raise reference
        ctx = ClipContext(clip.id, Video.from_file(run.root / unit["video"]), reference)
    except io.MediaError as exc:  # every metric asked for fails with the reason
        values, errors, features = {}, {spec_of(m): str(exc) for m in objects}, {}
    else:
        values, errors, features = score_clip(objects, ctx)
        row.update(n_frames_compared=ctx.n, notes=ctx.notes)
    row["values"].update(values)
    row["errors"].update(errors)
    for metric, fingerprint in todo:
        spec = spec_of(metric)
        if spec in errors:
            run.drop_features(label, clip.id, spec)  # a pooled metric must not use stale features
        else:
            row["fingerprints"][spec] = fingerprint
            if spec in features:
                run.save_features(label, clip.id, spec, features[spec])
    write_json(run.metrics(label, clip.id), row)
    return len(errors)


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
            raise MissingInputError(f"{path}: no such file or folder")
    if not out:
        raise MissingInputError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return out


def clip_id(path: Path, pair_regex: str = DEFAULT_PAIR_REGEX) -> str:
    try:
        found = re.match(pair_regex, path.stem)
    except re.error as exc:
        raise UsageError(f"pairing pattern {pair_regex!r} is not a valid regular expression ({exc})") from exc
    if not found:
        raise UsageError(f"{path}: file name does not match the pairing pattern {pair_regex!r}")
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
            raise UsageError(f"{path}: clip id {cid!r} appears twice among the fake videos")
        seen.add(cid)
        pairs.append((cid, path, reals.get(cid)))
    return pairs


def evaluate_files(pairs, specs, device: str = "cpu", weights_dir=None, face_crops: bool = False,
                   set_resamples: int = 200, progress: bool = True, name: str | None = None,
                   resamples: int = 2000) -> dict:
    """Score (clip id, fake, real) pairs; returns the results document of `lipbench eval`
    (lipbench.report.schema, the same as a run's results.json) with the scored set as
    the one model, named `name` or else after the folder holding the fake videos ('fake'
    when they come from several folders)."""
    from lipbench.report.results import environment
    from lipbench.report.schema import ClipRecord, build_results

    metric_objects = create_metrics(specs, device, weights_dir)
    records = []
    for cid, fake, real in tqdm(pairs, desc="evaluating", unit="clip", disable=not progress):
        record = ClipRecord(cid, scored=True)
        if real is None:  # metrics that compare with a reference fail; the others still run
            record.errors = {spec_of(m): f"{fake}: no real video with clip id {cid!r} to compare with"
                             for m in metric_objects if m.needs_reference}
        todo = [m for m in metric_objects if spec_of(m) not in record.errors]
        try:
            generated = Video.from_file(fake) if todo else None
            reference = Video.from_file(real) if todo and real is not None else None
        except io.MediaError as exc:  # every metric fails with the reason, as in a run
            record.errors.update({spec_of(m): str(exc) for m in todo})
            todo = []
        if todo:
            for video in filter(None, (generated, reference)):
                video.is_face_crop = face_crops
            record.values, errors, record.features = score_clip(todo, ClipContext(cid, generated, reference))
            record.errors.update(errors)
        records.append(record)
    folders = {Path(fake).parent.resolve() for _, fake, _ in pairs}
    name = name or (folders.pop().name if len(folders) == 1 else "") or "fake"
    return build_results(
        "eval", {name: records}, list(specs), resamples, set_resamples, timing_keys=(),
        pairs={cid: {"fake": str(f), "real": str(r) if r else None} for cid, f, r in pairs},
        weights=weight_hashes(metric_objects, weights_dir), environment={**environment(), "device": device})
