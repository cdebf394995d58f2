"""How values measured under a protocol are named: 'sync_c@latentsync', 'ttff_s@live'.

Every result, table and comparison names values this way; this module is the one
place that builds and parses those names. It imports nothing heavy, so the runner
(the GPU path) can use it without the metric stack."""

from __future__ import annotations


# Which speech drives each clip (config key `audio`): "own", the clip's own (reconstruction:
# Table 1, a ground truth exists), or "cross", another clip's (dubbing). Values measured under
# cross audio carry CROSS_AUDIO at the end of their key ('sync_c@latentsync+cross_audio'), so a
# dubbing value never stands where a reconstruction value of the same metric would.
AUDIO_CHOICES = ("own", "cross")
CROSS_AUDIO = "+cross_audio"


def metric_key(name: str, protocol: str, audio: str = "own") -> str:
    """('sync_c', 'latentsync') -> 'sync_c@latentsync'; with audio 'cross',
    'sync_c@latentsync+cross_audio'."""
    if audio not in AUDIO_CHOICES:
        raise ValueError(f"audio must be one of {', '.join(AUDIO_CHOICES)}, got {audio!r}")
    return f"{name}@{protocol}{CROSS_AUDIO if audio == 'cross' else ''}"


def split_audio(key: str) -> tuple[str, str]:
    """'sync_c@latentsync+cross_audio' -> ('sync_c@latentsync', 'cross');
    'sync_c@latentsync' -> ('sync_c@latentsync', 'own'). Works on specs too."""
    if key.endswith(CROSS_AUDIO):
        return key[: -len(CROSS_AUDIO)], "cross"
    return key, "own"


def with_audio(key: str, audio: str) -> str:
    """A key or spec as measured under `audio`, whichever audio it named before."""
    name, protocol = split_key(split_audio(key)[0])
    return metric_key(name, protocol, audio)


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
