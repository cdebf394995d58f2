"""Builds an adapter's parts: from the published files, or seeded random weights.

Random weights. Small networks (the tiny test size, TAEHV, the Wan VAE, wav2vec2) get
NumPy-seeded weights, the same on every machine, so a tiny run is reproducible
anywhere. The paper-size DiTs (1.4 and 14 billion parameters) are filled on their
device with torch's seeded generator instead: drawing 14e9 values with NumPy on the
host would take minutes and 57 GB, and for timing only the architecture matters.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from lipbench.models.lipforcing import pipeline

WEIGHT_SEED = 0  # random weights never depend on the sampling seed
HOST_DRAW_LIMIT = 50_000_000  # parameters: above this, random weights are drawn on the device

TINY_DIT = dict(dim=64, ffn_dim=128, num_heads=2, num_layers=4, text_dim=32)
TINY_VAE = dict(dim=8)


def tiny_audio_config():
    """A 2-layer wav2vec2 of width 32 (features of (2 + 2) x 32 = 128 values per frame)."""
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16, 16, 16, 16, 16),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )


def dit_config(size_name: str, audio_dim: int | None = None):
    from lipbench.models.lipforcing import dit

    if size_name == "tiny":
        return dit.DiTConfig(**TINY_DIT, audio_dim=audio_dim or 128)
    return dit.DiTConfig.preset(size_name)


def parameter_count(config) -> int:
    from lipbench.models.lipforcing.dit import WanCore

    with torch.device("meta"):
        return sum(p.numel() for p in WanCore(config).parameters())


def fill_random_(module: torch.nn.Module, seed: int) -> None:
    """Seeded N(0, 1/fan_in) weights, zero biases, unit norm scales, small modulations,
    drawn on the module's device in its dtype."""
    generator = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif p.ndim == 1:  # RMSNorm / LayerNorm scales
                p.fill_(1.0)
            else:
                fan_in = max(1, math.prod(p.shape[1:]))
                scale = 0.1 if name.endswith("modulation") else 1.0 / math.sqrt(fan_in)
                p.normal_(0.0, scale, generator=generator)


def build_dit(config, causal: bool, device: str, dtype: torch.dtype, random_weights: bool, path: Path | None):
    from lipbench.models.lipforcing import causal_dit, dit

    if not random_weights:
        return causal_dit.load_dit(path, config, causal=causal, device=device, dtype=dtype)
    make = causal_dit.CausalOmniAvatarWan if causal else dit.OmniAvatarWan
    if parameter_count(config) <= HOST_DRAW_LIMIT:
        model = make(config)
        core = model.core if causal else model.model
        core.load_state_dict(causal_dit.random_state_dict(config, WEIGHT_SEED), strict=True)
        return model.to(device=device, dtype=dtype).eval()
    with torch.device(device):
        model = make(config).to(dtype)
    fill_random_(model, WEIGHT_SEED)
    return model.eval()


def random_text(length: int, dim: int, seed: int, device, dtype) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal((1, length, dim)).astype(np.float32)).to(device=device, dtype=dtype)


def read_text_embedding(path) -> torch.Tensor:
    """A prompt embedding file: a tensor (1, L, text_dim) or (L, text_dim), as upstream's
    precompute_text.py saves it (also accepted: a dict holding one such tensor)."""
    from lipbench.checkpoints import read_file
    from lipbench.weights import BadWeightError

    value = read_file(path)
    if isinstance(value, dict):
        tensors = [v for v in value.values() if isinstance(v, torch.Tensor)]
        value = tensors[0] if len(tensors) == 1 else value
    if not isinstance(value, torch.Tensor) or value.ndim not in (2, 3):
        raise BadWeightError(
            path, f"a prompt embedding holds one tensor (1, L, text_dim); found {type(value).__name__}", "mismatch"
        )
    return value if value.ndim == 3 else value[None]


def parts(adapter, size, files: dict[str, Path], device: str, dtype: torch.dtype) -> pipeline.Parts:
    """The adapter's networks on `device` (`size`: adapters.Size; `files`: its weight_files())."""
    from lipbench.models.lipforcing import audio_features, taehv, wan_vae
    from lipbench.models.lipforcing.adapters import NEGATIVE_TEXT_FILE, TAEHV_FILE, TEXT_FILE, VAE_FILE, WAV2VEC_FILES

    random_weights, causal = adapter.random_weights, adapter.causal
    if random_weights:
        audio = audio_features.AudioEncoder.random(WEIGHT_SEED, tiny_audio_config() if size.audio == "tiny" else None)
    else:
        audio = audio_features.AudioEncoder.from_pretrained(files[WAV2VEC_FILES[0]].parent)
    audio.model.to(device)
    config = dit_config(size.dit, audio.feature_size if size.dit == "tiny" else None)
    dit_path = None if random_weights else files[adapter.checkpoint]
    network = build_dit(config, causal, device, dtype, random_weights, dit_path)

    vae_config = TINY_VAE if size.dit == "tiny" else {}
    if random_weights:
        vae = wan_vae.WanVAE(**vae_config)
        vae.load_state_dict(wan_vae.random_state_dict(WEIGHT_SEED, **vae_config), strict=True)
        vae = vae.to(device=device, dtype=dtype).eval()
    else:
        vae = wan_vae.load_wan_vae(files[VAE_FILE], device, dtype, **vae_config)
    decoder = None
    if adapter.decoder == "taehv":
        taehv_dtype = torch.float16 if str(device).startswith("cuda") else dtype  # upstream decodes TAEHV in fp16
        if random_weights:
            decoder = taehv.TAEHV()
            decoder.load_state_dict(taehv.random_state_dict(WEIGHT_SEED), strict=True)
            decoder = decoder.to(device=device, dtype=taehv_dtype).eval()
        else:
            decoder = taehv.load_taehv(files[TAEHV_FILE], device, taehv_dtype)

    if random_weights:
        text = random_text(size.text_len, config.text_dim, WEIGHT_SEED + 1, device, dtype)
        negative = random_text(size.text_len, config.text_dim, WEIGHT_SEED + 2, device, dtype)
    else:
        text = read_text_embedding(files[TEXT_FILE]).to(device=device, dtype=dtype)
        negative = (
            read_text_embedding(files[NEGATIVE_TEXT_FILE]).to(device=device, dtype=dtype)
            if NEGATIVE_TEXT_FILE in files
            else None
        )
    from lipbench.models.lipforcing.faces import face_protocol

    name = adapter._face_protocol_name()
    options = {}
    if name == "latentsync":
        from lipbench.models.lipforcing.adapters import FACE_FILES

        options = dict(zip(("detector", "landmarker", "mask"), (files[f] for f in FACE_FILES["latentsync"])))
    faces = face_protocol(name, size.resolution, **options)
    return pipeline.Parts(
        dit=network,
        vae=vae,
        audio=audio,
        faces=faces,
        text=text,
        taehv=decoder,
        negative_text=negative,
        device=device,
        dtype=dtype,
        resolution=size.resolution,
    )
