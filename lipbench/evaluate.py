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
from lipbench.metric_keys import metric_key
from lipbench.metrics.base import Alignment, ClipContext, SetMetric, Unavailable, Video
from lipbench.report.schema import first_line as schema_first_line
from lipbench.report.schema import is_finite_number
from lipbench.rundir import RunDir
from lipbench.storage import write_json

# Clip ids from file names: the stem less a suffix that marks the role of the file.
DEFAULT_PAIR_REGEX = r"^(?P<id>.+?)(?:_cfr25|_synced|_generated|_gen|_fake|_real|_gt)?$"


def create_metrics(specs, device: str = "cpu", weights_dir=None, load: bool = True) -> list:
    """Metric objects for 'family@protocol' specs, after checking that every weight file
    and optional package they need is there and, with `load`, loading their networks (a
    missing or bad file fails here, before any clip is decoded)."""
    objects = [metrics.create(spec, device=device, weights_dir=weights_dir) for spec in specs]
    for metric in objects:
        metric.check_available()
        if load:
            metric.load()  # its networks, once: a bad weight file stops here (BadWeightError)
    return objects


def weight_hashes(metric_objects, weights_dir=None) -> dict[str, str]:
    from lipbench.weights import file_sha256, find_weight

    return {name: file_sha256(find_weight(name, weights_dir)) for m in metric_objects for name in m.weight_files()}


def score_clip(metric_objects, ctx: ClipContext) -> tuple[dict, dict, dict]:
    """(values, errors, set-level features by metric spec) of one clip. A metric that
    compares with the reference fails with `ctx.reference_problem` when the generated
    video cannot be lined up with it (frame rate, coverage); a value that is not a finite
    number fails its metric: a number never stands in for "not computable". A value the
    metric gives as `Unavailable` fails alone: its reason goes to notes["unavailable"]."""
    values, errors, features = {}, {}, {}
    for metric in metric_objects:
        spec = spec_of(metric)
        if metric.needs_reference and ctx.reference is not None and ctx.reference_problem:
            errors[spec] = ctx.reference_problem
            continue
        try:
            computed = metric.keyed(metric.compute(ctx))
            unavailable = {k: v.reason for k, v in computed.items() if isinstance(v, Unavailable)}
            computed = {k: v for k, v in computed.items() if k not in unavailable}
            bad = {k: v for k, v in computed.items() if not is_finite_number(v)}
            if bad:
                raise ValueError(f"{ctx.clip_id}: {spec} gave {bad}: not a finite number")
            if isinstance(metric, SetMetric):
                features[spec] = metric.features(ctx)
            values.update(computed)
            if unavailable:
                ctx.notes.setdefault("unavailable", {}).update(unavailable)
        except Exception as exc:  # one broken metric must not cost the others
            errors[spec] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    return values, errors, features


# ------------------------------------------------------------------ run directory


def spec_of(metric) -> str:
    return metric_key(metric.name, metric.protocol, metric.audio)


def metric_fingerprints(metric_objects, weights_dir=None, alignment: Alignment | None = None) -> dict[str, dict]:
    """What makes each metric's values besides the videos: its protocol and settings (and
    how a video is lined up with its reference, for metrics that compare with one) and
    the sha256 of its weight files."""
    from dataclasses import asdict

    from lipbench.weights import file_sha256, find_weight

    lining = asdict(alignment or Alignment())
    return {
        spec_of(m): {
            "settings": {**m.settings(), **({"alignment": lining} if m.needs_reference else {})},
            "weights": {name: file_sha256(find_weight(name, m.weights_dir)) for name in m.weight_files()},
        }
        for m in metric_objects
    }


def metric_pending_reason(row: dict | None, spec: str, fingerprint: dict) -> str | None:
    """Why a metric value of a (model, clip) must be (re)computed, or None when it is current."""
    if row is None:
        return "not computed yet"
    if spec in (row.get("errors") or {}):
        return "failed before"
    old = (row.get("fingerprints") or {}).get(spec)
    if old is None:
        return "metric added"
    for key, reason in (
        ("video_sha256", "video regenerated"),
        ("clip_sha256", "clip file changed on disk"),
        ("settings", "settings changed"),
    ):
        if old.get(key) != fingerprint.get(key):
            return reason
    if old.get("weights") != fingerprint.get("weights"):
        was, now = old.get("weights") or {}, fingerprint.get("weights") or {}
        return f"weight file {', '.join(sorted(n for n in set(was) | set(now) if was.get(n) != now.get(n)))} changed"
    return None


