"""The generate phase: every (model, clip) unit, timed, written as it completes.

A unit is done when its record says "ok", its fingerprint (what made it: the model's
registry name, args, adapter class, the sha256 of every weight file, the clip's content
hash, the video format, the lipbench version) equals what would make it now, and its
video is there with the hash recorded when it was written. Everything else is pending,
and a rerun prints one line per reason before it regenerates exactly that. A crash
loses at most the unit in flight.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
import traceback
from collections import Counter
from dataclasses import replace

import numpy as np
from tqdm import tqdm

import lipbench
from lipbench import distributed, io, models
from lipbench.config import BenchmarkConfig
from lipbench.data.manifest import Manifest
from lipbench.rundir import RunDir, clip_hash, dumps, format_reasons
from lipbench.storage import atomic_path, file_sha256, write_json
from lipbench.timing import LATENCY_FIGURES, check_ttff, latency_figures, time_prepare, time_stream
from lipbench.types import Request


class OutputError(RuntimeError):
    pass


class UnitTimeout(BaseException):
    """Raised in a model's stream when a unit runs past `unit_timeout_s`. A BaseException,
    so that a model's own `except Exception` cannot swallow it."""


def device_name(device: str) -> str:
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    import platform

    return platform.processor() or platform.machine()


TIMED_KEYS = (
    "ttff_s",
    "total_s",
    "fps",
    "rtf",
    "chunk_s",
    "chunk_p50_s",
    "chunk_p90_s",
    "chunk_p99_s",
    "chunk_max_s",
    "stages_s",
    "stage_spans_s",
    "derived_timing",
    "audio_read_s",
)


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


def run_stream(model, request: Request, device: str, player_delay_s: float = 0.5) -> tuple[np.ndarray, dict]:
    """One clip through a model as a unit runs it, under the request's timing protocol:
    the untimed `prepare` (its seconds as `prepare_s`), the timed stream, the model's own
    figures where it measures elsewhere (a worker process, a sidecar), which replace the
    harness's clock, and how late its frames follow the speech (timing.latency_figures)."""
    prepare_s = time_prepare(model, request, device)
    frames, timing = time_stream(model, request, device)
    timing["prepare_s"] = prepare_s
    external = model.timing(request)
    if external is not None:
        timing.update({k: None for k in TIMED_KEYS})
        timing.update(external)
    else:
        derived = model.derived_timing(timing)
        if derived:
            timing["derived_timing"] = derived
    if timing.get("chunk_s"):  # not for outputs made elsewhere: their frames' times are unknown
        timing.update(latency_figures(timing, request, model.declared_lookahead_s(request.fps), player_delay_s))
    return frames, timing


LIVE_KEYS = (
    "ttff_s",
    "total_s",
    "fps",
    "rtf",
    "n_chunks",
    "chunk_frames",
    "chunk_s",
    "audio_read_s",
    "timer",
    "prepare_s",
    *LATENCY_FIGURES,
)


def run_live(model, request: Request, config: BenchmarkConfig) -> dict:
    """The same clip again under the live protocol (the speech arriving at its pace);
    the figures of that stream, its frames discarded (the offline stream's are the video)."""
    live = request.live(config.live_lead_s)
    _, timing = run_stream(model, live, config.device, config.player_delay_s)
    return {"lead_s": config.live_lead_s, **{k: timing.get(k) for k in LIVE_KEYS}}


# ------------------------------------------------------------------ fingerprints


class Candidate:
    """A config's model entry, created (not loaded) to fingerprint its units."""

    def __init__(self, spec, config: BenchmarkConfig):
        self.spec, self.error = spec, None
        self.model, self.weights = None, {}
        try:
            self.model = models.create(spec.model, **spec.args)
            self.model.configure(weights_dir=config.weights_dir, dtype=config.dtype)
            self.weights = {name: file_sha256(path) for name, path in self.model.weight_files().items()}
        except Exception as exc:  # fails every unit of this model at its start, with this error
            self.error = exc
        cls = type(self.model) if self.model is not None else None
        self.base = {
            "model": spec.model,
            "args": spec.args,
            "class": f"{cls.__module__}:{cls.__qualname__}" if cls else None,
            "weights": self.weights,
            "video_format": config.video_format,
            "lipbench": lipbench.__version__,
        }
        if config.timing_protocols != ["offline"]:  # older units were timed offline only
            self.base["timing_protocols"] = {
                "protocols": config.timing_protocols,
                "live_lead_s": config.live_lead_s,
                "player_delay_s": config.player_delay_s,
            }
        if self.model is not None and config.dtype in self.model.dtypes and "dtype" not in spec.args:
            self.base["run_dtype"] = config.dtype  # only where it applies (older units have no such key)

    def fingerprint(self, clip) -> dict:
        files = {}
        if self.model is not None:
            try:
                files = {name: file_sha256(path) for name, path in self.model.clip_files(clip.id).items()}
            except Exception as exc:  # the unit fails when it runs, with the adapter's own error
                files = {"error": f"{type(exc).__name__}: {exc}"}
        return {**self.base, "clip_sha256": clip_hash(clip), "clip_files": files}


