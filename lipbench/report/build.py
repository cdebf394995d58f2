"""A run's report, built from its unit and metric files.

`write_report(run)` writes results.json, per_clip.jsonl, results.csv, results.tex,
report.md, report.html (one self-contained page), pareto.png/.svg (the first front) and
pareto_<x>_vs_<y>.png/.svg (the others), dist_<metric>.png/.svg, drift_<quality>-<protocol>.png/.svg
(drift metrics: quality against time) and latency.png/.svg;
previews/ and gallery/ (lipbench.report.gallery, linked from both reports); with a paper
table, paper_comparison.json and its sections.
"""

from __future__ import annotations

import json

from lipbench.report import paper as papers
from lipbench.report import plots, tables
from lipbench.report.html import render_html
from lipbench.report.markdown import render_markdown
from lipbench.report.results import write_results
from lipbench.rundir import RunDir
from lipbench.storage import write_json, write_text

# (x, y) column pairs plotted when the run has them: speed against sync, image quality, video quality.
DEFAULT_PARETO_PAIRS = (("fps", "sync_c@latentsync"), ("fps", "fid@per_video"), ("ttff_s", "fvd@latentsync"))


def _safe(key: str) -> str:
    return key.replace("@", "-").replace("/", "-")


def pareto_pairs(config, columns: dict) -> list[tuple[str, str]]:
    pairs = [p for p in DEFAULT_PARETO_PAIRS if p[1] in columns]
    if config.pareto_y and config.pareto_y in columns and ("fps", config.pareto_y) not in pairs:
        pairs.insert(0, ("fps", config.pareto_y))
    if not pairs:
        first = next((k for k, c in columns.items() if c.group == "metrics" and c.higher_is_better is not None), None)
        pairs = [("fps", first)] if first else []
    return pairs


def write_report(run: RunDir, paper_name: str | None = None) -> dict:
    """Write every report file of a run; returns the results (with 'table' in markdown)."""
    config, manifest = run.load_config(), run.load_manifest()
    results = write_results(run, config, manifest)
    columns = {c.key: c for c in tables.default_columns(results)}
    write_text(run.root / "results.csv", tables.to_csv(results))
    write_text(run.root / "results.tex", tables.to_latex(results))
    paper = papers.load_paper(paper_name) if paper_name else None

    figures, fronts = [], []
    for i, (x, y) in enumerate(pareto_pairs(config, columns)):
        cx, cy = columns[x], columns[y]
        points = {
            m: (tables.cell(results, m, cx)[0], tables.cell(results, m, cy)[0])
            for m in results["models"]
            if not tables.is_reference(results, m)
        }
        references = {m: tables.cell(results, m, cy)[0] for m in results["models"] if tables.is_reference(results, m)}
        stem = run.root / ("pareto" if i == 0 else f"pareto_{_safe(x)}_vs_{_safe(y)}")  # the main one: pareto.png
        status = plots.pareto_plot(
            points,
            stem,
            f"{cx.label}, median over clips",
            f"{cy.label}",
            cx.higher_is_better,
            cy.higher_is_better,
            f"{config.name}: {x} against {y}",
            papers.paper_points(paper, cx, cy) if paper else None,
            references,
        )
        figures.append((f"Pareto front: {x} against {y}", stem.with_suffix(".png")))
        fronts.append((x, y, status))

    rows = [json.loads(line) for line in (run.root / "per_clip.jsonl").read_text().splitlines()]
    for key, col in columns.items():
        if col.group != "metrics":
            continue
        by_model = {
            m: [r.get(key) for r in rows if r["model"] == m and r.get(key) is not None] for m in results["models"]
        }
        if any(by_model.values()):
            stem = run.root / f"dist_{_safe(key)}"
            plots.distribution_plot(by_model, stem, col.label, col.higher_is_better)
            figures.append((f"Per-clip {key}", stem.with_suffix(".png")))
    figures += _drift_figures(run, config, manifest, results)
    timeline = _latency_timeline(rows, results)
    if timeline:
        plots.latency_timeline(timeline[1], run.root / "latency", timeline[0])
        figures.append(("Chunk arrivals (streaming against one-shot)", run.root / "latency.png"))
    live = _latency_timeline([{**r, **r["live"]} for r in rows if isinstance(r.get("live"), dict)], results)
    if live:
        lead = next(r["live"].get("lead_s") or 0.0 for r in rows if isinstance(r.get("live"), dict))
        first = next(r for r in rows if r["clip"] == live[0] and r.get("n_frames"))
        plots.latency_timeline(
            live[1], run.root / "live_latency", live[0], speech=(first["n_frames"], _clip_fps(manifest, live[0]), lead)
        )
        figures.append(("Live: frames shown against the speech that drives them", run.root / "live_latency.png"))

    comparison = None
    if paper:
        comparison = {
            "paper": paper["title"],
            "rows": papers.comparison(results, paper),
            "floor_checks": papers.floor_checks(paper),
        }
        write_json(run.root / "paper_comparison.json", comparison)

    table = tables.to_markdown(results)
    write_text(run.root / "report.md", render_markdown(config, results, table, fronts, figures, comparison, paper))
    write_text(run.root / "report.html", render_html(config, results, fronts, figures, comparison, paper))
    from lipbench.report.gallery import write_gallery

    write_gallery(run, results)
    results["table"] = table
    return results


def _drift_figures(run: RunDir, config, manifest, results) -> list[tuple[str, object]]:
    """Quality against time for each drift protocol the run measured: per model, the mean
    over clips of the window series its features keep."""
    from lipbench.metric_keys import split_key
    from lipbench.metrics.drift import QUALITIES, Drift

    out = []
    for spec in config.metric_specs():
        family, protocol = split_key(spec)
        if family != Drift.name:
            continue
        for quality in QUALITIES[protocol]:
            curves = {}
            for model in results["models"]:
                found = [run.load_features(model, clip.id, spec) for clip in manifest.clips]
                found = [f for f in found if f is not None]
                if found:
                    curves[model] = Drift.mean_over_clips(found, quality)
            if curves:
                stem = run.root / f"drift_{quality}-{protocol}"
                higher = next(v.higher_is_better for v in Drift.values if v.name == f"{quality}_drift")
                plots.drift_plot(curves, stem, f"{quality} per {Drift.window_s:g}-s window", higher)
                out.append((f"Drift: {quality} ({protocol}) against time in the stream", stem.with_suffix(".png")))
    return out


def _clip_fps(manifest, clip_id: str) -> float:
    clip = manifest.clip(clip_id)
    return float(clip.fps or 25.0)


def _latency_timeline(rows, results):
    """The clip every model (with timed chunks) finished, with each model's chunk sizes
    and seconds."""
    ok = {
        m: {r["clip"]: r for r in rows if r["model"] == m and r["status"] == "ok" and r.get("chunk_s")}
        for m in results["models"]
    }
    ok = {m: clips for m, clips in ok.items() if clips}
    shared = set.intersection(*(set(v) for v in ok.values())) if ok and all(ok.values()) else set()
    if not shared:
        return None
    clip = sorted(shared)[0]
    return clip, {m: (ok[m][clip]["chunk_frames"], ok[m][clip]["chunk_s"]) for m in ok}