def evaluate(
    config: BenchmarkConfig, manifest: Manifest, run: RunDir, progress: bool = True, metric_objects: list | None = None
) -> dict:
    """Compute every metric value of the run's videos that is not current: new videos,
    added metrics, values whose video, clip or weight files changed, values that failed
    before. One line per reason is printed first. Returns counts. `metric_objects`: the
    config's metrics already made (and loaded) on its device, e.g. by `run`'s check."""
    from collections import Counter

    from lipbench.rundir import format_reasons

    # networks are loaded below, only when some value is to be computed
    metric_objects = metric_objects or create_metrics(
        config.metric_specs(), config.device, config.weights_dir, load=False
    )
    alignment = config.alignment()
    settings = metric_fingerprints(metric_objects, config.weights_dir, alignment)
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
                fingerprint = {
                    **settings[spec_of(metric)],
                    "video_sha256": unit.get("video_sha256"),
                    "clip_sha256": unit.get("clip_sha256"),
                }
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
    needed = {spec_of(metric): metric for units in work.values() for *_, todo in units for metric, _ in todo}
    for metric in needed.values():
        metric.load()  # once, before any clip: a bad weight file stops here (BadWeightError)
    bar = tqdm(total=sum(map(len, work.values())), desc="evaluating", unit="video", disable=not progress)
    for clip in manifest.clips:
        mine = work.get(clip.id)
        if not mine:
            continue
        try:
            reference = Video(clip.frames(), float(clip.fps), clip.driving_audio(), io.DEFAULT_AUDIO_RATE, clip.video)
        except Exception as exc:  # one bad file costs its clip, named
            reference = file_error(clip.video, exc)
        for label, unit, row, todo in mine:
            bar.set_postfix_str(f"{label}/{clip.id}")
            counts["failed"] += _score_unit(run, clip, label, unit, row, todo, reference, alignment)
            counts["done"] += 1
            bar.update(1)
        clip.release()
    bar.close()
    return counts


def file_error(path, exc: Exception) -> io.MediaError:
    """Any failure to read a file, as a MediaError naming it (a MediaError as it is)."""
    if isinstance(exc, io.MediaError):
        return exc
    return io.MediaError(path, f"cannot be read ({type(exc).__name__}: {schema_first_line(exc)})")


def decode(path) -> Video:
    try:
        return Video.from_file(path)
    except Exception as exc:
        raise file_error(path, exc) from exc


def score_pair(
    clip_id: str, metric_objects, generated_path, reference: Video | Exception | None, alignment: Alignment
) -> tuple[dict, dict, dict, dict]:
    """(values, errors, features, notes) of one generated file against its reference (a
    decoded Video, the error that kept it from decoding, or None). A file that cannot be
    read fails the metrics that need it with the file named; the others still run."""
    errors = {}
    if isinstance(reference, Exception):
        errors = {spec_of(m): str(reference) for m in metric_objects if m.needs_reference}
        reference = None
    todo = [m for m in metric_objects if spec_of(m) not in errors]
    if not todo:
        return {}, errors, {}, {}
    try:
        ctx = ClipContext(clip_id, decode(generated_path), reference, alignment)
    except io.MediaError as exc:  # every metric asked for fails with the reason
        return {}, {**errors, **{spec_of(m): str(exc) for m in todo}}, {}, {}
    values, more_errors, features = score_clip(todo, ctx)
    notes = {**ctx.notes, "frames_compared": ctx.n}
    return values, {**errors, **more_errors}, features, notes


