"""`lipbench check-adapter`: the conformance check a user runs on a model before a sweep.

It loads the model, streams one clip twice under the harness's clock and checks what
the runner relies on: uint8 RGB frames at the reference's size, exactly the reference's
frame count (which must match the driving audio's duration at the clip's fps), chunk
sizes as the adapter declares them, an audio lookahead no larger than the declared one
(live latency is only fair to a model that declares how far it listens), and the same
frames from the same seed. It prints
each check, the timing of the second (warm) stream and the latency floor; the exit code
is 0 only when every check passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipbench.errors import UsageError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def model_from(name: str, config_path: str | None, args: dict) -> tuple[str, object]:
    """(label, model) for NAME: a model entry of `config_path` (by its name) with its
    args, or a registered model / `module:Class` with `args`."""
    from lipbench import models

    if config_path:
        from lipbench.config import load_config

        config = load_config(config_path)
        for spec in config.models:
            if spec.label == name:
                return spec.label, models.create(spec.model, **{**spec.args, **args})
        raise UsageError(
            f"{config.source}: no model named {name!r}; it has {', '.join(s.label for s in config.models)}"
        )
    return name, models.create(name, **args)


def synthetic_request(frames: int = 33, size: int = 128):
    """One synthetic talking-head clip (the demo's recipe), made in memory."""
    from lipbench.data.synthetic import SynthRecipe, _base_face, render_clip
    from lipbench.types import Request

    recipe = SynthRecipe(clips=1, frames=frames, size=size)
    video, speech = render_clip(_base_face(size), recipe, 0)
    return Request(
        clip_id="synthetic_000",
        frames=video,
        audio=speech.astype(np.float32),
        audio_rate=recipe.audio_rate,
        fps=recipe.fps,
    )


def clip_request(path):
    from lipbench.types import Clip

    path = Path(path)
    return Clip(id=path.stem, video=path).request()


def run_checks(model, request, device: str = "cpu") -> tuple[list[Check], dict]:
    from lipbench.timing import check_ttff
    from lipbench.models.base import chunk_bounds
    from lipbench.runner import device_name, run_stream

    checks = []
    frames, timing = run_stream(model, request, device)  # the first stream also warms up
    expected = request.frames.shape
    checks.append(Check("dtype", frames.dtype == np.uint8, f"{frames.dtype} (uint8 RGB expected)"))
    checks.append(
        Check(
            "frame size", frames.shape[1:] == expected[1:], f"{frames.shape[1:]} against the reference's {expected[1:]}"
        )
    )
    checks.append(
        Check(
            "frame count",
            len(frames) == expected[0] or not model.exact_length,
            f"{len(frames)} frames for a reference of {expected[0]}",
        )
    )
    audio_frames = request.duration_s * request.fps
    # the video is written at the reference's fps: its length must then match the audio's
    checks.append(
        Check(
            "fps and frame count against the audio",
            abs(audio_frames - len(frames)) <= 1,
            f"{len(frames)} frames at {request.fps:g} fps; the audio lasts {audio_frames:.2f} frames",
        )
    )
    if model.causal and model.chunk_frames:
        declared = [end - start for start, end in chunk_bounds(len(frames), tuple(model.chunk_frames))]
    else:
        declared = [len(frames)]
    checks.append(
        Check(
            "chunk sizes",
            timing["chunk_frames"] == declared,
            f"{timing['chunk_frames']} against the declared {declared}"
            + ("" if model.causal else " (not causal: one chunk)"),
        )
    )
    measured, declared_s = timing.get("lookahead_s"), model.declared_lookahead_s(request.fps)
    checks.append(
        Check(
            "audio lookahead as declared",
            declared_s is None or measured is None or measured <= declared_s + 1e-6,
            "reads no audio"
            if measured is None
            else f"read {measured:.4f} s past a chunk's last frame against the declared "
            + ("whole clip" if declared_s is None else f"{declared_s:.4f} s"),
        )
    )
    again, timing = run_stream(model, request, device)
    same = again.shape == frames.shape and np.array_equal(again, frames)
    diff = int(np.abs(again.astype(np.int16) - frames.astype(np.int16)).max()) if again.shape == frames.shape else None
    checks.append(
        Check(
            "deterministic",
            same,
            "the same frames from a second stream"
            if same
            else f"a second stream differs (max difference {diff} levels)",
        )
    )
    timing["derived"] = timing.pop("derived_timing", None) or {}
    name = timing.get("device_name") or device_name(device)
    timing.update(check_ttff(timing["ttff_s"], model.parameters, model.dtype, model.forward_passes_first_chunk, name))
    timing["device_name"] = name
    floor = timing["ttff_floor_s"]
    checks.append(
        Check(
            "TTFF above the latency floor",
            not timing["ttff_below_floor"],
            f"{timing['ttff_s']:.4f} s against {floor:.4f} s"
            if floor is not None
            else "no floor known for this device",
        )
    )
    return checks, timing


def summary(label: str, model, checks: list[Check], timing: dict) -> str:
    lines = [f"check-adapter {label} ({type(model).__module__}:{type(model).__qualname__})"]
    lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in checks]
    lines.append(
        f"timing (warm stream on {timing['device_name']}): TTFF {timing['ttff_s']:.3f} s, "
        f"{timing['fps']:.2f} FPS, {timing['n_chunks']} chunks"
    )
    for stage, seconds in timing.get("stages_s", {}).items():
        lines.append(f"  stage {stage}: {seconds:.3f} s")
    if timing.get("transfer_s"):
        lines.append(
            f"  worker transfer: {timing['transfer_total_s'] / len(timing['transfer_s']):.4f} s per chunk "
            f"(outside TTFF and FPS); on lipbench's clock TTFF {timing['harness_ttff_s']:.3f} s"
        )
    for harness, figures in timing.get("derived", {}).items():
        lines.append(f"  {harness}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    floor = timing.get("ttff_floor_s")
    lines.append(
        f"latency floor: {floor:.4f} s on {timing['floor_device']}"
        if floor is not None
        else f"latency floor: unknown (no bandwidth figure for {timing['device_name']!r}, or no parameter count)"
    )
    failed = [c.name for c in checks if not c.ok]
    lines.append("all checks passed" if not failed else f"{len(failed)} check(s) failed: {', '.join(failed)}")
    return "\n".join(lines)
