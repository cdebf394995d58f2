"""LatentSync 1.6 (ByteDance, bytedance/LatentSync a229c39), driven in its own environment.

LatentSync pins torch 2.5.1, diffusers 0.32.2 and transformers 4.48.0, so it runs in a
separate interpreter (`python -m lipbench.models.latentsync.env --dest DIR --checkout
DIR` builds one) through lipbench's worker protocol (lipbench.models.worker). The model
code inside it is upstream's, from the user's checkout; `worker_model.py` (this folder,
run there) drives its components the way `LipsyncPipeline.__call__` does: whisper tiny
features, InsightFace alignment, chunks of 16 frames, 20 DDIM steps with classifier-free
guidance 1.5, the SD VAE, and the restore into the frame. See its docstring for the
little it changes (face detection on the CPU, the float32 warp on the CPU, no
DeepCache) and why.

`causal=True` (the default) yields each 16-frame chunk as soon as it is restored;
`causal=False` yields the whole clip at the end, as upstream does. The frames are the
same: chunks share only the noise, which is drawn up front.

Where it looks: `python` (default $LIPBENCH_LATENTSYNC_PYTHON), `checkout` (default
$LIPBENCH_LATENTSYNC_CHECKOUT), and the weight files through lipbench's weights lookup
(`weights_dir`, $LIPBENCH_WEIGHTS, the cache): latentsync_unet.pt, whisper/tiny.pt,
sd-vae-ft-mse/{config.json, diffusion_pytorch_model.safetensors}, det_10g.onnx and
2d106det.onnx. `random_weights=True` needs none of the network files (seeded random
networks of the same architecture); `faces="fixed"` needs no face files (a fixed face
layout instead of detection: smoke and timing runs only). `size="tiny"` runs a small
UNet of the same structure at 64 px (CPU tests).
"""

from __future__ import annotations

import os
from pathlib import Path

from lipbench.errors import UsageError
from lipbench.models.worker import WorkerModel

HERE = Path(__file__).resolve().parent
PYTHON_ENV = "LIPBENCH_LATENTSYNC_PYTHON"
CHECKOUT_ENV = "LIPBENCH_LATENTSYNC_CHECKOUT"
CHUNK_FRAMES = 16  # configs/unet/stage2_512.yaml data.num_frames
# learned parameters of UNet3DConditionModel.from_config(stage2_512.yaml model), 417,137,600 of
# them in the motion modules (tests/test_latentsync.py recounts it in LatentSync's environment)
UNET_PARAMETERS = 1_267_099_844
FACE_FILES = ("det_10g.onnx", "2d106det.onnx")
BUILD_HINT = "python -m lipbench.models.latentsync.env --dest DIR --checkout DIR"


def forward_passes(steps: int, guidance: float) -> int:
    """UNet passes per chunk (two per step under guidance, as lipbench counts CFG) + the VAE."""
    return int(steps) * (2 if float(guidance) > 1.0 else 1) + 1


class LatentSync(WorkerModel):
    """LatentSync 1.6 in its own environment (a worker): chunks of 16, 20 DDIM steps, CFG 1.5."""

    name = "latentsync"
    entry = "worker_model:LatentSyncWorker"
    worker_path = (str(HERE),)
    causal = True
    chunk_frames = (CHUNK_FRAMES,)
    parameters = UNET_PARAMETERS
    dtype = "fp16"  # on GPUs with compute capability > 7 (scripts/inference.py); the worker reports fp32 elsewhere
    forward_passes_first_chunk = forward_passes(20, 1.5)
    forward_passes_per_chunk = forward_passes(20, 1.5)

    def __init__(
        self,
        python: str | None = None,
        checkout: str | None = None,
        causal: bool = True,
        steps: int = 20,
        guidance: float = 1.5,
        size: str = "real",
        random_weights: bool = False,
        seed: int = 1247,
        weights_dir=None,
        faces: str = "insightface",
        timeout_s: float = 600.0,
    ):
        python = python or os.environ.get(PYTHON_ENV)
        checkout = checkout or os.environ.get(CHECKOUT_ENV)
        if not python:
            raise UsageError(
                f"latentsync runs in LatentSync's own environment: pass python=<its interpreter> or "
                f"set {PYTHON_ENV} (build one with: {BUILD_HINT})"
            )
        if not checkout:
            raise UsageError(
                f"latentsync needs a checkout of bytedance/LatentSync (a229c39): pass checkout=DIR "
                f"or set {CHECKOUT_ENV}"
            )
        if not (Path(checkout) / "latentsync" / "pipelines" / "lipsync_pipeline.py").is_file():
            raise UsageError(
                f"latentsync: {checkout} is not a LatentSync checkout (no latentsync/pipelines/lipsync_pipeline.py)"
            )
        if size not in ("real", "tiny"):
            raise UsageError(f"latentsync: size must be 'real' or 'tiny', got {size!r}")
        if faces not in ("insightface", "fixed"):
            raise UsageError(f"latentsync: faces must be 'insightface' or 'fixed', got {faces!r}")
        if int(steps) < 1:
            raise UsageError(f"latentsync: steps must be >= 1, got {steps!r}")
        self.steps, self.guidance, self.size, self.seed = int(steps), float(guidance), size, int(seed)
        self.random_weights, self.weights_dir, self.faces = bool(random_weights), weights_dir, faces
        self.checkout = str(Path(checkout).resolve())
        args = {
            "checkout": self.checkout,
            "causal": bool(causal),
            "steps": self.steps,
            "guidance": self.guidance,
            "seed": self.seed,
            "size": size,
            "random_weights": self.random_weights,
            "faces": faces,
        }
        super().__init__(
            python=python,
            path=(self.checkout,),
            args=args,
            causal=bool(causal),
            chunk_frames=(CHUNK_FRAMES,) if causal else (),
            timeout_s=timeout_s,
        )
        self.forward_passes_first_chunk = self.forward_passes_per_chunk = forward_passes(self.steps, self.guidance)

    def weight_files(self) -> dict[str, Path]:
        from lipbench.models.latentsync.weights import UNET_FILE, VAE_FILES, WHISPER_FILE
        from lipbench.weights import find_weight

        names = [] if self.random_weights else [UNET_FILE, WHISPER_FILE, *VAE_FILES]
        names += list(FACE_FILES) if self.faces == "insightface" else []
        return {name: find_weight(name, self.weights_dir, needed_by=self.name) for name in names}

    def load(self, device: str = "cpu") -> None:
        from lipbench.models.latentsync.weights import UNET_FILE, VAE_FILES, WHISPER_FILE

        files = self.weight_files()
        if not self.random_weights:
            self.args.update(
                unet_path=str(files[UNET_FILE]),
                whisper_path=str(files[WHISPER_FILE]),
                vae_path={Path(n).name: str(files[n]) for n in VAE_FILES},
            )
        if self.faces == "insightface":
            self.args["face_models"] = {n: str(files[n]) for n in FACE_FILES}
        super().load(device)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "steps": self.steps,
            "guidance": self.guidance,
            "size": self.size,
            "seed": self.seed,
            "random_weights": self.random_weights,
            "faces": self.faces,
            "checkout": self.checkout,
        }
