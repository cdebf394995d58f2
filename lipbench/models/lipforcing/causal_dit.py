"""The causal Lip Forcing student (upstream CausalOmniAvatarWan) and its weight loader.

Chunk by chunk generation with a rolling key/value cache, as upstream's `_forward_ar`
(T-64/LipForcing fc864771, lipforcing/networks/OmniAvatar/network_causal.py) with the
streaming script's defaults: a window of local_attn_size = 7 latent frames of which
sink_size = 1 (frame 0) is never evicted, and dynamic RoPE.

The window. A chunk of latent frames [s, s + n) attends to itself and to the frames
stored before it. When those and the chunk together exceed local_attn_size frames, the
keys are the sink frames then the last local_attn_size - sink_size frames (the most
recent stored ones, then the chunk); frames in between are dropped, as upstream's
rolling buffer drops them. Dynamic RoPE places the window's keys at time positions
0 .. W-1 in that order and the chunk's queries at the last n of them, so positions never
exceed local_attn_size - 1 however long the clip; without it, positions are absolute.

Storing. Upstream keeps keys in a fixed buffer addressed by token counters; here each
layer keeps the keys and values of whole latent frames with their absolute index, which
selects the same frames. A call with store_kv=True stores the chunk's keys (from its
input: the streaming loop runs the clean chunk once more for that) after attending; a
chunk stored again replaces its earlier copy (upstream would append a second copy).

Text. The text tokens' keys and values are computed on the first call after
clear_caches() and reused (upstream's cross-attention cache), so a clip has one text
condition. Audio needs no cache: each chunk packs just its own frames' features, which
equals upstream's packing of the whole clip then slicing.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from lipbench.checkpoints import load_into, read_state_dict
from lipbench.models.lipforcing.dit import (
    CHECKPOINT,
    DiTConfig,
    OmniAvatarWan,
    RectifiedFlow,
    WanCore,
    apply_rope,
    attention,
    build_y,
    config_for,
    rope_angles,
)

LOCAL_ATTN_SIZE = 7  # latent frames; the trained window (1 sink + 6 rolling)
SINK_SIZE = 1
CHUNK_SIZE = 3
LORA_ALPHA = 64  # upstream's LoRA alpha (rank 128): scaling alpha / rank

__all__ = [
    "CHECKPOINT",
    "CausalOmniAvatarWan",
    "DiTConfig",
    "OmniAvatarWan",
    "load_dit",
    "merge_peft_lora",
    "random_state_dict",
]


class FrameCache:
    """One layer's stored keys/values: (B, frames * L, heads, head_dim) and the frames'
    absolute indices, in order."""

    def __init__(self):
        self.k = self.v = None
        self.frames: list[int] = []

    def before(self, start: int):
        """Stored frames earlier than `start`: (k, v, indices)."""
        keep = [i for i, f in enumerate(self.frames) if f < start]
        if not keep:
            return None, None, []
        if len(keep) == len(self.frames):
            return self.k, self.v, list(self.frames)
        per = self.k.shape[1] // len(self.frames)
        rows = torch.cat([torch.arange(i * per, (i + 1) * per) for i in keep]).to(self.k.device)
        return self.k[:, rows], self.v[:, rows], [self.frames[i] for i in keep]


def window_frames(indices: list[int], local_attn_size: int, sink_size: int) -> list[int]:
    """Positions (into `indices`, stored frames then the chunk's) the chunk attends to."""
    count = len(indices)
    if local_attn_size <= 0 or count <= local_attn_size:
        return list(range(count))
    rolling = local_attn_size - sink_size
    return list(range(sink_size)) + list(range(count - rolling, count))


class CausalOmniAvatarWan(nn.Module):
    """Causal OmniAvatar DiT, upstream's wrapper API as the streaming loop calls it:

        model(x_t, t, condition=dict(...), cur_start_frame=s, store_kv=False, fwd_pred_type="x0")
        model.noise_scheduler.forward_process(x0, eps, t); model.clear_caches()

    Parameters live in `_core` (upstream's attribute; state_dict keys `_core.*`).

    condition (h, w: latent size, 1/8 of the frames; frame indices absolute in the clip):
        text_embeds  (B, tokens, text_dim): umT5 embedding, [1, 512, 4096] upstream; used
                     on the first call after clear_caches() only
        ref_latent   (B, 16, 1, h, w): the reference frame's latent
        mask         (h, w): 1 keep, 0 mouth (LatentSync's); the network sees 1 - mask
        masked_video (B, 16, >= s + n, h, w): latents of the mouth-masked frames
        ref_sequence (B, 16, >= s + n, h, w): latents of the reference sequence
        audio_emb    (B, >= 4 (s + n) - 3, 10752): wav2vec2 features per video frame from
                     the clip's frame 0 (81 video frames <-> 21 latent frames); optional
    masked_video, ref_sequence and audio_emb may grow as the clip streams in: a chunk
    reads only its own frames."""

    def __init__(
        self,
        config: DiTConfig | str = "14B",
        local_attn_size: int = LOCAL_ATTN_SIZE,
        sink_size: int = SINK_SIZE,
        use_dynamic_rope: bool = True,
        chunk_size: int = CHUNK_SIZE,
        total_num_frames: int = 21,
        mask_all_frames: bool = True,
    ):
        super().__init__()
        self.config = config_for(config)
        self._core = WanCore(self.config)
        self.local_attn_size, self.sink_size = local_attn_size, sink_size
        self.use_dynamic_rope = use_dynamic_rope
        self.chunk_size, self.total_num_frames = chunk_size, total_num_frames
        self.mask_all_frames = mask_all_frames
        self.net_pred_type = "flow"
        self.noise_scheduler = RectifiedFlow()
        self.clear_caches()

    @property
    def core(self) -> WanCore:
        return self._core

    def clear_caches(self) -> None:
        """Forget the clip: stored frames and the text keys/values."""
        self._kv = [FrameCache() for _ in self._core.blocks]
        self._context_kv = None

    def _self_attend(self, i: int, start: int, nf: int, h: int, w: int, store_kv: bool, angle_memo: dict):
        cache, head_dim, per = self._kv[i], self.config.head_dim, h * w

        def angles(positions: torch.Tensor, device) -> torch.Tensor:
            # every layer sees the same window: the float64 tables once per call, on the device
            key = tuple(positions.tolist())
            if key not in angle_memo:
                angle_memo[key] = rope_angles(head_dim, positions, h, w).to(device)
            return angle_memo[key]

        def rows(frames: list[int], device) -> torch.Tensor:  # token rows of those frames
            return torch.cat([torch.arange(j * per, (j + 1) * per) for j in frames]).to(device)

        def attend(q, k, v):
            past_k, past_v, past = cache.before(start)
            indices = past + list(range(start, start + nf))
            keys = k if past_k is None else torch.cat([past_k, k], dim=1)
            values = v if past_v is None else torch.cat([past_v, v], dim=1)
            chosen = window_frames(indices, self.local_attn_size, self.sink_size)
            if len(chosen) < len(indices):
                keys, values = keys[:, rows(chosen, keys.device)], values[:, rows(chosen, keys.device)]
            if self.use_dynamic_rope:  # window-local: keys 0..W-1, the chunk last
                key_pos = torch.arange(len(chosen))
            else:
                key_pos = torch.tensor([indices[j] for j in chosen])
            out = attention(
                apply_rope(q, angles(key_pos[-nf:], q.device)), apply_rope(keys, angles(key_pos, q.device)), values
            )
            if store_kv:  # the window is all a later chunk can still see of these frames
                cache.k, cache.v = keys.detach(), values.detach()
                cache.frames = [indices[j] for j in chosen]
            return out

        return attend

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        condition: dict,
        cur_start_frame: int = 0,
        store_kv: bool = False,
        fwd_pred_type: str | None = None,
        **_upstream_only,
    ) -> torch.Tensor:
        """One chunk: x_t (B, 16, n, h, w) the noisy latent frames [cur_start_frame,
        cur_start_frame + n), t (B,) in [0, 0.999] -> prediction (B, 16, n, h, w) as
        fwd_pred_type ("x0", "flow", "eps"; default "flow"), in x_t's dtype. store_kv:
        also store this chunk's keys/values for the chunks after it. Upstream-only
        keywords (is_ar, use_gradient_checkpointing, ...) are accepted and ignored."""
        core, nf, start = self._core, x_t.shape[2], int(cur_start_frame)
        t = torch.as_tensor(t).reshape(-1).expand(x_t.shape[0])  # upstream takes (B,); a scalar is broadcast
        y = build_y(condition, nf, start, self.mask_all_frames)
        tokens, (f, h, w) = core.patchify(torch.cat([x_t.to(device=y.device, dtype=y.dtype), y], dim=1))
        t_emb, t_mod = core.time(self.noise_scheduler.rescale_t(t).to(tokens.device), tokens.dtype)
        if self._context_kv is None:
            self._context_kv = core.context_kv(condition["text_embeds"])
        audio = core.audio_conditions(condition.get("audio_emb"), start, f, h, w)
        memo: dict = {}
        x = core.run_blocks(
            tokens,
            t_mod[:, None].expand(-1, f, -1, -1),
            self._context_kv,
            audio,
            lambda i: self._self_attend(i, start, f, h, w, store_kv, memo),
        )
        flow = core.unpatchify(core.head(x, t_emb), (f, h, w))
        return self.noise_scheduler.convert(x_t, flow, t, fwd_pred_type or self.net_pred_type)


