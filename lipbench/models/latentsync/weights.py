"""LatentSync 1.6's weight files: registered in lipbench.weights (PACKAGE_WEIGHTS).

The InsightFace buffalo_l files it also reads (det_10g.onnx, 2d106det.onnx) are
registered by the Lip Forcing package (the same files, the same protocol)."""

from lipbench.weight_file import WeightFile

HF = "https://huggingface.co/ByteDance/LatentSync-1.6/resolve/main"
VAE = "https://huggingface.co/stabilityai/sd-vae-ft-mse/resolve/main"
FOLDER_READER = "lipbench.models.lipforcing.audio_features:read_folder_file"  # JSON parsed, safetensors opened

UNET_FILE = "latentsync_unet.pt"
WHISPER_FILE = "whisper/tiny.pt"
VAE_FILES = ("sd-vae-ft-mse/config.json", "sd-vae-ft-mse/diffusion_pytorch_model.safetensors")

WEIGHT_FILES = (
    WeightFile(
        UNET_FILE,
        "LatentSync 1.6 UNet3DConditionModel ({'state_dict': ...}, stage2_512.yaml, ~5 GB)",
        ("latentsync",),
        "Hugging Face ByteDance/LatentSync-1.6 (bytedance/LatentSync setup_env.sh)",
        url=f"{HF}/latentsync_unet.pt",
        large=True,
    ),
    WeightFile(
        WHISPER_FILE,
        "Whisper tiny ({'dims', 'model_state_dict'}), LatentSync's audio encoder",
        ("latentsync",),
        "Hugging Face ByteDance/LatentSync-1.6 whisper/tiny.pt (setup_env.sh)",
        url=f"{HF}/whisper/tiny.pt",
    ),
    *(
        WeightFile(
            name,
            f"Stable Diffusion VAE ft-MSE folder: {name.split('/')[1]}",
            ("latentsync",),
            "Hugging Face stabilityai/sd-vae-ft-mse (LatentSync scripts/inference.py)",
            url=f"{VAE}/{name.split('/')[1]}",
            loader=FOLDER_READER,
        )
        for name in VAE_FILES
    ),
)
