"""The Lip Forcing samplers against upstream's own code: the teachers' flow-matching
sampler (OmniAvatar's FlowMatchScheduler and log_video loop) and the students' per-block
schedule (LipForcing's inference_segmentwise.run_inference).

The fixtures were made by upstream's code driven by toy networks
(tests/fixtures/lipforcing_sampler/README.md gives the command); the tests drive
lipbench.models.lipforcing.sampler with the same toy networks and inputs."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from lipbench.models.lipforcing import sampler
from tests.helpers import fixture_maker

FIXTURES, make = fixture_maker("lipforcing_sampler")


@pytest.fixture(scope="module")
def parity():
    return np.load(FIXTURES / "parity.npz")


def relative_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    ours = ours.detach().numpy().astype(np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def test_seeds_match_fixture(parity):
    assert parity["seeds"].tolist() == [make.TEACHER_NOISE_SEED, make.MIX_SEED, make.STUDENT_SEED]


# --- teacher ---------------------------------------------------------------------------


@pytest.mark.parametrize("steps", make.TEACHER_SIGMA_STEPS)
def test_teacher_sigmas_equal_upstream_scheduler(parity, steps):
    sigmas = sampler.teacher_sigmas(steps)
    assert sigmas.dtype == torch.float32 and sigmas.shape == (steps,)
    # measured: 0.0 for both (torch 2.14.1 CPU)
    assert relative_error(sigmas, parity[f"sigmas_{steps}"]) <= 1e-6
    assert relative_error(sigmas, parity[f"timesteps_{steps}"] / 1000.0) <= 1e-6
    assert float(sigmas[0]) == 1.0 and float(sigmas[-1]) > 0.0  # the final 0 is left out


def test_teacher_sigmas_reject_zero_steps():
    with pytest.raises(ValueError):
        sampler.teacher_sigmas(0)


@pytest.mark.parametrize("steps,cfg", make.TEACHER_CASES)
def test_sample_teacher_equals_upstream(parity, steps, cfg):
    assert float(parity[f"teacher_{steps}_cfg"]) == cfg
    calls = [0, 0]

    def predict_flow(x, sigma, negative):
        assert 0.0 < sigma <= 1.0
        calls[negative] += 1
        # upstream hands the DiT sigma * 1000 as a float32 (batch,) tensor
        return make.toy_flow(x, torch.full((x.shape[0],), sigma * 1000.0, dtype=torch.float32), negative)

    steps_seen = []
    # the default shift is OmniAvatar's (FlowMatchScheduler(shift=5), sigma_shift=5)
    x0 = sampler.sample_teacher(predict_flow, make.seeded_teacher_noise(), steps, cfg=cfg, on_step=steps_seen.append)
    reference = parity[f"teacher_{steps}"]
    assert x0.shape == reference.shape == make.TEACHER_NOISE_SHAPE and x0.dtype == torch.float32
    # measured: 0.0 for all three cases (torch 2.14.1 CPU)
    assert relative_error(x0, reference) <= 1e-6
    assert calls == parity[f"teacher_{steps}_calls"].tolist()
    assert sum(calls) == sampler.teacher_forward_passes(steps, cfg)
    assert steps_seen == list(range(steps))


def test_sample_teacher_defaults_are_omniavatar_inference():
    assert (sampler.TEACHER_SHIFT, sampler.TEACHER_CFG) == (make.TEACHER_SHIFT, 4.5)


# --- student ---------------------------------------------------------------------------


def lipbench_student(t_list, context_noise):
    """The blocks as lipbench's pipeline runs them: one generator for the clip's noise,
    each block's fresh noise and the cache update's noise."""
    generator = torch.Generator().manual_seed(make.STUDENT_SEED)
    noise = torch.randn((1, 16, make.STUDENT_FRAMES) + make.STUDENT_LATENT, generator=generator)
    blocks, caches, calls = [], [], [0]
    for first in range(0, make.STUDENT_FRAMES, make.STUDENT_CHUNK):

        def predict_x0(x, t, first=first):
            calls[0] += 1
            return make.toy_x0(x, torch.full((x.shape[0],), t, dtype=torch.float64), first)

        x0 = sampler.denoise_block(predict_x0, noise[:, :, first : first + make.STUDENT_CHUNK], t_list, generator)
        blocks.append(x0)
        cache_input = x0
        if context_noise > 0:
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
            cache_input = sampler.renoise(x0, eps, context_noise)
        caches.append(cache_input)
    return torch.cat(blocks, dim=2), torch.cat(caches, dim=2), calls[0]


@pytest.mark.parametrize("name", list(make.STUDENT_CASES))
def test_student_blocks_equal_upstream(parity, name):
    t_list = make.case_t_list(name)
    context_noise = make.STUDENT_CASES[name][1]
    assert np.array_equal(np.array(t_list, dtype=np.float64), parity[f"student_{name}_t_list"])
    assert float(parity[f"student_{name}_context_noise"]) == context_noise
    output, caches, calls = lipbench_student(t_list, context_noise)
    reference = parity[f"student_{name}"]
    assert output.shape == reference.shape == (1, 16, make.STUDENT_FRAMES) + make.STUDENT_LATENT
    # measured: 0.0 for all three cases (torch 2.14.1 CPU)
    assert relative_error(output, reference) <= 1e-6
    # the KV-cache inputs (renoised at context_noise when > 0): also 0.0
    assert relative_error(caches, parity[f"student_{name}_cache"]) <= 1e-6
    assert calls == int(parity[f"student_{name}_denoise_calls"]) == 3 * (len(t_list) - 1)


def test_student_context_noise_changes_only_later_blocks(parity):
    """Context noise draws after each block, so the first block is as without it."""
    clean, noisy = parity["student_t769"], parity["student_t769_ctx"]
    chunk = make.STUDENT_CHUNK
    assert np.array_equal(clean[:, :, :chunk], noisy[:, :, :chunk])
    assert not np.allclose(clean[:, :, chunk:], noisy[:, :, chunk:])


def test_renoise_is_upstream_forward_process():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn((1, 16, 3, 4, 4), generator=g), torch.randn((1, 16, 3, 4, 4), generator=g)
    for t in (0.1, 0.5, 0.769, 0.999):
        reference = make.RFForwardProcess().forward_process(x0, eps, torch.full((1,), t, dtype=torch.float64))
        ours = sampler.renoise(x0, eps, t)
        assert ours.dtype == x0.dtype
        assert relative_error(ours, reference.numpy()) <= 1e-6


@pytest.mark.parametrize("steps", make.GET_T_LIST_STEPS)
def test_uniform_t_list_equals_upstream_get_t_list(parity, steps):
    ours = sampler.uniform_t_list(steps)
    reference = parity[f"get_t_list_{steps}"]
    assert len(ours) == steps + 1 and ours[-1] == 0.0
    assert np.abs(np.array(ours) - reference).max() <= 1e-12
    assert sampler.check_t_list(ours) == ours


def test_uniform_t_list_four_steps_values():
    expected = (0.999, 0.74925, 0.4995, 0.24975, 0.0)
    assert np.allclose(sampler.uniform_t_list(4), expected, rtol=0, atol=1e-12)


def test_student_t_list_constants():
    assert sampler.STUDENT_T_LIST == make.T769
    assert sampler.check_t_list(sampler.STUDENT_T_LIST) == make.T769
    assert sampler.check_t_list(sampler.STUDENT_1_3B_BENCHMARK_T_LIST) == (0.999, 0.833, 0.0)
    assert sampler.RF_MAX_T == make.RF_MAX_T


@pytest.mark.parametrize(
    "t_list",
    [
        [0.999, 0.999, 0.0],  # not strictly decreasing
        [0.5, 0.769, 0.0],  # increasing
        [0.999, 0.0, 0.5, 0.0],  # decreasing only in places
        [0.999, 0.5],  # not ending at 0
        [0.999, 0.5, 1e-9],  # not ending at exactly 0
        [1.5, 0.5, 0.0],  # above 1
        [1.0, 0.5, 0.0],  # above upstream's max_t 0.999
        [float("nan"), 0.5, 0.0],
        [0.0],  # no step
        [],
    ],
)
def test_check_t_list_rejects(t_list):
    with pytest.raises(ValueError):
        sampler.check_t_list(t_list)


def test_check_t_list_accepts_and_converts():
    assert sampler.check_t_list([0.9, 0.5, 0]) == (0.9, 0.5, 0.0)
    assert sampler.check_t_list(torch.tensor([0.999, 0.0], dtype=torch.float64)) == (0.999, 0.0)


def test_denoise_block_rejects_bad_t_list_before_predicting():
    def predict_x0(x, t):
        raise AssertionError("called")

    with pytest.raises(ValueError):
        sampler.denoise_block(predict_x0, torch.zeros(1, 16, 3, 4, 4), [0.5, 0.769, 0.0])


def test_denoise_block_last_step_draws_no_noise():
    """Noise is drawn between steps only: a 1-step schedule leaves the generator untouched."""
    g = torch.Generator().manual_seed(7)
    state = g.get_state()
    x = torch.randn((1, 16, 3, 4, 4))
    out = sampler.denoise_block(lambda x, t: torch.tanh(x), x, [0.999, 0.0], g)
    assert torch.equal(out, torch.tanh(x))
    assert torch.equal(g.get_state(), state)
