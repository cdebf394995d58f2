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


def split_name(spec: str) -> tuple[str, str | None]:
    """'syncnet@latentsync' -> ('syncnet', 'latentsync'); 'psnr' -> ('psnr', None)."""
    name, _, protocol = spec.partition("@")
    return name, protocol or None


def create(spec: str, device: str = "cpu", weights_dir=None) -> Metric:
    """A metric from 'name' (its default protocol) or 'name@protocol'."""
    name, protocol = split_name(spec)
    return METRICS.resolve(name)(protocol=protocol, device=device, weights_dir=weights_dir)


def outputs(specs) -> dict[str, Output]:
    """Every key the given metric specs report, with its direction and unit."""
    out = {}
    for spec in specs:
        name, protocol = split_name(spec)
        out.update({o.key: o for o in METRICS.resolve(name).outputs_for(protocol)})
    return out
