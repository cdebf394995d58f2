"""Metric registry: name -> class, and what each reported key means."""

from __future__ import annotations

from lipbench.metrics.base import Metric, Output
from lipbench.registry import Registry

METRICS = Registry("metric", Metric, {
    "psnr": "lipbench.metrics.image:PSNR",
    "ssim": "lipbench.metrics.image:SSIM",
    "lmd": "lipbench.metrics.landmarks:LMD",
    "avsync": "lipbench.metrics.avsync:AVSync",
}, allow_paths=False)


def create(name: str) -> Metric:
    return METRICS.resolve(name)()


def outputs(names) -> dict[str, Output]:
    """Every key the named metrics report, with its direction and unit."""
    return {o.key: o for name in names for o in METRICS.resolve(name).outputs}
