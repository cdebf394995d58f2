"""The Wan2.1 VAE (`Wan2.1_VAE.pth`, Wan-AI/Wan2.1-T2V-14B), written in lipbench.

Lip Forcing encodes its reference frames with this network and can decode its latents
with it (TAEHV, `taehv.py`, is the fast default decoder). It is written with upstream's
module names and layout (WanVAE_ of Wan-Video/Wan2.1 `wan/modules/vae.py`, read at
commit 9737cba9c1c3c4d04b33fcad41c111989865d315), so the published file, a plain
state_dict, loads with strict=True. The constructor takes upstream's arguments with
the published file's values as defaults (those of upstream's `_video_vae`).

Time. Every 3D convolution is causal: a frame sees only itself and earlier frames
(zeros before the first). The encoder halves time twice and space three times: T = 1 +
4k frames -> 1 + k latent frames, the first frame alone making the first latent. The
decoder mirrors it, 1 + k latents -> 1 + 4k frames. Two quirks of upstream are kept as
they are, since the weights were trained with them: a time-downsampling layer passes
the clip's first frame through without its time convolution, and a time-upsampling
layer likewise passes the first frame through (not doubled) and runs its time
convolution on the later frames only, as if the clip began at the second frame.

Caches. Upstream runs the encoder on 1 frame, then groups of 4, and the decoder on one
latent frame at a time, each causal convolution keeping the last input frames of the
previous call in a cache; that bounds memory on long clips, and `encode` / `decode`
here do the same, so they compute what upstream computes. The same cache lets a clip
go through in chunks of any size (`StreamingEncoder`, `StreamingDecoder`, one pass per
chunk): a chunk's output equals that part of the whole clip's output up to float
rounding. Here the cache is a dict from each layer to what it keeps (the layer's last
input frames, or a mark that the clip's first frame has passed) instead of upstream's
list indexed by a counter; the numbers are the same.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn
import torch.nn.functional as F

from lipbench.checkpoints import load_into, read_state_dict

CHECKPOINT = "Wan2.1_VAE.pth"
UPSTREAM = "Wan-Video/Wan2.1@9737cba9c1c3c4d04b33fcad41c111989865d315"
# Per-channel statistics of the encoder's mean over Wan's training data (upstream's
# WanVAE wrapper): the diffusion models work on (mu - mean) / std.
LATENT_MEAN = (
    -0.7571,
    -0.7089,
    -0.9113,
    0.1075,
    -0.1745,
    0.9653,
    -0.1517,
    1.5508,
    0.4134,
    -0.0715,
    0.5517,
    -0.3632,
    -0.1922,
    -0.9497,
    0.2503,
    -0.2921,
)
LATENT_STD = (
    2.8184,
    1.4541,
    2.3275,
    2.6558,
    1.2196,
    1.7708,
    2.6052,
    2.0743,
    3.2687,
    2.1526,
    2.8652,
    1.5579,
    1.6382,
    1.1253,
    2.8251,
    1.9160,
)


class CausalConv3d(nn.Conv3d):
    """Conv3d padded in space on both sides and in time only before the clip (2p frames
    for a time padding p), so no output sees a later frame. With a `cache` dict the
    frames before this call come from the previous call instead of zeros."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        t, h, w = self.padding
        self.lead = 2 * t  # earlier frames each output needs
        self.space_pad = (w, w, h, h)
        self.padding = (0, 0, 0)  # padding is done in forward, where the cache is known

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        before = 0
        if self.lead and cache is not None:
            past = cache.get(self)
            if past is not None:
                x = torch.cat((past, x), dim=2)
                before = past.shape[2]
            # a copy: a view would keep the whole chunk alive until the next call
            cache[self] = x[:, :, -self.lead :].clone()
        return super().forward(F.pad(x, self.space_pad + (self.lead - before, 0)))


