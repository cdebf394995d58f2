"""The adapters of the Lip Forcing family: `lipforcing`, `self_forcing`, `omniavatar_ls`.

Each builds its parts (DiT, Wan VAE, TAEHV, wav2vec2, face protocol, prompt embedding)
from the published files found through the weights registry, or, with
`random_weights: true`, builds the same architecture with seeded random weights (no
file is read; every output says so in `model_info.random_weights`), so the paper's
speed columns can be measured before any checkpoint is downloaded. The numbers such a
model's videos score mean nothing.

Sizes: "14B" and "1.3B" are the paper's; "tiny" (a 4-layer DiT of width 64, a small
VAE and wav2vec2, 32 px faces) exists for CPU tests: `random_weights: true`, or files of
that shape (`checkpoint:` and the shared files in a weights directory).
dtype "auto" is bf16 on CUDA (the authors' setting) and fp32 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from lipbench.models.base import LipSyncModel
from lipbench.models.lipforcing import sampler
from lipbench.types import Request

DIT_CHECKPOINTS = {  # (size, role) -> published file
    ("14B", "student"): "lipforcing_14b.pth",
    ("14B", "teacher"): "omniavatar_ls_14b.pt",
}
VAE_FILE = "Wan2.1_VAE.pth"
TAEHV_FILE = "taew2_1.pth"
TEXT_FILE = "lipforcing_text_emb.pt"
NEGATIVE_TEXT_FILE = "omniavatar_negative_text_emb.pt"
WAV2VEC_FILES = (
    "wav2vec2-base-960h/config.json",
    "wav2vec2-base-960h/preprocessor_config.json",
    "wav2vec2-base-960h/model.safetensors",
)
FACE_FILES = {"latentsync": ("det_10g.onnx", "2d106det.onnx", "latentsync_mask.png"), "mediapipe": ()}


@dataclass(frozen=True)
class Size:
    dit: str  # the DiT config preset
    vae_dim: int  # Wan VAE base width (96 published)
    audio: str  # "base" (wav2vec2-base-960h) or "tiny"
    resolution: int  # aligned face size in pixels
    text_len: int  # prompt embedding length (UMT5: 512)


# learned parameters of the DiT at the paper's sizes (upstream's MODEL_CONFIGS; the
# tests count them on the meta device): class-level figures for `lipbench ls models`,
# each instance counts its own size
PAPER_PARAMETERS = {"1.3B": 1_421_383_840, "14B": 14_294_081_696}

SIZES = {
    "14B": Size("14B", 96, "base", 512, 512),
    "1.3B": Size("1.3B", 96, "base", 512, 512),
    "tiny": Size("tiny", 8, "tiny", 32, 8),
}


def _torch_dtype(name: str, device: str):
    """auto: bf16 on CUDA (the authors' setting), float32 elsewhere."""
    import torch

    if name == "auto":
        name = "bf16" if str(device).startswith("cuda") else "fp32"
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


class _Family(LipSyncModel):
    """What the three adapters share: sizes, weights, parts, the face protocol."""

    role = "student"
    default_decoder = "taehv"
    dtypes = ("bf16", "fp16", "fp32")

    def __init__(
        self,
        size: str = "14B",
        decoder: str | None = None,
        composite: str = "mouth",
        faces: str = "auto",
        seed: int = 42,
        random_weights: bool = False,
        weights_dir=None,
        dtype: str = "auto",
        checkpoint: str | None = None,
    ):
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"{self.name} size must be one of {sorted(SIZES)}, got {size!r}")
        decoder = decoder or self.default_decoder
        if decoder not in ("taehv", "wan_vae"):
            raise ValueError(f"{self.name} decoder must be 'taehv' or 'wan_vae', got {decoder!r}")
        if composite not in ("mouth", "full"):
            raise ValueError(f"{self.name} composite must be 'mouth' or 'full', got {composite!r}")
        if faces not in ("auto", "latentsync", "mediapipe"):
            raise ValueError(f"{self.name} faces must be 'auto', 'latentsync' or 'mediapipe', got {faces!r}")
        if dtype not in ("auto", *self.dtypes):
            raise ValueError(f"{self.name} dtype must be auto, bf16, fp16 or fp32, got {dtype!r}")
        self.size, self.decoder, self.composite = size, decoder, composite
        self.faces_spec, self.seed, self.random_weights = faces, int(seed), bool(random_weights)
        self.weights_dir, self.dtype_name = weights_dir, dtype
        self.checkpoint = checkpoint or DIT_CHECKPOINTS.get((size, self.role))
        if not self.random_weights and self.checkpoint is None:
            raise ValueError(
                f"{self.name} {size}: no published {self.role} checkpoint; give checkpoint: FILE "
                f"(a registered name or a path) or set random_weights: true"
            )
        self.parts = None
        self.parameters = self._parameter_count()

    # -- description -----------------------------------------------------

    def _parameter_count(self) -> int:
        from lipbench.models.lipforcing import build

        return build.parameter_count(build.dit_config(SIZES[self.size].dit))

    @property
    def dtype(self) -> str:  # for the latency floor: the weights' dtype on the device
        if self.dtype_name != "auto":
            return self.dtype_name
        return "bf16" if str(self.device).startswith("cuda") else "fp32"

    def describe(self) -> dict:
        return {
            **super().describe(),
            "size": self.size,
            "decoder": self.decoder,
            "composite": self.composite,
            "seed": self.seed,
            "random_weights": self.random_weights,
            "face_protocol": self._face_protocol_name(),
            "weights_dtype": self.dtype,
        }

    def _face_protocol_name(self) -> str:
        if self.faces_spec != "auto":
            return self.faces_spec
        from lipbench.errors import LipbenchError
        from lipbench.weights import find_weight

        try:
            for name in FACE_FILES["latentsync"]:
                find_weight(name, self.weights_dir)
        except LipbenchError:
            return "mediapipe"
        return "latentsync"

    # -- weights ---------------------------------------------------------

    def _dit_file(self) -> Path:
        from lipbench.weights import find_weight

        path = Path(self.checkpoint)
        return path if path.is_file() else find_weight(self.checkpoint, self.weights_dir, needed_by=self.name)

    def weight_files(self) -> dict[str, Path]:
        from lipbench.weights import find_weight

        files = {}
        if not self.random_weights:
            files[self.checkpoint] = self._dit_file()
            names = [VAE_FILE, TEXT_FILE, *WAV2VEC_FILES] + ([TAEHV_FILE] if self.decoder == "taehv" else [])
            if self.role == "teacher":
                names.append(NEGATIVE_TEXT_FILE)
            for name in names:
                files[name] = find_weight(name, self.weights_dir, needed_by=self.name)
        for name in FACE_FILES[self._face_protocol_name()]:
            files[name] = find_weight(name, self.weights_dir, needed_by=f"{self.name} (faces: latentsync)")
        return files

    def load(self, device: str = "cpu") -> None:
        super().load(device)
        from lipbench.models.lipforcing import build

        dtype = _torch_dtype(self.dtype_name, device)
        files = self.weight_files()
        self.parts = build.parts(self, SIZES[self.size], files, device, dtype)

    def derived_timing(self, timing: dict) -> dict:
        """The authors' FastGen spans (ff_full_pipeline, audio_to_decode, streaming_total, ...)."""
        from lipbench.models.lipforcing import pipeline

        spans = pipeline.fastgen_spans(timing.get("stage_spans_s") or [], timing["n_frames"])
        return {"fastgen": spans} if spans else {}

    def _pipeline_inputs(self, request: Request) -> dict:
        """What both pipelines take: the loaded parts, the request's frames and audio, and
        this row's seed, decoder, compositing and stage timer."""
        if self.parts is None:
            raise RuntimeError(f"{self.name}: call load() before stream()")
        return dict(
            parts=self.parts,
            frames=request.frames,
            audio=request.audio,
            audio_rate=request.audio_rate,
            seed=self.seed,
            decoder=self.decoder,
            mouth_only=self.composite == "mouth",
            fps=request.fps,
            stage=self.stage,
        )