# --- loading -------------------------------------------------------------------------


def _unwrap(state: dict) -> dict:
    """The network's tensors out of upstream's containers: a training checkpoint
    {"model": {"net": ...}} or {"net": ...} (as upstream's _loader), keys with the
    wrappers' prefixes `_core.` / `model.` stripped."""
    if isinstance(state.get("model"), dict) and isinstance(state["model"].get("net"), dict):
        state = state["model"]["net"]
    elif isinstance(state.get("net"), dict):
        state = state["net"]
    for prefix in ("_core.", "model."):
        if state and all(isinstance(k, str) and k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def merge_peft_lora(state: dict, lora_alpha: int = LORA_ALPHA) -> dict:
    """A state_dict of PEFT-wrapped layers (`<m>.base_layer.weight`, `<m>.lora_A.default.weight`,
    `<m>.lora_B.default.weight`: upstream's 14B student before its post-load merge) with
    each LoRA folded into its base weight, W + (alpha / rank) B A, under plain keys.
    Plain state_dicts pass unchanged."""
    if not any(".lora_A." in k for k in state):
        return state
    out = {}
    for key, value in state.items():
        if ".lora_A." in key or ".lora_B." in key:
            continue
        module, _, name = key.rpartition(".base_layer.")
        if not _:
            out[key] = value
            continue
        plain = f"{module}.{name}"
        a, b = state.get(f"{module}.lora_A.default.weight"), state.get(f"{module}.lora_B.default.weight")
        if name == "weight" and a is not None and b is not None:
            delta = (b.to(torch.float32) @ a.to(torch.float32)) * (lora_alpha / a.shape[0])
            value = (value.to(torch.float32) + delta).to(value.dtype)
        out[plain] = value
    return out


def load_dit(
    path,
    size: DiTConfig | str = "14B",
    causal: bool = True,
    device: str = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    **model_kwargs,
):
    """A Lip Forcing DiT from `path`, loaded strictly. The released `lipforcing_14b.pth`
    is a plain state_dict of merged weights, keys without upstream's `_core.` prefix
    (its loader adds it), bf16; also accepted: keys with `_core.`/`model.`, upstream's
    training containers, and PEFT LoRA layers (merged here, as upstream's 14B loader
    does after loading). causal: CausalOmniAvatarWan (model_kwargs: local_attn_size,
    sink_size, use_dynamic_rope, ...), else the bidirectional OmniAvatarWan. A file of
    another network, or damaged, raises BadWeightError naming it."""
    state = merge_peft_lora(_unwrap(read_state_dict(path, "a Lip Forcing DiT")))
    config = config_for(size)
    with torch.device("meta"):  # no memory until the file's tensors are assigned
        model = CausalOmniAvatarWan(config, **model_kwargs) if causal else OmniAvatarWan(config, **model_kwargs)
    core = model.core if causal else model.model
    described = (
        f"a Lip Forcing {size if isinstance(size, str) else 'DiT'} state_dict "
        "(T-64/LipForcing: patch_embedding.*, blocks.N.*, head.*, audio_proj.*)"
    )
    with warnings.catch_warnings():  # a strict check first; copying into meta tensors is a no-op
        warnings.filterwarnings("ignore", message=".*meta parameter.*")
        load_into(core, state, path, described, "Lip Forcing DiT")
    core.load_state_dict(state, assign=True)  # meta parameters -> the file's tensors
    return model.to(device=device, dtype=dtype).eval()


def random_state_dict(config: DiTConfig | str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights in the DiT's keys and shapes (NumPy draws, the same everywhere).
    Residual-stack gain 1; the time-modulation tables are drawn small so the blocks'
    shift/scale/gate stay near identity and the outputs do not blow up or vanish."""
    from lipbench.random_weights import randomized

    config = config_for(config)
    with torch.device("meta"):
        shapes = WanCore(config).state_dict()
    state = randomized({k: torch.empty(v.shape, dtype=torch.float32) for k, v in shapes.items()}, seed, gain=1.0)
    for key in state:
        if key.endswith("modulation"):
            state[key] = state[key] * 0.1
    return state
