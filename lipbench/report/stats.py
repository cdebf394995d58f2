"""Confidence intervals by bootstrap over clips, seeded so the same data gives the same
interval. Percentile intervals; the number of resamples goes into every output."""

from __future__ import annotations

from typing import Callable

import numpy as np
from tqdm import tqdm

from lipbench import defaults

SEED = 0
LEVEL = 0.95
# A set-level statistic is recomputed on every resample: cheap for FVD and per-video FID,
# a 2048x2048 matrix square root (seconds) for a pooled FID over more frames than 2048.
# Such loops show a progress bar once they have run this long.
PROGRESS_AFTER_S = 3


def _resamples(n_resamples: int, label: str):
    return tqdm(range(n_resamples), desc=f"bootstrap {label}", unit="resample", delay=PROGRESS_AFTER_S, leave=False)


def _finite(values) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def _percentiles(stats, level: float) -> list[float]:
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))]


def _resampled_ci(n: int, statistic_of, n_resamples: int, seed: int, level: float, label: str):
    """(CI, resamples that gave a value) of `statistic_of(pick)` over resamples of n clips
    (pick: the drawn indices); a resample giving None or no finite value is left out."""
    rng = np.random.default_rng(seed)
    stats = _finite(statistic_of(rng.integers(0, n, n)) for _ in _resamples(n_resamples, label))
    return (_percentiles(stats, level) if len(stats) > 1 else None), len(stats)


def bootstrap_ci(
    values, statistic: Callable = np.mean, n_resamples: int = defaults.RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> list[float] | None:
    """CI of a statistic over clips (mean, median, ...); None with fewer than two values."""
    arr = _finite(values)
    if len(arr) < 2:
        return None
    rng = np.random.default_rng(seed)
    samples = arr[rng.integers(0, len(arr), (n_resamples, len(arr)))]
    return _percentiles(statistic(samples, axis=1), level)


def bootstrap_mean_ci(values, n_resamples: int = defaults.RESAMPLES, seed: int = SEED, level: float = LEVEL):
    return bootstrap_ci(values, np.mean, n_resamples, seed, level)


def bootstrap_set_ci(
    items: list,
    statistic: Callable[[list], float],
    n_resamples: int = defaults.RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    label: str = "",
) -> tuple[list[float] | None, int]:
    """(CI, resamples that gave a value) of a set-level statistic (FVD, pooled FID)
    recomputed on each resample of clips. A resample the metric cannot score (too few
    distinct clips: a ValueError) or that gives no finite value is left out and not
    counted; the CI is None with fewer than two resamples that gave a value."""
    if len(items) < 2 or n_resamples <= 0:
        return None, 0

    def scored(pick):
        try:
            return statistic([items[i] for i in pick])
        except ValueError:  # a resample the metric cannot score (too few distinct clips)
            return None

    return _resampled_ci(len(items), scored, n_resamples, seed, level, label)


def paired_difference_ci(base, new, n_resamples: int = defaults.RESAMPLES, seed: int = SEED, level: float = LEVEL):
    """(mean of new - base over paired clips, its CI); clips missing in either are dropped."""
    pairs = [(b, n) for b, n in zip(base, new) if b is not None and n is not None and np.isfinite(b) and np.isfinite(n)]
    if not pairs:
        return None, None
    diff = np.array([n - b for b, n in pairs])
    return float(diff.mean()), bootstrap_ci(diff, np.mean, n_resamples, seed, level)


def paired_set_difference_ci(
    base_items: list,
    new_items: list,
    statistic: Callable[[list], float],
    n_resamples: int = defaults.RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    label: str = "",
):
    """Set-level difference statistic(new) - statistic(base) over the same resampled clips."""
    value = statistic(new_items) - statistic(base_items)
    if len(base_items) < 2 or n_resamples <= 0:
        return value, None
    ci, _ = _resampled_ci(
        len(base_items),
        lambda pick: statistic([new_items[i] for i in pick]) - statistic([base_items[i] for i in pick]),
        n_resamples,
        seed,
        level,
        label,
    )
    return value, ci
