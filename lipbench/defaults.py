"""Run-level defaults that more than one module reads, in one place.

The config (`lipbench.config.BenchmarkConfig`), the CLI's flags and their help, the
report's statistics and the synthetic set's recipe all read these names, so a default
changes here and nowhere else. Imports nothing: the CLI reads it for `--help`.
"""

from __future__ import annotations

# Bootstrap resamples for every confidence interval: per-clip means and medians,
# set-level metrics (each resample recomputes the metric) and `lipbench compare`.
RESAMPLES = 2000

CLIP_FRAMES = 81  # the paper's clip length: HDTF clips are prepared to it

# The synthetic talking-head set (lipbench.data.synthetic.SynthRecipe) and so the demo:
# 8 clips of the paper's length at 25 fps, 256 px, 16 kHz audio.
SYNTH_CLIPS = 8
SYNTH_SEED = 0
SYNTH_FRAMES = CLIP_FRAMES
SYNTH_FPS = 25.0
SYNTH_SIZE = 256
SYNTH_AUDIO_RATE = 16000

DEMO_OUT = "runs/demo"  # where `lipbench demo` writes its run


def metric_batch_size(device: str) -> int:
    """Images per network call when a metric is not told otherwise. On a CPU, batches
    past about 16 images run slower per image (activations outgrow the caches): measured
    iresnet100 at 112x112 126 / 128 / 175 ms per image at 8 / 16 / 96 images, InceptionV3
    101 / 106 / 134 ms. On a GPU, larger batches fill the device."""
    return 16 if str(device).split(":")[0] == "cpu" else 64
