"""The Lip Forcing family's streaming loop and adapters, at the tiny size with seeded
random weights on a synthetic clip (the networks' own parity with upstream is tested in
test_lipforcing_dit, test_wan_vae, test_taehv, test_lipforcing_audio and
test_lipforcing_sampler)."""

from __future__ import annotations

import numpy as np
import pytest

from lipbench.check_adapter import synthetic_request
from lipbench.models import create
from lipbench.models.lipforcing import pipeline
from lipbench.timing import time_stream
from lipbench.types import Request
from lipbench.weights import MissingWeightError


def level_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.fixture(scope="module")
def clip():
    return synthetic_request(frames=33, size=128)


@pytest.fixture(scope="module")
def student():
    model = create("lipforcing", size="tiny", random_weights=True, faces="mediapipe")
    model.load("cpu")
    return model


def test_generation_length_is_whole_blocks_as_upstream():
    assert pipeline.generation_length(81, 3) == (21, 81)  # the paper's clips: 7 blocks exactly
    assert pipeline.generation_length(33, 3) == (9, 33)
    assert pipeline.generation_length(34, 3) == (12, 45)  # the next 12k + 9, then cut back
    assert pipeline.generation_length(1, 3) == (3, 9)
    assert [pipeline.block_frames(b, 3) for b in range(4)] == [9, 12, 12, 12]
    assert pipeline.teacher_length(81) == (21, 81) and pipeline.teacher_length(34) == (10, 37)


def test_short_references_are_ping_ponged_and_audio_zero_padded():
    assert pipeline.pingpong_indices(4, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert pipeline.pingpong_indices(1, 3).tolist() == [0, 0, 0]
    assert pipeline.pingpong_indices(5, 3).tolist() == [0, 1, 2]
    audio = np.ones(1000, np.float32)
    padded = pipeline.padded_audio(audio, 16000, 9, 25.0)
    assert len(padded) == 5760 and padded[:1000].all() and not padded[1000:].any()
    assert len(pipeline.padded_audio(np.ones(8000, np.float32), 8000, 25, 25.0)) == 16000  # resampled to 16 kHz


def test_student_streams_blocks_with_every_stage_in_order(student, clip):
    frames, row = time_stream(student, clip)
    assert frames.dtype == np.uint8 and frames.shape == clip.frames.shape
    assert row["chunk_frames"] == [9, 12, 12]
    assert set(row["stages_s"]) == set(pipeline.STAGES)
    order = [name for name, _, _ in row["stage_spans_s"]]
    assert order[:8] == ["audio_encode", "align", "encode", "denoise", "decode", "composite", "kv_update", "align"]
    assert order.count("kv_update") == order.count("decode") == 3
    starts = [start for _, start, _ in row["stage_spans_s"]]
    assert starts == sorted(starts) and all(end >= start for _, start, end in row["stage_spans_s"])
    info = student.describe()
    assert info["random_weights"] is True and info["face_protocol"] == "mediapipe"
    assert info["t_list"] == [0.999, 0.769, 0.0] and info["size"] == "tiny"
    fastgen = student.derived_timing(row)["fastgen"]
    assert 0 < fastgen["ff_full_pipeline"] <= fastgen["encode_to_decode"] <= fastgen["streaming_total"]
    # the mouth-only composite keeps the reference above the mouth
    assert np.array_equal(frames[:, :20], clip.frames[:, :20])
    assert not np.array_equal(frames, clip.frames)


def test_first_block_does_not_wait_for_later_frames(student, clip):
    """Causal: the first chunk is made from the first 9 frames (and the whole clip's
    audio, which upstream encodes first); changing later frames cannot change it."""
    later_changed = clip.frames.copy()
    later_changed[9:] = later_changed[9:, :, ::-1]  # mirrored: still a face
    other = Request(clip.clip_id, later_changed, clip.audio, clip.audio_rate, clip.fps)
    a, b = list(student.stream(clip)), list(student.stream(other))
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(np.concatenate(a[1:]), np.concatenate(b[1:]))


def test_the_seed_decides_the_noise(student, clip):
    again = np.concatenate(list(student.stream(clip)))
    assert np.array_equal(again, np.concatenate(list(student.stream(clip))))
    reseeded = create("lipforcing", size="tiny", random_weights=True, seed=7, faces="mediapipe")
    reseeded.load("cpu")
    assert not np.array_equal(again, np.concatenate(list(reseeded.stream(clip))))


def test_wan_vae_decoder_and_full_face_composite(clip):
    model = create("lipforcing", size="tiny", random_weights=True, decoder="wan_vae", composite="full")
    model.load("cpu")
    chunks = list(model.stream(clip))
    assert [len(c) for c in chunks] == [9, 12, 12]
    assert model.describe()["decoder"] == "wan_vae" and model.parts.taehv is None
    mouth = create("lipforcing", size="tiny", random_weights=True, decoder="wan_vae")
    mouth.load("cpu")
    full, mouth_only = np.concatenate(chunks), np.concatenate(list(mouth.stream(clip)))
    changed = lambda out: int((out != clip.frames).any(axis=-1).sum())  # noqa: E731
    assert changed(full) > changed(mouth_only) > 0


def test_self_forcing_runs_four_steps():
    model = create("self_forcing", size="tiny", random_weights=True)
    assert model.t_list == (0.999, 0.74925, 0.4995, 0.24975, 0.0)
    assert (model.forward_passes_first_chunk, model.forward_passes_per_chunk) == (4, 5)


def test_teacher_yields_the_whole_clip_once(clip):
    model = create("omniavatar_ls", size="tiny", random_weights=True, steps=3)
    model.load("cpu")
    frames, row = time_stream(model, clip)
    assert row["chunk_frames"] == [33] and frames.shape == clip.frames.shape
    assert set(row["stages_s"]) == set(pipeline.STAGES) - {"kv_update"}
    assert model.forward_passes_first_chunk == 6  # 3 steps, each with the guidance's negative pass
    assert model.describe()["steps"] == 3 and model.describe()["cfg"] == 4.5


def test_paper_sizes_declare_their_floor_figures():
    student = create("lipforcing", size="14B", random_weights=True)
    assert student.parameters == 14_294_081_696 and student.dtype == "fp32"  # bf16 once loaded on CUDA
    assert (student.forward_passes_first_chunk, student.forward_passes_per_chunk) == (2, 3)
    assert create("lipforcing", size="1.3B", random_weights=True).t_list == (0.999, 0.833, 0.0)
    assert create("self_forcing", random_weights=True).parameters == 1_421_383_840
    assert create("omniavatar_ls", random_weights=True).forward_passes_first_chunk == 100
    assert create("lipforcing", size="tiny", random_weights=True).parameters == 293_920  # counted per instance
    assert create("lipforcing", size="14B", dtype="bf16").dtype == "bf16"


@pytest.mark.parametrize(
    "args, message",
    [
        ({"size": "tiny"}, "no published student checkpoint; give checkpoint: FILE"),
        ({"size": "7B"}, "size must be one of"),
        ({"size": "tiny", "random_weights": True, "decoder": "vae"}, "decoder must be 'taehv' or 'wan_vae'"),
        ({"size": "tiny", "random_weights": True, "composite": "lips"}, "composite must be 'mouth' or 'full'"),
        ({"size": "tiny", "random_weights": True, "faces": "dlib"}, "faces must be"),
        (
            {"size": "tiny", "random_weights": True, "t_list": [0.999, 0.5]},
            "t_list must run from at most 0.999 down to 0",
        ),
        ({"size": "1.3B"}, "no published student checkpoint; give checkpoint: FILE"),
    ],
)
def test_bad_adapter_arguments_say_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=message):
        create("lipforcing", **args)


