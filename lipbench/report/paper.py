"""Published tables as data (lipbench/report/paper_tables/*.yaml) and measured-against-paper comparison."""

from __future__ import annotations

from importlib import resources

import yaml

from lipbench import timing
from lipbench.errors import UnknownNameError
from lipbench.report.tables import Column, cell, paper_columns


def available() -> list[str]:
    folder = resources.files("lipbench.report").joinpath("paper_tables")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_paper(name: str) -> dict:
    if name not in available():
        raise UnknownNameError(f"no paper table {name!r}; available: {', '.join(available())}")
    text = resources.files("lipbench.report").joinpath("paper_tables", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def match_rows(paper: dict, models) -> dict[str, dict]:
    """Run model name -> paper row, by the rows' aliases (or the exact method name)."""
    out = {}
    for model in models:
        for row in paper["rows"]:
            if model in row.get("aliases", []) or model == row["method"]:
                out[model] = row
    return out


def paper_value(paper: dict, row: dict, key: str):
    """The paper's value for a lipbench key (e.g. 'sync_c@latentsync') in a row."""
    for column, spec in paper["columns"].items():
        if spec.get("key") == key:
            return row.get(column)
    return None


def comparison(results: dict, paper: dict) -> list[dict]:
    """Per matched model and paper column: measured (with CI), paper, difference, and
    whether the paper's value lies inside the measured 95% CI."""
    rows = []
    for model, row in match_rows(paper, results["models"]).items():
        for col in paper_columns(paper):
            published = paper_value(paper, row, col.key)
            measured, ci = cell(results, model, col)
            if published is None and measured is None:
                continue
            rows.append(
                {
                    "model": model,
                    "paper_row": row["method"],
                    "metric": col.key,
                    "label": col.label,
                    "measured": measured,
                    "ci95": ci,
                    "paper": published,
                    "difference": None if measured is None or published is None else measured - published,
                    "paper_inside_ci": None if not ci or published is None else bool(ci[0] <= published <= ci[1]),
                }
            )
    return rows


def floor_checks(paper: dict) -> list[dict]:
    """The latency floor applied to the paper's own TTFF figures (rows that give model
    size and passes), read as seconds and as the milliseconds some summaries print."""
    checks = []
    for row in paper["rows"]:
        if not (row.get("parameters") and row.get("ttff_s") is not None and row.get("passes_first_chunk")):
            continue
        args = (row["parameters"], row["dtype"], row["passes_first_chunk"], paper.get("device", ""))
        as_s = timing.check_ttff(row["ttff_s"], *args)
        as_ms = timing.check_ttff(row["ttff_s"] / 1000.0, *args)
        checks.append(
            {
                "method": row["method"],
                "ttff_s": row["ttff_s"],
                "floor_s": as_s["ttff_floor_s"],
                "below_floor_as_seconds": as_s["ttff_below_floor"],
                "below_floor_if_read_as_ms": as_ms["ttff_below_floor"],
            }
        )
    return checks


def paper_points(paper: dict, x: Column, y: Column) -> dict[str, tuple]:
    return {row["method"]: (paper_value(paper, row, x.key), paper_value(paper, row, y.key)) for row in paper["rows"]}
