"""CPU speed of the Lip Forcing family (lipbench/models/lipforcing) at the tiny size, by
hand: where a stream's time goes, what the harness adds per chunk, and the in-project
causal DiT against upstream T-64/LipForcing's on the same seeded weights. Random
weights, so only the times mean anything. Run on a machine as quiet as you can get.

    python benchmarks/perf/lipforcing_cpu.py [--repeats 3] [--upstream /tmp/lf_up] [--dit-repeats 10]
        [--threads N] [--skip-streams]

With --upstream, upstream's files must be laid out as tests/fixtures/lipforcing_dit/
README.md describes (and einops importable: PYTHONPATH=/tmp/lf_deps).

Figures (one line each; medians over --repeats timed runs after one warm-up run):
- students (`lipforcing` tiny, random weights, on cpu; decoder taehv, the default, and
  wan_vae), streamed by lipbench.timing.time_stream over a synthetic 81-frame clip of
  128 px (7 blocks of 3 latents; faces aligned to 32 px, latents 4 x 4): the time of
  one block (its align start to its kv_update end), each stage's time per block
  (audio_encode: once per clip, before the first block), TTFF, FPS, and the authors'
  FastGen spans (model.derived_timing(row)["fastgen"]);
- teacher (`omniavatar_ls` tiny, 50 steps, guidance: 100 DiT forwards over the whole
  clip, one chunk): total time and each stage;
- harness: time_stream's time per chunk over 1000 chunks that already exist
  (tests.helpers.Instant) against a plain loop over the same generator, in us;
- DiT (only with --upstream): lipbench's CausalOmniAvatarWan and upstream's, both with
  make_fixtures.TINY (dim 64, 4 layers; upstream's text_dim 4096 and 10752 audio
  features), weights causal_dit.random_state_dict(TINY, 0), the streaming script's
  window (7 latent frames, sink 1, dynamic RoPE), run by make_fixtures.streaming_loop
  over 21 latent frames: 7 blocks of 3, each 2 denoising forwards + 1 cache update,
  the cache rolling from block 3 on; at latents 4 x 4 (32 px faces, the tiny adapter's)
  and 8 x 8 (64 px), the two alternating, --dit-repeats runs each after a warm-up.
  Median (and fastest) ms per block for each and the ratio lipbench / upstream, and
  the largest relative difference of their outputs (a check that both did the
  same work).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lipbench import models  # noqa: E402
from lipbench.check_adapter import synthetic_request  # noqa: E402
from lipbench.timing import time_stream  # noqa: E402
from lipbench.types import Request  # noqa: E402
from tests.helpers import Instant  # noqa: E402

CLIP_FRAMES, CLIP_SIZE = 81, 128
LATENT_SIZES = (4, 8)  # the tiny adapter's 32 px faces, and 64 px
DIT_FRAMES = 21  # latent frames of an 81-frame clip: 7 blocks of 3


def median(values) -> float:
    return float(statistics.median(values))


# --- the adapters' streams -------------------------------------------------------------


def blocks_of(spans: list) -> tuple[float, list[dict]]:
    """(audio_encode seconds, per block {stage: seconds, "_start": s, "_end": s}) from a
    row's stage_spans_s: a block starts at its align span."""
    audio, blocks = 0.0, []
    for name, start, end in spans:
        if name == "audio_encode" and not blocks:
            audio += end - start
            continue
        if name == "align":
            blocks.append({"_start": start})
        block = blocks[-1]
        block[name] = block.get(name, 0.0) + end - start
        block["_end"] = end
    return audio, blocks


def timed_streams(model, request, repeats: int) -> list[dict]:
    time_stream(model, request)  # warm-up
    rows = []
    for _ in range(repeats):
        _, row = time_stream(model, request)
        row["fastgen"] = model.derived_timing(row).get("fastgen", {})
        rows.append(row)
    return rows


