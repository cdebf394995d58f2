"""The streaming loop of the Lip Forcing family, owned by lipbench.

Students (causal: Lip Forcing, Self Forcing) follow T-64/LipForcing's
scripts/inference/inference_streaming_e2e.py block by block:

    audio_encode   wav2vec2 over the whole clip (upstream encodes all audio first)
    per block of `chunk_latents` latent frames (9 video frames first, then 12):
      align        face alignment of the block's frames (the face protocol)
      encode       streamwise Wan-VAE encode of the unmasked and the masked faces
                   (two encoder caches, so blocks encode as the whole clip would)
      denoise      the student's steps of `t_list` at the block's noise
      decode       TAEHV or the Wan VAE, streaming (caches carried across blocks)
      composite    the generated face pasted back into the reference frames
      -> yield
      kv_update    one more forward with the clean block, stored in the KV cache

Teachers (bidirectional OmniAvatar-LS) run the same stages once over the whole clip,
denoising with the flow-matching sampler and guidance, and yield once at the end.

Length. Upstream generates 12k + 9 frames (whole blocks); a reference of any other
length is extended to the next such count the way upstream extends short inputs (the
video ping-ponged, the audio zero-padded), and the output cut back to the reference's
frame count. 81 frames need neither.

Every stage is marked through `stage(name)`, so the harness can rebuild the authors'
FastGen spans (`fastgen_spans`) from a unit's timed stages.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from lipbench.models.lipforcing import sampler

LATENT_CHANNELS = 16
TIME_STRIDE = 4  # Wan VAE: 1 frame for the first latent, then 4 per latent
SPACE_STRIDE = 8
STAGES = ("audio_encode", "align", "encode", "denoise", "decode", "composite", "kv_update")
FPS = 25.0
AUDIO_RATE = 16000


def block_frames(block: int, chunk_latents: int) -> int:
    """Video frames a block covers: 4c - 3 for the first, 4c after (9, then 12 for c = 3)."""
    return TIME_STRIDE * chunk_latents - (TIME_STRIDE - 1 if block == 0 else 0)


def generation_length(n_frames: int, chunk_latents: int) -> tuple[int, int]:
    """(latent frames, video frames) generated for a reference of `n_frames` frames: the
    fewest whole blocks covering it (upstream's 1 + 4 (latents - 1) frames)."""
    if n_frames < 1:
        raise ValueError("the reference has no frames")
    latents = 1 + (n_frames - 1 + TIME_STRIDE - 1) // TIME_STRIDE
    latents = -(-latents // chunk_latents) * chunk_latents
    return latents, 1 + TIME_STRIDE * (latents - 1)


def pingpong_indices(n: int, target: int) -> np.ndarray:
    """Frame indices that extend `n` frames to `target` as upstream does:
    0..n-1, then n-2..1, n-1... back and forth (a single frame repeats)."""
    if n >= target:
        return np.arange(target)
    if n == 1:
        return np.zeros(target, dtype=np.int64)
    cycle = np.concatenate([np.arange(n), np.arange(n - 2, 0, -1)])
    return np.resize(cycle, target)


def padded_audio(audio: np.ndarray, rate: int, n_video: int, fps: float) -> np.ndarray:
    """The driving audio at 16 kHz, zero-padded (or cut) to `n_video` frames' duration."""
    audio = np.asarray(audio, dtype=np.float32)
    if rate != AUDIO_RATE:  # lipbench requests are 16 kHz already; other rates are resampled
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(rate), AUDIO_RATE)
        audio = resample_poly(audio, AUDIO_RATE // g, int(rate) // g).astype(np.float32)
    need = int(round(n_video / fps * AUDIO_RATE))
    return audio[:need] if len(audio) >= need else np.pad(audio, (0, need - len(audio)))


@dataclass
class Parts:
    """Everything one family member runs; built by the adapters (real or seeded weights)."""

    dit: torch.nn.Module
    vae: torch.nn.Module  # the Wan VAE: encodes always, decodes when decoder == "wan_vae"
    audio: object  # audio_features.AudioEncoder
    faces: object  # faces.FaceProtocol
    text: torch.Tensor  # (1, L, text_dim), the prompt's embedding
    taehv: torch.nn.Module | None = None
    negative_text: torch.Tensor | None = None  # teachers' negative prompt
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    resolution: int = 512
    last: dict = field(default_factory=dict)  # the last stream's plan, for inspection


def _null_stage(name: str):
    return contextlib.nullcontext()


class _Decoder:
    """Streaming decode to float frames (n, 3, R, R) in [0, 1], TAEHV or Wan VAE."""

    def __init__(self, parts: Parts, kind: str):
        from lipbench.models.lipforcing import taehv, wan_vae

        self.kind = kind
        if kind == "taehv":
            self.stream = taehv.StreamingDecoder(parts.taehv)
        else:
            self.stream = wan_vae.StreamingDecoder(parts.vae)

    def push(self, latents: torch.Tensor) -> torch.Tensor:
        if self.kind == "taehv":  # TAEHV is (N, T, C, H, W)
            return self.stream.push(latents.permute(0, 2, 1, 3, 4))[0].float()
        video = self.stream.push(latents)  # (1, 3, t, H, W) in [-1, 1]
        return ((video[0].permute(1, 0, 2, 3).float() + 1) / 2).clamp(0, 1)


def _audio_embedding(parts: Parts, audio, audio_rate: int, n_video: int, fps: float) -> torch.Tensor:
    """(1, n_video, features) of the whole clip's audio, on the parts' device and dtype."""
    features = parts.audio.features(padded_audio(audio, audio_rate, n_video, fps), n_video, fps=fps)
    return features.to(device=parts.device, dtype=parts.dtype).unsqueeze(0)


def _condition(audio_emb, text, mask_latent, ref_seq, masked) -> dict:
    return {
        "text_embeds": text,
        "audio_emb": audio_emb,
        "ref_latent": ref_seq[:, :, :1].contiguous(),
        "mask": mask_latent,
        "masked_video": masked,
        "ref_sequence": ref_seq,
    }


def _align(parts: Parts, frames: np.ndarray, indices) -> tuple[list, list, torch.Tensor, torch.Tensor]:
    """The frames' aligned faces as (1, 3, n, R, R) in [-1, 1], unmasked and masked."""
    from lipbench.models.lipforcing.faces import faces_to_tensor

    originals = [frames[i] for i in indices]
    aligned = [parts.faces.align(frame) for frame in originals]
    pixels = faces_to_tensor(aligned)
    return originals, aligned, pixels, parts.faces.apply_mask(pixels)


@torch.no_grad()
def stream_student(
    parts: Parts,
    frames: np.ndarray,
    audio: np.ndarray,
    audio_rate: int,
    *,
    t_list,
    seed: int,
    chunk_latents: int = 3,
    decoder: str = "taehv",
    mouth_only: bool = True,
    context_noise: float = 0.0,
    fps: float = FPS,
    stage: Callable = _null_stage,
) -> Iterator[np.ndarray]:
    """Yields the composited uint8 frames of each block as soon as they exist, exactly
    `len(frames)` frames in all."""
    from lipbench.models.lipforcing import wan_vae

    t_list = sampler.check_t_list(t_list)
    n_ref = len(frames)
    n_latent, n_video = generation_length(n_ref, chunk_latents)
    source = pingpong_indices(n_ref, n_video)
    device, dtype, dit = parts.device, parts.dtype, parts.dit
    parts.last = {"n_latent": n_latent, "n_video": n_video, "blocks": n_latent // chunk_latents}

    with stage("audio_encode"):
        audio_emb = _audio_embedding(parts, audio, audio_rate, n_video, fps)
    latent_size = parts.resolution // SPACE_STRIDE
    mask_latent = torch.from_numpy(parts.faces.latent_mask(latent_size)).to(device=device, dtype=dtype)
    text = parts.text.to(device=device, dtype=dtype)

    parts.faces.reset()
    dit.clear_caches()
    dit.total_num_frames = n_latent
    generator = torch.Generator(device=device).manual_seed(int(seed))
    noise = torch.randn(
        (1, LATENT_CHANNELS, n_latent, latent_size, latent_size), generator=generator, device=device, dtype=dtype
    )
    unmasked_encoder, masked_encoder = wan_vae.StreamingEncoder(parts.vae), wan_vae.StreamingEncoder(parts.vae)
    decode = _Decoder(parts, decoder)
    ref_seq = masked_seq = None
    produced, start = 0, 0
    vae_dtype = next(parts.vae.parameters()).dtype
    try:
        for block in range(n_latent // chunk_latents):
            first = block * chunk_latents
            count = block_frames(block, chunk_latents)
            with stage("align"):
                originals, aligned, pixels, masked_pixels = _align(parts, frames, source[start : start + count])
            start += count
            with stage("encode"):
                new = unmasked_encoder.push(pixels.to(device=device, dtype=vae_dtype)).to(dtype)
                new_masked = masked_encoder.push(masked_pixels.to(device=device, dtype=vae_dtype)).to(dtype)
                ref_seq = new if ref_seq is None else torch.cat([ref_seq, new], dim=2)
                masked_seq = new_masked if masked_seq is None else torch.cat([masked_seq, new_masked], dim=2)
                condition = _condition(audio_emb, text, mask_latent, ref_seq, masked_seq)
            with stage("denoise"):

                def predict_x0(x, t):
                    t_batch = torch.full((1,), t, device=device, dtype=torch.float64)
                    return dit(
                        x, t_batch, condition=condition, cur_start_frame=first, store_kv=False, fwd_pred_type="x0"
                    )

                x0 = sampler.denoise_block(predict_x0, noise[:, :, first : first + chunk_latents], t_list, generator)
            with stage("decode"):
                decoded = decode.push(x0)
            with stage("composite"):
                out = parts.faces.composite(decoded.cpu(), originals, aligned, mouth_only=mouth_only)
            keep = out[: max(0, n_ref - produced)]
            produced += len(keep)
            if len(keep):
                yield keep
            with stage("kv_update"):
                cache_input, t_cache = x0, context_noise
                if context_noise > 0:
                    eps = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
                    cache_input = sampler.renoise(x0, eps, context_noise)
                dit(
                    cache_input,
                    torch.full((1,), t_cache, device=device, dtype=torch.float64),
                    condition=condition,
                    cur_start_frame=first,
                    store_kv=True,
                    fwd_pred_type="x0",
                )
    finally:
        dit.clear_caches()


def teacher_length(n_frames: int) -> tuple[int, int]:
    """A bidirectional model takes any 1 + 4k frames: the fewest covering the reference."""
    return generation_length(n_frames, 1)


@torch.no_grad()
def generate_teacher(
    parts: Parts,
    frames: np.ndarray,
    audio: np.ndarray,
    audio_rate: int,
    *,
    steps: int,
    cfg: float,
    seed: int,
    decoder: str = "wan_vae",
    mouth_only: bool = True,
    shift: float = sampler.TEACHER_SHIFT,
    fps: float = FPS,
    stage: Callable = _null_stage,
) -> np.ndarray:
    """The whole clip at once (the teachers are bidirectional): composited uint8 frames."""
    from lipbench.models.lipforcing import wan_vae

    n_ref = len(frames)
    n_latent, n_video = teacher_length(n_ref)
    source = pingpong_indices(n_ref, n_video)
    device, dtype, dit = parts.device, parts.dtype, parts.dit
    parts.last = {"n_latent": n_latent, "n_video": n_video, "blocks": 1}
    with stage("audio_encode"):
        audio_emb = _audio_embedding(parts, audio, audio_rate, n_video, fps)
    latent_size = parts.resolution // SPACE_STRIDE
    mask_latent = torch.from_numpy(parts.faces.latent_mask(latent_size)).to(device=device, dtype=dtype)
    parts.faces.reset()
    with stage("align"):
        originals, aligned, pixels, masked_pixels = _align(parts, frames, source)
    with stage("encode"):
        vae_dtype = next(parts.vae.parameters()).dtype
        ref_seq = wan_vae.StreamingEncoder(parts.vae).push(pixels.to(device=device, dtype=vae_dtype)).to(dtype)
        masked_seq = (
            wan_vae.StreamingEncoder(parts.vae).push(masked_pixels.to(device=device, dtype=vae_dtype)).to(dtype)
        )
    positive = _condition(audio_emb, parts.text.to(device=device, dtype=dtype), mask_latent, ref_seq, masked_seq)
    negative_text = parts.negative_text if parts.negative_text is not None else parts.text
    negative = _condition(
        torch.zeros_like(audio_emb), negative_text.to(device=device, dtype=dtype), mask_latent, ref_seq, masked_seq
    )
    generator = torch.Generator(device=device).manual_seed(int(seed))
    noise = torch.randn(
        (1, LATENT_CHANNELS, n_latent, latent_size, latent_size), generator=generator, device=device, dtype=dtype
    )
    with stage("denoise"):

        def predict_flow(x, sigma, is_negative):  # OmniAvatar passes the network 1000 sigma
            timestep = torch.full((1,), sigma * 1000.0, device=device, dtype=torch.float64)
            return dit(x, None, condition=negative if is_negative else positive, timestep=timestep)

        x0 = sampler.sample_teacher(predict_flow, noise, steps, cfg=cfg, shift=shift)
    with stage("decode"):
        decoded = _Decoder(parts, decoder).push(x0)
    with stage("composite"):
        out = parts.faces.composite(decoded.cpu(), originals, aligned, mouth_only=mouth_only)
    return out[:n_ref]


def fastgen_spans(spans: list[tuple[str, float, float]], n_frames: int) -> dict:
    """The authors' FastGen timing spans (paulcho98/FastGen inference_streaming.py),
    rebuilt from one stream's stage spans [(stage, start_s, end_s)]. FastGen detects and
    aligns faces before its clock starts, so `align` time is left out of every span;
    compositing runs inside its loop, so it stays in the whole-clip spans.

    - ff_full_pipeline (= ff_pure_generation = ff_enc_gen_dec in its streamwise mode):
      start of the first encode -> end of the first decode;
    - ff_audio_to_decode: the audio pass + ff_full_pipeline;
    - encode_to_decode (= pure_encode_to_decode): first encode -> end of the last decode;
    - audio_to_decode: the audio pass + encode_to_decode;
    - streaming_total: first encode -> end of the last stage (the last cache update);
    and FastGen's FPS for each whole-clip span (frames / span)."""
    if not spans:
        return {}
    by_name = [(name, start, end) for name, start, end in spans]
    encodes = [s for s in by_name if s[0] == "encode"]
    decodes = [s for s in by_name if s[0] == "decode"]
    if not encodes or not decodes:
        return {}
    t0 = encodes[0][1]

    def without_align(until: float) -> float:
        aligned = sum(
            max(0.0, min(end, until) - max(start, t0))
            for name, start, end in by_name
            if name == "align" and end > t0 and start < until
        )
        return until - t0 - aligned

    audio = sum(end - start for name, start, end in by_name if name == "audio_encode")
    out = {"ff_full_pipeline": without_align(decodes[0][2])}
    out["ff_audio_to_decode"] = audio + out["ff_full_pipeline"]
    out["encode_to_decode"] = without_align(decodes[-1][2])
    out["audio_to_decode"] = audio + out["encode_to_decode"]
    out["streaming_total"] = without_align(max(end for _, _, end in by_name))
    for key in ("encode_to_decode", "audio_to_decode", "streaming_total"):
        out[f"fps_{key}"] = n_frames / out[key] if out[key] > 0 else float("inf")
    return out
