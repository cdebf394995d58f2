"""A run directory's clip records, per-clip rows and results document (the schema and
the aggregation are in lipbench.report.schema), and the files they go to."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

import lipbench
from lipbench import metrics
from lipbench.metrics.base import SetMetric
from lipbench.report.schema import TIMING_KEYS, ClipRecord, build_results, first_line
from lipbench.rundir import RunDir
from lipbench.timing import LATENCY_FIGURES
from lipbench.storage import write_json, write_jsonl

TIMING_COLUMNS = TIMING_KEYS
UNIT_COLUMNS = TIMING_COLUMNS + (
    "n_frames",
    "n_chunks",
    "chunk_frames",
    "chunk_s",
    "device",
    "timer",
    "timing_protocol",
    *LATENCY_FIGURES,
    "live",
)


def registered_as_reference(model: str) -> bool:
    """Whether a registered model is a reference row (LipSyncModel.reference); False when
    its adapter cannot be imported here (a report of someone else's run)."""
    from lipbench.errors import UnknownNameError
    from lipbench.models import MODELS

    try:
        return bool(MODELS.resolve(model).reference)
    except UnknownNameError:
        return False


def clip_records(run: RunDir, config, manifest, with_features: bool = True) -> dict[str, list[ClipRecord]]:
    """Model name -> one record per clip of the manifest, from the unit and metrics files;
    with the set-level features of scored clips when `with_features`."""
    specs = config.metric_specs()
    set_specs = [s for s in specs if isinstance(metrics.create(s), SetMetric)] if with_features else []
    out = {}
    for spec in config.models:
        records = []
        for clip in manifest.clips:
            unit = run.read_unit(spec.label, clip.id)
            if not unit:
                records.append(ClipRecord(clip.id, status="pending"))
                continue
            record = ClipRecord(
                clip.id, status=unit.get("status", "error"), stage=unit.get("stage"), error=unit.get("error"), unit=unit
            )
            scored = run.read_metrics(spec.label, clip.id) if record.status == "ok" else None
            if scored:
                record.scored, record.values, record.errors = True, scored.get("values", {}), scored.get("errors", {})
                record.notes = scored.get("notes") or {}
                record.features = {
                    s: f for s in set_specs if (f := run.load_features(spec.label, clip.id, s)) is not None
                }
            records.append(record)
        out[spec.label] = records
    return out


def audio_record(config, manifest) -> dict:
    """Which speech drove the clips (config `audio`): 'own' (reconstruction) or 'cross'
    (dubbing) with {clip: the clip whose speech drove it}."""
    out = {"protocol": config.audio}
    if config.audio == "cross":
        out["pairs"] = {c.id: c.audio_from for c in manifest.clips}
    return out


def _row(model: str, record: ClipRecord, audio: dict) -> dict:
    """`audio`: audio_record's; every row names its protocol (and its driving clip under cross audio)."""
    row = {"model": model, "clip": record.clip, "audio": audio["protocol"]}
    if "pairs" in audio:
        row["audio_from"] = audio["pairs"].get(record.clip)
    row["status"] = record.status
    if record.status == "ok":
        row.update({k: record.unit.get(k) for k in UNIT_COLUMNS})
    elif record.status != "pending":
        row.update(stage=record.stage, error=record.error)
    row.update(record.values)
    if record.errors:
        row["metric_errors"] = {k: first_line(v) for k, v in record.errors.items()}
    if record.notes:
        row["notes"] = record.notes
    return row


def per_clip_rows(run: RunDir, config, manifest) -> list[dict]:
    """One row per (model, clip): status, timing and metric values flattened."""
    audio = audio_record(config, manifest)
    return [
        _row(model, r, audio)
        for model, records in clip_records(run, config, manifest, with_features=False).items()
        for r in records
    ]


def environment() -> dict:
    def version(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    try:
        git = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=Path(lipbench.__file__).parent,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        git = None
    return {
        "lipbench": lipbench.__version__,
        "git_commit": git,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "packages": {
            p: version(p)
            for p in (
                "torch",
                "torchvision",
                "numpy",
                "scipy",
                "av",
                "mediapipe",
                "opencv-python-headless",
                "scikit-image",
            )
        },
    }


def weights_used(run: RunDir, config, manifest) -> dict:
    """Weight file name -> the sha256 its metric values were computed with (from each
    value's fingerprint); a list when values on disk came from different files."""
    found: dict[str, set] = {}
    for spec in config.models:
        for clip in manifest.clips:
            row = run.read_metrics(spec.label, clip.id) or {}
            for fingerprint in (row.get("fingerprints") or {}).values():
                for name, sha in (fingerprint.get("weights") or {}).items():
                    found.setdefault(name, set()).add(sha)
    return {name: next(iter(shas)) if len(shas) == 1 else sorted(shas) for name, shas in sorted(found.items())}


def write_results(run: RunDir, config, manifest) -> dict:
    """Write per_clip.jsonl and results.json (lipbench.report.schema); returns the results."""
    records = clip_records(run, config, manifest)
    audio = audio_record(config, manifest)
    write_jsonl(run.root / "per_clip.jsonl", [_row(m, r, audio) for m, recs in records.items() for r in recs])
    results = build_results(
        "run",
        records,
        config.metric_specs(),
        config.bootstrap_resamples,
        config.set_resamples,
        model_info={
            m.label: {"model": m.model, "args": m.args, "reference": registered_as_reference(m.model)}
            for m in config.models
        },
        run=str(run.root),
        data={"manifest": manifest.name, "n_clips": len(manifest.clips), "input_hash": manifest.input_hash()},
        audio=audio,
        weights=weights_used(run, config, manifest),
        config=config.to_dict(),
        environment={**environment(), "device": config.device},
    )
    write_json(run.root / "results.json", results)
    return results
