"""Benchmark configs (YAML): which clips, which models, which metrics.

A config is named by a path or by the name of one shipped in lipbench/configs/
(`demo`). Command-line flags override the file; the file overrides the defaults here.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path


from lipbench import defaults
from lipbench.data.manifest import Manifest, load_manifest
from lipbench.errors import LipbenchError, UnknownNameError
from lipbench.metric_keys import AUDIO_CHOICES
from lipbench.storage import parse_yaml
from lipbench.models.worker_side import TIMING_PROTOCOLS

VIDEO_FORMATS = ("mkv", "mp4")
DTYPES = ("auto", "fp32", "fp16", "bf16")
MODEL_ENTRY_KEYS = ("name", "model", "args")


class ConfigError(LipbenchError, ValueError):
    """A benchmark config that cannot be run; the message names the file and the key."""


@dataclass
class ModelSpec:
    label: str  # unique name of this entry in the run (a model may appear with several args)
    model: str  # registry name or 'module:Class'
    args: dict = field(default_factory=dict)


@dataclass
class BenchmarkConfig:
    name: str
    data: dict  # {"manifest": path} or {"synthetic": {recipe fields}}
    models: list[ModelSpec]
    metrics: list[str] = field(default_factory=lambda: ["weight_free"])
    device: str = "cpu"
    weights_dir: str | None = None  # folder with weight files (else $LIPBENCH_WEIGHTS, the user cache)
    dtype: str = "auto"  # run-wide dtype for adapters that offer one (LipSyncModel.configure)
    # Timing protocols each unit is timed under (lipbench.timing): "offline" (all audio known
    # when stream() starts: the paper's; its stream makes the video) and "live" (speech
    # arriving at its real pace, `live_lead_s` ahead); a player `player_delay_s` behind
    # the speech counts the frames that come too late (stalls)
    timing_protocols: list = field(default_factory=lambda: ["offline"])
    live_lead_s: float = 0.0
    player_delay_s: float = 0.5
    warmup_clips: int = 1  # clips run once per model before timing, their results discarded
    video_format: str = "mkv"  # lossless, so metrics see exactly what the model produced
    bootstrap_resamples: int = defaults.RESAMPLES  # for CIs of per-clip means and medians
    set_resamples: int = defaults.RESAMPLES  # for CIs of set-level metrics, each resample recomputes the metric
    pareto_y: str | None = None  # quality axis of the Pareto plot against fps (None: the first directed metric)
    # Seconds one unit (a model on one clip) may run before it is stopped and recorded as
    # timed out, so one hanging model cannot stall a sweep; None: no limit.
    unit_timeout_s: float | None = 3600.0
    # How generated videos are lined up with their references (lipbench.metrics.base.Alignment)
    min_coverage: float = 0.9  # share of the reference's frames a generated video must have
    resample_fps: bool = False  # resample another or a variable frame rate to the reference's (else: fail)
    crop: str = "auto"  # 'none': videos are already face crops; face-crop metrics use their precropped protocols
    # Which speech drives each clip: "own" (reconstruction, the paper's Table 1) or "cross",
    # another clip's from the split's shipped pairing (dubbing; lipbench.data.pairing). Every
    # metric key then ends in metric_keys.CROSS_AUDIO.
    audio: str = "own"
    source: str = ""  # where the config came from

    def to_dict(self) -> dict:
        return asdict(self)

    def metric_specs(self) -> list[str]:
        """The 'family@protocol' specs this config computes (after `crop`)."""
        from lipbench import metrics
        from lipbench.metric_keys import with_audio

        return list(dict.fromkeys(with_audio(s, self.audio) for s in metrics.resolve_specs(self.metrics, self.crop)))

    def alignment(self):
        from lipbench.metrics.base import Alignment

        return Alignment(self.min_coverage, self.resample_fps)


def check_device(value, where: str) -> str:
    """`value` when it names a device lipbench runs on (cpu, cuda, cuda:N); else a
    ConfigError that starts with `where` (a config file and key, or a flag)."""
    if not isinstance(value, str) or not re.fullmatch(r"cpu|cuda(:[0-9]+)?", value):
        raise ConfigError(f"{where}: {value!r} is not a device; use cpu, cuda or cuda:N")
    return value


def check_dtype(value, where: str) -> str:
    if value not in DTYPES:
        raise ConfigError(f"{where}: {value!r} is not a dtype; use {', '.join(DTYPES)}")
    return value


def _did_you_mean(name, choices) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""


def _check_int(value, where: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{where}: expected {what}, got {value!r}")


def _check_positive_number(value, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{where}: expected a number > 0, got {value!r}")


def _check_model_args(cls, model: str, args: dict, where: str) -> None:
    """Args the adapter's __init__ does not take, or required ones missing, found before any
    model is loaded (else they surface as a TypeError in every unit of the sweep)."""
    from lipbench.models import MODELS
    from lipbench.models.base import LipSyncModel

    target = MODELS.entries.get(model, model)
    what = model if target == model else f"{model} ({target})"
    if cls.__init__ is LipSyncModel.__init__:  # its **kwargs only exists to reject arguments
        params = {}
    else:
        params = dict(list(inspect.signature(cls.__init__).parameters.items())[1:])  # less self
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for arg in args:
        if arg not in named and not takes_any:
            takes = f"it takes {', '.join(named)}" if named else "it takes no arguments"
            raise ConfigError(f"{where}: {arg!r} is not an argument of {what}; {takes}.{_did_you_mean(arg, named)}")
    missing = [n for n in named if params[n].default is inspect.Parameter.empty and n not in args]
    if missing:
        raise ConfigError(f"{where}: {what} needs {', '.join(missing)}")


def _parse_models(entries, where, check_models: bool) -> list[ModelSpec]:
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: models: expected a list of model names or mappings, got {entries!r}")
    specs = []
    for i, entry in enumerate(entries):
        key = f"{where}: models[{i}]"
        if isinstance(entry, str):
            entry, name_key = {"model": entry}, key
        elif isinstance(entry, dict) and ("model" in entry or "name" in entry):
            name_key = f"{key}.model" if "model" in entry else f"{key}.name"  # a lone name doubles as the model
        else:
            raise ConfigError(f"{key}: a model entry is a name or a mapping with 'model' (and 'name', 'args')")
        unknown = [k for k in entry if k not in MODEL_ENTRY_KEYS]
        if unknown:
            raise ConfigError(
                f"{key}: unknown key {unknown[0]!r}; a model entry takes {', '.join(MODEL_ENTRY_KEYS)}."
                f"{_did_you_mean(unknown[0], MODEL_ENTRY_KEYS)}"
            )
        args = entry.get("args") or {}
        if not isinstance(args, dict):
            raise ConfigError(f"{key}.args: expected a mapping of argument names to values, got {args!r}")
        model = str(entry.get("model", entry.get("name")))
        if check_models:
            from lipbench.models import MODELS

            try:
                cls = MODELS.resolve(model)
            except UnknownNameError as exc:
                raise ConfigError(f"{name_key}: {exc}") from exc
            _check_model_args(cls, model, args, f"{key}.args")
        specs.append(ModelSpec(label=str(entry.get("name", model)), model=model, args=dict(args)))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: models: names must be unique, got {labels}")
    return specs


def _check_metrics(items, where: str) -> None:
    from lipbench import metrics

    if not isinstance(items, list) or not items:
        hint = f"; write [{items}]" if isinstance(items, str) else ""
        raise ConfigError(f"{where}: metrics: expected a list of metric names, got {items!r}{hint}")
    for i, item in enumerate(items):
        try:
            metrics.resolve_specs([str(item)])
        except UnknownNameError as exc:  # unknown name or protocol, with the registry's "did you mean"
            raise ConfigError(f"{where}: metrics[{i}]: {exc}") from exc


def _check_data(spec, where: str) -> None:
    if not isinstance(spec, dict) or len({"manifest", "synthetic"} & set(spec)) != 1 or len(spec) != 1:
        raise ConfigError(f"{where}: data: needs exactly one of 'manifest: PATH' or 'synthetic: {{...}}', got {spec!r}")
    if "manifest" in spec:
        if not isinstance(spec["manifest"], str) or not spec["manifest"]:
            raise ConfigError(f"{where}: data.manifest: expected a path, got {spec['manifest']!r}")
        return
    from dataclasses import fields

    from lipbench.data.synthetic import SynthRecipe

    recipe = spec["synthetic"]
    if not isinstance(recipe, dict):
        raise ConfigError(f"{where}: data.synthetic: expected a mapping of recipe fields, got {recipe!r}")
    known = [f.name for f in fields(SynthRecipe)]
    for key, value in recipe.items():
        if key not in known:
            raise ConfigError(
                f"{where}: data.synthetic.{key}: unknown; the recipe takes {', '.join(known)}."
                f"{_did_you_mean(key, known)}"
            )
        if key == "fps":
            _check_positive_number(value, f"{where}: data.synthetic.fps")
        else:
            _check_int(value, f"{where}: data.synthetic.{key}", minimum=0 if key == "seed" else 1)


def _check_settings(values: dict, where: str) -> None:
    """The scalar settings, each against what the runner and the report can use."""
    if "device" in values:
        check_device(values["device"], f"{where}: device")
    if "dtype" in values:
        check_dtype(values["dtype"], f"{where}: dtype")
    if "timing_protocols" in values:
        protocols = values["timing_protocols"]
        if (
            not isinstance(protocols, list)
            or "offline" not in protocols
            or any(p not in TIMING_PROTOCOLS for p in protocols)
            or len(set(protocols)) != len(protocols)
        ):
            raise ConfigError(
                f"{where}: timing_protocols: expected a list of {', '.join(TIMING_PROTOCOLS)} holding "
                f"offline (its stream makes the videos), got {protocols!r}"
            )
    for key in ("live_lead_s", "player_delay_s"):
        if key in values:
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{where}: {key}: expected seconds >= 0, got {value!r}")
            values[key] = float(value)
    if "video_format" in values and values["video_format"] not in VIDEO_FORMATS:
        raise ConfigError(f"{where}: video_format: {values['video_format']!r} is not one of {', '.join(VIDEO_FORMATS)}")
    if "warmup_clips" in values:
        _check_int(values["warmup_clips"], f"{where}: warmup_clips", minimum=0)
    for key in ("bootstrap_resamples", "set_resamples"):
        if key in values:
            _check_int(values[key], f"{where}: {key}", minimum=1)
    if values.get("unit_timeout_s") is not None:
        _check_positive_number(values["unit_timeout_s"], f"{where}: unit_timeout_s")
        values["unit_timeout_s"] = float(values["unit_timeout_s"])
    if "min_coverage" in values:
        value = values["min_coverage"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ConfigError(f"{where}: min_coverage: expected a share in (0, 1], got {value!r}")
    if "resample_fps" in values and not isinstance(values["resample_fps"], bool):
        raise ConfigError(f"{where}: resample_fps: expected true or false, got {values['resample_fps']!r}")
    if "crop" in values and values["crop"] not in ("auto", "none"):
        raise ConfigError(f"{where}: crop: {values['crop']!r} is not one of auto, none")
    if "audio" in values and values["audio"] not in AUDIO_CHOICES:
        raise ConfigError(
            f"{where}: audio: {values['audio']!r} is not one of {', '.join(AUDIO_CHOICES)} "
            "(own: each clip's own speech, reconstruction; cross: another clip's, dubbing)"
        )


def _check_cross_audio(config: BenchmarkConfig, where: str) -> None:
    """Under cross audio, refuse the metrics that compare frames with the reference's."""
    from lipbench import metrics

    problem = metrics.cross_audio_problem(config.metric_specs())
    if problem:
        raise ConfigError(f"{where}: metrics: {problem} (audio: cross)")


