"""report.md: the main table, the Pareto fronts and figures, the timing sections, the
comparison with a paper and the failures, as Markdown."""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from lipbench.report import sections
from lipbench.report.schema import failure_lines

GALLERY_LINK = "Watch the videos: [gallery/index.html](gallery/index.html)"


def render_markdown(config, results, table, fronts, figures, comparison, paper) -> str:
    """The page: `table` is tables.to_markdown's, `fronts` (x, y, statuses) and `figures`
    (title, png path) are the plots made, `comparison` the paper comparison or None."""
    data, env = results["data"], results["environment"]
    cross = config.audio == "cross"
    lines = [
        f"# lipbench report: {config.name}{sections.CROSS_AUDIO_TITLE if cross else ''}",
        "",
        *([sections.CROSS_AUDIO_NOTE, ""] if cross else []),
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
        *sections.front_lines(fronts),
        "",
    ]
    for title, path in figures:
        lines += [f"### {title}", "", f"![{title}]({Path(path).name})", ""]
    for section in sections.timing_sections(results):
        lines += _section(section)
    if comparison:
        lines += [
            f"## Against {paper['title']}",
            "",
            tabulate(
                sections.comparison_rows(comparison),
                headers=sections.COMPARISON_HEADERS,
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
            "Latency floor on the paper's own TTFF figures (weights read once per pass, "
            f"{paper.get('device')} bandwidth):",
            "",
            *sections.floor_lines(comparison),
            "",
        ]
    lines += _failure_section(results)
    return "\n".join([*lines, GALLERY_LINK, ""])


def _section(section: sections.Section) -> list[str]:
    lines = [f"## {section.title}", "", section.note, ""]
    for t in section.tables:
        if t.title is not None:
            lines += [f"### {t.title}", ""]
        lines += [tabulate(t.rows, headers=t.headers, tablefmt="github", floatfmt=t.floatfmt, missingval="-"), ""]
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
