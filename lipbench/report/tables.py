"""The results table (markdown through tabulate), best value per column in bold."""

from __future__ import annotations

import math

from tabulate import tabulate

TIMING_HEADERS = {"fps": ("fps (frames/s)", True), "ttff_s": ("ttff_s (s)", False)}


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}"


def results_table(results: dict) -> str:
    info = results["metrics_info"]
    models = results["models"]
    columns = [("timing", k, h, better, "median") for k, (h, better) in TIMING_HEADERS.items()]
    for key, meta in info.items():
        arrow = {True: " ↑", False: " ↓", None: ""}[meta["higher_is_better"]]
        unit = f" ({meta['unit']})" if meta["unit"] else ""
        columns.append(("metrics", key, f"{key}{unit}{arrow}", meta["higher_is_better"], "mean"))

    def value(model, column):
        group, key, _, _, stat = column
        return models[model][group][key].get(stat)

    best = {}
    for col in columns:
        if col[3] is None:
            continue
        vals = [v for m in models if (v := value(m, col)) is not None and math.isfinite(v)]
        if len(vals) > 1:
            best[col[1]] = max(vals) if col[3] else min(vals)

    body = []
    for model, agg in models.items():
        row = [model]
        for col in columns:
            v = value(model, col)
            digits = 1 if col[1] in ("fps",) else 4 if col[1] in ("ttff_s",) else 3
            text = _fmt(v, digits)
            if v is not None and best.get(col[1]) == v:
                text = f"**{text}**"
            row.append(text)
        row.append(f"{agg['n_ok']}/{agg['n_clips']}")
        body.append(row)
    headers = ["model"] + [c[2] for c in columns] + ["clips ok"]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
