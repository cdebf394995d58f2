"""Result tables in markdown (tabulate), CSV and LaTeX, from results.json.

Units are in every header (`ttff_s (s)`), the best value of each directed column is
marked (bold), and markdown cells carry the 95% CI. A value some clips did not give is
followed by `[n/N, k failed]` (clips that gave it, of all, and how many failed); a value
no clip gave says `failed (k/N)`, and a set-level value that could not be pooled
`failed`; `-` only where nothing was computed yet. The `paper` layout reproduces the
column order of a paper's table (see lipbench/report/paper_tables/). `grid` gives the cells each format
marks up its own way (report.html's table too).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from tabulate import tabulate

from lipbench.report.schema import is_finite_number

ARROW = {True: " ↑", False: " ↓", None: ""}  # after a column's label: its direction
TIMING = {"fps": ("fps", "frames/s", True), "ttff_s": ("ttff_s", "s", False)}
DIGITS = {"fps": 2, "ttff_s": 4}


@dataclass(frozen=True)
class Column:
    key: str  # 'fps', 'ttff_s' or a metric key such as 'sync_c@latentsync'
    label: str
    higher_is_better: bool | None
    group: str  # 'timing' or 'metrics'


def default_columns(results: dict) -> list[Column]:
    cols = [Column(k, f"{name} ({unit})", higher, "timing") for k, (name, unit, higher) in TIMING.items()]
    for key, meta in results["metrics_info"].items():
        unit = f" ({meta['unit']})" if meta["unit"] else ""
        cols.append(Column(key, f"{key}{unit}", meta["higher_is_better"], "metrics"))
    return cols


def paper_columns(paper: dict) -> list[Column]:
    """The paper's column order; columns lipbench does not measure (steps) are left out."""
    return [
        Column(c["key"], c["label"], c.get("higher_is_better"), "timing" if c["key"] in TIMING else "metrics")
        for c in paper["columns"].values()
        if c.get("key")
    ]


def summary(results: dict, model: str, col: Column) -> dict:
    """The aggregate of a column for a model (lipbench.report.schema.Aggregate), {} when absent."""
    return results["models"][model].get(col.group, {}).get(col.key) or {}


def cell(results: dict, model: str, col: Column) -> tuple[float | None, list | None]:
    """(value, ci95) of a column for a model: the aggregate's `value` (timing: median over
    clips; metrics: mean over clips, or the pooled value of a set-level metric)."""
    agg = summary(results, model, col)
    value = agg.get("value")
    return (value if is_finite_number(value) else None), agg.get("ci95")


def coverage(results: dict, model: str, col: Column) -> str:
    """'' when every clip gave a value; else 'n/N' (clips that did, of all), with ', k failed'
    when k of the others failed ('5/8, 3 failed')."""
    agg, n_clips = summary(results, model, col), results["models"][model]["n_clips"]
    n, n_failed = agg.get("n", 0), len(agg.get("failed") or {})
    if not agg or n >= n_clips:
        return ""
    return f"{n}/{n_clips}" + (f", {n_failed} failed" if n_failed else "")


def no_value(results: dict, model: str, col: Column) -> str:
    """What a cell without a value says: 'failed (k/N)' when k clips failed and none gave
    a value, 'failed' when a set-level metric could not be pooled, '-' when nothing was
    computed yet."""
    agg = summary(results, model, col)
    n_failed = len(agg.get("failed") or {})
    if agg.get("error"):
        return "failed"
    if n_failed:
        return f"failed ({n_failed}/{results['models'][model]['n_clips']})"
    return "-"


def is_reference(results: dict, model: str) -> bool:
    return bool(results["models"][model].get("reference"))


def row_label(results: dict, model: str) -> str:
    """The model's name, marked when it is a reference row (never bold, never on a front)."""
    return f"{model} (reference)" if is_reference(results, model) else model


def is_best(results: dict, model: str, col, value, best: dict) -> bool:
    """Whether a cell is shown as its column's best (never a reference row's)."""
    return best.get(col.key) == value and not is_reference(results, model)