_FIELD_REASONS = {
    "model": "registry name changed",
    "class": "adapter class changed",
    "run_dtype": "run-wide dtype changed",
    "timing_protocols": "timing protocols changed",
    "video_format": "video format changed",
    "lipbench": "lipbench version changed",
    "clip_sha256": "clip file changed on disk",
}


def pending_reason(record: dict | None, fingerprint: dict, run: RunDir) -> str | None:
    """Why a unit must be (re)made, or None when it is done."""
    if record is None:
        return "not made yet"
    if record.get("status") != "ok":
        return "failed before"
    old = record.get("fingerprint")
    if not isinstance(old, dict):
        return "made without a fingerprint (older lipbench)"
    for key in ("run_dtype", "timing_protocols"):  # keys only a non-default setting adds
        if key in old and key not in fingerprint:
            return _FIELD_REASONS[key]
    for key, new in fingerprint.items():
        if dumps(old.get(key)) == dumps(new):
            continue
        if key == "args":
            return f"args changed ({dumps(old.get(key))} -> {dumps(new)})"
        if key in ("weights", "clip_files"):
            was = old.get(key) or {}
            names = sorted(n for n in set(was) | set(new) if was.get(n) != new.get(n))
            return f"{'weight' if key == 'weights' else 'input'} file {', '.join(names)} changed"
        return _FIELD_REASONS.get(key, f"{key} changed")
    video = run.root / record.get("video", "")
    if not record.get("video") or not video.is_file():
        return "video missing"
    if file_sha256(video) != record.get("video_sha256"):
        return "video changed on disk"
    return None


def plan(config: BenchmarkConfig, manifest: Manifest, run: RunDir):
    """(pending [(candidate, clip, fingerprint)], reasons {(model, reason): count})."""
    pending, reasons = [], Counter()
    for spec in config.models:
        candidate = Candidate(spec, config)
        for clip in manifest.clips:
            fingerprint = candidate.fingerprint(clip)
            why = pending_reason(run.read_unit(spec.label, clip.id), fingerprint, run)
            if why:
                pending.append((candidate, clip, fingerprint))
                reasons[(spec.label, why)] += 1
    return pending, reasons


# ------------------------------------------------------------------ the sweep


def generate(config: BenchmarkConfig, manifest: Manifest, run: RunDir, progress: bool = True) -> dict:
    """Run every pending unit; returns counts {"done", "skipped", "failed"} (this rank's).

    Under torchrun the pending units are dealt out over the ranks (unit i to rank
    i mod world size), each rank on its own GPU; since only pending units are dealt,
    a run can be resumed with any number of ranks.
    """
    rank, world = distributed.rank_and_world()
    if rank == 0:
        run.save_inputs(config, manifest)
    else:
        run = RunDir(run.root, read_only=True)  # rank 0 alone sets damaged records aside
    device = distributed.rank_device(config.device)
    config = replace(config, device=device)
    pending_all, reasons = plan(config, manifest, run)
    if rank == 0 and progress:
        for line in format_reasons("generate", reasons):
            print(line)
    distributed.barrier()  # every rank has listed the same pending units before any is written
    mine = pending_all[rank::world]
    counts = {"done": 0, "skipped": len(config.models) * len(manifest.clips) - len(pending_all), "failed": 0}
    bar = tqdm(
        total=len(mine),
        desc="generating" + (f" (rank {rank}/{world})" if world > 1 else ""),
        unit="video",
        disable=not progress,
        position=rank,
    )
    name = device_name(config.device)
    with _user_interrupts() as interrupts:
        for spec in config.models:
            units = [(c, clip, fp) for c, clip, fp in mine if c.spec is spec]
            if not units:
                continue
            bar.set_postfix_str(spec.label)
            model = units[0][0].model
            try:
                try:
                    start_model(units[0][0], config, manifest, run, name)
                except Exception as exc:  # a model that cannot start fails all its units, the sweep goes on
                    for _, clip, fingerprint in units:
                        _record_failure(run, spec.label, clip.id, exc, "load", fingerprint)
                    counts["failed"] += len(units)
                    bar.update(len(units))
                    continue
                _release_memory(config.device)
                for _, clip, fingerprint in units:
                    ok = _run_unit(model, spec, clip, fingerprint, config, run, name, interrupts)
                    counts["done" if ok else "failed"] += 1
                    clip.release()  # one clip in memory at a time
                    bar.update(1)
            finally:
                close_model(model, run, spec.label)
            units[0][0].model = model = None  # nothing holds its weights now: the next model gets the memory
            _release_memory(config.device)
    bar.close()
    distributed.barrier()  # rank 0 evaluates and reports once every rank has finished
    return counts


