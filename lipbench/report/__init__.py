"""Reports from a run directory.

`write_report(run)` writes, all from the run's unit and metric files:
results.json, per_clip.jsonl, results.csv, results.tex, report.md, report.html (one
self-contained page), pareto.png/.svg (the first front) and pareto_<x>_vs_<y>.png/.svg
(the others), dist_<metric>.png/.svg and
latency.png/.svg; previews/ and gallery/ (lipbench.report.gallery, linked from both
reports); with a paper table, paper_comparison.json and its sections.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from lipbench.report import paper as papers
from lipbench.report import plots, tables
from lipbench.report.results import write_results
from lipbench.report.schema import LATENCY_KEYS, failure_lines
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
    write_text(
        run.root / "report.md",
        _markdown(config, results, table, fronts, figures, comparison, paper) + f"\n{GALLERY_LINK_MD}\n",
    )
    write_text(
        run.root / "report.html",
        _html(config, results, fronts, figures, comparison, paper).replace("</h1>", f"</h1>{GALLERY_LINK_HTML}", 1),
    )
    from lipbench.report.gallery import write_gallery

    write_gallery(run, results)
    results["table"] = table
    return results


GALLERY_LINK_MD = "Watch the videos: [gallery/index.html](gallery/index.html)"
GALLERY_LINK_HTML = "<p>Watch the videos: <a href='gallery/index.html'>gallery/index.html</a></p>"


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


def _fmt(v, digits=3):
    return "-" if v is None else f"{v:,.{digits}f}"


def _comparison_rows(comparison) -> list[list[str]]:
    return [
        [
            r["model"],
            r["paper_row"],
            r["metric"],
            _fmt(r["measured"]),
            "-" if not r["ci95"] else f"{_fmt(r['ci95'][0])}–{_fmt(r['ci95'][1])}",
            _fmt(r["paper"]),
            _fmt(r["difference"]),
            {True: "yes", False: "no", None: "-"}[r["paper_inside_ci"]],
        ]
        for r in comparison["rows"]
    ]


COMPARISON_HEADERS = ["model", "paper row", "metric", "measured", "95% CI", "paper", "difference", "paper in CI"]


def _floor_lines(comparison) -> list[str]:
    return [
        f"- {c['method']}: TTFF {c['ttff_s']} s against a floor of {c['floor_s'] * 1000:.2f} ms: "
        f"{'BELOW the floor' if c['below_floor_as_seconds'] else 'possible'} as seconds; "
        f"{'impossible (below the floor)' if c['below_floor_if_read_as_ms'] else 'possible'} if read as ms"
        for c in comparison["floor_checks"]
    ]


def _front_lines(fronts) -> list[str]:
    """One line per front (reference rows are never on one: they are lines on the plot)."""
    return [
        f"- {x} against {y}: front = {', '.join(sorted(m for m, s in st.items() if s == 'front')) or '-'}"
        + (
            f"; missing values: {', '.join(sorted(m for m, s in st.items() if s == 'missing'))}"
            if any(s == "missing" for s in st.values())
            else ""
        )
        for x, y, st in fronts
    ]


def _markdown(config, results, table, fronts, figures, comparison, paper) -> str:
    from tabulate import tabulate

    data, env = results["data"], results["environment"]
    lines = [
        f"# lipbench report: {config.name}",
        "",
        f"{data['n_clips']} clips from `{data['manifest']}` (input hash `{data['input_hash'][:16]}`), "
        f"device `{config.device}`, lipbench {env['lipbench']} (git {str(env['git_commit'])[:10]}).",
        "",
        table,
        "",
        "fps and ttff_s: median over clips; ttff_s is seconds from the start of `stream()` to the first "
        "chunk, fps is frames over seconds to the last chunk. Metrics: mean over clips (set-level metrics: "
        "pooled over clips), keyed `metric@protocol`. In brackets: 95% bootstrap CI over clips. "
        "↑ higher is better, ↓ lower is better; best per column in bold. "
        "`[n/N, k failed]`: the value is over the n of N clips that gave one, k failed; "
        "`failed (k/N)`: no clip gave a value; `failed`: a set-level value that could not be pooled "
        "(reasons under Failures).",
        "",
        "## Pareto fronts",
        "",
        *_front_lines(fronts),
        "",
    ]
    for title, path in figures:
        lines += [f"### {title}", "", f"![{title}]({Path(path).name})", ""]
    lines += _latency_section(results)
    lines += _derived_timing_section(results)
    lines += _outside_clock_section(results)
    if comparison:
        lines += [
            f"## Against {paper['title']}",
            "",
            tabulate(
                _comparison_rows(comparison), headers=COMPARISON_HEADERS, tablefmt="github", disable_numparse=True
            ),
            "",
            "Latency floor on the paper's own TTFF figures (weights read once per pass, "
            f"{paper.get('device')} bandwidth):",
            "",
            *_floor_lines(comparison),
            "",
        ]
    lines += _failure_section(results)
    return "\n".join(lines)


DERIVED_TIMING_NOTE = (
    "Rebuilt from each unit's stage spans (stage_spans_s), median over clips, beside lipbench's "
    "own; spans in seconds, fps_* frames over that span. FastGen aligns faces before its clock "
    "starts, so alignment is left out of its spans (README, the Lip Forcing family)."
)


def _derived_timing_tables(results) -> list[tuple[str, list[str], list[list]]]:
    """Other harnesses' spans rebuilt from the units' stages (the Lip Forcing family: the
    authors' FastGen spans), beside lipbench's TTFF and FPS, medians over clips:
    (harness, headers, rows) per harness."""
    grouped: dict[str, list] = {}
    for model, agg in results["models"].items():
        for harness, figures in agg.get("derived_timing", {}).items():
            own = [agg["timing"].get(k, {}).get("value") for k in ("ttff_s", "fps")]
            grouped.setdefault(harness, []).append((model, own, figures))
    out = []
    for harness, rows in grouped.items():
        keys = list(dict.fromkeys(k for _, _, figures in rows for k in figures))
        out.append(
            (
                harness,
                ["model", "ttff_s (s)", "fps (frames/s)", *keys],
                [[model, *own, *(figures.get(k) for k in keys)] for model, own, figures in rows],
            )
        )
    return out


LATENCY_NOTE = (
    "How late the mouth follows the speech (medians over clips, seconds). offline: all audio known when "
    "stream() starts (the paper's protocol); live: the speech arrives at its real pace from the start. "
    "latency: a frame exists minus the time its interval's speech has fully arrived (p50, p95 over the "
    "clip's frames); playback delay: the least delay behind the speech at which a player never waits "
    "for a frame; stalls: frames late at the configured player delay; lookahead: how far past its "
    "frames a model had read the audio (declared by the adapter; 'clip': the whole clip first; "
    "'-': reads no audio); verdict: real-time (no stalls on any clip at that delay) or stalls."
)
LATENCY_HEADERS = [
    "model",
    "protocol",
    "ttff_s (s)",
    "latency p50 (s)",
    "latency p95 (s)",
    "playback delay (s)",
    "stalls (frames)",
    "at delay (s)",
    "lookahead (s)",
    "declared (s)",
    "verdict",
]


def _latency_rows(results) -> list[list]:
    """One row per model and timing protocol (live first), from results' `latency`."""
    rows = []
    for protocol in ("live", "offline"):
        for model, agg in results["models"].items():
            figures = agg.get("latency", {}).get(protocol)
            if not figures:
                continue
            value = {key: figures[key].get("value") for key in LATENCY_KEYS}
            declared = figures.get("lookahead_declared_s")
            rows.append(
                [
                    model,
                    protocol,
                    value["ttff_s"],
                    value["latency_p50_s"],
                    value["latency_p95_s"],
                    value["playback_delay_s"],
                    value["stalls"],
                    figures.get("player_delay_s"),
                    value["lookahead_s"],
                    "clip" if declared is None else declared,
                    figures["verdict"],
                ]
            )
    return rows


def _latency_section(results) -> list[str]:
    from tabulate import tabulate

    rows = _latency_rows(results)
    if not rows:
        return []
    return [
        "## Latency: how late the mouth follows the speech",
        "",
        LATENCY_NOTE,
        "",
        tabulate(rows, headers=LATENCY_HEADERS, tablefmt="github", floatfmt=".3f", missingval="-"),
        "",
    ]


OUTSIDE_CLOCK_NOTE = (
    "Measured, and not part of TTFF or FPS (medians over clips, seconds): prepare_s, the "
    "per-clip work an upstream pipeline does ahead of time (MuseTalk's realtime avatar); for "
    "models in a worker process, the shipping of chunks across the boundary and the stream "
    "on lipbench's own clock, shipping included."
)
OUTSIDE_CLOCK_COLUMNS = ("prepare_s", "transfer_per_chunk_s", "transfer_total_s", "harness_ttff_s", "harness_total_s")


def _outside_clock_table(results) -> tuple[list[str], list[list]] | None:
    """(headers, rows) when some model prepared for at least a millisecond or ran in a
    worker; else None (the demo's models have nothing outside the clock)."""
    rows = {m: agg.get("outside_clock", {}) for m, agg in results["models"].items()}
    if not any(f.get("prepare_s", 0) >= 1e-3 or "transfer_total_s" in f for f in rows.values()):
        return None
    columns = [c for c in OUTSIDE_CLOCK_COLUMNS if any(c in f for f in rows.values())]
    return ["model", *columns], [[m, *(f.get(c) for c in columns)] for m, f in rows.items()]


def _outside_clock_section(results) -> list[str]:
    from tabulate import tabulate

    table = _outside_clock_table(results)
    if table is None:
        return []
    return [
        "## Outside the clock",
        "",
        OUTSIDE_CLOCK_NOTE,
        "",
        tabulate(table[1], headers=table[0], tablefmt="github", floatfmt=".4g", missingval="-"),
        "",
    ]


def _derived_timing_section(results) -> list[str]:
    from tabulate import tabulate

    tables_ = _derived_timing_tables(results)
    if not tables_:
        return []
    lines = ["## Timing by other harnesses' definitions", "", DERIVED_TIMING_NOTE, ""]
    for harness, headers, rows in tables_:
        lines += [
            f"### {harness}",
            "",
            tabulate(rows, headers=headers, tablefmt="github", floatfmt=".4g", missingval="-"),
            "",
        ]
    return lines


def _failure_section(results) -> list[str]:
    """Counts per model, then every failure (results.json's `failures`)."""
    counts = results["failures"]["counts"]
    if not (counts["units"] or counts["metric_values"]):
        return []
    lines = [
        "## Failures",
        "",
        f"{counts['units']} units and {counts['metric_values']} metric values failed "
        "(per model below; all of them under `failures` in results.json):",
        "",
    ]
    lines += [
        f"- {m}: {a['n_failed']} of {a['n_clips']} units, {a['n_failed_values']} metric values"
        for m, a in results["models"].items()
        if a["n_failed"] or a["n_failed_values"]
    ]
    return lines + ["", "```", *failure_lines(results), "```", ""]


def _html_table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _html_figures(rows) -> list[list[str]]:
    """Rows of a name then seconds or rates, as table cells (4 significant digits, - for none)."""
    return [[html.escape(c) if isinstance(c, str) else ("-" if c is None else f"{c:.4g}") for c in r] for r in rows]


def _html(config, results, fronts, figures, comparison, paper) -> str:
    columns = tables.default_columns(results)
    best = tables.best_values(results, columns)
    arrows = {True: " ↑", False: " ↓", None: ""}
    rows = []
    for model, agg in results["models"].items():
        row = [html.escape(tables.row_label(results, model))]
        for col in columns:
            value, ci = tables.cell(results, model, col)
            if value is None:
                row.append(html.escape(tables.no_value(results, model, col)))
                continue
            text = html.escape(tables.fmt(value, col.key))
            if tables.is_best(results, model, col, value, best):
                text = f"<b>{text}</b>"
            if ci:
                text += f"<br><small>{tables.fmt(ci[0], col.key)}–{tables.fmt(ci[1], col.key)}</small>"
            if note := tables.coverage(results, model, col):
                text += f"<br><small>[{html.escape(note)}]</small>"
            row.append(text)
        rows.append(row + [f"{agg['n_ok']}/{agg['n_clips']}"])
    parts = [
        f"<h1>lipbench report: {html.escape(config.name)}</h1>",
        f"<p>{results['data']['n_clips']} clips from <code>{html.escape(results['data']['manifest'])}</code>, "
        f"device <code>{html.escape(config.device)}</code>. Timing: median over clips; metrics: mean over "
        "clips (set-level: pooled); small print: 95% bootstrap CI, and [n/N, k failed] when only n of N "
        "clips gave a value.</p>",
        _html_table(["model"] + [c.label + arrows[c.higher_is_better] for c in columns] + ["clips ok"], rows),
        "<h2>Pareto fronts</h2><ul>"
        + "".join(f"<li>{html.escape(line[2:])}</li>" for line in _front_lines(fronts))
        + "</ul>",
    ]
    for title, path in figures:
        data = base64.b64encode(Path(path).read_bytes()).decode()
        parts.append(
            f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
        )
    latency = _latency_rows(results)
    if latency:
        parts.append(
            f"<h2>Latency: how late the mouth follows the speech</h2><p>{html.escape(LATENCY_NOTE)}</p>"
            + _html_table(LATENCY_HEADERS, _html_figures(latency))
        )
    derived = _derived_timing_tables(results)
    if derived:
        parts.append(f"<h2>Timing by other harnesses' definitions</h2><p>{html.escape(DERIVED_TIMING_NOTE)}</p>")
    for harness, headers, rows in derived:
        parts.append(f"<h3>{html.escape(harness)}</h3>" + _html_table(headers, _html_figures(rows)))
    outside = _outside_clock_table(results)
    if outside:
        parts.append(
            f"<h2>Outside the clock</h2><p>{html.escape(OUTSIDE_CLOCK_NOTE)}</p>"
            + _html_table(outside[0], _html_figures(outside[1]))
        )
    if comparison:
        parts.append(f"<h2>Against {html.escape(paper['title'])}</h2>")
        parts.append(
            _html_table(COMPARISON_HEADERS, [[html.escape(c) for c in r] for r in _comparison_rows(comparison)])
        )
        parts.append(
            "<ul>" + "".join(f"<li>{html.escape(line[2:])}</li>" for line in _floor_lines(comparison)) + "</ul>"
        )
    if failure_lines(results):
        parts.append("<h2>Failures</h2><pre>" + html.escape("\n".join(failure_lines(results))) + "</pre>")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}small{color:#666}"
        ".wide{overflow-x:auto}table{font-size:13px}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>lipbench: {html.escape(config.name)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )
