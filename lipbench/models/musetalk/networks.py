"""MuseTalk 1.5's networks: the UNet, the VAE, the whisper-tiny encoder, the audio
positional encoding, built with diffusers / transformers from their configs.

Upstream (TMElyralab/MuseTalk 0a89dec, `musetalk/models/unet.py`, `musetalk/models/vae.py`,
`musetalk/utils/utils.py load_all_model`, the scripts' `WhisperModel.from_pretrained`):

- UNet: diffusers `UNet2DConditionModel(**musetalk.json)` with `musetalkV15/unet.pth`
  (a plain state_dict in diffusers' key names) loaded strictly; called once per frame
  at timestep 0 on 8 channels (masked + reference latents, 32 x 32 for 256 px crops)
  with the audio features (50 tokens of 384 per frame, after the positional encoding)
  as `encoder_hidden_states`.
- VAE: diffusers `AutoencoderKL.from_pretrained("models/sd-vae")` (stabilityai/sd-vae-ft-mse:
  config.json + diffusion_pytorch_model.bin), scaling factor 0.18215 (diffusers' default,
  the file's config does not set it).
- Whisper: transformers `WhisperModel.from_pretrained("models/whisper")` (openai/whisper-tiny:
  config.json + pytorch_model.bin + preprocessor_config.json); only the encoder runs.
- PositionalEncoding(d_model=384): sinusoidal, max_len 5000, added along the 50 audio
  tokens of each frame.

lipbench reads the files itself (`torch.load` of the state dicts, strict key/shape
checks with a clear error) instead of `from_pretrained`, so a wrong file stops a run
before any work; the networks are diffusers' / transformers' own classes. The VAE file
published in 2022 names its attention layers `query`/`key`/`value`/`proj_attn` (diffusers
0.4 names); they are renamed to today's `to_q`/`to_k`/`to_v`/`to_out.0` as diffusers'
own loader does; files with today's names load as they are. Whisper's file holds
`WhisperForConditionalGeneration` (keys `model.encoder.*`, `model.decoder.*`, maybe
`proj_out.weight`, tied to the token embedding): the `model.` prefix is dropped and
`proj_out` ignored, as `WhisperModel.from_pretrained` does.

Configs: `UNET_CONFIG` is musetalkV15/musetalk.json's values, `VAE_CONFIG`
sd-vae-ft-mse's config.json, `WHISPER_CONFIG` whisper-tiny's architecture fields (the
published files could not be downloaded here: their values were transcribed from copies of the
published configs; when the files are present, their own configs are used). The `TINY_*`
configs keep every layer kind at small widths for CPU tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 8,  # diffusers' old name for the number of heads
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 384,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 8,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
TINY_UNET_CONFIG = {
    **UNET_CONFIG,
    "block_out_channels": [32, 32, 64, 64],
    "norm_num_groups": 8,
    "layers_per_block": 1,
    "cross_attention_dim": 32,
}

VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 256,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
TINY_VAE_CONFIG = {**VAE_CONFIG, "block_out_channels": [16, 16, 32, 32], "norm_num_groups": 8, "layers_per_block": 1}
SCALING_FACTOR = 0.18215  # diffusers' AutoencoderKL default; sd-vae-ft-mse's config leaves it unset

WHISPER_CONFIG = {
    "model_type": "whisper",
    "architectures": ["WhisperForConditionalGeneration"],
    "activation_function": "gelu",
    "d_model": 384,
    "encoder_layers": 4,
    "encoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_layers": 4,
    "decoder_attention_heads": 6,
    "decoder_ffn_dim": 1536,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "vocab_size": 51865,
    "pad_token_id": 50257,
    "bos_token_id": 50257,
    "eos_token_id": 50257,
    "decoder_start_token_id": 50258,
    "scale_embedding": False,
}
# the encoder input stays 80 mel bins x 3000 frames (30 s): every layer kind, narrow
TINY_WHISPER_CONFIG = {
    **WHISPER_CONFIG,
    "d_model": 32,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_layers": 1,
    "decoder_attention_heads": 2,
    "decoder_ffn_dim": 64,
    "max_target_positions": 16,
    "vocab_size": 64,
    "pad_token_id": 1,
    "bos_token_id": 1,
    "eos_token_id": 1,
    "decoder_start_token_id": 2,
}
PREPROCESSOR_CONFIG = {  # whisper-tiny's preprocessor_config.json (WhisperFeatureExtractor)
    "chunk_length": 30,
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 80,
    "hop_length": 160,
    "n_fft": 400,
    "n_samples": 480000,
    "nb_max_frames": 3000,
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "WhisperProcessor",
    "return_attention_mask": False,
    "sampling_rate": 16000,
}

SIZES = {
    "real": (UNET_CONFIG, VAE_CONFIG, WHISPER_CONFIG),
    "tiny": (TINY_UNET_CONFIG, TINY_VAE_CONFIG, TINY_WHISPER_CONFIG),
}
HOST_DRAW_LIMIT = 50_000_000  # parameters: above this, random weights are drawn with torch on the device


# -- builders ----------------------------------------------------------------------


def build_unet(config: dict):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")})


def build_vae(config: dict):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**{k: v for k, v in config.items() if not k.startswith("_")})


def whisper_config(config: dict):
    from transformers import WhisperConfig

    return WhisperConfig.from_dict({k: v for k, v in config.items() if not k.startswith("_")})


def build_whisper(config: dict):
    """transformers' WhisperModel (encoder and decoder, as upstream holds it)."""
    from transformers import WhisperModel

    return WhisperModel(whisper_config(config))


