"""TAEHV, the tiny video autoencoder for Wan2.1 latents (madebyollin/taehv, `taew2_1.pth`).

Lip Forcing decodes its latents with this network by default (fp16, streaming) instead
of the Wan2.1 VAE (../shared/MODELS.md). It is written here with upstream's module
names and layout (`encoder.<i>...`, `decoder.<i>...`, indices as in upstream's
nn.Sequential), so the published file loads with strict=True; read against
madebyollin/taehv commit 1f14a568f24bf8811e0a0ac601613e04fc1581e8 (taehv.py, the base
architecture with Wan2.1's settings: 16 latent channels, no pixel shuffle, time
upscaling x4, space x8).

Time. The decoder works on each latent frame with 2D convolutions; the only links
between frames are the MemBlocks, which see their own input of the previous frame
(zeros for the first), and TGrow, which turns one frame into `stride` frames. So T
latent frames make 4T frames, of which the first 3 are dropped (upstream trims them to
line up with the Wan VAE's 1 + 4(T - 1) frames): 21 latents -> 81 frames.

Streaming. `StreamingDecoder` decodes latent frames in chunks of any size, carrying
each MemBlock's last input frame from one chunk to the next (upstream's sequential
decode keeps the same per-block memory, one frame at a time). Within a chunk frames run
in parallel, as upstream's parallel decode. Chunked output equals whole-clip output.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch
import torch.nn as nn

from lipbench.checkpoints import load_into, read_state_dict

CHECKPOINT = "taew2_1.pth"
UPSTREAM = "madebyollin/taehv@1f14a568f24bf8811e0a0ac601613e04fc1581e8"
LATENT_CHANNELS = 16  # Wan2.1's latent space
IMAGE_CHANNELS = 3


def conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    """3x3, size-preserving (unless a stride is given): every spatial conv of TAEHV."""
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """Soft limit to about +-3: the decoder was trained on latents in that range, and
    a sampler's outliers would otherwise blow up through the ReLU stacks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 3 * torch.tanh(x / 3)


