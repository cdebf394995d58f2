"""Pareto fronts: the rows no other row beats on both axes."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def pareto_front(points: dict[str, tuple[float, float]], x_higher: bool = True, y_higher: bool = True) -> set[str]:
    """Names of the non-dominated points; points with a missing (NaN/None) value are left out."""
    def oriented(p):
        return (p[0] if x_higher else -p[0], p[1] if y_higher else -p[1])

    valid = {k: oriented(v) for k, v in points.items()
             if v[0] is not None and v[1] is not None and math.isfinite(v[0]) and math.isfinite(v[1])}
    front = set()
    for name, (x, y) in valid.items():
        dominated = any(ox >= x and oy >= y and (ox > x or oy > y) for other, (ox, oy) in valid.items() if other != name)
        if not dominated:
            front.add(name)
    return front


def plot_pareto(points: dict[str, tuple[float, float]], path, x_label: str, y_label: str,
                x_higher: bool = True, y_higher: bool = True, title: str = "") -> set[str]:
    """Scatter with the front drawn through its points; returns the front."""
    front = pareto_front(points, x_higher, y_higher)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    shown = {k: v for k, v in points.items() if v[0] is not None and v[1] is not None
             and math.isfinite(v[0]) and math.isfinite(v[1])}
    for name, (x, y) in shown.items():
        ax.scatter(x, y, s=60, color="tab:red" if name in front else "tab:gray", zorder=3)
    line = sorted((shown[k] for k in front), key=lambda p: p[0])
    if len(line) > 1:
        ax.plot([p[0] for p in line], [p[1] for p in line], color="tab:red", lw=1.2, ls="--", label="Pareto front")
        ax.legend(loc="best", fontsize=8)
    xs = [v[0] for v in shown.values() if v[0] > 0]
    if xs and max(xs) / min(xs) > 100:
        ax.set_xscale("log")
    _label_points(ax, shown)
    ax.set_xlabel(x_label + (" ↑" if x_higher else " ↓"))
    ax.set_ylabel(y_label + (" ↑" if y_higher else " ↓"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return front


def _label_points(ax, shown: dict) -> None:
    """Name each point; a label that would overprint an earlier one moves down a line."""
    placed = []
    for name, (x, y) in sorted(shown.items(), key=lambda kv: -kv[1][1]):
        px, py = ax.transData.transform((x, y))
        offset = 6
        while any(abs(px - qx) < 80 and abs(py + offset - qy) < 11 for qx, qy in placed):
            offset -= 12
        placed.append((px, py + offset))
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, offset), fontsize=9)
