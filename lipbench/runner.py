"""The generate phase: every (model, clip) unit, timed, written as it completes.

A unit is done when its record says status "ok" and its video exists; a rerun skips
done units and retries failed ones, so a crash loses at most the unit in flight.
"""

from __future__ import annotations

import traceback

import numpy as np
from tqdm import tqdm

from lipbench import io, models
from lipbench.config import BenchmarkConfig
from lipbench.data.manifest import Manifest
from lipbench.rundir import RunDir
from lipbench.storage import atomic_path, write_json
from lipbench.timing import time_stream
from lipbench.types import Request


class OutputError(RuntimeError):
    pass


def check_output(frames: np.ndarray, request: Request) -> None:
    """A model's answer must have the reference's frame count, size and dtype."""
    expected = request.frames.shape
    if frames.dtype != np.uint8:
        raise OutputError(f"frames are {frames.dtype}, expected uint8")
    if frames.shape[1:] != expected[1:]:
        raise OutputError(f"frames are {frames.shape[1:]} (H, W, C), expected {expected[1:]}")
    if len(frames) != expected[0]:
        raise OutputError(f"{len(frames)} frames, expected {expected[0]}")


def unit_done(run: RunDir, model: str, clip: str, fmt: str) -> bool:
    record = run.read_unit(model, clip)
    return bool(record and record.get("status") == "ok" and run.video(model, clip, fmt).exists())


def generate(config: BenchmarkConfig, manifest: Manifest, run: RunDir, progress: bool = True) -> dict:
    """Run every pending unit; returns counts {"done", "skipped", "failed"}."""
    run.save_inputs(config, manifest)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    total = len(config.models) * len(manifest.clips)
    bar = tqdm(total=total, desc="generating", unit="video", disable=not progress)
    for spec in config.models:
        pending = [c for c in manifest.clips if not unit_done(run, spec.label, c.id, config.video_format)]
        counts["skipped"] += len(manifest.clips) - len(pending)
        bar.update(len(manifest.clips) - len(pending))
        if not pending:
            continue
        bar.set_postfix_str(spec.label)
        try:
            model = models.create(spec.model, **spec.args)
            model.load(config.device)
            for clip in manifest.clips[:config.warmup_clips]:
                model.generate(clip.request())  # warm-up: caches, kernels, lazy init; discarded
        except Exception as exc:  # a model that cannot start fails all its units, the sweep goes on
            for clip in pending:
                _record_failure(run, spec.label, clip.id, exc, stage="load")
            counts["failed"] += len(pending)
            bar.update(len(pending))
            continue
        for clip in pending:
            try:
                request = clip.request()
                frames, timing = time_stream(model.stream(request), config.device)
                check_output(frames, request)
                with atomic_path(run.video(spec.label, clip.id, config.video_format)) as tmp:
                    io.write_video(tmp, frames, request.fps, request.audio, request.audio_rate)
                write_json(run.unit(spec.label, clip.id), {
                    "model": spec.label, "clip": clip.id, "status": "ok",
                    "video": str(run.video(spec.label, clip.id, config.video_format).relative_to(run.root)),
                    "model_info": model.describe(), **timing})
                counts["done"] += 1
            except Exception as exc:
                _record_failure(run, spec.label, clip.id, exc, stage="generate")
                counts["failed"] += 1
            clip.release()  # one clip in memory at a time
            bar.update(1)
    bar.close()
    return counts


def _record_failure(run: RunDir, model: str, clip: str, exc: Exception, stage: str) -> None:
    write_json(run.unit(model, clip), {
        "model": model, "clip": clip, "status": "error", "stage": stage,
        "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
