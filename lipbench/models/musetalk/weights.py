"""The files MuseTalk 1.5 loads, for lipbench's weight registry (`lipbench weights list`).

Folder layout under the weights directory (upstream's `models/` with the Hugging Face
repositories' own folder names): `musetalkV15/` (TMElyralab/MuseTalk), `sd-vae-ft-mse/`
(stabilityai/sd-vae-ft-mse; upstream's download script puts it in `models/sd-vae`),
`whisper-tiny/` (openai/whisper-tiny; upstream's `models/whisper`), and face parsing's
`79999_iter.pth` (upstream's `models/face-parse-bisent/`). Upstream also reads
torchvision's `resnet18-5c106cde.pth` into BiSeNet's trunk, but `79999_iter.pth`
overwrites all of it, so lipbench does not read it. S3FD's `s3fd.pth` (faces: "s3fd")
is registered by the Wav2Lip adapter (the same face-alignment file).

Stand-ins (`lipbench weights random`): seeded files of the real architectures in the
published formats (`stand_in`); the UNet's is 3.4 GB like the real one, so it is
written only when named (`large`).
"""

from __future__ import annotations

from lipbench.weight_file import WeightFile

NEEDED_BY = ("musetalk",)
_HF = "https://huggingface.co"
_NET = "lipbench.models.musetalk.networks"
_STAND = "lipbench.models.musetalk.weights"


def _entry(name: str, description: str, source: str, url: str, loader: str, stand_in: str, **extra) -> WeightFile:
    return WeightFile(name, description, NEEDED_BY, source, url=url, loader=loader, stand_in=stand_in, **extra)


WEIGHT_FILES = (
    _entry(
        "musetalkV15/unet.pth",
        "MuseTalk 1.5 UNet (plain float32 state_dict of diffusers' UNet2DConditionModel, ~3.4 GB)",
        "TMElyralab/MuseTalk download_weights.sh -> HF TMElyralab/MuseTalk",
        f"{_HF}/TMElyralab/MuseTalk/resolve/main/musetalkV15/unet.pth",
        f"{_NET}:load_unet_file",
        f"{_STAND}:stand_in_unet",
        large=True,
    ),
    _entry(
        "musetalkV15/musetalk.json",
        "MuseTalk 1.5 UNet config (UNet2DConditionModel kwargs)",
        "TMElyralab/MuseTalk download_weights.sh -> HF TMElyralab/MuseTalk",
        f"{_HF}/TMElyralab/MuseTalk/resolve/main/musetalkV15/musetalk.json",
        f"{_NET}:read_folder_file",
        f"{_STAND}:stand_in_unet_config",
    ),
    _entry(
        "sd-vae-ft-mse/config.json",
        "sd-vae-ft-mse AutoencoderKL config",
        "HF stabilityai/sd-vae-ft-mse",
        f"{_HF}/stabilityai/sd-vae-ft-mse/resolve/main/config.json",
        f"{_NET}:read_folder_file",
        f"{_STAND}:stand_in_vae_config",
    ),
    _entry(
        "sd-vae-ft-mse/diffusion_pytorch_model.bin",
        "sd-vae-ft-mse AutoencoderKL weights (state_dict)",
        "HF stabilityai/sd-vae-ft-mse (MuseTalk download_weights.sh takes the .bin)",
        f"{_HF}/stabilityai/sd-vae-ft-mse/resolve/main/diffusion_pytorch_model.bin",
        f"{_NET}:load_vae_file",
        f"{_STAND}:stand_in_vae",
    ),
    _entry(
        "whisper-tiny/config.json",
        "whisper-tiny config (WhisperConfig)",
        "HF openai/whisper-tiny",
        f"{_HF}/openai/whisper-tiny/resolve/main/config.json",
        f"{_NET}:read_folder_file",
        f"{_STAND}:stand_in_whisper_config",
    ),
    _entry(
        "whisper-tiny/pytorch_model.bin",
        "whisper-tiny weights (WhisperForConditionalGeneration state_dict; MuseTalk runs the encoder)",
        "HF openai/whisper-tiny (MuseTalk download_weights.sh takes the .bin)",
        f"{_HF}/openai/whisper-tiny/resolve/main/pytorch_model.bin",
        f"{_NET}:load_whisper_file",
        f"{_STAND}:stand_in_whisper",
    ),
    _entry(
        "whisper-tiny/preprocessor_config.json",
        "whisper-tiny feature extractor settings (log-mel)",
        "HF openai/whisper-tiny",
        f"{_HF}/openai/whisper-tiny/resolve/main/preprocessor_config.json",
        f"{_NET}:read_folder_file",
        f"{_STAND}:stand_in_preprocessor",
    ),
    _entry(
        "79999_iter.pth",
        "BiSeNet face parsing (face-parsing.PyTorch, state_dict), MuseTalk's blending mask",
        "zllrunning/face-parsing.PyTorch via MuseTalk download_weights.sh (Google Drive "
        "154JgKpzCPW82qINcVieuPH3fZ2e0P812)",
        None,
        "lipbench.models.musetalk.bisenet:load_bisenet",
        f"{_STAND}:stand_in_bisenet",
        manual="no direct link: download 79999_iter.pth from Google Drive file 154JgKpzCPW82qINcVieuPH3fZ2e0P812 "
        "(MuseTalk's download_weights.sh) into the weights directory",
    ),
)


# -- stand-in writers: function(path, seed), the real size and format ----------------


def stand_in_unet(path, seed: int = 0) -> None:
    from lipbench.models.musetalk import networks

    networks.write_unet(path, seed, "real")


def stand_in_unet_config(path, seed: int = 0) -> None:
    from lipbench.models.musetalk import networks

    networks.write_unet_config(path, "real")


def stand_in_vae(path, seed: int = 0) -> None:
    from lipbench.models.musetalk import networks

    networks.write_vae(path, seed, "real")


def stand_in_vae_config(path, seed: int = 0) -> None:
    from lipbench.models.musetalk import networks

    networks.write_vae_config(path, "real")


def stand_in_whisper(path, seed: int = 0) -> None:
    from lipbench.models.musetalk import networks

    networks.write_whisper(path, seed, "real")


def stand_in_whisper_config(path, seed: int = 0) -> None:
    from lipbench.models.musetalk import networks

    networks.write_whisper_config(path, "real")


def stand_in_preprocessor(path, seed: int = 0) -> None:
    from lipbench.models.musetalk import networks

    networks.write_preprocessor_config(path)


def stand_in_bisenet(path, seed: int = 0) -> None:
    from lipbench.models.musetalk import bisenet

    bisenet.write_random(path, seed)
