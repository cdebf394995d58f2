"""Figures of a run, each saved as PNG and SVG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lipbench.report.pareto import FRONT, pareto_status  # noqa: E402
from lipbench.report.schema import is_finite_number  # noqa: E402
from lipbench.report.tables import ARROW  # noqa: E402
from lipbench.storage import atomic_path  # noqa: E402


def save(fig, stem: Path) -> list[Path]:
    """Write stem.png and stem.svg atomically; returns their paths."""
    paths = []
    for suffix in (".png", ".svg"):
        path = stem.with_suffix(suffix)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:])
        paths.append(path)
    plt.close(fig)
    return paths


def pareto_plot(
    points: dict[str, tuple],
    stem: Path,
    x_label: str,
    y_label: str,
    x_higher: bool,
    y_higher: bool,
    title: str = "",
    paper_points: dict[str, tuple] | None = None,
    references: dict[str, float | None] | None = None,
) -> dict[str, str]:
    """Scatter of measured points (red: on the front) with the front as a dashed line;
    paper points, when given, as hollow squares with their own front; reference rows
    (the ground truth, oracles: {name: quality}) as labelled horizontal lines, never
    points on a front. Returns statuses."""
    status = pareto_status(points, x_higher, y_higher)
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for name, y in ((n, y) for n, y in (references or {}).items() if is_finite_number(y)):
        ax.axhline(y, color="tab:green", lw=1, ls=":", zorder=1)
        ax.annotate(
            f"{name} (reference)",
            xy=(0.01, y),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            color="tab:green",
            va="bottom",
        )
    shown = {k: v for k, v in points.items() if status[k] != "missing"}
    for name, (x, y) in shown.items():
        ax.scatter(x, y, s=60, color="tab:red" if status[name] == FRONT else "tab:gray", zorder=3)
    _front_line(ax, [shown[k] for k in shown if status[k] == FRONT], x_higher, "tab:red", "measured front")
    labels = dict(shown)
    if paper_points:
        paper_status = pareto_status(paper_points, x_higher, y_higher)
        paper_shown = {k: v for k, v in paper_points.items() if paper_status[k] != "missing"}
        for name, (x, y) in paper_shown.items():
            ax.scatter(x, y, s=50, facecolors="none", edgecolors="tab:blue", marker="s", zorder=2)
        _front_line(
            ax, [paper_shown[k] for k in paper_shown if paper_status[k] == FRONT], x_higher, "tab:blue", "paper front"
        )
        labels.update({f"{k} (paper)": v for k, v in paper_shown.items()})
    xs = [v[0] for v in labels.values() if v[0] > 0]
    if xs and max(xs) / min(xs) > 100:
        ax.set_xscale("log")
    _label_points(ax, labels)
    ax.set_xlabel(x_label + ARROW[x_higher])
    ax.set_ylabel(y_label + ARROW[y_higher])
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    save(fig, stem)
    return status


def _front_line(ax, front_points, x_higher: bool, color: str, label: str) -> None:
    line = sorted(front_points, key=lambda p: p[0], reverse=not x_higher)
    if len(line) > 1:
        ax.plot([p[0] for p in line], [p[1] for p in line], color=color, lw=1.2, ls="--", label=label)


def _label_points(ax, shown: dict) -> None:
    """Name each point; a label that would overprint an earlier one moves down a line."""
    placed = []
    for name, (x, y) in sorted(shown.items(), key=lambda kv: -kv[1][1]):
        px, py = ax.transData.transform((x, y))
        offset = 6
        while any(abs(px - qx) < 80 and abs(py + offset - qy) < 11 for qx, qy in placed):
            offset -= 12
        placed.append((px, py + offset))
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, offset), fontsize=8)


def distribution_plot(values_by_model: dict[str, list[float]], stem: Path, label: str, higher) -> None:
    """Per-clip values of one metric, one box and its points per model."""
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.5 * max(len(values_by_model), 2)), dpi=120)
    names = list(values_by_model)
    data = [[v for v in values_by_model[n] if is_finite_number(v)] for n in names]
    ax.boxplot([d or [np.nan] for d in data], orientation="horizontal", showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(d, i + rng.uniform(-0.15, 0.15, len(d)), s=10, color="tab:blue", alpha=0.6, zorder=3)
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xlabel(f"{label} per clip{ARROW[higher]}")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    save(fig, stem)


def drift_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], stem: Path, label: str, higher) -> None:
    """A quality measured over windows of the stream against time, one line per model
    (its mean over the clips that reach each window)."""
    fig, ax = plt.subplots(figsize=(7.5, 4), dpi=120)
    for name, (times, values) in curves.items():
        ax.plot(times, values, marker="o", markersize=3, label=name)
    ax.set_xlabel("time in the stream (s)")
    ax.set_ylabel(f"{label}, mean over clips{ARROW[higher]}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, stem)


def latency_timeline(
    chunks_by_model: dict[str, tuple[list[int], list[float]]],
    stem: Path,
    clip: str,
    speech: tuple[int, float, float] | None = None,
) -> None:
    """Frames available against time for one clip: a streaming model climbs in steps
    from its first chunk, a one-shot model jumps once at the end. With `speech`
    (n_frames, fps, lead_s: the live protocol), a dashed line shows, for each time, the
    frames whose speech has arrived: the nearer a model's steps, the less it lags."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    for name, (frames, seconds) in chunks_by_model.items():
        t = np.concatenate([[0.0], np.cumsum(seconds)])
        n = np.concatenate([[0], np.cumsum(frames)])
        ax.step(t, n, where="post", label=name)
        ax.scatter(t[1:2], n[1:2], s=25, zorder=3)  # first frame available (TTFF)
    if speech:
        n_frames, fps, lead = speech
        i = np.arange(n_frames + 1)
        ax.plot(np.maximum(i / fps - lead, 0.0), i, "k--", lw=1, label="speech arrived")
    ax.set_xlabel("seconds since stream() started")
    ax.set_ylabel("frames available")
    ax.set_title(f"{'live: ' if speech else ''}chunk arrivals on clip {clip}")
    positive = [s for _, (_, secs) in chunks_by_model.items() for s in np.cumsum(secs) if s > 0]
    if not speech and positive and max(positive) / min(positive) > 1000:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, stem)