def student(label: str, request, repeats: int, **options) -> None:
    model = models.create("lipforcing", size="tiny", random_weights=True, **options)
    model.load("cpu")
    rows = timed_streams(model, request, repeats)
    audio, blocks = [], []
    for row in rows:
        a, b = blocks_of(row["stage_spans_s"])
        audio.append(a)
        blocks.extend(b)
    n = len(blocks) // len(rows)
    print(
        f"{label}: {n} blocks per stream, {rows[0]['n_frames']} frames in {rows[0]['n_chunks']} chunks "
        f"(medians over {len(blocks)} blocks of {len(rows)} streams)"
    )
    print(
        f"{label}: block (align start -> kv_update end) {median(b['_end'] - b['_start'] for b in blocks) * 1e3:.1f} ms "
        f"(min {min(b['_end'] - b['_start'] for b in blocks) * 1e3:.1f}, "
        f"max {max(b['_end'] - b['_start'] for b in blocks) * 1e3:.1f})"
    )
    by_index = [median(b["_end"] - b["_start"] for b in blocks[i::n]) * 1e3 for i in range(n)]
    print(
        f"{label}: block by index (block 0: 9 frames, no cache; then 12 frames) "
        f"{', '.join(f'{t:.1f}' for t in by_index)} ms"
    )
    print(f"{label}: stage audio_encode {median(audio) * 1e3:.1f} ms per clip (once, before block 0)")
    for stage in ("align", "encode", "denoise", "decode", "composite", "kv_update"):
        print(f"{label}: stage {stage} {median(b.get(stage, 0.0) for b in blocks) * 1e3:.2f} ms per block")
    print(f"{label}: TTFF {median(r['ttff_s'] for r in rows) * 1e3:.1f} ms")
    print(
        f"{label}: FPS {median(r['fps'] for r in rows):.1f} (total {median(r['total_s'] for r in rows):.3f} s, "
        f"RTF {median(r['rtf'] for r in rows):.3f})"
    )
    for key in rows[0]["fastgen"]:
        value = median(r["fastgen"][key] for r in rows)
        unit = f"{value:.1f}" if key.startswith("fps_") else f"{value * 1e3:.1f} ms"
        print(f"{label}: fastgen {key} {unit}")


def teacher(label: str, request, repeats: int, **options) -> None:
    model = models.create("omniavatar_ls", size="tiny", random_weights=True, **options)
    model.load("cpu")
    rows = timed_streams(model, request, repeats)
    print(
        f"{label}: {rows[0]['n_chunks']} chunk of {rows[0]['n_frames']} frames, total "
        f"{median(r['total_s'] for r in rows):.3f} s (FPS {median(r['fps'] for r in rows):.1f}; "
        f"median of {len(rows)} streams)"
    )
    for stage in rows[0]["stages_s"]:
        print(f"{label}: stage {stage} {median(r['stages_s'][stage] for r in rows) * 1e3:.1f} ms")
    for key in ("ff_full_pipeline", "streaming_total"):
        if key in rows[0]["fastgen"]:
            print(f"{label}: fastgen {key} {median(r['fastgen'][key] for r in rows) * 1e3:.1f} ms")


# --- the harness -----------------------------------------------------------------------


def harness(repeats: int, n_chunks: int = 1000) -> None:
    chunks = [np.zeros((1, 8, 8, 3), np.uint8)] * n_chunks
    request = Request("c", np.zeros((n_chunks, 8, 8, 3), np.uint8), np.zeros(n_chunks * 640, np.float32), 16000, 25.0)
    model = Instant(chunks)
    timed, whole, plain = [], [], []
    for _ in range(max(repeats, 5)):
        t0 = time.perf_counter()
        _, row = time_stream(model, request)
        whole.append((time.perf_counter() - t0) / n_chunks)
        timed.append(row["total_s"] / row["n_chunks"])
        kept = []
        t0 = time.perf_counter()
        for chunk in model.stream(request):
            kept.append(chunk)
        plain.append((time.perf_counter() - t0) / n_chunks)
    t, w, p = median(timed) * 1e6, median(whole) * 1e6, median(plain) * 1e6
    print(
        f"harness: time_stream {t:.3f} us per chunk to the last chunk ({w:.3f} us with its end-of-stream work), "
        f"plain loop over the same generator {p:.3f} us; overhead {t - p:.3f} us per chunk "
        f"({n_chunks} chunks, median of {len(timed)})"
    )


# --- the causal DiT against upstream's ---------------------------------------------------


def load_make_fixtures():
    from tests.helpers import fixture_maker

    return fixture_maker("lipforcing_dit")[1]


def upstream_causal(upstream: str, make):
    """Upstream's CausalOmniAvatarWan class, set up as make_fixtures.main() does: the tiny
    size registered and the attention patched to SDPA in the input dtype."""
    os.environ.setdefault("LIPFORCING_DISABLE_FLEX_ATTENTION", "1")
    os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
    sys.path.insert(0, upstream)
    import torch.nn.functional as F
    from lipforcing.networks.OmniAvatar import network, network_causal

    def sdpa_in_input_dtype(q, k, v):  # upstream casts q/k/v to bf16 here (no flash-attn)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2).contiguous().type(q.dtype)

    network_causal._flash_attention = sdpa_in_input_dtype
    network.MODEL_CONFIGS["tiny"] = dict(
        dim=make.TINY.dim, ffn_dim=make.TINY.ffn_dim, num_heads=make.TINY.num_heads, num_layers=make.TINY.num_layers
    )
    return network_causal.CausalOmniAvatarWan


