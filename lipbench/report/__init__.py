"""Reports from a run directory: results.json, per_clip.jsonl, report.md, pareto.png."""

from __future__ import annotations

from lipbench import metrics
from lipbench.report.pareto import plot_pareto
from lipbench.report.results import write_results
from lipbench.report.tables import results_table
from lipbench.rundir import RunDir
from lipbench.storage import atomic_path, write_text


def write_report(run: RunDir) -> dict:
    """Write every report file of a run; returns the results (with 'table')."""
    config, manifest = run.load_config(), run.load_manifest()
    results = write_results(run, config, manifest)
    table = results_table(results)
    outputs = metrics.outputs(metrics.resolve_specs(config.metrics))
    y_key = config.pareto_y or next((k for k, o in outputs.items() if o.higher_is_better is not None), None)
    y_info = outputs.get(y_key)
    if y_info is None or y_info.higher_is_better is None:
        raise ValueError(f"{run.root / 'config.yaml'}: pareto_y {y_key!r} is not a directed metric of this run")
    points = {m: (agg["timing"]["fps"].get("median"), agg["metrics"][y_key].get("mean"))
              for m, agg in results["models"].items()}
    with atomic_path(run.root / "pareto.png") as tmp:
        front = plot_pareto(points, tmp, "fps (frames/s, median over clips)", f"{y_key} (mean over clips)",
                            y_higher=y_info.higher_is_better, title=f"{config.name}: speed against quality")
    failures = [(m, agg["n_failed"]) for m, agg in results["models"].items() if agg["n_failed"]]
    lines = [
        f"# lipbench report: {config.name}", "",
        f"{results['data']['n_clips']} clips from `{results['data']['manifest']}` "
        f"(input hash `{results['data']['input_hash'][:16]}`), device `{config.device}`, "
        f"lipbench {results['environment']['lipbench']}.", "",
        table, "",
        "fps and ttff_s: median over clips; ttff_s is seconds from the start of `stream()` to the first chunk, "
        "fps is frames over seconds to the last chunk. Metric columns: mean over clips, keyed `metric@protocol`; "
        "↑ higher is better, ↓ lower is better; best per column in bold.", "",
        f"Pareto front (fps against `{y_key}`): {', '.join(sorted(front)) or '-'}.", "",
        "![pareto](pareto.png)", "",
    ]
    if failures:
        lines += ["Failed units (see per_clip.jsonl): " + ", ".join(f"{m}: {n}" for m, n in failures), ""]
    write_text(run.root / "report.md", "\n".join(lines))
    results["table"] = table
    return results
