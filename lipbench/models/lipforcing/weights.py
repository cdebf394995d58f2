"""The weight files of the Lip Forcing family (students, teacher, VAEs, audio, faces):
registered in lipbench.weights (PACKAGE_WEIGHTS)."""

from lipbench.weight_file import WeightFile

WEIGHT_FILES = (
    WeightFile(
        "lipforcing_14b.pth",
        "Lip Forcing 14B student DiT (plain bf16 state_dict, ~28 GB)",
        ("lipforcing",),
        "T-64/LipForcing README -> Hugging Face JinhyukJang/lipforcing",
        url="https://huggingface.co/JinhyukJang/lipforcing/resolve/main/lipforcing_14b.pth",
        large=True,
    ),
    WeightFile(
        "omniavatar_ls_14b.pt",
        "OmniAvatar-LS 14B teacher DiT (bidirectional)",
        ("omniavatar_ls",),
        "T-64/LipForcing README -> Hugging Face JinhyukJang/lipforcing teacher/",
        url="https://huggingface.co/JinhyukJang/lipforcing/resolve/main/teacher/omniavatar_ls_14b.pt",
        large=True,
    ),
    WeightFile(
        "Wan2.1_VAE.pth",
        "Wan2.1 video VAE (state_dict of WanVAE_)",
        ("lipforcing", "self_forcing", "omniavatar_ls"),
        "Hugging Face Wan-AI/Wan2.1-T2V-14B",
        url="https://huggingface.co/Wan-AI/Wan2.1-T2V-14B/resolve/main/Wan2.1_VAE.pth",
        loader="lipbench.models.lipforcing.wan_vae:load_wan_vae",
    ),
    WeightFile(
        "taew2_1.pth",
        "TAEHV tiny decoder for Wan2.1 latents (state_dict)",
        ("lipforcing", "self_forcing"),
        "madebyollin/taehv (MIT)",
        url="https://github.com/madebyollin/taehv/raw/main/taew2_1.pth",
        loader="lipbench.models.lipforcing.taehv:load_taehv",
    ),
    *(
        WeightFile(
            f"wav2vec2-base-960h/{name}",
            f"wav2vec2-base-960h audio encoder folder: {name}",
            ("lipforcing", "self_forcing", "omniavatar_ls"),
            "Hugging Face facebook/wav2vec2-base-960h",
            url=f"https://huggingface.co/facebook/wav2vec2-base-960h/resolve/main/{name}",
            loader="lipbench.models.lipforcing.audio_features:read_folder_file",
        )
        for name in ("config.json", "preprocessor_config.json", "model.safetensors")
    ),
    WeightFile(
        "lipforcing_text_emb.pt",
        "UMT5-XXL embedding of the prompt 'a person talking' (1, 512, 4096)",
        ("lipforcing", "self_forcing", "omniavatar_ls"),
        "T-64/LipForcing scripts/setup/precompute_text.py",
        manual="no download: make it once with T-64/LipForcing scripts/setup/precompute_text.py (UMT5-XXL "
        "from Wan-AI/Wan2.1-T2V-14B, prompt 'a person talking') and save the tensor under this name",
        loader="lipbench.models.lipforcing.build:read_text_embedding",
    ),
    WeightFile(
        "omniavatar_negative_text_emb.pt",
        "UMT5-XXL embedding of OmniAvatar's negative prompt",
        ("omniavatar_ls",),
        "Omni-Avatar/OmniAvatar configs/inference.yaml negative_prompt",
        manual="no download: encode the negative_prompt of Omni-Avatar/OmniAvatar configs/inference.yaml "
        "with T-64/LipForcing scripts/setup/precompute_text.py and save the tensor under this name",
        loader="lipbench.models.lipforcing.build:read_text_embedding",
    ),
    WeightFile(
        "det_10g.onnx",
        "InsightFace buffalo_l SCRFD face detector (ONNX)",
        ("lipforcing (faces: latentsync)", "latentsync"),
        "deepinsight/insightface model zoo buffalo_l",
        manual="no direct file: unzip det_10g.onnx from https://github.com/deepinsight/insightface/releases/"
        "download/v0.7/buffalo_l.zip into the weights directory",
        format="onnx",
        loader="lipbench.models.lipforcing.faces:read_onnx",
    ),
    WeightFile(
        "2d106det.onnx",
        "InsightFace buffalo_l 106-point face landmarks (ONNX)",
        ("lipforcing (faces: latentsync)", "latentsync"),
        "deepinsight/insightface model zoo buffalo_l",
        manual="no direct file: unzip 2d106det.onnx from https://github.com/deepinsight/insightface/releases/"
        "download/v0.7/buffalo_l.zip into the weights directory",
        format="onnx",
        loader="lipbench.models.lipforcing.faces:read_onnx",
    ),
    WeightFile(
        "latentsync_mask.png",
        "LatentSync's mouth mask (256x256 RGB PNG, white keep / black generate)",
        ("lipforcing (faces: latentsync)",),
        "bytedance/LatentSync latentsync/utils/mask.png",
        url="https://raw.githubusercontent.com/bytedance/LatentSync/a229c3948406bc2cf6eaf4873e662e70c6a04746/"
        "latentsync/utils/mask.png",
        sha256="aa233251b9ff5691a1565a4108f0910ab1e5e7ad79a7bb2b741ab4d92c81053c",
        format="png",
        loader="lipbench.models.lipforcing.faces:read_mask",
    ),
)