def _score_unit(
    run: RunDir, clip, label: str, unit: dict, row: dict | None, todo, reference, alignment: Alignment
) -> int:
    """Compute `todo` [(metric, fingerprint)] for one video and merge them into its row:
    the values of every recomputed metric are replaced, the others kept. Returns the
    number of metrics that failed."""
    row = row or {"model": label, "clip": clip.id, "values": {}, "errors": {}, "fingerprints": {}}
    row.setdefault("fingerprints", {})
    for metric, _ in todo:
        spec = spec_of(metric)
        for out in metric.outputs:
            row["values"].pop(out.key, None)
            row.get("notes", {}).get("unavailable", {}).pop(out.key, None)
        row["errors"].pop(spec, None)
        row["fingerprints"].pop(spec, None)
    values, errors, features, notes = score_pair(
        clip.id, [m for m, _ in todo], run.root / unit["video"], reference, alignment
    )
    row["notes"] = {**row.get("notes", {}), **notes}
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
        elif path.is_symlink():
            raise MissingInputError(f"{path}: {io.not_a_file(path)}")
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
    """(clip id, fake file, matching real file or None) for every fake video. Two files
    with one clip id on either side are an error naming both."""

    def by_id(files, side):
        out = {}
        for path in files:
            cid = clip_id(path, pair_regex)
            if cid in out:
                raise UsageError(
                    f"{out[cid]} and {path}: both have clip id {cid!r} among the {side} videos "
                    "(rename one, or set --pair-regex)"
                )
            out[cid] = path
        return out

    fakes = by_id(video_files(fake), "fake")
    reals = by_id(video_files([real]), "real") if real else {}
    return [(cid, path, reals.get(cid)) for cid, path in fakes.items()]


def evaluate_files(
    pairs,
    specs,
    device: str = "cpu",
    weights_dir=None,
    alignment: Alignment | None = None,
    set_resamples: int = 200,
    progress: bool = True,
    name: str | None = None,
    resamples: int = 2000,
    out=None,
    audio: str = "own",
) -> dict:
    """Score (clip id, fake, real) pairs; returns the results document of `lipbench eval`
    (lipbench.report.schema, the same as a run's results.json) with the scored set as
    the one model, named `name` or else after the folder holding the fake videos ('fake'
    when they come from several folders). With `out`, the document is also written there
    after every clip (`complete` false, clips not scored yet pending, set-level values
    pooled only at the end), so an interrupted evaluation keeps what it scored."""
    from lipbench.report.results import environment
    from lipbench.report.schema import ClipRecord, build_results

    metric_objects = create_metrics(specs, device, weights_dir)
    alignment = alignment or Alignment()
    folders = {Path(fake).parent.resolve() for _, fake, _ in pairs}
    name = name or (folders.pop().name if len(folders) == 1 else "") or "fake"
    extra = dict(
        pairs={cid: {"fake": str(f), "real": str(r) if r else None} for cid, f, r in pairs},
        weights=weight_hashes(metric_objects, weights_dir),
        environment={**environment(), "device": device},
        alignment={"min_coverage": alignment.min_coverage, "resample_fps": alignment.resample_fps},
        audio={"protocol": audio},  # which speech drove the fakes (`--audio`): the user says, as for a run
    )
    records = [ClipRecord(cid, status="pending") for cid, _, _ in pairs]

    def document(complete: bool) -> dict:
        return build_results(
            "eval",
            {name: records},
            list(specs),
            resamples if complete else 0,
            set_resamples if complete else 0,
            timing_keys=(),
            pool=complete,
            complete=complete,
            **extra,
        )

    for i, (cid, fake, real) in enumerate(tqdm(pairs, desc="evaluating", unit="clip", disable=not progress)):
        record = ClipRecord(cid, scored=True)
        if real is None:  # metrics that compare with a reference fail; the others still run
            reference = MissingInputError(f"{fake}: no real video with clip id {cid!r} to compare with")
        else:
            try:
                reference = decode(real)
            except io.MediaError as exc:
                reference = exc
        record.values, record.errors, record.features, record.notes = score_pair(
            cid, metric_objects, fake, reference, alignment
        )
        records[i] = record
        if out is not None:
            write_json(out, document(complete=False))
    result = document(complete=True)
    if out is not None:
        write_json(out, result)
    return result
