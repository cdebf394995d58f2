"""The two samplers of the Lip Forcing family: the students' few-step schedule per block
and the teachers' flow-matching sampler with classifier-free guidance.

Both work in the rectified-flow convention of the upstream code: x_t = (1 - t) x0 + t eps
with t in [0, 1] (the network sees 1000 t).

Students (`T-64/LipForcing` scripts/inference/inference_streaming_e2e.py): per block,
for each step of `t_list` (e.g. [0.999, 0.769, 0.0]), the network predicts x0; unless
the next t is 0, fresh noise is drawn and x0 is taken forward to the next t. The block's
noise is drawn once for the whole clip before the loop (`block_noise`), so a block's
result does not depend on how many blocks came before it in the generator's stream.

Teachers (`Omni-Avatar/OmniAvatar` wan_video.py and schedulers/flow_match.py:
`FlowMatchScheduler(shift=5, sigma_min=0.0, extra_one_step=True)`): `steps` sigmas
evenly spaced from 1 down to 0 (the last, 0, left out), shifted by
s' = shift s / (1 + (shift - 1) s); each step is an Euler step of the predicted flow
x <- x + v (sigma_next - sigma), with guidance v = v_neg + cfg (v_pos - v_neg), the
negative pass using the negative prompt and zeroed audio (OmniAvatar's
`audio_cfg_scale == cfg_scale` branch, the configuration of its inference.yaml).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

STUDENT_T_LIST = (0.999, 0.769, 0.0)  # the released 14B student (a 2-step "t769" model)
STUDENT_1_3B_BENCHMARK_T_LIST = (0.999, 0.833, 0.0)  # the authors' 1.3B H100 benchmark
RF_MAX_T = 0.999  # upstream RFNoiseSchedule's max_t


def uniform_t_list(steps: int) -> tuple[float, ...]:
    """Upstream's default schedule for `steps` student steps (`get_t_list`): evenly spaced
    from max_t down to 0 in float64. Self Forcing's 4 steps: 0.999, 0.74925, 0.4995, 0.24975, 0."""
    return tuple(torch.linspace(RF_MAX_T, 0.0, steps + 1, dtype=torch.float64).tolist())


TEACHER_SHIFT = 5.0
TEACHER_CFG = 4.5


def check_t_list(t_list: Sequence[float]) -> tuple[float, ...]:
    """A student schedule: strictly decreasing from at most upstream's max_t (0.999, the
    noise schedule's limit: the network is never asked about t = 1) to exactly 0."""
    values = tuple(float(t) for t in t_list)
    if len(values) < 2 or values[-1] != 0.0 or not values[0] <= RF_MAX_T:
        raise ValueError(f"t_list must run from at most {RF_MAX_T} down to 0 in at least one step, got {list(t_list)}")
    if any(b >= a for a, b in zip(values, values[1:])):
        raise ValueError(f"t_list must be strictly decreasing, got {list(t_list)}")
    return values


def renoise(x0: torch.Tensor, eps: torch.Tensor, t: float) -> torch.Tensor:
    """x_t = (1 - t) x0 + t eps, computed in float64 as upstream's forward_process does."""
    out = (1.0 - t) * x0.to(torch.float64) + t * eps.to(torch.float64)
    return out.to(x0.dtype)


def denoise_block(
    predict_x0: Callable[[torch.Tensor, float], torch.Tensor],
    noise: torch.Tensor,
    t_list: Sequence[float],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One block of the students' schedule: `predict_x0(x_t, t)` at every t of `t_list`
    but the last; returns the final x0. Fresh noise between steps comes from `generator`
    (the global generator when None, as upstream's torch.randn_like)."""
    t_list = check_t_list(t_list)
    x = noise
    for t, t_next in zip(t_list, t_list[1:]):
        x0 = predict_x0(x, t)
        if t_next > 0:
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            x = renoise(x0, eps, t_next)
        else:
            x = x0
    return x


def teacher_sigmas(steps: int, shift: float = TEACHER_SHIFT) -> torch.Tensor:
    """The teacher's noise levels, float32 as FlowMatchScheduler computes them."""
    if steps < 1:
        raise ValueError(f"the teacher needs at least 1 step, got {steps}")
    sigmas = torch.linspace(1.0, 0.0, steps + 1)[:-1]
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def sample_teacher(
    predict_flow: Callable[[torch.Tensor, float, bool], torch.Tensor],
    noise: torch.Tensor,
    steps: int,
    cfg: float = TEACHER_CFG,
    shift: float = TEACHER_SHIFT,
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Euler steps of the flow from pure noise to x0. `predict_flow(x, sigma, negative)`
    is the network's flow prediction (eps - x0) with the positive (False) or the
    negative (True) conditioning; with cfg == 1 the negative pass is skipped."""
    sigmas = teacher_sigmas(steps, shift)
    x = noise
    for i, sigma in enumerate(sigmas.tolist()):
        flow = predict_flow(x, sigma, False)
        if cfg != 1.0:
            negative = predict_flow(x, sigma, True)
            flow = negative + cfg * (flow - negative)
        sigma_next = float(sigmas[i + 1]) if i + 1 < len(sigmas) else 0.0
        x = x + flow * (sigma_next - float(sigmas[i]))
        if on_step is not None:
            on_step(i)
    return x


def teacher_forward_passes(steps: int, cfg: float = TEACHER_CFG) -> int:
    return steps * (2 if cfg != 1.0 else 1)
