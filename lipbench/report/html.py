"""report.html: the same report as report.md on one self-contained page (figures inlined
as base64 PNG, inline CSS)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from lipbench.report import sections, tables
from lipbench.report.schema import failure_lines

GALLERY_LINK = "<p>Watch the videos: <a href='gallery/index.html'>gallery/index.html</a></p>"
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%}small{color:#666}"
    ".wide{overflow-x:auto}table{font-size:13px}"
)


def render_html(config, results, fronts, figures, comparison, paper) -> str:
    """The page; the arguments as for lipbench.report.markdown.render_markdown (the main
    table is built here, with its CI and coverage as small print)."""
    columns = tables.default_columns(results)
    cross = config.audio == "cross"
    title = config.name + (sections.CROSS_AUDIO_TITLE if cross else "")
    parts = [
        f"<h1>lipbench report: {html.escape(title)}</h1>",
        *([f"<p>{_code(sections.CROSS_AUDIO_NOTE)}</p>"] if cross else []),
        GALLERY_LINK,
        f"<p>{results['data']['n_clips']} clips from <code>{html.escape(results['data']['manifest'])}</code>, "
        f"device <code>{html.escape(config.device)}</code>. Timing: median over clips; metrics: mean over "
        "clips (set-level: pooled); small print: 95% bootstrap CI, and [n/N, k failed] when only n of N "
        "clips gave a value.</p>",
        _table(
            ["model", *map(tables.heading, columns), "clips ok"],
            [[html.escape(label), *map(_cell, cells), ok] for label, cells, ok in tables.grid(results, columns)],
        ),
        "<h2>Pareto fronts</h2>" + _list(sections.front_lines(fronts)),
    ]
    for title, path in figures:
        data = base64.b64encode(Path(path).read_bytes()).decode()
        parts.append(
            f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
        )
    parts += map(_section, sections.timing_sections(results))
    if comparison:
        rows = [[html.escape(c) for c in r] for r in sections.comparison_rows(comparison)]
        parts += [
            f"<h2>Against {html.escape(paper['title'])}</h2>",
            _table(sections.COMPARISON_HEADERS, rows),
            _list(sections.floor_lines(comparison)),
        ]
    if failure_lines(results):
        parts.append("<h2>Failures</h2><pre>" + html.escape("\n".join(failure_lines(results))) + "</pre>")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>lipbench: {html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def _code(text: str) -> str:
    """Markdown's `code` spans as <code>, the rest escaped."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def _cell(c: tables.Cell) -> str:
    text = html.escape(c.text)
    if c.best:
        text = f"<b>{text}</b>"
    if c.ci:
        text += f"<br><small>{c.ci}</small>"
    if c.note:
        text += f"<br><small>[{html.escape(c.note)}]</small>"
    return text


def _table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _list(lines) -> str:
    """Markdown list lines ('- ...') as an HTML list."""
    return "<ul>" + "".join(f"<li>{html.escape(line[2:])}</li>" for line in lines) + "</ul>"


def _figures(rows) -> list[list[str]]:
    """Rows of a name then seconds or rates, as table cells (4 significant digits, - for none)."""
    return [[html.escape(c) if isinstance(c, str) else ("-" if c is None else f"{c:.4g}") for c in r] for r in rows]


def _section(section: sections.Section) -> str:
    out = f"<h2>{html.escape(section.title, quote=False)}</h2><p>{html.escape(section.note)}</p>"
    for t in section.tables:
        if t.title is not None:
            out += f"<h3>{html.escape(t.title)}</h3>"
        out += _table(t.headers, _figures(t.rows))
    return out