def parameter_counts(size: str = "real") -> dict[str, int]:
    """Learned parameters of the networks that run (UNet, VAE, whisper encoder), on the meta device."""
    unet_cfg, vae_cfg, whisper_cfg = SIZES[size]
    with torch.device("meta"):
        return {
            "unet": _count(build_unet(unet_cfg)),
            "vae": _count(build_vae(vae_cfg)),
            "whisper_encoder": _count(build_whisper(whisper_cfg).encoder),
        }


def place(net: nn.Module, device, dtype) -> nn.Module:
    """`net` on `device` in `dtype`, in eval mode without gradients (the dtype cast only
    when needed: diffusers logs a note on every cast)."""
    net = net.to(device)
    if any(p.dtype != dtype for p in net.parameters()):
        net = net.to(dtype=dtype)
    return net.eval().requires_grad_(False)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class PositionalEncoding(nn.Module):
    """Sinusoidal positions added to each frame's audio tokens: sin on even features,
    cos on odd ones, frequencies 10000 ** (-2i / d_model) (upstream's, max_len 5000)."""

    def __init__(self, d_model: int = 384, max_len: int = 5000):
        super().__init__()
        positions = torch.arange(max_len, dtype=torch.float32)[:, None]
        rates = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(positions * rates)
        table[:, 1::2] = torch.cos(positions * rates)
        self.register_buffer("pe", table[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1]].to(x.device)