class MemBlock(nn.Module):
    """Residual block that also sees the same block's input one frame earlier (`past`);
    the network's only memory across time."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.conv = nn.Sequential(
            conv(2 * n_in, n_out), nn.ReLU(inplace=True), conv(n_out, n_out), nn.ReLU(inplace=True), conv(n_out, n_out)
        )
        # a projection only where widths differ (never in taew2_1), so the file has no key for it otherwise
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(torch.cat((x, past), dim=1)) + self.skip(x))


class TPool(nn.Module):
    """Encoder: `stride` consecutive frames, stacked on channels, mixed into one frame."""

    def __init__(self, n_f: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n_f * stride, n_f, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        # rows are batch-major, time-minor, so each group of `stride` rows is one clip's consecutive frames
        return self.conv(x.reshape(nt // self.stride, self.stride * c, h, w))


class TGrow(nn.Module):
    """Decoder: one frame into `stride` frames (channel group k is the k-th new frame)."""

    def __init__(self, n_f: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n_f, n_f * stride, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        return self.conv(x).reshape(nt * self.stride, c, h, w)


def run_blocks(blocks: nn.Sequential, x: torch.Tensor, memory: list | None = None) -> torch.Tensor:
    """`blocks` on a clip x (N, T, C, H, W), all frames at once, block after block.

    `memory`: one entry per block, the MemBlocks' input frame that precedes x (None:
    the clip starts here, zeros as upstream). When given, it is updated to x's last
    frames, so the next chunk continues this one exactly."""
    n = x.shape[0]
    h = x.flatten(0, 1)
    for i, block in enumerate(blocks):
        if isinstance(block, MemBlock):
            frames = h.unflatten(0, (n, -1))
            before = memory[i] if memory is not None and memory[i] is not None else torch.zeros_like(frames[:, 0])
            past = torch.cat((before.unsqueeze(1), frames[:, :-1]), dim=1).flatten(0, 1)
            if memory is not None:
                memory[i] = frames[:, -1].clone()  # a copy: a view would keep the whole chunk alive
            h = block(h, past)
        elif isinstance(block, TPool) and memory is not None and block.stride > 1:
            raise ValueError("chunked runs through a TPool are not supported; encode whole clips")
        else:
            h = block(h)
    return h.unflatten(0, (n, -1))


class TAEHV(nn.Module):
    """The taew2_1 network: `encoder` (frames -> latents, /4 in time, /8 in space) and
    `decoder` (latents -> frames); upstream's TAEHV(checkpoint_path=None) layout."""

    def __init__(
        self,
        latent_channels: int = LATENT_CHANNELS,
        encoder_time_downscale=(True, True, False),
        decoder_time_upscale=(False, True, True),
        decoder_space_upscale=(True, True, True),
    ):
        super().__init__()
        self.latent_channels = latent_channels
        self.image_channels = IMAGE_CHANNELS
        pools = [2 if on else 1 for on in encoder_time_downscale]
        grows = [2 if on else 1 for on in decoder_time_upscale]
        ups = [2 if on else 1 for on in decoder_space_upscale]

        def encoder_stage(stride):
            return [
                TPool(64, stride),
                conv(64, 64, stride=2, bias=False),
                MemBlock(64, 64),
                MemBlock(64, 64),
                MemBlock(64, 64),
            ]

        self.encoder = nn.Sequential(
            conv(IMAGE_CHANNELS, 64),
            nn.ReLU(inplace=True),
            *encoder_stage(pools[0]),
            *encoder_stage(pools[1]),
            *encoder_stage(pools[2]),
            conv(64, latent_channels),
        )
        widths = [256, 128, 64, 64]

        def decoder_stage(k):
            w = widths[k]
            return [
                MemBlock(w, w),
                MemBlock(w, w),
                MemBlock(w, w),
                nn.Upsample(scale_factor=ups[k]),
                TGrow(w, grows[k]),
                conv(w, widths[k + 1], bias=False),
            ]

        self.decoder = nn.Sequential(
            Clamp(),
            conv(latent_channels, widths[0]),
            nn.ReLU(inplace=True),
            *decoder_stage(0),
            *decoder_stage(1),
            *decoder_stage(2),
            nn.ReLU(inplace=True),
            conv(widths[3], IMAGE_CHANNELS),
        )
        self.t_downscale = 2 ** sum(b.stride == 2 for b in self.encoder if isinstance(b, TPool))
        self.t_upscale = 2 ** sum(b.stride == 2 for b in self.decoder if isinstance(b, TGrow))
        # the decoder's first frames precede the Wan VAE's first frame; upstream drops them
        self.frames_to_trim = self.t_upscale - 1

    def _like_weights(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.decoder[1].weight
        return x.to(device=weight.device, dtype=weight.dtype)

    @torch.no_grad()
    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (N, T, 16, h, w) -> RGB frames (N, 4T - 3, 3, 8h, 8w) in [0, 1]."""
        _check(latents, self.latent_channels, "latents")
        frames = run_blocks(self.decoder, self._like_weights(latents)).clamp(0, 1)
        return frames[:, self.frames_to_trim :]

    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """RGB frames (N, T, 3, H, W) in [0, 1] -> latents (N, ceil(T / 4), 16, H/8, W/8);
        the last frame repeated to fill the final group of 4, as upstream."""
        _check(frames, self.image_channels, "frames")
        frames = self._like_weights(frames)
        short = -frames.shape[1] % self.t_downscale
        if short:
            frames = torch.cat((frames, frames[:, -1:].expand(-1, short, -1, -1, -1)), dim=1)
        return run_blocks(self.encoder, frames)

    def streaming_decoder(self) -> "StreamingDecoder":
        return StreamingDecoder(self)


def _check(x: torch.Tensor, channels: int, what: str) -> None:
    if x.ndim != 5 or x.shape[2] != channels:
        raise ValueError(f"TAEHV {what} must be (N, T, {channels}, H, W); got {tuple(x.shape)}")


class StreamingDecoder:
    """Decodes latent frames as they arrive, in chunks of any size (1 latent frame, then
    3, ...); the frames returned, concatenated, equal `decode_video` of the whole clip.

    The first chunk returns 4k - 3 frames for its k latent frames, later ones 4k."""

    def __init__(self, taehv: TAEHV):
        self.taehv = taehv
        self.reset()

    def reset(self) -> None:
        """Start a new clip: forget the MemBlocks' previous frames."""
        self.memory: list = [None] * len(self.taehv.decoder)
        self.to_trim = self.taehv.frames_to_trim
        self.latent_frames = 0

    @torch.no_grad()
    def push(self, latents: torch.Tensor) -> torch.Tensor:
        """The next chunk of latents (N, k, 16, h, w) -> its frames (N, k', 3, 8h, 8w)."""
        _check(latents, self.taehv.latent_channels, "latents")
        frames = run_blocks(self.taehv.decoder, self.taehv._like_weights(latents), self.memory).clamp(0, 1)
        trim = min(self.to_trim, frames.shape[1])
        self.to_trim -= trim
        self.latent_frames += latents.shape[1]
        return frames[:, trim:]


def stream_decode(taehv: TAEHV, chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Yields each chunk's decoded frames (N, k', 3, H, W) as soon as it is decoded."""
    decoder = StreamingDecoder(taehv)
    for chunk in chunks:
        frames = decoder.push(chunk)
        if frames.shape[1]:
            yield frames


def _fit_tgrow(net: TAEHV, state: dict) -> dict:
    """Upstream loads every file through the same fix: a TGrow weight with more output
    rows than the network's (a file trained with time upscaling where this network has
    none) keeps its last rows, the last time step's. Done here too, so any file upstream
    loads loads here; other shapes are left for the strict check to refuse."""
    wanted = net.state_dict()
    state = dict(state)
    for i, block in enumerate(net.decoder):
        key = f"decoder.{i}.conv.weight"
        if not isinstance(block, TGrow) or not isinstance(state.get(key), torch.Tensor):
            continue
        have, need = state[key].shape, wanted[key].shape
        if len(have) == 4 and have[1:] == need[1:] and have[0] > need[0] and have[0] % need[0] == 0:
            state[key] = state[key][-need[0] :]
    return state


def load_taehv(path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> TAEHV:
    """`taew2_1.pth` (a plain state_dict, encoder and decoder), loaded strictly; a file
    of another network or a damaged one raises BadWeightError naming it."""
    state = read_state_dict(path, "TAEHV")
    net = TAEHV()
    net = load_into(
        net,
        _fit_tgrow(net, state),
        path,
        "a TAEHV taew2_1 state_dict (madebyollin/taehv: encoder.*, decoder.*)",
        "TAEHV",
    )
    return net.to(device=device, dtype=dtype).eval()


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights in taew2_1's keys and shapes, drawn with NumPy (same on every
    machine). The last conv's bias is centred on 0.5 and its weights scaled down so
    the output spreads inside [0, 1]: with zero-mean outputs the final clamp would
    flatten half the pixels and hide differences."""
    from lipbench.random_weights import randomized

    net = TAEHV()
    state = randomized(net.state_dict(), seed, gain=1.0)
    last = f"decoder.{len(net.decoder) - 1}"
    state[f"{last}.weight"] = state[f"{last}.weight"] * 0.25
    state[f"{last}.bias"] = state[f"{last}.bias"] + 0.5
    return state