class LipForcing(_Family):
    """The Lip Forcing students (causal, KV cache, few steps per block of 3 latents)."""

    name = "lipforcing"
    causal = True
    chunk_frames = (9, 12)
    parameters = PAPER_PARAMETERS["14B"]
    default_size = "14B"

    def __init__(
        self,
        size: str | None = None,  # None: the class's default_size
        t_list=None,
        decoder: str = "taehv",
        composite: str = "mouth",
        faces: str = "auto",
        seed: int = 42,
        random_weights: bool = False,
        weights_dir=None,
        dtype: str = "auto",
        checkpoint: str | None = None,
        context_noise: float = 0.0,
    ):
        size = self.default_size if size is None else size
        self.t_list = sampler.check_t_list(t_list if t_list is not None else self.default_t_list(size))
        super().__init__(size, decoder, composite, faces, seed, random_weights, weights_dir, dtype, checkpoint)
        self.context_noise = float(context_noise)
        steps = len(self.t_list) - 1
        # before the first chunk: its denoising steps; each later chunk: the previous
        # block's cache update + its steps (the decoders' passes are small beside these)
        self.forward_passes_first_chunk = steps
        self.forward_passes_per_chunk = steps + 1

    @staticmethod
    def default_t_list(size: str):
        return sampler.STUDENT_1_3B_BENCHMARK_T_LIST if size == "1.3B" else sampler.STUDENT_T_LIST

    def describe(self) -> dict:
        return {**super().describe(), "t_list": list(self.t_list), "context_noise": self.context_noise}

    def stream(self, request: Request) -> Iterator[np.ndarray]:
        from lipbench.models.lipforcing import pipeline

        yield from pipeline.stream_student(
            **self._pipeline_inputs(request), t_list=self.t_list, context_noise=self.context_noise
        )


