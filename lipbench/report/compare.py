"""Regression verdicts between two runs: paired differences over the clips both scored.

A per-clip value is scored when its unit is ok, the value is present and finite, and its
metric family recorded no error for that clip. For every model, metric and timing key
the two runs share, the comparison pairs the clips scored in both runs (and says how
many): the mean per-clip difference (new - base) with a paired bootstrap CI (set-level
metrics are recomputed on each resample of the shared clips).

Metrics are 'improved' or 'regressed' when the CI excludes zero in that direction, else
'unchanged'. Timing (fps, ttff_s, and with the live protocol ttff_s@live,
latency_p95_s@live, playback_delay_s@live) must change beyond run-to-run noise: the whole CI, as a
fraction of the base mean, must lie beyond the timing threshold (5% by default) in one
direction; and both runs must have timed the model on one device of the same name, else
the timing rows are 'not comparable'.

Runs that used different protocols for a metric, different weight files for a shared
metric, different inputs for a shared clip or different audio (own: reconstruction, cross:
dubbing) are not comparable, and the comparison refuses unless forced. Forced across audio,
no metric is compared: every metric key names its audio, so none is shared. Gate problems
(a run incomplete, fewer scored units in the new run, nothing scored in both) fail
`--fail-on-regression` as a regression does.
"""

from __future__ import annotations

import argparse

from lipbench import defaults, metrics
from lipbench.errors import LipbenchError
from lipbench.metric_keys import protocols_by_family, split_audio, split_key
from lipbench.metrics.base import SetMetric
from lipbench.report import stats
from lipbench.report.schema import is_finite_number
from lipbench.rundir import RunDir

IMPROVED, REGRESSED, UNCHANGED, CHANGED = "improved", "regressed", "unchanged", "changed"
NOT_COMPARABLE, NO_SHARED = "not comparable", "no clip scored in both"
# key -> higher is better; "@live": the unit's live-protocol figures (a regression in how
# late the mouth follows live speech is a regression)
TIMING = {
    "fps": True,
    "ttff_s": False,
    "ttff_s@live": False,
    "latency_p95_s@live": False,
    "playback_delay_s@live": False,
}


def timing_value(record: dict, key: str):
    """A timing key's value in a unit record: `x@live` is the live block's `x`."""
    name, protocol = split_key(key)
    source = record.get("live") if protocol == "live" else record
    return source.get(name) if isinstance(source, dict) else None


TIMING_THRESHOLD = 0.05
# Seconds per clip below which a timing change is not taken for a change of the model:
# a model that takes milliseconds per clip (an oracle) is timed mostly by the machine's load.
TIMING_FLOOR_S = 0.005


class NotComparable(LipbenchError, ValueError):
    pass


