"""The generate phase: every (model, clip) unit, timed, written as it completes.

A unit is done when its record says status "ok" and its video exists; a rerun skips
done units and retries failed ones, so a crash loses at most the unit in flight.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from lipbench import distributed, io, latency, models
from lipbench.config import BenchmarkConfig
from lipbench.data.manifest import Manifest
from lipbench.rundir import RunDir
from lipbench.storage import atomic_path, write_json
from lipbench.timing import time_stream
from lipbench.types import Request


class OutputError(RuntimeError):
    pass


def device_name(device: str) -> str:
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    import platform

    return platform.processor() or platform.machine()


TIMED_KEYS = ("ttff_s", "total_s", "fps", "rtf", "chunk_s", "chunk_p50_s", "chunk_p90_s", "chunk_p99_s",
              "chunk_max_s", "stages_s")


def check_output(frames: np.ndarray, request: Request, exact: bool = True) -> None:
    """A model's answer must be uint8 RGB frames; with `exact`, also the reference's frame
    count and size."""
    expected = request.frames.shape
    if frames.dtype != np.uint8:
        raise OutputError(f"frames are {frames.dtype}, expected uint8")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise OutputError(f"frames are shaped {frames.shape}, expected (T, H, W, 3)")
    if not exact:
        return
    if frames.shape[1:] != expected[1:]:
        raise OutputError(f"frames are {frames.shape[1:]} (H, W, C), expected {expected[1:]}")
    if len(frames) != expected[0]:
        raise OutputError(f"{len(frames)} frames, expected {expected[0]}")


def unit_done(run: RunDir, model: str, clip: str, fmt: str) -> bool:
    record = run.read_unit(model, clip)
    return bool(record and record.get("status") == "ok" and run.video(model, clip, fmt).exists())


def generate(config: BenchmarkConfig, manifest: Manifest, run: RunDir, progress: bool = True) -> dict:
    """Run every pending unit; returns counts {"done", "skipped", "failed"} (this rank's).

    Under torchrun the pending units are dealt out over the ranks (unit i to rank
    i mod world size), each rank on its own GPU; since only pending units are dealt,
    a run can be resumed with any number of ranks.
    """
    rank, world = distributed.rank_and_world()
    if rank == 0:
        run.save_inputs(config, manifest)
    device = distributed.rank_device(config.device)
    config = replace(config, device=device)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    pending_all = [(spec, clip) for spec in config.models for clip in manifest.clips
                   if not unit_done(run, spec.label, clip.id, config.video_format)]
    distributed.barrier()  # every rank has listed the same pending units before any is written
    mine = pending_all[rank::world]
    counts["skipped"] = len(config.models) * len(manifest.clips) - len(pending_all)
    bar = tqdm(total=len(mine), desc="generating" + (f" (rank {rank}/{world})" if world > 1 else ""),
               unit="video", disable=not progress, position=rank)
    for spec in config.models:
        pending = [clip for s, clip in mine if s is spec]
        if not pending:
            continue
        bar.set_postfix_str(spec.label)
        try:
            model = start_model(spec, config, manifest, run)
        except Exception as exc:  # a model that cannot start fails all its units, the sweep goes on
            for clip in pending:
                _record_failure(run, spec.label, clip.id, exc, stage="load")
            counts["failed"] += len(pending)
            bar.update(len(pending))
            continue
        _release_memory(config.device)
        for clip in pending:
            try:
                request = clip.request()
                frames, timing = time_stream(model, request, config.device)
                check_output(frames, request, exact=model.exact_length)
                if model.external_timing:  # the harness timed a file read: replace by the sidecar's
                    external = model.timing(request)
                    timing.update({k: None for k in TIMED_KEYS}, timer="sidecar" if external else "absent")
                    timing.update(external or {})
                timing.update(latency.check_ttff(timing["ttff_s"], model.parameters, model.dtype,
                                                 model.forward_passes_first_chunk,
                                                 timing.get("device_name") or device_name(config.device)))
                with atomic_path(run.video(spec.label, clip.id, config.video_format)) as tmp:
                    io.write_video(tmp, frames, request.fps, request.audio[:int(len(frames) * request.samples_per_frame())],
                                   request.audio_rate)
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
        del model
        _release_memory(config.device)
    bar.close()
    distributed.barrier()  # rank 0 evaluates and reports once every rank has finished
    return counts


def _release_memory(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def start_model(spec, config: BenchmarkConfig, manifest: Manifest, run: RunDir):
    """Create, load and warm up a model; its record (load time, cold timing) is written
    to models/<label>.json. The warm-up clips' outputs are discarded."""
    model = models.create(spec.model, **spec.args)
    start = time.perf_counter()
    model.load(config.device)
    record = {"model": spec.label, "model_info": model.describe(), "load_s": time.perf_counter() - start,
              "device": config.device, "device_name": device_name(config.device), "warmup": []}
    for clip in manifest.clips[:config.warmup_clips]:
        _, cold = time_stream(model, clip.request(), config.device)  # caches, kernels, lazy init
        record["warmup"].append({"clip": clip.id, **cold})
    write_json(run.root / "models" / f"{spec.label}.json", record)
    return model


def _record_failure(run: RunDir, model: str, clip: str, exc: Exception, stage: str) -> None:
    write_json(run.unit(model, clip), {
        "model": model, "clip": clip, "status": "error", "stage": stage,
        "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