def test_missing_weight_files_name_the_file_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LIPBENCH_CACHE", str(tmp_path / "cache"))
    model = create("lipforcing", size="14B", weights_dir=str(tmp_path))
    with pytest.raises(MissingWeightError, match="lipforcing_14b.pth .*lipbench weights fetch lipforcing_14b.pth"):
        model.weight_files()
    assert create("lipforcing", size="tiny", random_weights=True).weight_files() == {}


def test_fastgen_spans_leave_face_alignment_out():
    spans = [
        ["audio_encode", 0.0, 0.5],
        ["align", 0.5, 1.0],
        ["encode", 1.0, 1.5],
        ["denoise", 1.5, 2.5],
        ["decode", 2.5, 3.0],
        ["composite", 3.0, 3.2],
        ["kv_update", 3.2, 3.7],
        ["align", 3.7, 4.2],
        ["encode", 4.2, 4.5],
        ["denoise", 4.5, 5.5],
        ["decode", 5.5, 6.0],
        ["composite", 6.0, 6.1],
        ["kv_update", 6.1, 6.5],
    ]
    got = pipeline.fastgen_spans(spans, 21)
    assert got["ff_full_pipeline"] == pytest.approx(2.0)  # first encode -> first decode
    assert got["ff_audio_to_decode"] == pytest.approx(2.5)
    assert got["encode_to_decode"] == pytest.approx(5.0 - 0.5)  # less the second block's alignment
    assert got["audio_to_decode"] == pytest.approx(5.0)
    assert got["streaming_total"] == pytest.approx(5.5 - 0.5)
    assert got["fps_streaming_total"] == pytest.approx(21 / 5.0)
    assert pipeline.fastgen_spans([], 21) == {}


