"""The Wan2.1 DiT of Lip Forcing / OmniAvatar: shared blocks and the bidirectional teacher.

Written with upstream's module and parameter names (T-64/LipForcing commit
fc864771eb347ca3ccaaef9c0b583ff6ccc9f184, lipforcing/networks/OmniAvatar/wan_model.py,
network.py and network_causal.py; AudioPack from Omni-Avatar/OmniAvatar
OmniAvatar/models/audio_pack.py, absent from the LipForcing index), so a state_dict of
either upstream network loads with strict=True. The causal student is in causal_dit.py.

Names (upstream's WanModel / CausalOmniAvatarWan._core -> here `WanCore`, the same keys):

| keys | what |
|---|---|
| patch_embedding.{weight,bias} | Conv3d in_dim -> dim, kernel = stride = (1, 2, 2) |
| text_embedding.{0,2} | Linear text_dim -> dim, GELU(tanh), Linear dim -> dim |
| time_embedding.{0,2} | Linear 256 -> dim, SiLU, Linear dim -> dim |
| time_projection.1 | SiLU, Linear dim -> 6 dim (the blocks' shift/scale/gate) |
| blocks.N.self_attn.{q,k,v,o,norm_q,norm_k} | self-attention; norm_* are RMSNorm weights |
| blocks.N.cross_attn.{q,k,v,o,norm_q,norm_k} | attention to the text tokens |
| blocks.N.norm3.{weight,bias} | LayerNorm before cross-attention (norm1/norm2 have no parameters) |
| blocks.N.ffn.{0,2} | Linear dim -> ffn_dim, GELU(tanh), Linear ffn_dim -> dim |
| blocks.N.modulation | (1, 6, dim) added to the time projection |
| head.head, head.modulation | output Linear dim -> 16 * 4 and its (1, 2, dim) modulation |
| audio_proj.proj, audio_proj.norm_out | AudioPack: 4 video frames of 10752 wav2vec2 features -> 32, LayerNorm |
| audio_cond_projs.M | Linear 32 -> dim, added to the tokens before block M + 2 (M < num_layers // 2 - 1) |

Input channels (in_dim 65): 16 noisy latent + 16 reference latent + 1 inverted mouth
mask + 16 masked video + 16 reference sequence (`build_y`).

Deviation: without flash-attn (or off CUDA), attention is torch SDPA in the input
dtype. Upstream's causal network casts q/k/v to bf16 in that fallback; its bidirectional
WanModel does not. In bf16 the two agree; in float32 lipbench keeps float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

UPSTREAM = "T-64/LipForcing@fc864771eb347ca3ccaaef9c0b583ff6ccc9f184"
CHECKPOINT = "lipforcing_14b.pth"
LATENT_CHANNELS = 16
AUDIO_FEATURES = 10752  # wav2vec2 features per video frame (OmniAvatar's constant)
AUDIO_GROUP = 4  # video frames per latent frame, AudioPack's time patch
FREQ_DIM = 256
ROPE_THETA = 10000.0
NUM_TRAIN_STEPS = 1000  # upstream RF schedule: the network sees t * 1000

SIZES = {
    "1.3B": dict(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30),
    "14B": dict(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40),
}


@dataclass(frozen=True)
class DiTConfig:
    """Network shape. `DiTConfig.preset("14B")` or any small free shape for tests."""

    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    in_dim: int = 65
    out_dim: int = LATENT_CHANNELS
    text_dim: int = 4096
    freq_dim: int = FREQ_DIM
    eps: float = 1e-6
    patch_size: tuple = (1, 2, 2)
    audio_dim: int = AUDIO_FEATURES
    audio_hidden: int = 32
    use_audio: bool = True

    @classmethod
    def preset(cls, size: str, **overrides) -> "DiTConfig":
        if size not in SIZES:
            raise ValueError(f"unknown DiT size {size!r}; one of {sorted(SIZES)}")
        return replace(cls(**SIZES[size]), **overrides)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def check(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not a multiple of num_heads {self.num_heads}")
        if rope_split(self.head_dim) is None:
            raise ValueError(
                f"head_dim {self.head_dim} does not split into Wan's 3D RoPE (needs head_dim % 6 "
                "in (0, 2), e.g. 32, 48, 96, 128)"
            )
        if self.use_audio and self.num_layers < 4:
            raise ValueError("audio needs num_layers >= 4 (it is added before blocks 2 .. num_layers // 2)")


def config_for(size_or_config) -> DiTConfig:
    config = DiTConfig.preset(size_or_config) if isinstance(size_or_config, str) else size_or_config
    config.check()
    return config


# --- positions -----------------------------------------------------------------------


def rope_split(head_dim: int):
    """Rotation pairs given to (time, height, width), or None where Wan's tables do not
    fill the head: upstream builds one table per axis of head_dim - 2 (head_dim // 3),
    head_dim // 3, head_dim // 3 channels and splits the head's pairs as c - 2 (c // 3),
    c // 3, c // 3 (c = head_dim // 2); the two must agree."""
    if head_dim % 2:
        return None
    c = head_dim // 2
    tables = ((head_dim - 2 * (head_dim // 3)) // 2, (head_dim // 3) // 2, (head_dim // 3) // 2)
    split = (c - 2 * (c // 3), c // 3, c // 3)
    return split if tables == split else None


def _axis_frequencies(channels: int) -> torch.Tensor:
    # float64 as upstream's tables; channels is the table width (twice its pairs)
    return 1.0 / ROPE_THETA ** (torch.arange(0, channels, 2, dtype=torch.float64)[: channels // 2] / channels)


def rope_angles(head_dim: int, frame_positions: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Rotation angle of every (token, pair), (F*h*w, 1, head_dim // 2) float64, tokens
    frame-major then row then column. Time takes the first pairs, then height, width."""
    nf = frame_positions.numel()
    time = frame_positions.to(torch.float64)[:, None] * _axis_frequencies(head_dim - 2 * (head_dim // 3))
    rows = torch.arange(h, dtype=torch.float64)[:, None] * _axis_frequencies(head_dim // 3)
    cols = torch.arange(w, dtype=torch.float64)[:, None] * _axis_frequencies(head_dim // 3)
    angles = torch.cat(
        [
            time[:, None, None].expand(nf, h, w, -1),
            rows[None, :, None].expand(nf, h, w, -1),
            cols[None, None].expand(nf, h, w, -1),
        ],
        dim=-1,
    )
    return angles.reshape(nf * h * w, 1, -1)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x (B, S, heads, head_dim), channel pairs (2i, 2i+1) rotated by angles (S, 1,
    head_dim // 2), in float64 as upstream (its complex128 product), back to x's dtype."""
    angles = angles.to(x.device)
    cos, sin = angles.cos(), angles.sin()
    pairs = x.to(torch.float64).unflatten(-1, (-1, 2))
    re, im = pairs[..., 0], pairs[..., 1]
    return torch.stack((re * cos - im * sin, re * sin + im * cos), dim=-1).flatten(-2).to(x.dtype)


def sinusoidal_embedding(dim: int, timestep: torch.Tensor) -> torch.Tensor:
    """Wan's time features: cos then sin of t * 10000^(-i / (dim/2)), computed in float64
    and returned in timestep's dtype (as upstream, which rounds there)."""
    half = dim // 2
    scales = torch.pow(10000, -torch.arange(half, dtype=torch.float64, device=timestep.device).div(half))
    angle = torch.outer(timestep.to(torch.float64), scales)
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=1).to(timestep.dtype)


# --- attention -----------------------------------------------------------------------

try:  # optional: the GPU kernel upstream uses; never needed on CPU
    from flash_attn import flash_attn_func as _flash_attn_func
except ImportError:  # also covers a flash-attn built for another torch
    _flash_attn_func = None


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unmasked softmax attention, (B, S, heads, head_dim) in and out. flash-attn for
    half-precision CUDA tensors when installed, else torch SDPA in the input dtype."""
    if _flash_attn_func is not None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        return _flash_attn_func(q, k, v)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


# --- modules (upstream names) --------------------------------------------------------


class RMSNorm(nn.Module):
    """Wan's RMSNorm: normalised in float32, scaled in the input dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class Attention(nn.Module):
    """q, k, v, o projections with RMSNorm on q and k: both self- and cross-attention."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1))

    def qkv(self, x: torch.Tensor):
        return self.heads(self.norm_q(self.q(x))), self.heads(self.norm_k(self.k(x))), self.heads(self.v(x))

    def context_kv(self, context: torch.Tensor):
        """Keys and values of the text tokens: the same for every chunk of a clip."""
        return self.heads(self.norm_k(self.k(context))), self.heads(self.v(context))

    def cross(self, x: torch.Tensor, context_kv) -> torch.Tensor:
        q = self.heads(self.norm_q(self.q(x)))
        return self.o(attention(q, *context_kv).flatten(2))


class DiTBlock(nn.Module):
    """Self-attention, text cross-attention, FFN, each modulated per latent frame by the
    time embedding (shift/scale before, gate after, as upstream: norm1 self-attention,
    norm3 cross-attention, norm2 FFN)."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, eps: float):
        super().__init__()
        self.self_attn = Attention(dim, num_heads, eps)
        self.cross_attn = Attention(dim, num_heads, eps)
        self.norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.norm3 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.zeros(1, 6, dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor, context_kv, self_attend) -> torch.Tensor:
        """x (B, F*L, dim); e (B, F, 6, dim) time projection per frame; self_attend(q, k,
        v) -> (B, F*L, heads, head_dim) does the positions and the attention window."""
        nf = e.shape[1]
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation.unsqueeze(1) + e).chunk(6, dim=2)

        def per_frame(t):  # (B, F*L, dim) <-> (B, F, L, dim), to broadcast (B, F, 1, dim)
            return t.unflatten(1, (nf, -1))

        h = (per_frame(self.norm1(x)) * (1 + scale1) + shift1).flatten(1, 2)
        y = self.self_attn.o(self_attend(*self.self_attn.qkv(h)).flatten(2))
        x = x + (per_frame(y) * gate1).flatten(1, 2)
        x = x + self.cross_attn.cross(self.norm3(x), context_kv)
        h = (per_frame(self.norm2(x)) * (1 + scale2) + shift2).flatten(1, 2)
        return x + (per_frame(self.ffn(h)) * gate2).flatten(1, 2)


class Head(nn.Module):
    def __init__(self, dim: int, out_dim: int, patch_size, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.head = nn.Linear(dim, out_dim * math.prod(patch_size))
        self.modulation = nn.Parameter(torch.zeros(1, 2, dim))

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        """x (B, F*L, dim), t_emb (B, dim) -> (B, F*L, out * prod(patch))."""
        shift, scale = (self.modulation + t_emb[:, None]).chunk(2, dim=1)  # (B, 1, dim) each
        return self.head(self.norm(x) * (1 + scale) + shift)


class AudioPack(nn.Module):
    """OmniAvatar's AudioPack with time patch 4: 4 consecutive video frames of features,
    concatenated frame after frame, -> Linear -> LayerNorm."""

    def __init__(self, in_channels: int, patch_size, dim: int):
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.proj = nn.Linear(in_channels * math.prod(self.patch_size), dim)
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        """groups (B, n, 4, C) -> (B, n, dim)."""
        return self.norm_out(self.proj(groups.flatten(2)))


class WanCore(nn.Module):
    """All parameters of the DiT, with upstream's keys (upstream: WanModel, and
    CausalOmniAvatarWan._core). The wrappers decide positions and attention windows."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        config.check()
        self.config = config
        c = config
        self.patch_embedding = nn.Conv3d(c.in_dim, c.dim, kernel_size=c.patch_size, stride=c.patch_size)
        self.text_embedding = nn.Sequential(
            nn.Linear(c.text_dim, c.dim), nn.GELU(approximate="tanh"), nn.Linear(c.dim, c.dim)
        )
        self.time_embedding = nn.Sequential(nn.Linear(c.freq_dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(c.dim, c.dim * 6))
        self.blocks = nn.ModuleList([DiTBlock(c.dim, c.num_heads, c.ffn_dim, c.eps) for _ in range(c.num_layers)])
        self.head = Head(c.dim, c.out_dim, c.patch_size, c.eps)
        if c.use_audio:
            self.audio_proj = AudioPack(c.audio_dim, (AUDIO_GROUP, 1, 1), c.audio_hidden)
            self.audio_cond_projs = nn.ModuleList(
                [nn.Linear(c.audio_hidden, c.dim) for _ in range(c.num_layers // 2 - 1)]
            )

    # -- pieces of the forward pass, shared by both wrappers --

    def patchify(self, x: torch.Tensor):
        """(B, in_dim, F, H, W) -> tokens (B, F*h*w, dim) and the grid (F, h, w)."""
        weight = self.patch_embedding.weight
        x = self.patch_embedding(x.to(device=weight.device, dtype=weight.dtype))
        return x.flatten(2).transpose(1, 2), tuple(x.shape[2:])

    def time(self, timestep: torch.Tensor, dtype: torch.dtype):
        """timestep (B,) in the network's units (t * 1000) -> (t_emb (B, dim), t_mod (B, 6, dim))."""
        t_emb = self.time_embedding(sinusoidal_embedding(self.config.freq_dim, timestep).to(dtype))
        return t_emb, self.time_projection(t_emb).unflatten(1, (6, self.config.dim))

    def context_kv(self, text_embeds: torch.Tensor) -> list:
        context = self.text_embedding(text_embeds.to(self.patch_embedding.weight.dtype))
        return [block.cross_attn.context_kv(context) for block in self.blocks]

    def audio_conditions(self, audio_emb, start: int, count: int, h: int, w: int):
        """Per audio-conditioned block, the (B, count*h*w, dim) term added to the tokens
        of latent frames [start, start + count); None without audio.

        Latent frame j hears video frames 4j-3 .. 4j (upstream prepends three copies of
        frame 0 and packs groups of 4), so only those frames are needed here."""
        if audio_emb is None or not self.config.use_audio:
            return None
        first, last = AUDIO_GROUP * start - 3, AUDIO_GROUP * (start + count) - 3
        if audio_emb.shape[1] < last:
            raise ValueError(
                f"audio_emb has {audio_emb.shape[1]} video frames; latent frames up to "
                f"{start + count - 1} need {last} (4 per latent frame after the first)"
            )
        weight = self.audio_proj.proj.weight
        index = torch.arange(first, last, device=weight.device).clamp(min=0)
        frames = audio_emb.to(device=weight.device, dtype=weight.dtype)[:, index]
        packed = self.audio_proj(frames.unflatten(1, (count, AUDIO_GROUP)))  # (B, count, hidden)
        return [proj(packed)[:, :, None].expand(-1, -1, h * w, -1).flatten(1, 2) for proj in self.audio_cond_projs]

    def run_blocks(self, x, t_mod_frames, context_kv, audio, self_attend_for) -> torch.Tensor:
        """The blocks; audio term M added before block M + 2; self_attend_for(i) gives
        block i's self-attention."""
        for i, block in enumerate(self.blocks):
            if audio is not None and 2 <= i <= len(self.blocks) // 2:
                x = audio[i - 2] + x
            x = block(x, t_mod_frames, context_kv[i], self_attend_for(i))
        return x

    def unpatchify(self, tokens: torch.Tensor, grid) -> torch.Tensor:
        """(B, F*h*w, out * pt*ph*pw) -> (B, out, F*pt, h*ph, w*pw)."""
        nf, h, w = grid
        pt, ph, pw = self.config.patch_size
        x = tokens.reshape(tokens.shape[0], nf, h, w, pt, ph, pw, self.config.out_dim)
        x = torch.einsum("bfhwpqrc->bcfphqwr", x)
        return x.reshape(tokens.shape[0], self.config.out_dim, nf * pt, h * ph, w * pw)


# --- conditioning and the noise schedule ---------------------------------------------


def build_y(condition: dict, count: int, start: int = 0, mask_all_frames: bool = True) -> torch.Tensor:
    """The conditioning channels for latent frames [start, start + count), (B, C_y, count, h, w):
    ref_latent (B, 16, 1, h, w) repeated, 1 - mask (h, w) (mask: 1 keep, 0 mouth), then
    masked_video and ref_sequence (B, 16, >= start + count, h, w) sliced to the frames.
    With mask_all_frames False, absolute frame 0 gets an all-zero mask (upstream option)."""
    ref = condition["ref_latent"]
    b, _, _, h, w = ref.shape
    mask_ch = (1.0 - condition["mask"].to(device=ref.device, dtype=ref.dtype))[None, None, None]
    mask_ch = mask_ch.expand(b, 1, count, h, w).clone()
    if not mask_all_frames and start == 0:
        mask_ch[:, :, 0] = 0
    parts = [ref.repeat(1, 1, count, 1, 1), mask_ch]
    for name in ("masked_video", "ref_sequence"):
        video = condition.get(name)
        if video is not None:
            if video.shape[2] < start + count:
                raise ValueError(
                    f"condition[{name!r}] has {video.shape[2]} latent frames; frames "
                    f"{start}..{start + count - 1} are needed"
                )
            parts.append(video[:, :, start : start + count].to(device=ref.device, dtype=ref.dtype))
    return torch.cat(parts, dim=1)


class RectifiedFlow:
    """Upstream's RF schedule: x_t = (1 - t) x0 + t eps, t in [0, 0.999]; the network
    sees t * 1000 and predicts the flow eps - x0. Conversions in float64 as upstream."""

    min_t, max_t, num_steps = 0.0, 0.999, NUM_TRAIN_STEPS

    def check(self, t: torch.Tensor) -> None:
        low, high = float(t.min()), float(t.max())
        if low < self.min_t or high > self.max_t + 1e-6:
            raise ValueError(f"t must be in [{self.min_t}, {self.max_t}]; got {low}..{high}")

    def rescale_t(self, t: torch.Tensor) -> torch.Tensor:
        self.check(t)
        return self.num_steps * t

    @staticmethod
    def _expand(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return t.to(device=x.device, dtype=torch.float64).reshape(t.shape + (1,) * (x.ndim - t.ndim))

    def forward_process(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check(t)
        s = self._expand(t, x0)
        return (x0.to(torch.float64) * (1 - s) + eps.to(torch.float64) * s).to(x0.dtype)

    def convert(self, x_t: torch.Tensor, flow: torch.Tensor, t: torch.Tensor, pred_type: str) -> torch.Tensor:
        """The network's flow prediction as pred_type: "flow", "x0" or "eps"."""
        if pred_type == "flow":
            return flow
        s = self._expand(t, x_t)
        x0 = x_t.to(torch.float64) - flow.to(torch.float64) * s
        if pred_type == "x0":
            return x0.to(x_t.dtype)
        if pred_type == "eps":  # upstream clamps sigma away from 0
            return ((x_t.to(torch.float64) - x0 * (1 - s)) / s.clamp(min=1e-6)).to(x_t.dtype)
        raise ValueError(f"unsupported pred type {pred_type!r}; one of 'x0', 'flow', 'eps'")


# --- the bidirectional teacher -------------------------------------------------------


class OmniAvatarWan(nn.Module):
    """Bidirectional OmniAvatar DiT (the teachers): every token attends to every token
    of the clip, RoPE at absolute positions. Parameters in `model` (upstream's attribute,
    so this module's state_dict keys equal upstream's wrapper's: model.*)."""

    def __init__(self, config: DiTConfig, mask_all_frames: bool = True):
        super().__init__()
        self.config = config_for(config)
        self.model = WanCore(self.config)
        self.mask_all_frames = mask_all_frames
        self.net_pred_type = "flow"
        self.noise_scheduler = RectifiedFlow()

    def clear_caches(self) -> None:
        """Nothing is cached between calls; here so loops may treat both networks alike."""

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | None,
        condition: dict,
        fwd_pred_type: str | None = None,
        timestep: torch.Tensor | None = None,
    ):
        """x_t (B, 16, T, h, w), t (B,) in [0, 0.999] -> prediction (B, 16, T, h, w) as
        fwd_pred_type (default the network's own, "flow"), in x_t's dtype.

        `timestep` instead of t: the network's own time in [0, 1000], as OmniAvatar's
        sampler passes it (1000 sigma, its first step at 1000, beyond the distillation
        schedule's 0.999); the prediction is then the flow."""
        core, nf = self.model, x_t.shape[2]
        if timestep is not None:
            if fwd_pred_type not in (None, "flow"):
                raise ValueError("with `timestep` the prediction is the flow")
            model_t = torch.as_tensor(timestep, dtype=torch.float64).reshape(-1).expand(x_t.shape[0])
        else:
            t = torch.as_tensor(t).reshape(-1).expand(x_t.shape[0])  # upstream takes (B,); a scalar is broadcast
            model_t = self.noise_scheduler.rescale_t(t)
        y = build_y(condition, nf, 0, self.mask_all_frames)
        tokens, (f, h, w) = core.patchify(torch.cat([x_t.to(device=y.device, dtype=y.dtype), y], dim=1))
        t_emb, t_mod = core.time(model_t.to(tokens.device), tokens.dtype)
        angles = rope_angles(self.config.head_dim, torch.arange(f), h, w).to(tokens.device)

        def self_attend(q, k, v):
            return attention(apply_rope(q, angles), apply_rope(k, angles), v)

        audio = core.audio_conditions(condition.get("audio_emb"), 0, f, h, w)
        x = core.run_blocks(
            tokens,
            t_mod[:, None].expand(-1, f, -1, -1),
            core.context_kv(condition["text_embeds"]),
            audio,
            lambda i: self_attend,
        )
        flow = core.unpatchify(core.head(x, t_emb), (f, h, w))
        if timestep is not None:
            return flow.to(x_t.dtype)
        return self.noise_scheduler.convert(x_t, flow, t, fwd_pred_type or self.net_pred_type)
