"""The Lip Forcing family's files in the weights registry: listed with their sources,
stand-ins in the real formats, large files checked without loading them."""

from __future__ import annotations

import torch

from lipbench.cli import main
from lipbench.errors import UnknownNameError
from lipbench.random_weights import default_stand_ins, write_random_weights
from lipbench.weights import WEIGHTS, verify

FAMILY = [
    "lipforcing_14b.pth",
    "omniavatar_ls_14b.pt",
    "Wan2.1_VAE.pth",
    "taew2_1.pth",
    "wav2vec2-base-960h/config.json",
    "wav2vec2-base-960h/preprocessor_config.json",
    "wav2vec2-base-960h/model.safetensors",
    "lipforcing_text_emb.pt",
    "omniavatar_negative_text_emb.pt",
    "det_10g.onnx",
    "2d106det.onnx",
    "latentsync_mask.png",
]


def test_every_file_of_the_family_is_listed_with_its_source(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LIPBENCH_CACHE", str(tmp_path))
    main(["weights", "list"])
    out = capsys.readouterr().out
    for name in FAMILY:
        assert name in WEIGHTS and WEIGHTS[name].source
        assert name in out
    assert WEIGHTS["lipforcing_14b.pth"].url.endswith("JinhyukJang/lipforcing/resolve/main/lipforcing_14b.pth")


def test_large_files_have_no_stand_in_and_say_what_to_do_instead(tmp_path):
    assert "lipforcing_14b.pth" not in default_stand_ins() and "omniavatar_ls_14b.pt" not in default_stand_ins()
    assert {"taew2_1.pth", "Wan2.1_VAE.pth", "latentsync_mask.png"} <= set(default_stand_ins())
    try:
        write_random_weights(tmp_path, names=["lipforcing_14b.pth"])
    except UnknownNameError as exc:
        assert "random_weights: true" in str(exc)
    else:
        raise AssertionError("a 28 GB stand-in was written")


def test_a_large_file_is_checked_by_its_container_not_loaded(tmp_path):
    path = tmp_path / "lipforcing_14b.pth"
    torch.save({"blocks.0.ffn.0.weight": torch.zeros(2, 2)}, path)
    assert verify("lipforcing_14b.pth", tmp_path).status == "unknown hash"
    path.write_bytes(path.read_bytes()[:200])  # an interrupted download
    assert verify("lipforcing_14b.pth", tmp_path).status == "truncated"


def test_stand_ins_load_as_the_real_files_do(tmp_path):
    from lipbench.models.lipforcing import audio_features, build, faces, taehv

    names = [
        "taew2_1.pth",
        "lipforcing_text_emb.pt",
        "latentsync_mask.png",
        "wav2vec2-base-960h/config.json",
        "wav2vec2-base-960h/preprocessor_config.json",
        "wav2vec2-base-960h/model.safetensors",
    ]
    written = write_random_weights(tmp_path, seed=3, names=names)
    assert set(written) == set(names)
    taehv.load_taehv(written["taew2_1.pth"])
    assert build.read_text_embedding(written["lipforcing_text_emb.pt"]).shape == (1, 512, 4096)
    assert faces.read_mask(written["latentsync_mask.png"]).ndim >= 2
    encoder = audio_features.AudioEncoder.from_pretrained(tmp_path / "wav2vec2-base-960h")
    assert encoder.feature_size == 10752
    for name in names:
        assert verify(name, tmp_path).status in ("unknown hash", "wrong hash"), name
        assert not verify(name, tmp_path).problem or name == "latentsync_mask.png"  # a drawn mask, not LatentSync's
