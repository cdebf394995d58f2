"""Confidence intervals by bootstrap over clips (seeded: the same data gives the same CI)."""

from __future__ import annotations

from typing import Callable

import numpy as np

N_RESAMPLES = 2000
SEED = 0


def bootstrap_mean_ci(values, n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = 0.95):
    """Percentile CI of the mean over clips; None with fewer than two finite values."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if len(arr) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), (n_resamples, len(arr)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def bootstrap_set_ci(items: list, statistic: Callable[[list], float], n_resamples: int,
                     seed: int = SEED, level: float = 0.95):
    """Percentile CI of a set-level statistic recomputed on resamples of clips."""
    if len(items) < 2 or n_resamples <= 0:
        return None
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(items), len(items))
        value = statistic([items[i] for i in pick])
        if np.isfinite(value):
            stats.append(value)
    if len(stats) < 2:
        return None
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))]