class SelfForcing(LipForcing):
    """Self Forcing 1.3B (the paper's baseline): the students' network and loop, 4 steps.

    Upstream's evenly spaced 4-step schedule. Its weights are not published: give
    `checkpoint:` or set `random_weights: true`."""

    name = "self_forcing"
    parameters = PAPER_PARAMETERS["1.3B"]
    default_size = "1.3B"

    @staticmethod
    def default_t_list(size: str):
        return sampler.uniform_t_list(4)


class OmniAvatarLS(_Family):
    """The OmniAvatar-LS teachers (bidirectional): the whole clip at once, one output.

    Flow-matching sampler (shift 5) with guidance 4.5 and a negative pass (negative
    prompt, zeroed audio)."""

    name = "omniavatar_ls"
    causal = False
    parameters = PAPER_PARAMETERS["14B"]
    role = "teacher"
    default_decoder = "wan_vae"

    def __init__(
        self,
        size: str = "14B",
        steps: int = 50,
        cfg: float = sampler.TEACHER_CFG,
        decoder: str = "wan_vae",
        composite: str = "mouth",
        faces: str = "auto",
        seed: int = 42,
        random_weights: bool = False,
        weights_dir=None,
        dtype: str = "auto",
        checkpoint: str | None = None,
    ):
        if int(steps) < 1:
            raise ValueError(f"omniavatar_ls steps must be >= 1, got {steps!r}")
        self.steps, self.cfg = int(steps), float(cfg)
        super().__init__(size, decoder, composite, faces, seed, random_weights, weights_dir, dtype, checkpoint)
        self.forward_passes_first_chunk = sampler.teacher_forward_passes(self.steps, self.cfg)
        self.forward_passes_per_chunk = self.forward_passes_first_chunk

    def describe(self) -> dict:
        return {**super().describe(), "steps": self.steps, "cfg": self.cfg}

    def stream(self, request: Request) -> Iterator[np.ndarray]:
        from lipbench.models.lipforcing import pipeline

        yield pipeline.generate_teacher(**self._pipeline_inputs(request), steps=self.steps, cfg=self.cfg)
