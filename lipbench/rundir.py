"""The run directory: every stage reads and writes here and nowhere else.

    runs/<name>/
      config.yaml                  the benchmark config: every model and metric the directory holds
      manifest.yaml                every clip it holds, with the hashes of the files as run
      run.lock                     held by the one process writing here (who, since when)
      models/<model>.json          load time, warm-up (cold) timing, device
      units/<model>/<clip>.json    one generation: fingerprint and timing, or the error
      videos/<model>/<clip>.mkv    the generated video (driving audio muxed in)
      metrics/<model>/<clip>.json  metric values for the clip, each with its fingerprint
      features/<model>/<clip>/<metric>.npz  per-clip features of set-level metrics
      damaged/...                  records that could not be read, set aside (then redone)
      per_clip.jsonl, results.json, report.md, pareto.png

A narrowed invocation (`--models`, `--clips`, `--limit`) runs less, but the saved config
and manifest keep covering everything the directory holds, so the report does too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from lipbench.config import BenchmarkConfig, config_from_dict
from lipbench.data.manifest import Manifest, load_manifest, save_manifest
from lipbench.errors import LipbenchError
from lipbench.metric_keys import protocols_by_family, split_key
from lipbench.storage import atomic_path, file_sha256, parse_yaml, read_json, remove_partials, resolved, write_text


class RunLocked(LipbenchError):
    pass


class RunMismatch(LipbenchError):
    """A config whose clips or metric protocols differ from what the run directory holds."""


def warn(message: str) -> None:
    print(f"lipbench: warning: {message}", file=sys.stderr)


class RunDir:
    def __init__(self, root, read_only: bool = False):
        """`read_only`: a damaged record is reported and treated as missing, never moved
        (for readers of someone else's run, such as `compare`)."""
        self.root = Path(root)
        self.read_only = read_only

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

    def drop_features(self, model: str, clip: str, spec: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.features(model, clip, spec).unlink()

    def load_features(self, model: str, clip: str, spec: str) -> dict | None:
        path = self.features(model, clip, spec)
        if not path.exists():
            return None
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    def read_record(self, path: Path) -> dict | None:
        """A JSON record, or None when there is none. A record that cannot be read (a
        truncated write by another tool, a disk error, an edit by hand) is named on
        stderr and set aside under damaged/, so the work it recorded is redone."""
        if not path.exists():
            return None
        try:
            record = read_json(path)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            return record
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            if self.read_only:
                warn(f"{path}: damaged record ({exc}); treated as missing")
                return None
            stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
            target = self.root / "damaged" / f"{path.relative_to(self.root)}.{stamp}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            warn(
                f"{path}: damaged record ({exc}); set aside as {target.relative_to(self.root)}, its work will be redone"
            )
            return None

    def read_unit(self, model: str, clip: str) -> dict | None:
        return self.read_record(self.unit(model, clip))

    def read_metrics(self, model: str, clip: str) -> dict | None:
        return self.read_record(self.metrics(model, clip))

    # ------------------------------------------------------------------ inputs

    def load_config(self) -> BenchmarkConfig:
        path = self.root / "config.yaml"
        if not path.exists():
            raise LipbenchError(f"{self.root}: not a run directory (no config.yaml)")
        data = parse_yaml(path.read_text(encoding="utf-8"), path)
        data.pop("source", None)
        data["models"] = [{"name": m["label"], "model": m["model"], "args": m["args"]} for m in data["models"]]
        # the models are not imported: a report or comparison needs no plug-in's code
        return config_from_dict(data, str(path), check_models=False)

    def load_manifest(self) -> Manifest:
        return load_manifest(self.root / "manifest.yaml")

    def has_inputs(self) -> bool:
        return (self.root / "config.yaml").exists() and (self.root / "manifest.yaml").exists()

    def save_inputs(self, config: BenchmarkConfig, manifest: Manifest, force: bool = False) -> None:
        """Record what this directory holds: the given config and clips merged into what it
        held before. A model listed again replaces its earlier entry (its units are then
        regenerated by fingerprint); models, metrics and clips not listed now are kept.
        Clips or metric protocols other than the directory's are an error unless `force`."""
        if self.has_inputs():
            old_config, old_manifest = self.load_config(), self.load_manifest()
            if old_config.audio != config.audio:  # its videos were driven by the other speech: even --force cannot mix
                raise RunMismatch(
                    f"{self.root} holds a run under audio: {old_config.audio}, this config asks for audio: "
                    f"{config.audio}; one directory holds one audio protocol (use another --out)"
                )
            problems = input_differences(old_config, old_manifest, config, manifest)
            if problems and not force:
                raise RunMismatch(
                    f"{self.root} holds a run with other inputs (use --force to add to it anyway, "
                    "or another --out):\n  " + "\n  ".join(problems)
                )
            config, manifest = merged_inputs(old_config, old_manifest, config, manifest)
        write_text(self.root / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        hashed = Manifest(
            manifest.name,
            [replace(c, sha256=clip_hash(c) or c.sha256) for c in manifest.clips],
            description=manifest.description,
            extra=manifest.extra,
        )
        save_manifest(hashed, self.root / "manifest.yaml")

    # ------------------------------------------------------------------ one writer

    @contextlib.contextmanager
    def lock(self, wait: bool = False):
        """Hold the directory's lock while writing. A second process is told who holds it
        and stops (RunLocked), or with `wait` waits for it. The lock is the kernel's
        (flock), so a killed holder releases it; its interrupted atomic writes are then
        removed here."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "run.lock"
        with open(path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = path.read_text(encoding="utf-8").strip() or "unknown process"
                if not wait:
                    raise RunLocked(f"{self.root}: in use by {holder}; pass --wait to wait for it") from None
                print(f"waiting for {self.root}: in use by {holder}", file=sys.stderr)
                fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            handle.truncate()
            handle.write(
                f"pid {os.getpid()} on {socket.gethostname()} (`lipbench {' '.join(sys.argv[1:])}`, "
                f"since {dt.datetime.now().isoformat(timespec='seconds')})\n"
            )
            handle.flush()
            for leftover in remove_partials(self.root):
                print(f"removed {leftover.relative_to(self.root)}: an interrupted write", file=sys.stderr)
            yield


def clip_hash(clip) -> str | None:
    """sha256 of a clip's files as they are on disk now (video, and its separate audio
    when it has one), or None when a file is missing."""
    try:
        digest = file_sha256(clip.video)
        return digest if clip.audio is None else f"{digest}+{file_sha256(clip.audio)}"
    except OSError:
        return None


def input_differences(old_config, old_manifest, config, manifest) -> list[str]:
    """What makes a config another run than the one a directory holds: clips it does not
    hold (or from other files), and metric families asked under other protocols."""
    problems = []
    old_clips = {c.id: c for c in old_manifest.clips}
    new_ids = [c.id for c in manifest.clips if c.id not in old_clips]
    if new_ids:
        problems.append(
            f"clips {', '.join(new_ids[:5])}{' ...' if len(new_ids) > 5 else ''} are not in its "
            f"manifest ({old_manifest.name}, {len(old_clips)} clips)"
        )
    moved = [c.id for c in manifest.clips if c.id in old_clips and resolved(c.video) != resolved(old_clips[c.id].video)]
    if moved:
        problems.append(
            f"clips {', '.join(moved[:5])}{' ...' if len(moved) > 5 else ''} come from other files "
            f"(e.g. {manifest.clip(moved[0]).video}, was {old_clips[moved[0]].video})"
        )
    old = protocols_by_family(old_config.metric_specs())
    for spec in config.metric_specs():
        family, protocol = split_key(spec)
        if family in old and protocol not in old[family]:
            problems.append(f"metric {family} under protocol {protocol}; the run has {', '.join(sorted(old[family]))}")
    return problems


def merged_inputs(old_config, old_manifest, config, manifest):
    from lipbench import metrics

    models = {m.label: m for m in old_config.models}
    models.update({m.label: m for m in config.models})
    specs = metrics.resolve_specs(old_config.metric_specs() + config.metric_specs())
    clips = {c.id: c for c in old_manifest.clips}
    clips.update({c.id: c for c in manifest.clips})
    # the specs already carry each config's `crop` (precropped protocols): resolving them again is the identity
    merged_config = replace(config, models=list(models.values()), metrics=specs, crop="auto")
    merged_manifest = Manifest(
        manifest.name, list(clips.values()), description=manifest.description, extra=manifest.extra
    )
    return merged_config, merged_manifest


def format_reasons(kind: str, reasons: dict[tuple[str, str], int]) -> list[str]:
    """One line per (what, reason): `generate procedural: 8 units, args changed`."""
    return [
        f"{kind} {what}: {n} {'unit' if kind == 'generate' else 'value'}{'s' if n != 1 else ''}, {why}"
        for (what, why), n in reasons.items()
    ]


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)
