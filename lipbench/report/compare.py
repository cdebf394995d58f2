"""Regression verdicts between two runs: paired differences over the clips both saw.

For every model and metric the two runs share: the mean per-clip difference (new -
base) with a paired bootstrap CI (set-level metrics are recomputed on each resample of
the shared clips). The verdict is 'improved' or 'regressed' when the CI excludes zero
in that direction, else 'unchanged'. Runs that used different protocols for a metric,
different weight files or different inputs for a shared clip are not comparable, and
the comparison refuses unless forced.
"""

from __future__ import annotations

from lipbench import metrics
from lipbench.metrics.base import SetMetric
from lipbench.report import stats
from lipbench.report.results import per_clip_rows, set_level_items
from lipbench.rundir import RunDir
from lipbench.storage import read_json

IMPROVED, REGRESSED, UNCHANGED, CHANGED = "improved", "regressed", "unchanged", "changed"
TIMING = {"fps": True, "ttff_s": False}


class NotComparable(ValueError):
    pass


def _check_comparable(base: RunDir, new: RunDir, base_specs, new_specs, base_manifest, new_manifest) -> list[str]:
    problems = []

    def protocols(specs):
        out = {}
        for spec in specs:
            family, protocol = spec.split("@")
            out.setdefault(family, set()).add(protocol)
        return out

    base_protocols, new_protocols = protocols(base_specs), protocols(new_specs)
    for family in sorted(set(base_protocols) & set(new_protocols)):
        if base_protocols[family].isdisjoint(new_protocols[family]):
            problems.append(f"metric {family}: protocol {', '.join(sorted(base_protocols[family]))} in {base.root}, "
                            f"{', '.join(sorted(new_protocols[family]))} in {new.root}")
    weights = [r.root / "weights.json" for r in (base, new)]
    if all(p.exists() for p in weights):
        a, b = (read_json(p) for p in weights)
        problems += [f"weight file {name}: sha256 {a[name][:12]} in {base.root}, {b[name][:12]} in {new.root}"
                     for name in sorted(set(a) & set(b)) if a[name] != b[name]]
    base_clips = {c.id: c.sha256 for c in base_manifest.clips}
    problems += [f"clip {c.id}: input sha256 differs between the runs" for c in new_manifest.clips
                 if c.id in base_clips and c.sha256 and base_clips[c.id] and base_clips[c.id] != c.sha256]
    return problems


def verdict(diff, ci, higher_is_better) -> str:
    if ci is None or ci[0] <= 0 <= ci[1]:
        return UNCHANGED
    if higher_is_better is None:
        return CHANGED
    better = (ci[0] > 0) == bool(higher_is_better)
    return IMPROVED if better else REGRESSED


def compare_runs(base_dir, new_dir, force: bool = False, resamples: int = stats.N_RESAMPLES) -> dict:
    base, new = RunDir(base_dir), RunDir(new_dir)
    base_config, new_config = base.load_config(), new.load_config()
    base_manifest, new_manifest = base.load_manifest(), new.load_manifest()
    base_specs, new_specs = metrics.resolve_specs(base_config.metrics), metrics.resolve_specs(new_config.metrics)
    problems = _check_comparable(base, new, base_specs, new_specs, base_manifest, new_manifest)
    if problems and not force:
        raise NotComparable("runs are not comparable (use --force to compare anyway):\n  " + "\n  ".join(problems))
    shared_specs = [s for s in new_specs if s in base_specs]
    outputs = metrics.outputs(shared_specs)
    base_rows = {(r["model"], r["clip"]): r for r in per_clip_rows(base, base_config, base_manifest)}
    new_rows = {(r["model"], r["clip"]): r for r in per_clip_rows(new, new_config, new_manifest)}
    shared_clips = [c.id for c in new_manifest.clips if c.id in {b.id for b in base_manifest.clips}]
    models = [m.label for m in new_config.models if m.label in {b.label for b in base_config.models}]
    rows = []
    for model in models:
        pairs = [(base_rows[(model, c)], new_rows[(model, c)]) for c in shared_clips
                 if base_rows[(model, c)]["status"] == new_rows[(model, c)]["status"] == "ok"]
        directed = {**TIMING, **{k: o.higher_is_better for k, o in outputs.items()}}
        set_keys = set()
        for spec in shared_specs:
            metric = metrics.create(spec)
            if isinstance(metric, SetMetric):
                set_keys |= {o.key for o in metric.outputs}
                rows += _set_rows(metric, base, new, base_manifest, new_manifest, model, resamples)
        for key, higher in directed.items():
            if key in set_keys:
                continue
            diff, ci = stats.paired_difference_ci([b.get(key) for b, _ in pairs], [n.get(key) for _, n in pairs],
                                                  resamples)
            if diff is None:
                continue
            rows.append({"model": model, "metric": key, "difference": diff, "ci95": ci, "n_clips": len(pairs),
                         "verdict": verdict(diff, ci, higher)})
    return {"base": str(base.root), "new": str(new.root), "forced_despite": problems if force else [],
            "shared_clips": len(shared_clips), "resamples": resamples, "rows": rows,
            "regressions": sum(r["verdict"] == REGRESSED for r in rows)}


def _set_rows(metric, base, new, base_manifest, new_manifest, model, resamples) -> list[dict]:
    spec = f"{metric.name}@{metric.protocol}"
    base_items = dict(set_level_items(base, base_manifest, model, spec))
    new_items = dict(set_level_items(new, new_manifest, model, spec))
    clips = [c for c in new_items if c in base_items]
    if not clips:
        return []
    rows = []
    for out in metric.outputs:
        diff, ci = stats.paired_set_difference_ci([base_items[c] for c in clips], [new_items[c] for c in clips],
                                                  lambda items, k=out.key: metric.combine(items)[k], resamples,
                                                  label=f"{model} {out.key}")
        rows.append({"model": model, "metric": out.key, "difference": diff, "ci95": ci, "n_clips": len(clips),
                     "verdict": verdict(diff, ci, out.higher_is_better)})
    return rows