def threshold_arg(text: str) -> float:
    """argparse type of --timing-threshold: a fraction in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1) (0.05 means 5%)")
    return value


class _Run:
    """What the comparison reads from one run directory: scored values per (model, clip)."""

    def __init__(self, root, which: str):
        self.which, self.dir = which, RunDir(root, read_only=True)  # someone else's run: never move its files
        self.config, self.manifest = self.dir.load_config(), self.dir.load_manifest()
        self.specs = self.config.metric_specs()
        self.models = [m.label for m in self.config.models]
        self.clips = [c.id for c in self.manifest.clips]
        self.set_specs = [s for s in self.specs if issubclass(metrics.METRICS.resolve(split_key(s)[0]), SetMetric)]
        # per-clip metric key -> its spec 'family@protocol'
        self.spec_of = {
            key: spec for spec in self.specs if spec not in self.set_specs for key in metrics.outputs([spec])
        }
        self.units = {(m, c): self.dir.read_unit(m, c) for m in self.models for c in self.clips}
        self.rows = {u: self.dir.read_metrics(*u) or {} for u, rec in self.units.items() if _ok(rec)}
        self.scored, self.scored_sets = {}, {}  # (model, clip) -> {key: value} / {set spec}
        for unit, row in self.rows.items():
            errors = row.get("errors") or {}
            values = row.get("values") or {}
            record = self.units[unit]
            self.scored[unit] = {
                k: timing_value(record, k) for k in TIMING if is_finite_number(timing_value(record, k))
            }
            if "decode" in errors:
                self.scored_sets[unit] = set()
                continue
            self.scored[unit].update(
                {
                    k: values[k]
                    for k, spec in self.spec_of.items()
                    if spec not in errors and is_finite_number(values.get(k))
                }
            )
            self.scored_sets[unit] = {
                s for s in self.set_specs if s not in errors and self.dir.features(*unit, s).exists()
            }

    def ok_units(self, model=None) -> list:
        return [u for u in self.rows if model is None or u[0] == model]

    def expected(self) -> list[str]:
        """The metric keys (per clip) and set-level specs every ok unit should have scored."""
        return list(self.spec_of) + self.set_specs

    def count_scored(self, key: str) -> int:
        if key in self.set_specs:
            return sum(key in s for s in self.scored_sets.values())
        return sum(key in s for s in self.scored.values())

    def device_names(self, model: str) -> set:
        fallback = (self.dir.read_record(self.dir.root / "models" / f"{model}.json") or {}).get("device_name")
        return {self.units[u].get("device_name") or fallback for u in self.ok_units(model)}

    def clip_hashes(self) -> dict[str, set]:
        """Clip id -> content hashes its unit records name (the manifest's when they name none)."""
        manifest = {c.id: c.sha256 for c in self.manifest.clips}
        out = {c: set() for c in self.clips}
        for (_, clip), record in self.units.items():
            if record is not None:  # a failed unit keeps the hash in its fingerprint
                out[clip].add(
                    record.get("clip_sha256") or (record.get("fingerprint") or {}).get("clip_sha256") or manifest[clip]
                )
        for clip, hashes in out.items():
            if not hashes:
                hashes.add(manifest[clip])
        return {c: h - {None, ""} for c, h in out.items()}

    def weight_hashes(self, specs) -> dict[str, set]:
        """Weight file name -> sha256s, from weights.json and the metric rows' fingerprints of `specs`."""
        out = {}
        for name, sha in (self.dir.read_record(self.dir.root / "weights.json") or {}).items():
            out.setdefault(name, set()).add(sha)
        for row in self.rows.values():
            for spec, fingerprint in (row.get("fingerprints") or {}).items():
                if spec in specs:
                    for name, sha in (fingerprint.get("weights") or {}).items():
                        out.setdefault(name, set()).add(sha)
        return out


def _ok(record) -> bool:
    return record is not None and record.get("status") == "ok"


AUDIO_WORDS = {"own": "own (reconstruction: each clip's own speech)", "cross": "cross (dubbing: another clip's speech)"}


def _check_comparable(base: _Run, new: _Run) -> list[str]:
    problems = []
    audio = base.config.audio, new.config.audio
    if audio[0] != audio[1]:
        # metric keys name the audio, so forced, no metric value of one is paired with the other's
        problems.append(
            f"audio: {AUDIO_WORDS[audio[0]]} in {base.dir.root}, {AUDIO_WORDS[audio[1]]} in {new.dir.root}; "
            "dubbing values are never compared with reconstruction values"
        )

    base_protocols, new_protocols = (protocols_by_family(split_audio(s)[0] for s in run.specs) for run in (base, new))
    for family in sorted(set(base_protocols) & set(new_protocols)):
        if base_protocols[family].isdisjoint(new_protocols[family]):
            problems.append(
                f"metric {family}: protocol {', '.join(sorted(base_protocols[family]))} in "
                f"{base.dir.root}, {', '.join(sorted(new_protocols[family]))} in {new.dir.root}"
            )
    shared = set(base.specs) & set(new.specs)
    a, b = base.weight_hashes(shared), new.weight_hashes(shared)
    problems += [
        f"weight file {name}: sha256 {_short(a[name])} in {base.dir.root}, {_short(b[name])} in {new.dir.root}"
        for name in sorted(set(a) & set(b))
        if a[name] != b[name]
    ]
    a, b = base.clip_hashes(), new.clip_hashes()
    problems += [
        f"clip {clip}: input sha256 differs between the runs ({_short(a[clip])} in {base.dir.root}, "
        f"{_short(b[clip])} in {new.dir.root})"
        for clip in new.clips
        if clip in a and a[clip] and b[clip] and a[clip] != b[clip] and audio[0] == audio[1]  # else: other speech
    ]
    return problems


def _short(hashes: set) -> str:
    return "/".join(sorted(h[:12] for h in hashes))


def verdict(diff, ci, higher_is_better) -> str:
    if ci is None or ci[0] <= 0 <= ci[1]:
        return UNCHANGED
    if higher_is_better is None:
        return CHANGED
    better = (ci[0] > 0) == bool(higher_is_better)
    return IMPROVED if better else REGRESSED


def timing_verdict(relative_ci, higher_is_better: bool, threshold: float) -> str:
    """Improved or regressed only when the whole relative CI lies beyond +-threshold."""
    if relative_ci is None:
        return UNCHANGED
    if relative_ci[0] > threshold:
        return IMPROVED if higher_is_better else REGRESSED
    if relative_ci[1] < -threshold:
        return REGRESSED if higher_is_better else IMPROVED
    return UNCHANGED


def _gate(base: _Run, new: _Run) -> list[str]:
    """What makes a verdict of 'no regression' mean nothing: incomplete runs, fewer scored units."""
    problems = []
    for run in (base, new):
        total = len(run.units)
        for what, test in (
            ("failed", lambda r: r is not None and r.get("status") == "error"),
            ("missing", lambda r: r is None or r.get("status") not in ("ok", "error")),
        ):
            by_model = {}
            for (model, _), record in run.units.items():
                if test(record):
                    by_model[model] = by_model.get(model, 0) + 1
            if by_model:
                problems.append(
                    f"{run.which} run incomplete: {sum(by_model.values())} of {total} units {what} "
                    f"({_counts(by_model)})"
                )
        expected = run.expected()
        lacking = {k: n for k in expected if (n := len(run.rows) - run.count_scored(k))}
        if lacking:
            problems.append(
                f"{run.which} run incomplete: {sum(lacking.values())} of {len(run.rows) * len(expected)} "
                f"metric values of ok units failed or missing ({_counts(lacking)})"
            )
    if len(new.rows) < len(base.rows):
        problems.append(f"new run has fewer ok units than base: {len(new.rows)} against {len(base.rows)}")
    fewer = {
        k: (new.count_scored(k), n)
        for k in base.expected()
        if (n := base.count_scored(k)) > (new.count_scored(k) if k in new.expected() else 0)
    }
    if fewer:
        problems.append(
            "new run has fewer scored values than base: "
            + ", ".join(f"{k} {a} against {b}" for k, (a, b) in fewer.items())
        )
    return problems


def _counts(counts: dict) -> str:
    return ", ".join(f"{k}: {n}" for k, n in counts.items())


def clip_seconds(record: dict, key: str) -> float | None:
    """The seconds behind a timing key of one unit: the key itself when it is seconds
    (ttff_s, the live latencies), or the time to the last chunk behind fps."""
    if key != "fps":
        return timing_value(record, key)
    if is_finite_number(record.get("total_s")):
        return record["total_s"]
    return (
        record["n_frames"] / record["fps"] if is_finite_number(record.get("n_frames")) and record.get("fps") else None
    )


def compare_runs(
    base_dir,
    new_dir,
    force: bool = False,
    resamples: int = defaults.RESAMPLES,
    timing_threshold: float = TIMING_THRESHOLD,
    timing_floor_s: float = TIMING_FLOOR_S,
) -> dict:
    base, new = _Run(base_dir, "base"), _Run(new_dir, "new")
    problems = _check_comparable(base, new)
    if problems and not force:
        raise NotComparable("runs are not comparable (use --force to compare anyway):\n  " + "\n  ".join(problems))
    shared_keys = [k for k in new.spec_of if base.spec_of.get(k) == new.spec_of[k]]
    shared_sets = [s for s in new.set_specs if s in base.set_specs]
    outputs = metrics.outputs(new.specs)
    clips = [c for c in new.clips if c in base.clips]
    models = [m for m in new.models if m in base.models]
    rows, compared = [], set()  # compared: (model, clip) scored in both for a row with a verdict

    def add(model, key, pairs, diff, ci, verdict_, **extra):
        rows.append(
            {
                "model": model,
                "metric": key,
                "difference": diff,
                "ci95": ci,
                "n_clips": len(pairs),
                "verdict": verdict_ if pairs else NO_SHARED,
                **extra,
            }
        )
        if verdict_ != NOT_COMPARABLE:
            compared.update((model, c) for c in pairs)

    # live-protocol keys only where a run was timed live (offline-only runs have no such rows)
    timing_keys = [k for k in TIMING if "@" not in k or any(k in s for run in (base, new) for s in run.scored.values())]
    for model in models:
        both = [c for c in clips if (model, c) in base.scored and (model, c) in new.scored]
        for key in list(shared_keys) + timing_keys:
            pairs = [c for c in both if key in base.scored[(model, c)] and key in new.scored[(model, c)]]
            b = [base.scored[(model, c)][key] for c in pairs]
            n = [new.scored[(model, c)][key] for c in pairs]
            diff, ci = stats.paired_difference_ci(b, n, resamples) if pairs else (None, None)
            if key not in TIMING:
                add(model, key, pairs, diff, ci, verdict(diff, ci, outputs[key].higher_is_better))
                continue
            mean = sum(b) / len(b) if b else 0.0
            relative = [ci[0] / mean, ci[1] / mean] if ci is not None and mean > 0 else None
            devices = (base.device_names(model), new.device_names(model))
            extra = {"relative": diff / mean if diff is not None and mean > 0 else None, "relative_ci95": relative}
            if len(devices[0]) == 1 and devices[0] == devices[1] and None not in devices[0]:
                found = timing_verdict(relative, TIMING[key], timing_threshold)
                seconds = [[clip_seconds(run.units[(model, c)], key) for c in pairs] for run in (base, new)]
                if found != UNCHANGED and None not in seconds[0] + seconds[1]:
                    _, seconds_ci = stats.paired_difference_ci(*seconds, resamples)
                    if seconds_ci is None or min(abs(seconds_ci[0]), abs(seconds_ci[1])) < timing_floor_s:
                        found, extra["note"] = UNCHANGED, f"change below the {timing_floor_s * 1000:g} ms timing floor"
                add(model, key, pairs, diff, ci, found, **extra)
            else:
                names = [", ".join(sorted(str(d) for d in s)) or "none" for s in devices]
                add(
                    model,
                    key,
                    pairs,
                    diff,
                    ci,
                    NOT_COMPARABLE,
                    note=f"device {names[0]} in base, {names[1]} in new",
                    **extra,
                )
        for spec in shared_sets:
            pairs = [c for c in both if spec in base.scored_sets[(model, c)] and spec in new.scored_sets[(model, c)]]
            _set_rows(spec, base.dir, new.dir, model, pairs, resamples, add)

    gate = _gate(base, new)
    shared_clips = sorted({c for _, c in compared})
    if not shared_clips:
        gate.append("nothing to compare: no clip is scored in both runs")
    return {
        "base": str(base.dir.root),
        "new": str(new.dir.root),
        "forced_despite": problems if force else [],
        "resamples": resamples,
        "timing_threshold": timing_threshold,
        "timing_floor_s": timing_floor_s,
        "rows": rows,
        "scored_units": {"base": len(base.rows), "new": len(new.rows)},
        "units": {"base": len(base.units), "new": len(new.units)},
        "shared_clips": len(shared_clips),
        "shared_units": len(compared),
        "regressions": sum(r["verdict"] == REGRESSED for r in rows),
        "gate": gate,
    }


def _set_rows(spec, base: RunDir, new: RunDir, model, clips, resamples, add) -> None:
    """Rows of a set-level metric, recomputed on each resample of the clips scored in both."""
    metric = metrics.create(spec)
    if not clips:
        for out in metric.outputs:
            add(model, out.key, [], None, None, NO_SHARED)
        return
    base_items = [base.load_features(model, c, spec) for c in clips]
    new_items = [new.load_features(model, c, spec) for c in clips]
    for out in metric.outputs:
        diff, ci = stats.paired_set_difference_ci(
            base_items,
            new_items,
            lambda items, k=out.key: metric.keyed(metric.combine(items))[k],
            resamples,
            label=f"{model} {out.key}",
        )
        add(model, out.key, clips, diff, ci, verdict(diff, ci, out.higher_is_better))


def exit_status(result: dict, fail_on_regression: bool) -> tuple[int, str]:
    """(exit code, reason): 1 only with fail_on_regression, on a regression or a gate problem."""
    reasons = []
    if result["regressions"]:
        reasons.append(f"{result['regressions']} regressions")
    if result["gate"]:
        reasons.append(f"{len(result['gate'])} gate problems")
    if not reasons:
        return 0, "no regression, both runs complete"
    if not fail_on_regression:
        return 0, "; ".join(reasons) + " (no --fail-on-regression)"
    return 1, "; ".join(reasons)
