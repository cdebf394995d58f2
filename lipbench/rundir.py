"""The run directory: every stage reads and writes here and nowhere else.

    runs/<name>/
      config.yaml                  the benchmark config as run
      manifest.yaml                the clips it ran on (with their hashes)
      models/<model>.json          load time, warm-up (cold) timing, device
      units/<model>/<clip>.json    one generation: timing row, or the error
      videos/<model>/<clip>.mkv    the generated video (driving audio muxed in)
      metrics/<model>/<clip>.json  one evaluation: metric values for the clip
      features/<model>/<clip>/<metric>.npz  per-clip features of set-level metrics
      per_clip.jsonl, results.json, report.md, pareto.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from lipbench.config import BenchmarkConfig, config_from_dict
from lipbench.data.manifest import Manifest, load_manifest, save_manifest
from lipbench.storage import atomic_path, read_json, write_text


class RunDir:
    def __init__(self, root):
        self.root = Path(root)

    def unit(self, model: str, clip: str) -> Path:
        return self.root / "units" / model / f"{clip}.json"

    def video(self, model: str, clip: str, fmt: str = "mkv") -> Path:
        return self.root / "videos" / model / f"{clip}.{fmt}"

    def metrics(self, model: str, clip: str) -> Path:
        return self.root / "metrics" / model / f"{clip}.json"

    def features(self, model: str, clip: str, spec: str) -> Path:
        return self.root / "features" / model / clip / f"{spec}.npz"

    def save_features(self, model: str, clip: str, spec: str, arrays: dict) -> None:
        """Per-clip features of a set-level metric (FID pooled, FVD), pooled at report time."""
        with atomic_path(self.features(model, clip, spec)) as tmp:
            np.savez(tmp, **arrays)

    def load_features(self, model: str, clip: str, spec: str) -> dict | None:
        path = self.features(model, clip, spec)
        if not path.exists():
            return None
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    def read_unit(self, model: str, clip: str) -> dict | None:
        path = self.unit(model, clip)
        return read_json(path) if path.exists() else None

    def read_metrics(self, model: str, clip: str) -> dict | None:
        path = self.metrics(model, clip)
        return read_json(path) if path.exists() else None

    def save_inputs(self, config: BenchmarkConfig, manifest: Manifest) -> None:
        write_text(self.root / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        save_manifest(manifest, self.root / "manifest.yaml")

    def load_config(self) -> BenchmarkConfig:
        path = self.root / "config.yaml"
        if not path.exists():
            raise FileNotFoundError(f"{self.root}: not a run directory (no config.yaml)")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data.pop("source", None)
        data["models"] = [{"name": m["label"], "model": m["model"], "args": m["args"]} for m in data["models"]]
        return config_from_dict(data, str(path))

    def load_manifest(self) -> Manifest:
        return load_manifest(self.root / "manifest.yaml")
