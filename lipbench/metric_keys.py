"""How values measured under a protocol are named: 'sync_c@latentsync', 'ttff_s@live'.

Every result, table and comparison names values this way; this module is the one
place that builds and parses those names. It imports nothing heavy, so the runner
(the GPU path) can use it without the metric stack."""

from __future__ import annotations


def metric_key(name: str, protocol: str) -> str:
    """('sync_c', 'latentsync') -> 'sync_c@latentsync'."""
    return f"{name}@{protocol}"


def split_key(key: str) -> tuple[str, str | None]:
    """'syncnet@latentsync' -> ('syncnet', 'latentsync'); 'psnr' -> ('psnr', None)."""
    name, _, protocol = key.partition("@")
    return name, protocol or None


def protocols_by_family(specs) -> dict[str, set[str]]:
    """{'syncnet': {'latentsync', ...}, ...} from metric specs 'family@protocol'."""
    out: dict[str, set[str]] = {}
    for spec in specs:
        family, protocol = split_key(spec)
        out.setdefault(family, set()).add(protocol)
    return out
