"""Lip Forcing DiT (causal student, bidirectional teacher) against upstream T-64/LipForcing:
outputs, streaming cache, layout, loading.

The fixtures were made by upstream's own code from the same seeded weights and inputs
(tests/fixtures/lipforcing_dit/README.md gives the command)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from lipbench.models.lipforcing import causal_dit, dit
from lipbench.weights import BadWeightError
from tests.helpers import fixture_maker

FIXTURES, make = fixture_maker("lipforcing_dit")

PARAMETERS = {"1.3B": 1_421_383_840, "14B": 14_294_081_696}


@pytest.fixture(scope="module")
def parity():
    return np.load(FIXTURES / "parity.npz")


@pytest.fixture(scope="module")
def state():
    return causal_dit.random_state_dict(make.TINY, make.WEIGHT_SEED)


def causal(state, **kwargs) -> causal_dit.CausalOmniAvatarWan:
    model = causal_dit.CausalOmniAvatarWan(make.TINY, **kwargs)
    model.core.load_state_dict(state)
    return model.eval()


def relative_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    return float(np.abs(ours.numpy() - reference).max() / np.abs(reference).max())


def test_seeds_match_fixture(parity):
    assert parity["seeds"].tolist() == [make.WEIGHT_SEED, make.INPUT_SEED, make.NOISE_SEED]


@pytest.mark.parametrize("case", sorted(make.CAUSAL_CASES))
def test_causal_streaming_equals_upstream(state, parity, case):
    local, sink, dynamic = make.CAUSAL_CASES[case]
    model = causal(state, local_attn_size=local, sink_size=sink, use_dynamic_rope=dynamic)
    noise, eps = make.seeded_noise()
    with torch.no_grad():
        outputs = make.streaming_loop(model, make.seeded_condition(), noise, eps)
    reference = parity[f"causal_{case}"]
    # 4 blocks x (2 denoising steps + the store_kv pass); 12 frames > the 7-frame window
    assert len(outputs) == len(reference) == 12
    errors = [relative_error(o, r) for o, r in zip(outputs, reference)]
    # measured: 0.0 for every output (torch 2.14.1 CPU, float32)
    assert max(errors) <= 1e-4, errors


def test_fixture_window_rolls(parity):
    """The windowed run parts from full attention once the window is full (block 2),
    so the parity test above covers the eviction."""
    window, full = parity["causal_window"], parity["causal_full_static"]
    assert np.abs(window[:6] - full[:6]).max() == 0
    assert np.abs(window[6:] - full[6:]).max() > 1e-2


@pytest.mark.parametrize("pred", ["flow", "x0"])
def test_bidirectional_equals_upstream(state, parity, pred):
    model = dit.OmniAvatarWan(make.TINY)
    model.model.load_state_dict(state)
    x, t, condition = make.bidirectional_input()
    with torch.no_grad():
        out = model(x, t, condition, fwd_pred_type=None if pred == "flow" else pred)
    assert out.shape == x.shape
    # measured: 0.0 (torch 2.14.1 CPU, float32)
    assert relative_error(out, parity[f"bidirectional_{pred}"]) <= 1e-4


def test_causal_one_chunk_without_window_equals_bidirectional(state):
    """One chunk over the whole clip, full attention, absolute RoPE: the same network."""
    x, t, condition = make.bidirectional_input()
    teacher = dit.OmniAvatarWan(make.TINY)
    teacher.model.load_state_dict(state)
    student = causal(state, local_attn_size=-1, use_dynamic_rope=False)
    with torch.no_grad():
        assert torch.allclose(student(x, t, condition), teacher(x, t, condition), atol=1e-5)


@pytest.mark.parametrize("size", ["1.3B", "14B"])
def test_layout_equals_upstream(size):
    with gzip.open(FIXTURES / f"keys_{size}.json.gz", "rt") as f:
        record = json.load(f)
    with torch.device("meta"):
        student = causal_dit.CausalOmniAvatarWan(size)
        teacher = dit.OmniAvatarWan(dit.DiTConfig.preset(size))
    upstream = {key: shape for key, shape in record["keys"]}
    assert {k: list(v.shape) for k, v in student.core.state_dict().items()} == upstream
    assert {k: list(v.shape) for k, v in teacher.model.state_dict().items()} == upstream
    # the wrappers' own keys are upstream's wrappers' (`_core.` / `model.` prefixes)
    assert set(student.state_dict()) == {f"_core.{k}" for k in upstream}
    assert sum(p.numel() for p in student.parameters()) == record["parameters"] == PARAMETERS[size]


def test_config_limits():
    with pytest.raises(ValueError, match="head_dim 64"):
        dit.DiTConfig(dim=128, ffn_dim=64, num_heads=2, num_layers=4).check()
    with pytest.raises(ValueError, match="num_layers >= 4"):
        dit.DiTConfig(dim=64, ffn_dim=64, num_heads=2, num_layers=3).check()
    dit.DiTConfig(dim=64, ffn_dim=64, num_heads=2, num_layers=3, use_audio=False).check()
    with pytest.raises(ValueError, match="unknown DiT size"):
        dit.DiTConfig.preset("7B")


# --- streaming behaviour -------------------------------------------------------------


def run_chunks(model, condition, frames=make.FRAMES):
    noise, _ = make.seeded_noise()
    outs = []
    with torch.no_grad():
        for start in range(0, frames, make.CHUNK):
            x0 = model(
                noise[:, :, start : start + make.CHUNK],
                torch.tensor([0.999]),
                condition,
                cur_start_frame=start,
                fwd_pred_type="x0",
            )
            model(x0, torch.tensor([0.0]), condition, cur_start_frame=start, store_kv=True)
            outs.append(x0)
    return outs


def test_cache_keeps_sink_and_last_frames_and_clears(state):
    model = causal(state)
    first = run_chunks(model, make.seeded_condition())
    assert [cache.frames for cache in model._kv][0] == [0, 6, 7, 8, 9, 10, 11]
    model.clear_caches()
    again = run_chunks(model, make.seeded_condition())
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_conditions_may_grow_chunk_by_chunk(state):
    """Each chunk reads only its own frames of masked_video / ref_sequence and the audio
    of its video frames, so a loop may pass tensors that grow as the clip streams in."""
    full = make.seeded_condition()
    whole = run_chunks(causal(state), full)
    model = causal(state)
    noise, _ = make.seeded_noise()
    with torch.no_grad():
        for block, start in enumerate(range(0, make.FRAMES, make.CHUNK)):
            end = start + make.CHUNK
            cond = dict(
                full,
                masked_video=full["masked_video"][:, :, :end],
                ref_sequence=full["ref_sequence"][:, :, :end],
                audio_emb=full["audio_emb"][:, : 4 * end - 3],
            )
            x0 = model(noise[:, :, start:end], torch.tensor([0.999]), cond, cur_start_frame=start, fwd_pred_type="x0")
            model(x0, torch.tensor([0.0]), cond, cur_start_frame=start, store_kv=True)
            assert torch.allclose(x0, whole[block], atol=1e-5)
        short = dict(cond, audio_emb=full["audio_emb"][:, :10])
        with pytest.raises(ValueError, match="audio_emb has 10 video frames"):
            model(x0, torch.tensor([0.5]), short, cur_start_frame=start)


def test_noise_schedule():
    schedule = causal_dit.CausalOmniAvatarWan(make.TINY).noise_scheduler
    x0, eps = torch.ones(2, 3), torch.zeros(2, 3)
    assert torch.allclose(
        schedule.forward_process(x0, eps, torch.tensor([0.25, 0.5])), torch.tensor([[0.75] * 3, [0.5] * 3])
    )
    with pytest.raises(ValueError, match="t must be in"):
        schedule.forward_process(x0, eps, torch.tensor([1.0, 0.5]))


def test_random_weights_are_not_degenerate(state):
    model = causal(state)
    outs = run_chunks(model, make.seeded_condition(), frames=6)
    flat = torch.cat(outs, dim=2)
    assert torch.isfinite(flat).all() and 0.1 < float(flat.std()) < 10
    other = causal(causal_dit.random_state_dict(make.TINY, 1))
    assert (torch.cat(run_chunks(other, make.seeded_condition(), frames=6), dim=2) - flat).abs().max() > 1e-2


# --- loading -------------------------------------------------------------------------


def released_format(state) -> dict:
    """lipforcing_14b.pth's layout: a plain state_dict, keys without `_core.`, bf16."""
    return {k: v.to(torch.bfloat16) for k, v in state.items()}