class Clocked:
    """The model as streaming_loop calls it, reading the clock at the end of each block
    (its store_kv=True pass)."""

    def __init__(self, model):
        self.model, self.noise_scheduler = model, model.noise_scheduler
        self.ends: list[float] = []

    def __call__(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        if kwargs.get("store_kv"):
            self.ends.append(time.perf_counter())
        return out


def seeded_inputs(make, size: int):
    """make_fixtures' seeded condition and noise at latents size x size, 21 frames."""
    saved = make.HEIGHT, make.WIDTH
    make.HEIGHT = make.WIDTH = size
    try:
        return make.seeded_condition(DIT_FRAMES), make.seeded_noise(DIT_FRAMES)
    finally:
        make.HEIGHT, make.WIDTH = saved


def block_times(model, condition, noise, eps, make) -> tuple[list[float], list[torch.Tensor]]:
    model.clear_caches()
    clocked = Clocked(model)
    start = time.perf_counter()
    with torch.no_grad():
        outputs = make.streaming_loop(clocked, condition, noise, eps)
    return list(np.diff([start] + clocked.ends)), outputs


def dit_versus_upstream(upstream: str, repeats: int) -> None:
    from lipbench.models.lipforcing.causal_dit import CausalOmniAvatarWan, random_state_dict

    make = load_make_fixtures()
    Upstream = upstream_causal(upstream, make)
    state = random_state_dict(make.TINY, make.WEIGHT_SEED)
    ours = CausalOmniAvatarWan(
        make.TINY,
        local_attn_size=7,
        sink_size=1,
        use_dynamic_rope=True,
        chunk_size=make.CHUNK,
        total_num_frames=DIT_FRAMES,
    )
    ours.core.load_state_dict(state, strict=True)
    theirs = Upstream(
        "tiny",
        in_dim=65,
        dtype="fp32",
        chunk_size=make.CHUNK,
        total_num_frames=DIT_FRAMES,
        local_attn_size=7,
        sink_size=1,
        use_dynamic_rope=True,
    )
    theirs.load_state_dict(state, strict=True)
    models_ = {"lipbench": ours.eval(), "upstream": theirs.eval()}
    for size in LATENT_SIZES:
        condition, (noise, eps) = seeded_inputs(make, size)
        times: dict[str, list[float]] = {name: [] for name in models_}
        outputs = {}
        for name, model in models_.items():  # warm-up
            outputs[name] = block_times(model, condition, noise, eps, make)[1]
        for _ in range(repeats):  # alternate, so a busy spell hits both
            for name, model in models_.items():
                times[name].extend(block_times(model, condition, noise, eps, make)[0])
        diff = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(outputs["lipbench"], outputs["upstream"]))
        ms = {name: median(t) * 1e3 for name, t in times.items()}
        best = {name: min(t) * 1e3 for name, t in times.items()}
        label = f"dit tiny latents {size}x{size} ({size * 8} px faces)"
        for name in models_:
            print(
                f"{label}: {name} {ms[name]:.2f} ms per block (median of {len(times[name])} blocks: "
                f"2 denoise forwards + 1 cache update; fastest {best[name]:.2f})"
            )
        print(
            f"{label}: lipbench / upstream {ms['lipbench'] / ms['upstream']:.3f} "
            f"(fastest blocks {best['lipbench'] / best['upstream']:.3f}); outputs differ by "
            f"{diff:.2e} relative (largest over the 21 outputs)"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--upstream", help="folder with upstream's `lipforcing` package (the parity fixtures' layout)")
    parser.add_argument(
        "--dit-repeats",
        type=int,
        default=10,
        help="timed runs of each DiT for the comparison (each is 7 blocks; cheap)",
    )
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--skip-streams", action="store_true", help="only the harness and the DiT comparison")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if not args.skip_streams:
        request = synthetic_request(frames=CLIP_FRAMES, size=CLIP_SIZE)
        student("lipforcing tiny (taehv)", request, args.repeats)
        student("lipforcing tiny (wan_vae)", request, args.repeats, decoder="wan_vae")
        teacher("omniavatar_ls tiny (50 steps)", request, args.repeats, steps=50)
    harness(args.repeats)
    if args.upstream:
        dit_versus_upstream(args.upstream, args.dit_repeats)
    else:
        print(
            "dit vs upstream: skipped (no --upstream DIR: a folder with upstream's `lipforcing` package, "
            "laid out as tests/fixtures/lipforcing_dit/README.md describes)"
        )
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
