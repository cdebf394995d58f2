"""Metric registry: name -> class, and what each reported key means."""

from __future__ import annotations

from lipbench.errors import UnknownProtocolError, UsageError
from lipbench.metric_keys import metric_key, split_audio, split_key
from lipbench.metrics.base import Metric, Output
from lipbench.registry import Registry

METRICS = Registry(
    "metric",
    Metric,
    {
        "psnr": "lipbench.metrics.image:PSNR",
        "ssim": "lipbench.metrics.image:SSIM",
        "lmd": "lipbench.metrics.landmarks:LMD",
        "avsync": "lipbench.metrics.avsync:AVSync",
        "csim": "lipbench.metrics.csim:CSIM",
        "fid": "lipbench.metrics.fid:FID",
        "fvd": "lipbench.metrics.fvd:FVD",
        "syncnet": "lipbench.metrics.syncnet.metric:SyncNetMetric",
        "lpips": "lipbench.metrics.lpips_metric:LPIPS",
        "drift": "lipbench.metrics.drift:Drift",
        "noref": "lipbench.metrics.noref:NoReference",
        "subject_consistency": "lipbench.metrics.vbench.subject:SubjectConsistency",
        "background_consistency": "lipbench.metrics.vbench.background:BackgroundConsistency",
        "motion_smoothness": "lipbench.metrics.vbench.motion:MotionSmoothness",
        "imaging_quality": "lipbench.metrics.vbench.imaging:ImagingQuality",
    },
    allow_paths=False,
)


def create(spec: str, device: str = "cpu", weights_dir=None) -> Metric:
    """A metric from 'name' (its default protocol) or 'name@protocol', under cross audio
    when the spec ends in metric_keys.CROSS_AUDIO."""
    spec, audio = split_audio(spec)
    name, protocol = split_key(spec)
    metric = METRICS.resolve(name)(protocol=protocol, device=device, weights_dir=weights_dir)
    metric.audio = audio
    return metric


def cross_audio_problem(specs) -> str | None:
    """Why `specs` cannot run under cross audio (the metrics that compare frames with the
    reference's, which show the clip's own speech), or None when all can."""
    refused = [s for s in specs if not create(s).valid_under_cross_audio()]
    if not refused:
        return None
    valid = [n for n in METRICS.names() if METRICS.resolve(n).valid_under_cross_audio()]
    return (
        f"{', '.join(refused)} compare each frame with the reference's frame, which shows the clip's own "
        "speech; under cross audio another clip's speech drives the mouth, so there is no ground truth to "
        f"compare with. These read the generated video alone or compare appearance only: {', '.join(valid)}"
    )


def outputs(specs) -> dict[str, Output]:
    """Every key the given metric specs report, with its direction and unit."""
    out = {}
    for spec in specs:
        spec, audio = split_audio(spec)
        name, protocol = split_key(spec)
        out.update({o.key: o for o in METRICS.resolve(name).outputs_for(protocol, audio)})
    return out


# Named metric sets. `lipforcing` is exactly what the Lip Forcing paper reports (Table 1).
SUITES = {
    "lipforcing": ["syncnet@latentsync", "csim@arcface112", "fid@per_video", "fvd@latentsync", "ssim@face224"],
    "weight_free": ["psnr", "ssim@full", "lmd", "avsync"],
}


def _value_index() -> dict[str, str]:
    """Value name -> metric family ('sync_c' -> 'syncnet')."""
    return {v.name: name for name in METRICS.names() for v in METRICS.resolve(name).values}


CROP_CHOICES = ("auto", "none")


def resolve_specs(items, crop: str = "auto") -> list[str]:
    """Metric families 'family@protocol' for a list of metric keys ('sync_c@precropped'),
    value names ('sync_c': its family's default protocol), family names ('syncnet') or
    suite names ('lipforcing'), in order and without repeats. With `crop` 'none' (the
    inputs are already face crops) every face-crop protocol becomes its precropped
    variant (`fid@per_video` -> `fid@per_video_precropped`, `syncnet@latentsync` ->
    `syncnet@precropped`); the others are kept."""
    if crop not in CROP_CHOICES:
        raise UsageError(f"crop must be one of {', '.join(CROP_CHOICES)}, got {crop!r}")
    index, out = None, []
    for item in items:
        if item in SUITES:
            specs = resolve_specs(SUITES[item], crop)
        else:
            base, audio = split_audio(item)  # a spec already under cross audio (a run's saved config) keeps it
            name, protocol = split_key(base)
            value = None
            if name not in METRICS.entries:
                index = index or _value_index()
                if name not in index:
                    METRICS.resolve(name)  # raises the registry's "did you mean" error
                value, name = name, index[name]
            cls = METRICS.resolve(name)
            if protocol and protocol not in cls.protocols:
                raise UnknownProtocolError(
                    f"metric {item!r}: {name} has no protocol {protocol!r}; protocols: {', '.join(cls.protocols)}"
                )
            # a value name alone: the first protocol that reports it (a family's protocols may report different values)
            protocol = protocol or next(
                p
                for p in cls.protocols
                if value is None or any(o.key.startswith(f"{value}@") for o in cls.outputs_for(p))
            )
            if crop == "none":
                protocol = cls.precropped_variants.get(protocol, protocol)
            specs = [metric_key(name, protocol, audio)]
        out.extend(s for s in specs if s not in out)
    return out