def test_load_released_format(state, tmp_path):
    path = tmp_path / causal_dit.CHECKPOINT
    torch.save(released_format(state), path)
    model = causal_dit.load_dit(path, make.TINY, causal=True, device="cpu", dtype=torch.float32)
    assert isinstance(model, causal_dit.CausalOmniAvatarWan) and not model.training
    loaded = model.core.state_dict()
    assert all(
        loaded[k].dtype == torch.float32 and torch.equal(loaded[k], v.to(torch.bfloat16).float())
        for k, v in state.items()
    )
    teacher = causal_dit.load_dit(path, make.TINY, causal=False, dtype=torch.float32)
    assert isinstance(teacher, dit.OmniAvatarWan)


@pytest.mark.parametrize("wrap", ["_core", "model", "container"])
def test_load_upstream_wrappings(state, tmp_path, wrap):
    path = tmp_path / "student.pth"
    if wrap == "container":  # an upstream training checkpoint
        torch.save({"model": {"net": state}, "iteration": 5}, path)
    else:
        torch.save({f"{wrap}.{k}": v for k, v in state.items()}, path)
    model = causal_dit.load_dit(path, make.TINY, dtype=torch.float32)
    assert torch.equal(model.core.blocks[0].self_attn.q.weight, state["blocks.0.self_attn.q.weight"])


