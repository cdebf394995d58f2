"""Benchmark configs (YAML): which clips, which models, which metrics.

A config is named by a path or by the name of one shipped in lipbench/configs/
(`demo`). Command-line flags override the file; the file overrides the defaults here.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from lipbench.data.manifest import Manifest, load_manifest


class ConfigError(ValueError):
    pass


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
    warmup_clips: int = 1  # clips run once per model before timing, their results discarded
    video_format: str = "mkv"  # lossless, so metrics see exactly what the model produced
    bootstrap_resamples: int = 2000  # for CIs of per-clip means and medians
    set_resamples: int = 2000  # for CIs of set-level metrics, each resample recomputes the metric
    pareto_y: str | None = None  # quality axis of the Pareto plot against fps (None: the first directed metric)
    source: str = ""  # where the config came from

    def to_dict(self) -> dict:
        return asdict(self)


def _parse_models(entries, where) -> list[ModelSpec]:
    specs = []
    for i, entry in enumerate(entries or []):
        if isinstance(entry, str):
            specs.append(ModelSpec(label=entry, model=entry))
        elif isinstance(entry, dict) and ("model" in entry or "name" in entry):
            model = entry.get("model", entry.get("name"))
            specs.append(ModelSpec(label=str(entry.get("name", model)), model=str(model),
                                   args=dict(entry.get("args") or {})))
        else:
            raise ConfigError(f"{where}: models[{i}] must be a name or a mapping with 'model'")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: model names must be unique, got {labels}")
    if not specs:
        raise ConfigError(f"{where}: no models listed")
    return specs


def config_from_dict(data: dict, where: str = "<config>") -> BenchmarkConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a benchmark config is a YAML mapping")
    known = {f for f in BenchmarkConfig.__dataclass_fields__} - {"source"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    data_spec = data.get("data")
    if not isinstance(data_spec, dict) or not ({"manifest", "synthetic"} & set(data_spec)):
        raise ConfigError(f"{where}: 'data' needs 'manifest: PATH' or 'synthetic: {{...}}'")
    values = {k: v for k, v in data.items() if k not in ("models", "data")}
    values.setdefault("name", Path(where).stem)
    return BenchmarkConfig(data=data_spec, models=_parse_models(data.get("models"), where), source=where, **values)


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
        raise ConfigError(f"{name_or_path}: no such config file, and not a shipped config "
                          f"({', '.join(shipped_configs())})")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc
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
    """The config's clips: its manifest, or its synthetic set (made once, then cached)."""
    if "manifest" in config.data:
        return load_manifest(config.data["manifest"])
    from lipbench.data.synthetic import SynthRecipe, cached_synthetic

    try:
        recipe = SynthRecipe(**config.data["synthetic"])
    except TypeError as exc:
        raise ConfigError(f"{config.source}: data.synthetic: {exc}") from exc
    return cached_synthetic(recipe, cache_dir(), progress=progress)