def config_from_dict(data: dict, where: str = "<config>", check_models: bool = True) -> BenchmarkConfig:
    """A validated config: every mistake is a ConfigError naming `where` and the key, found
    before any clip is decoded or model loaded. `check_models=False` skips importing the
    model adapters (a saved config re-read for a report need not have their code)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a benchmark config is a YAML mapping")
    known = [f for f in BenchmarkConfig.__dataclass_fields__ if f != "source"]
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ConfigError(
            f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}.{_did_you_mean(unknown[0], known)}"
        )
    _check_data(data.get("data"), where)
    values = {k: v for k, v in data.items() if k not in ("models", "data")}
    _check_settings(values, where)
    if "metrics" in values:
        _check_metrics(values["metrics"], where)
    values.setdefault("name", Path(where).stem)
    models = _parse_models(data.get("models"), where, check_models)
    config = BenchmarkConfig(data=data["data"], models=models, source=where, **values)
    if config.audio == "cross":
        _check_cross_audio(config, where)
    return config


def shipped_configs() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("lipbench.configs").iterdir() if p.name.endswith(".yaml"))


def load_config(name_or_path) -> BenchmarkConfig:
    path = Path(name_or_path)
    if path.is_file():
        text, where = path.read_text(encoding="utf-8"), str(path)
    elif str(name_or_path) in shipped_configs():
        text = resources.files("lipbench.configs").joinpath(f"{name_or_path}.yaml").read_text(encoding="utf-8")
        where = f"lipbench/configs/{name_or_path}.yaml"
    else:
        raise ConfigError(
            f"{name_or_path}: no such config file, and not a shipped config ({', '.join(shipped_configs())})"
        )
    data = parse_yaml(text, where, ConfigError)
    config = config_from_dict(data, where)
    manifest = config.data.get("manifest")
    if manifest and path.is_file() and not Path(manifest).is_absolute():
        # A manifest path in a config file is relative to the config's folder.
        candidate = path.parent / manifest
        config.data["manifest"] = str(candidate if candidate.exists() else manifest)
    return config


def cache_dir() -> Path:
    return Path(os.environ.get("LIPBENCH_CACHE") or Path.home() / ".cache" / "lipbench")


def resolve_data(config: BenchmarkConfig, progress: bool = True) -> Manifest:
    """The config's clips: its manifest, or its synthetic set (made once, then cached);
    under `audio: cross` each driven by its pair's speech (lipbench.data.pairing)."""
    if "manifest" in config.data:
        manifest = load_manifest(config.data["manifest"])
    else:
        from lipbench.data.synthetic import SynthRecipe, cached_synthetic

        try:
            recipe = SynthRecipe(**config.data["synthetic"])
        except TypeError as exc:
            raise ConfigError(f"{config.source}: data.synthetic: {exc}") from exc
        manifest = cached_synthetic(recipe, cache_dir(), progress=progress)
    if config.audio == "cross":
        from lipbench.data.pairing import cross_audio, pairing_for

        manifest = cross_audio(manifest, pairing_for(manifest))
    return manifest
