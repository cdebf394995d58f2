"""Per-clip rows and aggregates from a run directory, and the files they go to."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path

import numpy as np

import lipbench
from lipbench import metrics
from lipbench.report import stats
from lipbench.rundir import RunDir
from lipbench.storage import write_json, write_jsonl

TIMING_COLUMNS = ("ttff_s", "fps", "total_s")


def per_clip_rows(run: RunDir, config, manifest) -> list[dict]:
    """One row per (model, clip): status, timing and metric values flattened."""
    rows = []
    for spec in config.models:
        for clip in manifest.clips:
            unit = run.read_unit(spec.label, clip.id) or {"status": "pending"}
            row = {"model": spec.label, "clip": clip.id, "status": unit["status"]}
            if unit["status"] == "ok":
                row.update({k: unit.get(k) for k in TIMING_COLUMNS + ("n_frames", "n_chunks", "chunk_frames", "chunk_s", "device", "timer")})
            elif unit["status"] == "error":
                row["error"] = unit["error"]
            scored = run.read_metrics(spec.label, clip.id)
            if scored:
                row.update(scored["values"])
                if scored["errors"]:
                    row["metric_errors"] = {k: v.splitlines()[0] for k, v in scored["errors"].items()}
            rows.append(row)
    return rows


def _summary(values, statistic: str, resamples: int) -> dict:
    """Mean, median, std and n over clips, and a bootstrap CI of `statistic`."""
    arr = np.array([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if not len(arr):
        return {"n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "median": float(np.median(arr)), "n": int(len(arr)), "statistic": statistic,
            "ci95": stats.bootstrap_ci(arr, getattr(np, statistic), resamples),
            "ci_method": f"bootstrap over clips, {resamples} resamples, percentile"}


def set_level_items(run: RunDir, manifest, label: str, spec: str) -> list[tuple[str, dict]]:
    """(clip id, features) of a set-level metric for one model, in manifest order."""
    return [(c.id, f) for c in manifest.clips if (f := run.load_features(label, c.id, spec)) is not None]


def _set_level(run: RunDir, config, manifest, label: str) -> dict:
    """Set-level metric values (pooled over clips) of one model, with CIs recomputed on
    resamples of clips."""
    from lipbench.metrics.base import SetMetric

    out = {}
    for spec in metrics.resolve_specs(config.metrics):
        metric = metrics.create(spec)
        if not isinstance(metric, SetMetric):
            continue
        items = [f for _, f in set_level_items(run, manifest, label, spec)]
        if not items:
            continue
        for key, value in metric.combine(items).items():
            ci = stats.bootstrap_set_ci(items, lambda sample, k=key: metric.combine(sample)[k], config.set_resamples,
                                        label=f"{label} {key}")
            out[key] = {"mean": value, "n": len(items), "statistic": "pooled over clips", "ci95": ci,
                        "ci_method": f"bootstrap over clips, {config.set_resamples} resamples, recomputed"}
    return out


def aggregate(rows: list[dict], config, run: RunDir, manifest) -> dict:
    """Per model: timing medians over clips, metric means over clips, set-level values."""
    keys = metrics.outputs(metrics.resolve_specs(config.metrics))
    out = {}
    for spec in config.models:
        mine = [r for r in rows if r["model"] == spec.label]
        ok = [r for r in mine if r["status"] == "ok"]
        out[spec.label] = {
            "model": spec.model, "args": spec.args,
            "n_clips": len(mine), "n_ok": len(ok), "n_failed": sum(r["status"] == "error" for r in mine),
            "timing": {k: _summary((r.get(k) for r in ok), "median", config.bootstrap_resamples)
                       for k in TIMING_COLUMNS},
            "metrics": {k: _summary((r.get(k) for r in ok), "mean", config.bootstrap_resamples) for k in keys},
        }
        out[spec.label]["metrics"].update(_set_level(run, config, manifest, spec.label))
    return out


def environment() -> dict:
    def version(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(lipbench.__file__).parent,
                             capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        git = None
    return {"lipbench": lipbench.__version__, "git_commit": git, "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "packages": {p: version(p) for p in ("torch", "torchvision", "numpy", "scipy", "av", "mediapipe",
                                                 "opencv-python-headless", "scikit-image")}}


def write_results(run: RunDir, config, manifest) -> dict:
    """Write per_clip.jsonl and results.json; returns the results."""
    rows = per_clip_rows(run, config, manifest)
    write_jsonl(run.root / "per_clip.jsonl", rows)
    results = {
        "lipbench_results": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run": str(run.root),
        "data": {"manifest": manifest.name, "n_clips": len(manifest.clips), "input_hash": manifest.input_hash()},
        "timing_definition": {"ttff_s": "seconds from the start of stream() to the first chunk",
                              "fps": "frames / seconds from the start of stream() to the last chunk",
                              "statistic": "median over clips"},
        "metrics_info": {k: {"higher_is_better": o.higher_is_better, "unit": o.unit, "description": o.description,
                             "statistic": "mean over clips"}
                         for k, o in metrics.outputs(metrics.resolve_specs(config.metrics)).items()},
        "models": aggregate(rows, config, run, manifest),
        "config": config.to_dict(),
        "environment": environment(),
    }
    write_json(run.root / "results.json", results)
    return results
