"""The evaluate phase: metrics for every generated video, written per (model, clip).

Clip by clip: the reference is decoded and analysed once and shared by every model's
evaluation of that clip. A metric that fails records its error in the row and the
others still run; a finished row is not recomputed on a rerun.
"""

from __future__ import annotations

import traceback

from tqdm import tqdm

from lipbench import io, metrics
from lipbench.config import BenchmarkConfig
from lipbench.data.manifest import Manifest
from lipbench.metrics.base import ClipContext, Video
from lipbench.rundir import RunDir
from lipbench.storage import write_json


def evaluate(config: BenchmarkConfig, manifest: Manifest, run: RunDir, progress: bool = True) -> dict:
    """Score every generated video that has no metrics row yet; returns counts."""
    metric_objects = [metrics.create(name, device=config.device) for name in config.metrics]
    counts = {"done": 0, "skipped": 0, "missing": 0}
    bar = tqdm(total=len(config.models) * len(manifest.clips), desc="evaluating", unit="video", disable=not progress)
    for clip in manifest.clips:
        pending = []
        for spec in config.models:
            unit = run.read_unit(spec.label, clip.id)
            if not unit or unit.get("status") != "ok":
                counts["missing"] += 1
            elif run.metrics(spec.label, clip.id).exists():
                counts["skipped"] += 1
            else:
                pending.append((spec.label, run.root / unit["video"]))
        bar.update(len(config.models) - len(pending))
        if not pending:
            continue
        reference = Video(clip.frames(), float(clip.fps), clip.driving_audio(), io.DEFAULT_AUDIO_RATE, clip.video)
        for label, video in pending:
            bar.set_postfix_str(f"{label}/{clip.id}")
            write_json(run.metrics(label, clip.id), score_video(metric_objects, clip.id, reference, video, label))
            counts["done"] += 1
            bar.update(1)
        clip.release()
    bar.close()
    return counts


def score_video(metric_objects, clip_id: str, reference: Video, video, model: str) -> dict:
    row = {"model": model, "clip": clip_id, "values": {}, "errors": {}}
    try:
        generated = Video.from_file(video)
    except io.MediaError as exc:
        row["errors"]["decode"] = str(exc)
        return row
    ctx = ClipContext(clip_id, generated, reference)
    for metric in metric_objects:
        try:
            row["values"].update(metric.compute(ctx))
        except Exception as exc:  # one broken metric must not cost the others
            row["errors"][metric.name] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    row["n_frames_compared"] = ctx.n
    row["notes"] = ctx.notes
    return row