def _run_unit(model, spec, clip, fingerprint, config, run: RunDir, name: str, interrupts) -> bool:
    video = run.video(spec.label, clip.id, config.video_format)
    try:
        request = clip.request()
        with time_limit(config.unit_timeout_s):
            frames, timing = run_stream(model, request, config.device, config.player_delay_s)
            check_output(frames, request, exact=model.exact_length)
            if "live" in config.timing_protocols and timing.get("chunk_s"):
                timing["live"] = run_live(model, request, config)
        timing.update(
            check_ttff(
                timing["ttff_s"],
                model.parameters,
                model.dtype,
                model.forward_passes_first_chunk,
                timing.get("device_name") or name,
            )
        )
        with atomic_path(video) as tmp:
            io.write_video(
                tmp,
                frames,
                request.fps,
                request.recorded_audio[: int(len(frames) * request.samples_per_frame())],
                request.audio_rate,
            )
        write_json(
            run.unit(spec.label, clip.id),
            {
                "model": spec.label,
                "clip": clip.id,
                "status": "ok",
                "fingerprint": fingerprint,
                "clip_sha256": fingerprint["clip_sha256"],
                "video": str(video.relative_to(run.root)),
                "video_sha256": file_sha256(video),
                "device_name": name,
                "model_info": model.describe(),
                **timing,
            },
        )
        return True
    except UnitTimeout as exc:
        _record_failure(run, spec.label, clip.id, exc, "timeout", fingerprint)
    except (KeyboardInterrupt, SystemExit) as exc:
        if isinstance(exc, KeyboardInterrupt) and interrupts["signalled"]:
            raise  # the user's Ctrl-C: stop the sweep (what is written stays)
        _record_failure(run, spec.label, clip.id, exc, "generate", fingerprint)  # raised by the model itself
    except Exception as exc:
        _record_failure(run, spec.label, clip.id, exc, "generate", fingerprint)
    return False


@contextlib.contextmanager
def _user_interrupts():
    """Tell the user's Ctrl-C (SIGINT) from a KeyboardInterrupt a plug-in raises itself:
    the first stops the sweep, the second fails only its unit."""
    state = {"signalled": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def on_sigint(signum, frame):
        state["signalled"] = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise UnitTimeout in the main thread after `seconds` (SIGALRM). It interrupts Python
    code and sleeps; a call into native code (a CUDA kernel, a decoder) is interrupted
    when it returns. Without a limit, or off the main thread, nothing is set."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise UnitTimeout(f"timed out after {seconds:g} s (unit_timeout_s)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def close_model(model, run: RunDir, label: str) -> None:
    """`model.close()`, whatever happened before; an error there is noted in the model's
    record, never raised over the sweep's own outcome."""
    if model is None:
        return
    try:
        model.close()
    except Exception as exc:
        path = run.root / "models" / f"{label}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"model": label}
        except ValueError:
            record = {"model": label}
        record["close_error"] = f"{type(exc).__name__}: {exc}"
        write_json(path, record)


def _release_memory(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def start_model(candidate: Candidate, config: BenchmarkConfig, manifest: Manifest, run: RunDir, name: str = ""):
    """Load and warm up a model; its record (load time, cold timing) is written to
    models/<label>.json. The warm-up runs on the first `warmup_clips` clips that load
    (a clip that cannot be read is passed over, it fails only its own units); a warm-up
    stream that fails is recorded and the next clip tried. Outputs are discarded."""
    if candidate.error is not None:
        raise candidate.error
    spec, model = candidate.spec, candidate.model
    start = time.perf_counter()
    model.load(config.device)
    record = {
        "model": spec.label,
        "model_info": model.describe(),
        "load_s": time.perf_counter() - start,
        "device": config.device,
        "device_name": name or device_name(config.device),
        "warmup": [],
    }
    warmed = 0
    for clip in manifest.clips:
        if warmed >= config.warmup_clips:
            break
        try:
            request = clip.request()
        except Exception:  # its own units will say why
            continue
        try:
            with time_limit(config.unit_timeout_s):
                _, cold = run_stream(model, request, config.device)  # caches, kernels, lazy init
            record["warmup"].append({"clip": clip.id, **cold})
            warmed += 1
        except UnitTimeout as exc:
            raise RuntimeError(f"warm-up on {clip.id}: {exc}") from None
        except Exception as exc:
            record["warmup"].append({"clip": clip.id, "error": f"{type(exc).__name__}: {exc}"})
    write_json(run.root / "models" / f"{spec.label}.json", record)
    return model


def _record_failure(run: RunDir, model: str, clip: str, exc: BaseException, stage: str, fingerprint: dict) -> None:
    write_json(
        run.unit(model, clip),
        {
            "model": model,
            "clip": clip,
            "status": "error",
            "stage": stage,
            "fingerprint": fingerprint,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        },
    )
