"""Runs inside LatentSync's environment: LatentSyncWorker against upstream's own
`LipsyncPipeline.__call__` on the same inputs, weights and seed (tests/test_latentsync.py).

    <latentsync python> upstream_check.py --checkout DIR --worker-side lipbench/models/worker_side.py \
        --inputs inputs.npz --face-models DIR --out result.json

inputs.npz: frames (T, H, W, 3) uint8 RGB, audio (float32, 16 kHz), and optionally
det_frame / det_boxes / det_landmarks (InsightFace's own answer on that frame, to check the
CPU detector built here). Both sides run a tiny random-weight UNet (size "tiny") on the CPU
in float32. Upstream's run changes only what cannot run on a CPU-only machine or needs
files: its AlignRestore is made on the CPU in float32, its file I/O (read_video,
read_audio, write_video, ffmpeg) is replaced by the arrays, and faces come from either
--faces insightface: InsightFace on the given ONNX files on both sides (upstream's own
FaceDetector, whose FaceAnalysis gets the CPU provider, reading
checkpoints/auxiliary/models/buffalo_l under the working directory as upstream does), or
--faces fixed (the default): the worker's FixedFaces on both sides, which puts the
generated face over the middle of the frame (stand-in detectors find small faces, whose
restore touches few pixels). The detector the worker builds for the CPU is checked
against InsightFace's own answer on det_frame either way.
Writes the largest absolute difference between the worker's frames and upstream's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def import_worker(worker_side: str, checkout: str):
    spec = importlib.util.spec_from_file_location("lipbench_worker", worker_side)
    module = importlib.util.module_from_spec(spec)
    sys.modules["lipbench_worker"] = module
    spec.loader.exec_module(module)
    sys.path[:0] = [str(HERE), checkout]
    import worker_model

    return module, worker_model


worker_module = None  # worker_model, once imported


def run_upstream(
    worker, frames: np.ndarray, audio: np.ndarray, face_models: Path, work: Path, faces: str, seed: int
) -> np.ndarray:
    """LipsyncPipeline.__call__ on the worker's own pipeline (the same modules), as
    scripts/inference.py calls it; returns the frames it would write to the video.
    faces="fixed": upstream's FaceDetector is replaced by the worker's FixedFaces."""
    import torch
    from accelerate.utils import set_seed
    from latentsync.pipelines import lipsync_pipeline
    from latentsync.utils import face_detector, image_processor
    from latentsync.utils.affine_transform import AlignRestore

    models = work / "checkpoints" / "auxiliary" / "models" / "buffalo_l"
    models.mkdir(parents=True)
    for name in ("det_10g.onnx", "2d106det.onnx") if faces == "insightface" else ():
        shutil.copy(face_models / name, models / name)
    written = {}
    original_init = face_detector.FaceAnalysis.__init__

    def cpu_face_analysis(self, *args, **kwargs):
        original_init(self, *args, **{**kwargs, "providers": ["CPUExecutionProvider"]})

    patches = [
        (face_detector.FaceAnalysis, "__init__", cpu_face_analysis),
        *([(image_processor, "FaceDetector", lambda device: worker_module.FixedFaces())] if faces == "fixed" else []),
        (
            image_processor,
            "AlignRestore",
            lambda resolution, device: AlignRestore(resolution=resolution, device="cpu", dtype=torch.float32),
        ),
        (lipsync_pipeline, "read_video", lambda path, use_decord=True: frames.copy()),
        (lipsync_pipeline, "read_audio", lambda path: torch.from_numpy(audio.copy())),
        (lipsync_pipeline, "check_ffmpeg_installed", lambda: None),
        (lipsync_pipeline, "write_video", lambda path, video, fps: written.setdefault("frames", video)),
        (lipsync_pipeline, "subprocess", types.SimpleNamespace(run=lambda *a, **k: None)),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    cwd = os.getcwd()
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        os.chdir(work)  # FaceDetector reads checkpoints/auxiliary under the working directory
        set_seed(seed)
        worker.pipeline(
            video_path="unused.mp4",
            audio_path=audio,
            video_out_path=str(work / "out.mp4"),
            num_frames=16,
            num_inference_steps=worker.steps,
            guidance_scale=worker.guidance,
            weight_dtype=worker.weight_dtype,
            width=worker.resolution,
            height=worker.resolution,
            mask_image_path=str(worker.checkout / "latentsync/utils/mask.png"),
            temp_dir=str(work / "temp"),
        )
    finally:
        os.chdir(cwd)
        for owner, name, value in saved:
            setattr(owner, name, value)
    return written["frames"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkout", required=True)
    parser.add_argument("--worker-side", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--face-models", type=Path, default=None, help="folder with det_10g.onnx, 2d106det.onnx")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--faces", choices=("insightface", "fixed"), default="fixed")
    parser.add_argument(
        "--other-seed", action="store_true", help="also run upstream with another seed (the comparison is not vacuous)"
    )
    args = parser.parse_args(argv)
    global worker_module
    lipbench_worker, worker_model = import_worker(args.worker_side, args.checkout)
    worker_module = worker_model
    inputs = dict(np.load(args.inputs))
    frames, audio = inputs["frames"], inputs["audio"].astype(np.float32)
    result, times = {}, {}

    began = time.perf_counter()
    worker = worker_model.LatentSyncWorker(
        checkout=args.checkout,
        causal=True,
        steps=args.steps,
        size="tiny",
        random_weights=True,
        faces=args.faces,
        face_models=str(args.face_models) if args.face_models else None,
    )
    worker.load("cpu")
    times["load_s"] = time.perf_counter() - began
    request = lipbench_worker.Request("check", frames, audio, 16000, 25.0)

    outputs = {}
    for causal in (True, False):
        worker.causal = causal
        began = time.perf_counter()
        chunks = list(worker.stream(request))
        times[f"stream_{'causal' if causal else 'whole'}_s"] = time.perf_counter() - began
        outputs[causal] = np.concatenate(chunks)
        result[f"chunks_{'causal' if causal else 'whole'}"] = [len(c) for c in chunks]

    # the real-size UNet's parameter count (the adapter declares it), without its memory
    from accelerate import init_empty_weights
    from latentsync.models.unet import UNet3DConditionModel

    with init_empty_weights():
        real = UNet3DConditionModel.from_config(worker_model.unet_config(Path(args.checkout), "real")[0])
    result["real_unet_parameters"] = sum(p.numel() for p in real.parameters())
    del real

    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        upstream = run_upstream(worker, frames, audio, args.face_models, Path(work), args.faces, worker.seed)
    times["upstream_s"] = time.perf_counter() - began
    if args.other_seed:
        with tempfile.TemporaryDirectory() as work:
            other = run_upstream(worker, frames, audio, args.face_models, Path(work), args.faces, worker.seed + 1)
        result["max_abs_other_seed"] = int(np.abs(other.astype(np.int16) - upstream.astype(np.int16)).max())
    if (
        "det_frame" in inputs and args.face_models
    ):  # the CPU FaceAnalysis built by the worker, against insightface's own answer
        found = worker._face_detector("cpu").app.get(inputs["det_frame"])
        boxes = np.array([f.bbox for f in found], np.float32).reshape(-1, 4)
        landmarks = np.array([f.landmark_2d_106 for f in found], np.float32).reshape(-1, 106, 2)
        result["det_count"] = [len(boxes), len(inputs["det_boxes"])]
        if len(boxes) == len(inputs["det_boxes"]):
            result["det_boxes_max_abs"] = float(np.abs(boxes - inputs["det_boxes"]).max())
            result["det_landmarks_max_abs"] = float(np.abs(landmarks - inputs["det_landmarks"]).max())

    n = len(frames)
    result.update(
        n_frames=n,
        upstream_frames=int(len(upstream)),
        shape=list(outputs[True].shape),
        max_abs_causal=int(np.abs(outputs[True].astype(np.int16) - upstream[:n].astype(np.int16)).max()),
        max_abs_whole=int(np.abs(outputs[False].astype(np.int16) - upstream[:n].astype(np.int16)).max()),
        changed_pixels=float(np.mean(np.abs(outputs[True].astype(np.int16) - frames) > 2)),
        times=times,
        parameters=int(worker.parameters),
        dtype=worker.dtype,
    )
    worker.close()
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