@torch.no_grad()
def unet_step(unet, pe: PositionalEncoding, latents: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """One MuseTalk step: (B, 8, 32, 32) latents, (B, 50, 384) whisper tokens -> (B, 4, 32, 32)."""
    audio = pe(audio)
    latents = latents.to(dtype=unet.dtype)
    timestep = torch.tensor([0], device=latents.device)
    return unet(latents, timestep, encoder_hidden_states=audio).sample


# -- seeded random weights ---------------------------------------------------------


def random_values(state: dict, seed: int) -> dict[str, torch.Tensor]:
    """Seeded values (NumPy PCG64, sorted key order, the same on every machine) for the
    keys and shapes of `state`: weights N(0, 1/fan_in), biases small, norm scales near 1,
    whisper's fixed sinusoidal positions kept."""
    from lipbench.random_weights import seeded_state

    def draw(key, shape, rng):
        if key.endswith("embed_positions.weight") and "encoder" in key:
            return None  # transformers fills these with the fixed sinusoids
        if len(shape) <= 1 and key.endswith("weight"):  # norm scales
            return 1.0 + 0.05 * rng.standard_normal(shape)
        if len(shape) <= 1:
            return 0.02 * rng.standard_normal(shape)
        return rng.standard_normal(shape) / np.sqrt(int(np.prod(shape[1:])))

    out = seeded_state(state, np.random.default_rng(seed), draw, keys=sorted(state))
    return {k: out[k] for k in state}


def fill_random_(module: nn.Module, seed: int) -> nn.Module:
    """The same scheme drawn with torch's seeded generator on the module's device (fast
    for the real 850M-parameter UNet; reproducible on one torch version and device)."""
    device = next(module.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for key, p in module.named_parameters():
            if key.endswith("embed_positions.weight") and "encoder" in key:
                continue
            if p.ndim <= 1:
                if key.endswith("weight"):
                    p.normal_(1.0, 0.05, generator=generator)
                else:
                    p.normal_(0.0, 0.02, generator=generator)
            else:
                p.normal_(0.0, 1.0 / math.sqrt(math.prod(p.shape[1:])), generator=generator)
    return module


def random_unet_state_dict(seed: int = 0, config: dict = TINY_UNET_CONFIG) -> dict[str, torch.Tensor]:
    return random_values(build_unet(config).state_dict(), seed)


def random_vae_state_dict(seed: int = 0, config: dict = TINY_VAE_CONFIG) -> dict[str, torch.Tensor]:
    return random_values(build_vae(config).state_dict(), seed)


def random_whisper_state_dict(seed: int = 0, config: dict = TINY_WHISPER_CONFIG) -> dict[str, torch.Tensor]:
    return random_values(build_whisper(config).state_dict(), seed)


def random_networks(size: str, seed: int, device: str, dtype: torch.dtype):
    """(unet, vae, whisper) at `size` with seeded random weights, on `device` in `dtype`."""
    unet_cfg, vae_cfg, whisper_cfg = SIZES[size]
    nets = []
    for build, cfg, offset in ((build_unet, unet_cfg, 0), (build_vae, vae_cfg, 1), (build_whisper, whisper_cfg, 2)):
        if size == "tiny" or _meta_count(build, cfg) <= HOST_DRAW_LIMIT:
            net = build(cfg)
            net.load_state_dict(random_values(net.state_dict(), seed + offset), strict=True)
        else:
            with torch.device(device):
                net = build(cfg)
            net = fill_random_(place(net, device, dtype), seed + offset)
        nets.append(place(net, device, dtype))
    return tuple(nets)


def _meta_count(build, cfg) -> int:
    with torch.device("meta"):
        return _count(build(cfg))


# -- reading the published files ---------------------------------------------------


def _bad(path, why: str):
    from lipbench.weights import BadWeightError

    return BadWeightError(path, why, "mismatch")


def read_json(path) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise _bad(path, f"not a JSON config ({exc})") from None
    if not isinstance(value, dict):
        raise _bad(path, "a config file holds one JSON object")
    return value


def read_folder_file(path):
    """A folder's JSON config (the registry's loader for config files)."""
    return read_json(path)


def load_unet(path, config_path=None, device: str = "cpu", dtype=torch.float32):
    """musetalkV15/unet.pth (a state_dict) into UNet2DConditionModel(**musetalk.json);
    `config_path` defaults to musetalk.json beside the file."""
    from lipbench.checkpoints import load_into, read_state_dict

    config = read_json(config_path or Path(path).with_name("musetalk.json"))
    state = read_state_dict(path, "MuseTalk's musetalkV15/unet.pth")
    net = load_into(
        build_unet(config), state, path, "MuseTalk 1.5's UNet state_dict (musetalkV15/unet.pth)", "MuseTalk UNet"
    )
    return place(net, device, dtype)


def load_unet_file(path):
    """Registry loader: the UNet on the CPU."""
    return load_unet(path)


_LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def modern_vae_keys(state: dict) -> dict:
    """diffusers 0.4 attention names (`...attentions.0.query.weight`) -> today's (`to_q`)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if "attentions" in parts and len(parts) >= 2 and parts[-2] in _LEGACY_ATTENTION:
            key = ".".join(parts[:-2] + [_LEGACY_ATTENTION[parts[-2]], parts[-1]])
            if value.ndim == 4:  # some old files store the projections as 1x1 convs
                value = value[:, :, 0, 0]
        out[key] = value
    return out


def _load_folder(folder, weights_name: str, build, fix_keys, network: str, device, dtype):
    """A Hugging Face folder (config.json + a torch state_dict file) into `build(config)`,
    strictly, after `fix_keys`; errors name the file and what it should hold."""
    from lipbench.checkpoints import load_into, read_state_dict

    folder = Path(folder)
    path = folder / weights_name
    config = read_json(folder / "config.json")
    state = fix_keys(read_state_dict(path, f"{folder.name}'s {weights_name}"))
    net = load_into(build(config), state, path, f"a {network} state_dict fitting {folder.name}/config.json", network)
    return place(net, device, dtype)


def load_vae(folder, device: str = "cpu", dtype=torch.float32, weights_name: str = "diffusion_pytorch_model.bin"):
    """sd-vae-ft-mse/: config.json + diffusion_pytorch_model.bin into AutoencoderKL."""
    return _load_folder(folder, weights_name, build_vae, modern_vae_keys, "AutoencoderKL", device, dtype)


def load_vae_file(path):
    return load_vae(Path(path).parent, weights_name=Path(path).name)


def whisper_model_keys(state: dict) -> dict:
    """WhisperForConditionalGeneration's keys -> WhisperModel's (drop `model.`, `proj_out`)."""
    if any(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    return {k: v for k, v in state.items() if not k.startswith("proj_out.")}


def load_whisper(folder, device: str = "cpu", dtype=torch.float32, weights_name: str = "pytorch_model.bin"):
    """whisper-tiny/: config.json + pytorch_model.bin into transformers' WhisperModel."""
    return _load_folder(folder, weights_name, build_whisper, whisper_model_keys, "WhisperModel", device, dtype)


def load_whisper_file(path):
    return load_whisper(Path(path).parent, weights_name=Path(path).name)


# -- stand-in files in the published formats ---------------------------------------


def _write_json(path, value: dict) -> None:
    Path(path).write_text(json.dumps(value, indent=2) + "\n")


def write_unet_config(path, size: str = "real") -> None:
    _write_json(path, {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0.dev0", **SIZES[size][0]})


def write_unet(path, seed: int = 0, size: str = "real") -> None:
    """A seeded unet.pth (plain state_dict, float32 as published)."""
    config = SIZES[size][0]
    if size == "tiny":
        state = random_unet_state_dict(seed, config)
    else:
        state = fill_random_(build_unet(config), seed).state_dict()
    torch.save(state, path)


def write_vae_config(path, size: str = "real") -> None:
    _write_json(path, {"_class_name": "AutoencoderKL", "_diffusers_version": "0.4.2", **SIZES[size][1]})


def legacy_vae_keys(state: dict) -> dict:
    """Today's attention names -> diffusers 0.4's, as in the published .bin."""
    back = {v: k for k, v in _LEGACY_ATTENTION.items()}
    out = {}
    for key, value in state.items():
        for new, old in back.items():
            marker = f".{new}."
            if ".attentions." in key and marker in key:
                key = key.replace(marker, f".{old}.")
                break
        out[key] = value
    return out


def write_vae(path, seed: int = 0, size: str = "real") -> None:
    """A seeded diffusion_pytorch_model.bin with the published file's (diffusers 0.4) key names."""
    torch.save(legacy_vae_keys(random_vae_state_dict(seed, SIZES[size][1])), path)


def write_whisper_config(path, size: str = "real") -> None:
    _write_json(path, {**SIZES[size][2], "torch_dtype": "float32"})


def write_whisper(path, seed: int = 0, size: str = "real") -> None:
    """A seeded pytorch_model.bin in WhisperForConditionalGeneration's key names."""
    state = random_whisper_state_dict(seed, SIZES[size][2])
    torch.save({f"model.{k}": v for k, v in state.items()}, path)


def write_preprocessor_config(path) -> None:
    _write_json(path, PREPROCESSOR_CONFIG)


def write_folder(folder, seed: int = 0, size: str = "tiny") -> dict[str, Path]:
    """Every MuseTalk network file (not BiSeNet) at `size` under `folder`, in the published
    layout (musetalkV15/, sd-vae-ft-mse/, whisper-tiny/): for tests and smoke runs."""
    folder = Path(folder)
    files = {
        "musetalkV15/musetalk.json": lambda p: write_unet_config(p, size),
        "musetalkV15/unet.pth": lambda p: write_unet(p, seed, size),
        "sd-vae-ft-mse/config.json": lambda p: write_vae_config(p, size),
        "sd-vae-ft-mse/diffusion_pytorch_model.bin": lambda p: write_vae(p, seed + 1, size),
        "whisper-tiny/config.json": lambda p: write_whisper_config(p, size),
        "whisper-tiny/pytorch_model.bin": lambda p: write_whisper(p, seed + 2, size),
        "whisper-tiny/preprocessor_config.json": write_preprocessor_config,
    }
    out = {}
    for name, write in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        write(target)
        out[name] = target
    return out
