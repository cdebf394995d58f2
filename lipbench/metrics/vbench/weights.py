"""The networks VBench's dimensions load, for lipbench's weight registry (PACKAGE_WEIGHTS).

Each file is the one VBench 0.1.5 downloads (vbench/utils.py init_submodules), under the
same name. DINO's, CLIP's and MUSIQ's are hundreds of MB (`large`: `lipbench weights
random` writes their stand-ins only when named, and `verify` checks the container).
"""

from lipbench.weight_file import WeightFile

_VB = "lipbench.metrics.vbench"

WEIGHT_FILES = (
    WeightFile(
        "dino_vitbase16_pretrain.pth",
        "DINO ViT-B/16 backbone (state_dict), VBench subject consistency",
        ("subject_consistency",),
        "facebookresearch/dino hubconf.py dino_vitb16 (vbench/utils.py init_submodules)",
        url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
        loader=f"{_VB}.subject:load_dino",
        stand_in=f"{_VB}.subject:write_stand_in",
        large=True,
    ),
    WeightFile(
        "ViT-B-32.pt",
        "OpenAI CLIP ViT-B/32 (TorchScript archive), VBench background consistency",
        ("background_consistency",),
        "openai/CLIP clip/clip.py _MODELS['ViT-B/32'] (vbench/utils.py init_submodules)",
        url="https://openaipublic.azureedge.net/clip/models/"
        "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
        format="torchscript",
        loader=f"{_VB}.background:load_clip",
        stand_in=f"{_VB}.background:write_stand_in",
        large=True,
    ),
    WeightFile(
        "musiq_spaq_ckpt-358bb6af.pth",
        "MUSIQ trained on SPAQ (pyiqa checkpoint), VBench imaging quality",
        ("imaging_quality",),
        "chaofengc/IQA-PyTorch v0.1-weights release (vbench/utils.py init_submodules)",
        url="https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth",
        loader=f"{_VB}.imaging:load_musiq",
        stand_in=f"{_VB}.imaging:write_stand_in",
        large=True,
    ),
    WeightFile(
        "amt-s.pth",
        "AMT-S frame interpolation ({'state_dict': ...}), VBench motion smoothness",
        ("motion_smoothness",),
        "MCG-NKU/AMT (vbench/utils.py init_submodules: huggingface lalala125/AMT)",
        url="https://huggingface.co/lalala125/AMT/resolve/main/amt-s.pth",
        loader=f"{_VB}.motion:load_amt_s",
        stand_in=f"{_VB}.motion:write_stand_in",
    ),
)