class RMS_norm(nn.Module):
    """Each position's channel vector scaled to length sqrt(dim), then by `gamma`
    (shape (dim, 1, 1, 1) on clips, (dim, 1, 1) on images, as in the file)."""

    def __init__(self, dim: int, images: bool = True):
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones((dim, 1, 1) if images else (dim, 1, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class Upsample2x(nn.Module):
    """Nearest-exact x2 in space, computed in float32 (upstream's fix for bfloat16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=(2.0, 2.0), mode="nearest-exact").type_as(x)


def frames_as_images(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W), batch-major."""
    return x.transpose(1, 2).flatten(0, 1)


def images_as_frames(x: torch.Tensor, t: int) -> torch.Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W)."""
    return x.unflatten(0, (-1, t)).transpose(1, 2)


class Resample(nn.Module):
    """Halves (down) or doubles (up) space with a 2D conv on each frame; the *3d modes
    also halve or double time with a causal time conv (see the module's docstring for
    what they do with the clip's first frame)."""

    def __init__(self, dim: int, mode: str):
        super().__init__()
        if mode not in ("none", "upsample2d", "upsample3d", "downsample2d", "downsample3d"):
            raise ValueError(f"unknown Resample mode {mode!r}")
        self.dim, self.mode = dim, mode
        if mode.startswith("upsample"):
            # the conv also halves the width; the next stage's first block expects that
            self.resample = nn.Sequential(Upsample2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        elif mode.startswith("downsample"):
            # padding right and bottom only, as the file was trained with
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=(2, 2)))
        else:
            self.resample = nn.Identity()
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        if self.mode == "upsample3d":
            x = self._double_time(x, cache)
        x = images_as_frames(self.resample(frames_as_images(x)), x.shape[2])
        if self.mode == "downsample3d":
            x = self._halve_time(x, cache)
        return x

    def _double_time(self, x: torch.Tensor, cache: dict | None) -> torch.Tensor:
        first = cache is None or self not in cache  # this call holds the clip's first frame
        if cache is not None:
            cache[self] = True
        head = x[:, :, :1] if first else x[:, :, :0]
        rest = x[:, :, 1:] if first else x
        if rest.shape[2] == 0:
            return head
        b, c, t, h, w = rest.shape
        # the conv's 2c channels are two frames per input frame: channels [:c] first
        doubled = self.time_conv(rest, cache).reshape(b, 2, c, t, h, w).permute(0, 2, 3, 1, 4, 5)
        return torch.cat((head, doubled.reshape(b, c, 2 * t, h, w)), dim=2)

    def _halve_time(self, x: torch.Tensor, cache: dict | None) -> torch.Tensor:
        # windows of 3 frames at stride 2 starting at the clip's first frame, which itself
        # passes through: frames 0, conv(0,1,2), conv(2,3,4), ...; a later chunk starts
        # its windows at the previous chunk's last frame
        past = cache.get(self) if cache is not None else None
        if cache is not None:
            cache[self] = x[:, :, -1:].clone()
        if past is not None:
            return self.time_conv(torch.cat((past, x), dim=2))
        if x.shape[2] == 1:
            return x
        return torch.cat((x[:, :, :1], self.time_conv(x)), dim=2)


class ResidualBlock(nn.Module):
    """x + (norm, SiLU, causal conv) twice, with a 1x1 causal conv on the skip path
    where widths differ (upstream's `residual` Sequential indices, so the file's keys)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.residual = nn.Sequential(
            RMS_norm(in_dim, images=False),
            nn.SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMS_norm(out_dim, images=False),
            nn.SiLU(),
            nn.Dropout(dropout),
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        skip = self.shortcut(x)
        for layer in self.residual:
            x = layer(x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + skip


class AttentionBlock(nn.Module):
    """Single-head self-attention over the positions of each frame on its own (so no
    cache: it never looks across time)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.norm = RMS_norm(dim)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        b, c, t, h, w = x.shape
        images = self.norm(frames_as_images(x))
        # (B*T, 1 head, H*W positions, 3C) split into q, k, v along channels
        qkv = self.to_qkv(images).reshape(b * t, 1, 3 * c, h * w).permute(0, 1, 3, 2).contiguous()
        q, k, v = qkv.chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v)
        out = self.proj(out.squeeze(1).permute(0, 2, 1).reshape(b * t, c, h, w))
        return images_as_frames(out, t) + x


def run(layers, x: torch.Tensor, cache: dict | None) -> torch.Tensor:
    """`layers` in order, handing the cache to those that keep one."""
    for layer in layers:
        x = layer(x, cache) if isinstance(layer, (CausalConv3d, ResidualBlock, AttentionBlock, Resample)) else layer(x)
    return x


