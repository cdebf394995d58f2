"""The results document: one schema and one aggregation for a run's `results.json` and
for the JSON of `lipbench eval --fake`.

Both are made by `build_results` from per-clip records (`ClipRecord`: what a unit and
its metrics row say about one clip of one model). Per model and per key:

- timing keys (`ttff_s`, `fps`, `total_s`): `value` is the median over clips;
- per-clip metric keys (`psnr@full`): `value` is the mean over clips;
- set-level metric keys (`fvd@latentsync`): `value` is the metric pooled over clips.

Each with a 95% bootstrap CI over clips (`ci95`, `ci_method`, `resamples_ok`: the
resamples that gave a value), `n` (clips that contributed) and `failed` {clip id:
reason} for the clips that could not contribute: a failed unit, a failed metric (every
key of that metric), a value that is not a finite number (NaN). A set-level metric that
cannot be pooled (too few clips, ...) has `value` null and the reason in `error`.
Clips not generated or not scored yet are neither in `n` nor in `failed`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np

from lipbench import metrics
from lipbench.report import stats

SCHEMA_VERSION = 2  # the document's "lipbench_results"; 1 had per-model mean/median, and eval its own "aggregate"
TIMING_KEYS = ("ttff_s", "fps", "total_s")
TIMING_DEFINITION = {
    "ttff_s": "seconds from the start of stream() to the first chunk",
    "fps": "frames / seconds from the start of stream() to the last chunk",
    "statistic": "median over clips",
}
# How late frames follow the speech, per timing protocol (lipbench.timing.latency_figures):
# medians over clips, in `latency` {protocol: {key: Aggregate}}
LATENCY_KEYS = (
    "ttff_s",
    "fps",
    "latency_p50_s",
    "latency_p95_s",
    "latency_max_s",
    "playback_delay_s",
    "stalls",
    "lookahead_s",
)
# Seconds outside TTFF and FPS, per unit: the untimed per-clip preparation, and for a
# worker the shipping of chunks and the same stream on lipbench's own clock
OUTSIDE_CLOCK_KEYS = ("prepare_s", "transfer_total_s", "harness_ttff_s", "harness_total_s")
# Whether a stream holds over its length (lipbench.timing.hold_figures), offline timing:
# medians over clips, in `stream` {key: Aggregate}
STREAM_KEYS = ("fps_hold", "memory_growth_bytes")
DECODE = "decode"  # metrics rows of older runs keep a decode failure under this key, not under every spec


class Aggregate(TypedDict):
    value: float | None  # timing: median over clips; per-clip metric: mean; set-level metric: pooled
    statistic: str  # 'median over clips', 'mean over clips' or 'pooled over clips'
    std: float | None  # of the per-clip values (None for set-level metrics)
    ci95: list[float] | None  # [low, high]; None with fewer than two clips
    ci_method: str
    resamples_ok: int  # bootstrap resamples that gave a value (0 without a CI)
    n: int  # clips that contributed
    failed: dict[str, str]  # clip id -> why it could not contribute
    error: str | None  # why `value` is null although clips contributed (a set-level metric that cannot be pooled)


class ModelResults(TypedDict):
    model: str | None  # registry name or 'package.module:Class' (None for `lipbench eval --fake`)
    args: dict
    n_clips: int
    n_ok: int  # units generated
    n_failed: int  # units that failed
    n_pending: int  # clips not generated or not scored yet
    failed_units: dict[str, str]  # clip id -> error
    n_failed_values: int  # entries of failures.metric_values for this model
    timing: dict[str, Aggregate]
    metrics: dict[str, Aggregate]
    clips: dict[str, dict[str, float | None]]  # clip id -> per-clip metric values as recorded
    clip_notes: dict[str, dict]  # clip id -> how its video was lined up with the reference (trimmed,
    #                              resized, resampled), face-crop counts, frames compared


class UnitFailure(TypedDict):
    model: str
    clip: str
    stage: str
    error: str


class ValueFailure(TypedDict):
    model: str
    clip: str | None  # None: the set-level value itself could not be computed
    metric: str
    error: str


class Failures(TypedDict):
    units: list[UnitFailure]
    metric_values: list[ValueFailure]
    counts: dict[str, int]  # units, metric_values (failures), pending_units (not failures: not done yet)


class Results(TypedDict, total=False):
    lipbench_results: int  # SCHEMA_VERSION
    kind: str  # 'run' or 'eval'
    created: str
    metrics: list[str]  # 'family@protocol' specs
    metrics_info: dict[str, dict]  # key -> higher_is_better, unit, description, statistic
    timing_definition: dict[str, str]
    models: dict[str, ModelResults]
    failures: Failures
    weights: dict[str, str]  # weight file -> sha256
    environment: dict
    # both also have audio (protocol 'own' or 'cross'; a run under cross audio also the pairs
    # {clip: the clip whose speech drove it}; an eval's is its --audio);
    # a run also has: run (its directory), data (manifest, n_clips, input_hash), config;
    # `lipbench eval --fake`: pairs (clip id -> fake and real file), alignment (min_coverage,
    # resample_fps) and complete (false while clips are still being scored)


@dataclass
class ClipRecord:
    """One clip of one model, as its unit record and metrics row describe it."""

    clip: str
    status: str = "ok"  # 'ok', 'pending' (no unit yet), anything else: the unit failed
    stage: str | None = None  # where a failed unit failed
    error: str | None = None  # a failed unit's error
    unit: dict = field(default_factory=dict)  # the unit record (timing fields)
    scored: bool = False  # a metrics row exists
    values: dict = field(default_factory=dict)  # metric key -> value
    errors: dict = field(default_factory=dict)  # 'family@protocol' (or 'decode') -> error text
    features: dict = field(default_factory=dict)  # 'family@protocol' -> set-level features
    notes: dict = field(default_factory=dict)  # how the video was lined up with its reference, crop counts, ...


def first_line(text) -> str:
    return (str(text).strip().splitlines() or [""])[0]


def is_finite_number(value) -> bool:
    """A real number that is neither NaN nor infinite (None, bools and strings are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _unit_reason(record: ClipRecord) -> str:
    return f"unit failed ({record.stage or 'generate'}): {first_line(record.error or record.status)}"


def _summary(values: dict[str, float], failed: dict[str, str], statistic: str, resamples: int) -> Aggregate:
    """Median or mean over the clips' values, with a bootstrap CI of that statistic."""
    arr = np.array(list(values.values()), dtype=np.float64)
    function = np.median if statistic == "median" else np.mean
    ci = stats.bootstrap_ci(arr, function, resamples) if resamples else None
    return Aggregate(
        value=float(function(arr)) if len(arr) else None,
        statistic=f"{statistic} over clips",
        std=float(arr.std(ddof=1)) if len(arr) > 1 else None,
        ci95=ci,
        ci_method=f"bootstrap over clips, {resamples} resamples, percentile",
        resamples_ok=resamples if ci else 0,
        n=len(arr),
        failed=failed,
        error=None,
    )


def _pooled(
    metric, key: str, items: dict[str, dict], failed: dict[str, str], resamples: int, label: str, pool: bool = True
) -> Aggregate:
    """A set-level value pooled over the clips' features, its CI recomputed on resamples
    of clips; without `pool` (a document written while clips are still being scored) the
    value is left null, without an error."""
    out = Aggregate(
        value=None,
        statistic="pooled over clips",
        std=None,
        ci95=None,
        ci_method=f"bootstrap over clips, {resamples} resamples, recomputed on each",
        resamples_ok=0,
        n=len(items),
        failed=failed,
        error=None,
    )
    if not items or not pool:
        return out
    try:
        value = metric.keyed(metric.combine(list(items.values())))[key]
    except Exception as exc:  # e.g. too few clips for a covariance: the report is still written
        out["error"] = f"{type(exc).__name__}: {first_line(exc)}"
        return out
    if not is_finite_number(value):
        out["error"] = f"pooled value is not a finite number ({value})"
        return out
    out["value"] = float(value)
    if not resamples:
        return out
    out["ci95"], out["resamples_ok"] = stats.bootstrap_set_ci(
        list(items.values()), lambda sample: metric.keyed(metric.combine(sample))[key], resamples, label=label
    )
    return out


def _value_failure(record: ClipRecord, spec: str) -> str | None:
    """Why a scored clip has no values for a metric spec, if it failed."""
    error = record.errors.get(spec) or record.errors.get(DECODE)
    return first_line(error) if error else None


def aggregate_model(
    records: list[ClipRecord],
    specs: list[str],
    resamples: int,
    set_resamples: int,
    timing_keys=TIMING_KEYS,
    label: str = "",
    pool: bool = True,
) -> dict:
    """Timing and metric aggregates of one model's clip records, and its counts."""
    from lipbench.metrics.base import SetMetric

    ok = [r for r in records if r.status == "ok"]
    failed_units = {r.clip: first_line(r.error or r.status) for r in records if r.status not in ("ok", "pending")}
    unit_failed = {r.clip: _unit_reason(r) for r in records if r.clip in failed_units}
    timing = {}
    for key in timing_keys:
        values = {r.clip: r.unit[key] for r in ok if is_finite_number(r.unit.get(key))}
        timing[key] = _summary(values, dict(unit_failed), "median", resamples)

    derived: dict[str, dict] = {}  # other harnesses' spans (Lip Forcing: FastGen's): median over clips
    for r in ok:
        for harness, figures in (r.unit.get("derived_timing") or {}).items():
            for key, value in figures.items():
                if is_finite_number(value):
                    derived.setdefault(harness, {}).setdefault(key, []).append(float(value))
    derived = {h: {k: float(np.median(v)) for k, v in figures.items()} for h, figures in derived.items()}
    outside = {}  # median over clips of what was measured but is not in TTFF or FPS
    for key in OUTSIDE_CLOCK_KEYS:
        values = [float(r.unit[key]) for r in ok if is_finite_number(r.unit.get(key))]
        if values:
            outside[key] = float(np.median(values))
    per_chunk = [
        float(r.unit["transfer_total_s"]) / r.unit["n_chunks"]
        for r in ok
        if is_finite_number(r.unit.get("transfer_total_s")) and r.unit.get("n_chunks")
    ]
    if per_chunk:
        outside["transfer_per_chunk_s"] = float(np.median(per_chunk))

    stream = {
        key: _summary(
            {r.clip: float(r.unit[key]) for r in ok if is_finite_number(r.unit.get(key))}, {}, "median", resamples
        )
        for key in STREAM_KEYS
    }
    stream = {key: figures for key, figures in stream.items() if figures["n"]}

    latency = {}
    for protocol in ("offline", "live"):
        rows = {r.clip: (r.unit if protocol == "offline" else r.unit.get("live")) for r in ok}
        rows = {clip: row for clip, row in rows.items() if isinstance(row, dict) and "latency_p50_s" in row}
        if not rows:
            continue
        figures = {
            key: _summary(
                {c: float(row[key]) for c, row in rows.items() if is_finite_number(row.get(key))},
                {},
                "median",
                resamples,
            )
            for key in LATENCY_KEYS
        }
        first = next(iter(rows.values()))
        figures.update(
            lookahead_declared_s=first.get("lookahead_declared_s"),
            player_delay_s=first.get("stall_delay_s"),
            n_stalled_clips=sum(bool(row.get("stalls")) for row in rows.values()),
            verdict="real-time" if not any(row.get("stalls") for row in rows.values()) else "stalls",
        )
        latency[protocol] = figures

    scored = [r for r in ok if r.scored]
    out_metrics = {}
    for spec in specs:
        metric = metrics.create(spec)
        for output in metric.outputs:
            key, failed, values, items = output.key, dict(unit_failed), {}, {}
            for r in scored:
                reason = _value_failure(r, spec)
                if reason:
                    failed[r.clip] = reason
                elif isinstance(metric, SetMetric):
                    if spec in r.features:  # none: not computed yet (a metric added to the config)
                        items[r.clip] = r.features[spec]
                elif key not in r.values:
                    if key in r.notes.get("unavailable", {}):  # the metric ran; this value has none here
                        failed[r.clip] = r.notes["unavailable"][key]
                    continue  # else not computed yet (a metric added to the config): pending, not failed
                elif is_finite_number(r.values[key]):
                    values[r.clip] = float(r.values[key])
                else:
                    failed[r.clip] = f"not a finite number ({r.values[key]}; NaN is stored as null)"
            failed = {r.clip: failed[r.clip] for r in records if r.clip in failed}  # in clip order
            out_metrics[key] = (
                _pooled(metric, key, items, failed, set_resamples, f"{label} {key}", pool)
                if isinstance(metric, SetMetric)
                else _summary(values, failed, "mean", resamples)
            )
    return {
        "n_clips": len(records),
        "n_ok": len(ok),
        "n_failed": len(failed_units),
        "n_pending": sum(r.status == "pending" or (r.status == "ok" and not r.scored) for r in records),
        "failed_units": failed_units,
        "n_failed_values": 0,  # set by collect_failures
        "timing": timing,
        "latency": latency,
        "stream": stream,
        "derived_timing": derived,
        "outside_clock": outside,
        "metrics": out_metrics,
        "clips": {r.clip: dict(r.values) for r in scored},
        "clip_notes": {r.clip: dict(r.notes) for r in scored if r.notes},
    }


def metrics_info(specs: list[str]) -> dict[str, dict]:
    from lipbench.metrics.base import SetMetric

    info = {}
    for spec in specs:
        metric = metrics.create(spec)
        statistic = "pooled over clips" if isinstance(metric, SetMetric) else "mean over clips"
        info.update(
            {
                o.key: {
                    "higher_is_better": o.higher_is_better,
                    "unit": o.unit,
                    "description": o.description,
                    "statistic": statistic,
                }
                for o in metric.outputs
            }
        )
    return info


def collect_failures(models: dict[str, dict], records: dict[str, list[ClipRecord]]) -> Failures:
    """Every failed unit and every failed metric value (of units that did not fail), in one list each."""
    units, values = [], []
    for name, agg in models.items():
        by_clip = {r.clip: r for r in records[name]}
        units += [
            UnitFailure(model=name, clip=clip, stage=by_clip[clip].stage or "generate", error=error)
            for clip, error in agg["failed_units"].items()
        ]
        mine = []
        for key, summary in agg["metrics"].items():
            mine += [
                ValueFailure(model=name, clip=clip, metric=key, error=reason)
                for clip, reason in summary["failed"].items()
                if clip not in agg["failed_units"]
            ]
            if summary["error"]:
                mine.append(ValueFailure(model=name, clip=None, metric=key, error=summary["error"]))
        agg["n_failed_values"] = len(mine)
        values += mine
    return Failures(
        units=units,
        metric_values=values,
        counts={
            "units": len(units),
            "metric_values": len(values),
            "pending_units": sum(a["n_pending"] for a in models.values()),
        },
    )


def build_results(
    kind: str,
    records: dict[str, list[ClipRecord]],
    specs: list[str],
    resamples: int,
    set_resamples: int,
    timing_keys=TIMING_KEYS,
    model_info: dict[str, dict] | None = None,
    pool: bool = True,
    **extra,
) -> Results:
    """The results document of a run (kind 'run') or of `lipbench eval --fake` (kind 'eval').
    `records`: model name -> its clip records; `model_info`: model name -> registry name and
    args; `pool` False leaves set-level values null (a document written mid-way); `extra`:
    further top-level keys (run, data, config, pairs, weights, environment, complete)."""
    models = {}
    for name, recs in records.items():
        info = (model_info or {}).get(name, {})
        models[name] = {
            "model": info.get("model"),
            "args": info.get("args", {}),
            "reference": bool(info.get("reference", False)),
            **aggregate_model(recs, specs, resamples, set_resamples, timing_keys, label=name, pool=pool),
        }
    failures = collect_failures(models, records)
    return Results(
        lipbench_results=SCHEMA_VERSION,
        kind=kind,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        metrics=list(specs),
        metrics_info=metrics_info(specs),
        timing_definition=TIMING_DEFINITION,
        models=models,
        failures=failures,
        **extra,
    )


def failure_lines(results: dict) -> list[str]:
    """The document's failures as lines to print at the end of a command: one per failed
    unit, one per (model, clip, error) of failed metric values, then the counts."""
    lines = [
        f"failed unit: {u['model']}/{u['clip']} ({u['stage']}): {u['error']}" for u in results["failures"]["units"]
    ]
    grouped: dict[tuple, list[str]] = {}
    for v in results["failures"]["metric_values"]:
        grouped.setdefault((v["model"], v["clip"], v["error"]), []).append(v["metric"])
    for (model, clip, error), keys in grouped.items():
        where = f"{model}/{clip}" if clip is not None else f"{model} (pooled over clips)"
        lines.append(f"failed values: {where}: {', '.join(keys)}: {error}")
    counts = results["failures"]["counts"]
    if counts["units"] or counts["metric_values"]:
        lines.append(f"failures: {counts['units']} units, {counts['metric_values']} metric values")
    return lines