def test_load_merges_peft_lora(state, tmp_path):
    """Upstream's 14B student before its post-load merge: PEFT-wrapped q/k/v/o/ffn layers
    (rank 128, alpha 64), merged here as W + (64/128) B A."""
    rng = np.random.default_rng(3)
    peft, targets = {}, (".q.", ".k.", ".v.", ".o.", ".ffn.0.", ".ffn.2.")
    for key, value in state.items():
        module, name = key.rsplit(".", 1)
        if key.startswith("blocks.") and any(t in key + "." for t in targets) and "norm" not in key:
            peft[f"{module}.base_layer.{name}"] = value
            if name == "weight":
                a = torch.from_numpy(rng.normal(0, 0.02, (128, value.shape[1])).astype(np.float32))
                b = torch.from_numpy(rng.normal(0, 0.02, (value.shape[0], 128)).astype(np.float32))
                peft[f"{module}.lora_A.default.weight"], peft[f"{module}.lora_B.default.weight"] = a, b
        else:
            peft[key] = value
    path = tmp_path / "peft.pth"
    torch.save(peft, path)
    model = causal_dit.load_dit(path, make.TINY, dtype=torch.float32)
    key = "blocks.1.ffn.2"
    want = state[f"{key}.weight"] + 0.5 * peft[f"{key}.lora_B.default.weight"] @ peft[f"{key}.lora_A.default.weight"]
    assert torch.allclose(model.core.blocks[1].ffn[2].weight, want, atol=1e-6)
    assert torch.equal(model.core.blocks[1].ffn[2].bias, state[f"{key}.bias"])


def test_wrong_files_name_the_file(state, tmp_path):
    other = tmp_path / "taew2_1_renamed.pth"
    torch.save({"decoder.1.weight": torch.zeros(3)}, other)
    with pytest.raises(BadWeightError, match="taew2_1_renamed.pth.*not a Lip Forcing"):
        causal_dit.load_dit(other, make.TINY)

    missing = tmp_path / "missing.pth"
    torch.save({k: v for k, v in state.items() if k != "head.head.weight"}, missing)
    with pytest.raises(BadWeightError, match="missing.pth.*head.head.weight"):
        causal_dit.load_dit(missing, make.TINY)

    wrong_size = tmp_path / "wrong_size.pth"
    torch.save(state, wrong_size)
    with pytest.raises(BadWeightError, match="wrong_size.pth.*does not fit"):
        causal_dit.load_dit(wrong_size, dit.DiTConfig(dim=96, ffn_dim=128, num_heads=2, num_layers=4))

    page = tmp_path / causal_dit.CHECKPOINT
    page.write_text("<!DOCTYPE html><html><body>sign in</body></html>")
    with pytest.raises(BadWeightError, match="HTML page"):
        causal_dit.load_dit(page, "14B")