def stages(dims, repeats: int, modes, attn_scales, scale: float, dropout: float) -> nn.Sequential:
    """A coder's stages, stage i from width dims[i] to dims[i + 1]: `repeats`
    ResidualBlocks, each with an AttentionBlock after it where the stage's `scale` (its
    size relative to the coder's input) is in `attn_scales`, then, after every stage
    but the last, a Resample in modes[i] (a downsample halves the scale, an upsample
    doubles it and halves the width)."""
    blocks = []
    for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
        if i > 0 and modes[i - 1].startswith("upsample"):
            in_dim //= 2  # the previous stage's upsample conv halved the width
        for _ in range(repeats):
            blocks.append(ResidualBlock(in_dim, out_dim, dropout))
            if scale in attn_scales:
                blocks.append(AttentionBlock(out_dim))
            in_dim = out_dim
        if i != len(dims) - 2:
            blocks.append(Resample(out_dim, modes[i]))
            scale = scale * 2.0 if modes[i].startswith("upsample") else scale / 2.0
    return nn.Sequential(*blocks)


def middle(dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(dim, dim, dropout), AttentionBlock(dim), ResidualBlock(dim, dim, dropout))


def head(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(RMS_norm(in_dim, images=False), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1))


class Encoder3d(nn.Module):
    """Frames (B, 3, T, H, W) -> (B, z_dim, 1 + (T-1)/4, H/8, W/8) (z_dim here is twice
    the latent width: mean and log-variance)."""

    def __init__(self, dim, z_dim, dim_mult, num_res_blocks, attn_scales, temperal_downsample, dropout):
        super().__init__()
        dims = [dim * u for u in [1, *dim_mult]]
        modes = ["downsample3d" if t else "downsample2d" for t in temperal_downsample]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        self.downsamples = stages(dims, num_res_blocks, modes, attn_scales, 1.0, dropout)
        self.middle = middle(dims[-1], dropout)
        self.head = head(dims[-1], z_dim)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        x = self.conv1(x, cache)
        return run((*self.downsamples, *self.middle, *self.head), x, cache)


class Decoder3d(nn.Module):
    """Latents (B, z_dim, 1 + k, h, w) -> frames (B, 3, 1 + 4k, 8h, 8w)."""

    def __init__(self, dim, z_dim, dim_mult, num_res_blocks, attn_scales, temperal_upsample, dropout):
        super().__init__()
        dims = [dim * u for u in [dim_mult[-1], *dim_mult[::-1]]]
        modes = ["upsample3d" if t else "upsample2d" for t in temperal_upsample]
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1)
        self.middle = middle(dims[0], dropout)
        self.upsamples = stages(dims, num_res_blocks + 1, modes, attn_scales, 1.0 / 2 ** (len(dim_mult) - 2), dropout)
        self.head = head(dims[-1], 3)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        x = self.conv1(x, cache)
        return run((*self.middle, *self.upsamples, *self.head), x, cache)