def best_values(results: dict, columns) -> dict[str, float]:
    """Best value per directed column among the methods (reference rows left out)."""
    best = {}
    for col in columns:
        vals = [
            v for m in results["models"] if not is_reference(results, m) and (v := cell(results, m, col)[0]) is not None
        ]
        if col.higher_is_better is not None and len(vals) > 1:
            best[col.key] = max(vals) if col.higher_is_better else min(vals)
    return best


def fmt(value, key: str) -> str:
    return "-" if value is None else f"{value:,.{DIGITS.get(key, 3)}f}"


def heading(col: Column) -> str:
    """A column's label with its direction ('fps (frames/s) ↑')."""
    return col.label + ARROW[col.higher_is_better]


@dataclass(frozen=True)
class Cell:
    """A model's entry in a column: the formatted value, or what a cell without one says
    (then nothing else is set); whether it is the column's best; its 95% CI ('low–high');
    its coverage ('5/8, 3 failed')."""

    text: str
    best: bool = False
    ci: str = ""
    note: str = ""


def grid(results: dict, columns) -> list[tuple[str, list[Cell], str]]:
    """Per model: its row label, a Cell per column, and its clips ok ('n_ok/n_clips'); each
    format (markdown, LaTeX, report.html) marks these up its own way."""
    best = best_values(results, columns)
    out = []
    for model, agg in results["models"].items():
        cells = []
        for col in columns:
            value, ci = cell(results, model, col)
            if value is None:
                cells.append(Cell(no_value(results, model, col)))
                continue
            cells.append(
                Cell(
                    fmt(value, col.key),
                    is_best(results, model, col, value, best),
                    f"{fmt(ci[0], col.key)}–{fmt(ci[1], col.key)}" if ci else "",
                    coverage(results, model, col),
                )
            )
        out.append((row_label(results, model), cells, f"{agg['n_ok']}/{agg['n_clips']}"))
    return out


def _markdown_cell(c: Cell, with_ci: bool) -> str:
    text = f"**{c.text}**" if c.best else c.text
    if with_ci and c.ci:
        text += f" ({c.ci})"
    return text + (f" [{c.note}]" if c.note else "")


def to_markdown(results: dict, columns=None, with_ci: bool = True) -> str:
    columns = columns or default_columns(results)
    body = [[label, *(_markdown_cell(c, with_ci) for c in cells), ok] for label, cells, ok in grid(results, columns)]
    headers = ["model", *map(heading, columns), "clips ok"]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def to_csv(results: dict, columns=None) -> str:
    """One row per model; each column as value, ci95_low, ci95_high, n (clips that gave a
    value) and failed (clips that failed), plain numbers; a value that failed is empty."""
    columns = columns or default_columns(results)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["model"]
        + [f"{c.key}{s}" for c in columns for s in ("", "_ci95_low", "_ci95_high", "_n", "_failed")]
        + ["n_ok", "n_clips"]
    )
    for model, agg in results["models"].items():
        row = [model]
        for col in columns:
            value, ci = cell(results, model, col)
            found = summary(results, model, col)
            row += (
                ["" if value is None else repr(value)]
                + (["", ""] if not ci else [repr(ci[0]), repr(ci[1])])
                + [found.get("n", 0), len(found.get("failed") or {})]
            )
        writer.writerow(row + [agg["n_ok"], agg["n_clips"]])
    return out.getvalue()


def _latex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
        ("@", r"@"),
        ("↑", r"$\uparrow$"),
        ("↓", r"$\downarrow$"),
    ):
        text = text.replace(a, b)
    return text


def _latex_cell(c: Cell) -> str:
    text = c.text.replace(",", "{,}")
    text = rf"\textbf{{{text}}}" if c.best else text
    return f"{text} [{c.note}]" if c.note else text


def to_latex(results: dict, columns=None) -> str:
    """A booktabs tabular; best values in \\textbf."""
    columns = columns or default_columns(results)
    lines = [
        r"\begin{tabular}{l" + "r" * len(columns) + "}",
        r"\toprule",
        " & ".join(["method"] + [_latex_escape(heading(c)) for c in columns]) + r" \\",
        r"\midrule",
    ]
    for label, cells, _ in grid(results, columns):
        lines.append(" & ".join([_latex_escape(label), *map(_latex_cell, cells)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)