def test_files_in_the_published_formats_load_and_match_the_seeded_build(student, clip, tmp_path):
    """The real loading path (strict loads of the DiT file in lipforcing_14b.pth's format,
    Wan2.1_VAE.pth, taew2_1.pth, the wav2vec2 folder, the prompt embedding), with the
    seeded weights of `random_weights: true` saved in those formats at the tiny size:
    the same frames come out."""
    import torch

    from lipbench.models.lipforcing import audio_features, build, causal_dit, taehv, wan_vae

    weights = tmp_path / "weights"
    folder = weights / "wav2vec2-base-960h"
    audio = audio_features.AudioEncoder.random(build.WEIGHT_SEED, build.tiny_audio_config())
    audio.model.save_pretrained(folder)
    audio_features.write_preprocessor(folder / "preprocessor_config.json")
    config = build.dit_config("tiny", audio.feature_size)
    torch.save(causal_dit.random_state_dict(config, build.WEIGHT_SEED), weights / "tiny_student.pth")  # no `_core.`
    torch.save(wan_vae.random_state_dict(build.WEIGHT_SEED, **build.TINY_VAE), weights / "Wan2.1_VAE.pth")
    torch.save(taehv.random_state_dict(build.WEIGHT_SEED), weights / "taew2_1.pth")
    torch.save(
        build.random_text(8, config.text_dim, build.WEIGHT_SEED + 1, "cpu", torch.float32),
        weights / "lipforcing_text_emb.pt",
    )
    model = create(
        "lipforcing",
        size="tiny",
        checkpoint=str(weights / "tiny_student.pth"),
        weights_dir=str(weights),
        faces="mediapipe",
    )
    assert set(model.weight_files()) == {
        str(weights / "tiny_student.pth"),
        "Wan2.1_VAE.pth",
        "taew2_1.pth",
        "lipforcing_text_emb.pt",
        "wav2vec2-base-960h/config.json",
        "wav2vec2-base-960h/preprocessor_config.json",
        "wav2vec2-base-960h/model.safetensors",
    }
    model.load("cpu")
    assert model.describe()["random_weights"] is False
    # two builds of the same weights: at most a rounding level apart (buffers differ in
    # memory, and a CPU's kernels may sum in another order for another alignment)
    assert level_difference(np.concatenate(list(model.stream(clip))), np.concatenate(list(student.stream(clip)))) <= 1


def test_faces_auto_uses_the_papers_protocol_when_its_files_are_there(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    from lipbench.models.lipforcing import faces

    monkeypatch.setenv("LIPBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LIPBENCH_WEIGHTS", raising=False)
    weights = tmp_path / "weights"
    weights.mkdir()
    model = create("lipforcing", size="tiny", random_weights=True, weights_dir=str(weights))
    assert model.describe()["face_protocol"] == "mediapipe"
    fixtures = Path(__file__).parent / "fixtures" / "lipforcing_faces"
    shutil.copy(fixtures / "tiny_det.onnx", weights / "det_10g.onnx")  # seeded stand-ins of the same signature
    shutil.copy(fixtures / "tiny_2d106.onnx", weights / "2d106det.onnx")
    faces.write_mask(weights / "latentsync_mask.png")
    assert model.describe()["face_protocol"] == "latentsync"
    assert set(model.weight_files()) == {"det_10g.onnx", "2d106det.onnx", "latentsync_mask.png"}
    model.load("cpu")
    assert isinstance(model.parts.faces, faces.LatentSyncFaces)
    forced = create("lipforcing", size="tiny", random_weights=True, weights_dir=str(weights), faces="mediapipe")
    assert forced.describe()["face_protocol"] == "mediapipe" and forced.weight_files() == {}


def test_the_gpu_path_imports_without_mediapipe_transformers_onnxruntime_or_the_metric_stack():
    """The family, the runner and check-adapter load with only torch, numpy and the media
    packages (what `pip install --no-deps -e .` and a few wheels give a GPU machine); the
    optional pieces are imported when used (wav2vec2, the face protocols, flash-attn)."""
    import subprocess
    import sys

    absent = (
        "mediapipe",
        "transformers",
        "onnxruntime",
        "flash_attn",
        "lpips",
        "pytorch_fid",
        "torchmetrics",
        "skimage",
        "librosa",
        "matplotlib",
        "pandas",
        "tabulate",
    )
    code = (
        f"import sys; sys.modules.update(dict.fromkeys({absent!r}))\n"  # None: any import of them fails
        "from lipbench.models.lipforcing import (adapters, audio_features, build, causal_dit, dit, faces,\n"
        "    pipeline, sampler, taehv, wan_vae)\n"
        "import lipbench.check_adapter, lipbench.runner, lipbench.timing, lipbench.weights\n"
        "import lipbench.models.worker, lipbench.models.wav2lip.adapter\n"
        "from lipbench.models import create\n"
        "print(create('lipforcing', size='14B', random_weights=True).parameters)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "14294081696"


def test_context_noise_and_dtype_reach_the_loop(student):
    """context_noise noises the clean block before the cache update, so it changes the
    blocks after the first and not the first; dtype builds the networks in that dtype."""
    import torch

    clip = synthetic_request(frames=21, size=96)
    noisy = create("lipforcing", size="tiny", random_weights=True, context_noise=0.1, faces="mediapipe")
    noisy.load("cpu")
    plain, noised = list(student.stream(clip)), list(noisy.stream(clip))
    assert level_difference(plain[0], noised[0]) <= 1 < level_difference(plain[1], noised[1])
    assert noisy.describe()["context_noise"] == 0.1
    half = create("lipforcing", size="tiny", random_weights=True, dtype="bf16", faces="mediapipe")
    half.load("cpu")
    assert next(half.parts.dit.parameters()).dtype == torch.bfloat16 and half.dtype == "bf16"
    assert [len(c) for c in half.stream(clip)] == [9, 12]