class WanVAE(nn.Module):
    """Upstream's WanVAE_ (`encoder`, `conv1`, `conv2`, `decoder`) with the WanVAE
    wrapper's latent normalization. Latents in and out are normalized ((mu - mean) /
    std); frames are (B, 3, T, H, W) in [-1, 1]."""

    def __init__(
        self,
        dim=96,
        z_dim=16,
        dim_mult=(1, 2, 4, 4),
        num_res_blocks=2,
        attn_scales=(),
        temperal_downsample=(False, True, True),
        dropout=0.0,
    ):
        super().__init__()
        self.dim, self.z_dim = dim, z_dim
        self.temperal_downsample = list(temperal_downsample)
        self.temperal_upsample = self.temperal_downsample[::-1]
        self.encoder = Encoder3d(
            dim, z_dim * 2, dim_mult, num_res_blocks, attn_scales, self.temperal_downsample, dropout
        )
        self.conv1 = CausalConv3d(z_dim * 2, z_dim * 2, 1)
        self.conv2 = CausalConv3d(z_dim, z_dim, 1)
        self.decoder = Decoder3d(dim, z_dim, dim_mult, num_res_blocks, attn_scales, self.temperal_upsample, dropout)
        # the statistics are Wan's 16 channels'; other widths (tiny test builds) get none
        mean, std = (LATENT_MEAN, LATENT_STD) if z_dim == len(LATENT_MEAN) else ((0.0,) * z_dim, (1.0,) * z_dim)
        # not in the state_dict (the file has no such keys), but moved by .to()
        self.register_buffer("latent_mean", torch.tensor(mean).view(1, z_dim, 1, 1, 1), persistent=False)
        # upstream multiplies by 1 / std (and divides by it to undo), kept for equal rounding
        self.register_buffer("latent_inv_std", 1.0 / torch.tensor(std).view(1, z_dim, 1, 1, 1), persistent=False)

    def _like_weights(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv2.weight
        return x.to(device=weight.device, dtype=weight.dtype)

    def normalize(self, mu: torch.Tensor) -> torch.Tensor:
        return (mu - self.latent_mean) * self.latent_inv_std

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.latent_inv_std + self.latent_mean

    def encode_chunk(self, frames: torch.Tensor, cache: dict) -> torch.Tensor:
        """The next frames of a clip (1 + 4k for the first chunk, 4k after) -> their
        un-normalized mean latents, in one pass; `cache` carries the clip's state."""
        mu, _log_var = self.conv1(self.encoder(frames, cache)).chunk(2, dim=1)
        return mu

    def decode_chunk(self, latents: torch.Tensor, cache: dict) -> torch.Tensor:
        """The next un-normalized latents of a clip -> their frames, unclamped, in one pass."""
        return self.decoder(self.conv2(latents), cache)

    @torch.no_grad()
    def encode_mu(self, video: torch.Tensor) -> torch.Tensor:
        """Frames (B, 3, 1 + 4k, H, W) -> the encoder's mean (B, z, 1 + k, H/8, W/8),
        not normalized; run as upstream: the first frame, then groups of 4."""
        video = self._like_weights(_check(video, 3, "video", first=True))
        cache: dict = {}
        parts = [self.encoder(video[:, :, :1], cache)]
        parts += [self.encoder(video[:, :, s : s + 4], cache) for s in range(1, video.shape[2], 4)]
        mu, _log_var = self.conv1(torch.cat(parts, dim=2)).chunk(2, dim=1)
        return mu

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Frames (B, 3, 1 + 4k, H, W) in [-1, 1] -> normalized latents (B, z, 1 + k, H/8, W/8)."""
        return self.normalize(self.encode_mu(video))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalized latents (B, z, n, h, w) -> frames (B, 3, 1 + 4(n-1), 8h, 8w) in
        [-1, 1]; run as upstream: one latent frame at a time."""
        x = self.conv2(self.denormalize(self._like_weights(_check(latents, self.z_dim, "latents"))))
        cache: dict = {}
        frames = torch.cat([self.decoder(x[:, :, i : i + 1], cache) for i in range(x.shape[2])], dim=2)
        return frames.clamp_(-1, 1)

    def streaming_encoder(self) -> "StreamingEncoder":
        return StreamingEncoder(self)

    def streaming_decoder(self) -> "StreamingDecoder":
        return StreamingDecoder(self)


def _check(x: torch.Tensor, channels: int, what: str, first: bool = False, later: bool = False) -> torch.Tensor:
    """x must be (B, channels, T, H, W); a clip's frames (`first`: its first chunk,
    `later`: a later one) must come in 1 + 4k and 4k respectively."""
    if x.ndim != 5 or x.shape[1] != channels:
        raise ValueError(f"Wan VAE {what} must be (B, {channels}, T, H, W); got {tuple(x.shape)}")
    t = x.shape[2]
    if first and (t - 1) % 4:
        raise ValueError(f"Wan VAE {what}: the first chunk of a clip needs 1 + 4k frames; got {t}")
    if later and (t == 0 or t % 4):
        raise ValueError(f"Wan VAE {what}: a later chunk needs 4k frames (k >= 1); got {t}")
    if t == 0:
        raise ValueError(f"Wan VAE {what}: no frames")
    return x


class _Stream:
    """One clip through `vae` chunk by chunk; `cache` carries each layer's state from
    one push to the next, `pushed` counts the time steps pushed so far."""

    def __init__(self, vae: WanVAE):
        self.vae = vae
        self.reset()

    def reset(self) -> None:
        """Start a new clip: forget every layer's cached frames."""
        self.cache: dict = {}
        self.pushed = 0


class StreamingEncoder(_Stream):
    """Encodes a clip as its frames arrive: `push` 1 + 4k frames first, then 4k at a
    time; each push returns the normalized latents of those frames (1 + k, then k), and
    the pushes' outputs, concatenated, equal `encode` of the whole clip up to float
    rounding (each chunk runs in one pass, `encode` in upstream's groups of 4)."""

    @torch.no_grad()
    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """The clip's next frames (B, 3, t, H, W) -> their latents (B, z, t', H/8, W/8)."""
        _check(frames, 3, "frames", first=self.pushed == 0, later=self.pushed > 0)
        mu = self.vae.encode_chunk(self.vae._like_weights(frames), self.cache)
        self.pushed += frames.shape[2]
        return self.vae.normalize(mu)


class StreamingDecoder(_Stream):
    """Decodes a clip's latents as they arrive, any number at a time: the first push of
    n latents returns 1 + 4(n-1) frames, later pushes 4n; the pushes' outputs,
    concatenated, equal `decode` of the whole clip up to float rounding."""

    @torch.no_grad()
    def push(self, latents: torch.Tensor) -> torch.Tensor:
        """The clip's next normalized latents (B, z, n, h, w) -> frames (B, 3, n', 8h, 8w) in [-1, 1]."""
        _check(latents, self.vae.z_dim, "latents")
        z = self.vae.denormalize(self.vae._like_weights(latents))
        frames = self.vae.decode_chunk(z, self.cache)
        self.pushed += latents.shape[2]
        return frames.clamp_(-1, 1)


def load_wan_vae(path, device: str = "cpu", dtype: torch.dtype = torch.float32, **config) -> WanVAE:
    """`Wan2.1_VAE.pth` (a plain state_dict: encoder.*, conv1.*, conv2.*, decoder.*),
    loaded strictly; a file of another network or a damaged one raises BadWeightError
    naming it. `config`: WanVAE's arguments, for files of other sizes (tests)."""
    state = read_state_dict(path, "the Wan2.1 VAE")
    net = load_into(
        WanVAE(**config),
        state,
        path,
        "a Wan2.1 VAE state_dict (Wan-AI/Wan2.1 Wan2.1_VAE.pth: encoder.*, conv1.*, conv2.*, decoder.*)",
        "Wan2.1 VAE",
    )
    return net.to(device=device, dtype=dtype).eval()


# the published file's configuration: WanVAE's defaults (upstream's `_video_vae`)
CONFIG = {name: p.default for name, p in inspect.signature(WanVAE.__init__).parameters.items() if name != "self"}


def random_state_dict(seed: int = 0, **config) -> dict[str, torch.Tensor]:
    """Seeded weights in the layout of WanVAE(**config) (default: the published file's),
    drawn with NumPy (same on every machine). Convolutions get gain 1 (variance 1 /
    fan_in): every block input is RMS-normalized, so the scale does not compound, and
    the decoder's last conv is scaled down by 4 more, so its output stays inside [-1, 1],
    where the final clamp does not flatten it and hide differences (measured: std 0.14
    at the tests' dim=8 build, 0.13 at full size, nothing clamped; unscaled, dim=8 gave
    std 0.5 with 11% of pixels clamped). The RMS_norm scales (`gamma`, which the
    generic rule would draw as zero-mean conv weights of fan-in 1) are drawn near 1
    instead, as trained norms are."""
    import numpy as np

    from lipbench.random_weights import randomized, seeded_state

    with torch.device("meta"):  # shapes only: the full build has 127M parameters to initialize otherwise
        shapes = WanVAE(**config).state_dict()
    state = randomized(shapes, seed, gain=1.0)

    def near_one(key, shape, rng):
        return rng.uniform(0.8, 1.2, shape)

    gammas = [k for k in state if k.endswith(".gamma")]
    state.update(seeded_state(state, np.random.default_rng(seed + 1), near_one, keys=gammas))
    state["decoder.head.2.weight"] = state["decoder.head.2.weight"] * 0.25
    return state
