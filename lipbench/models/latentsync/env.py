"""Build LatentSync 1.6's own Python environment (it cannot share lipbench's).

LatentSync (bytedance/LatentSync a229c39, requirements.txt) pins torch 2.5.1,
diffusers 0.32.2 and transformers 4.48.0, which clash with lipbench's own torch; lipbench
drives it through a worker process (lipbench/models/worker_side.py) started with this
environment's interpreter. Everything comes from the package registry (PyPI): torch and
torchvision are PyPI's Linux wheels (CUDA 12.4 runtime libraries come as nvidia-* wheels,
a few GB), not download.pytorch.org's cu121 builds named in requirements.txt.

What is installed, against upstream's requirements.txt:
- the pins that LatentSync's inference path imports (latentsync.pipelines, models,
  whisper, utils): torch, torchvision, diffusers, transformers, huggingface-hub,
  accelerate, einops, omegaconf, opencv (the headless build of the same release),
  numpy, decord, kornia, librosa, imageio, imageio-ffmpeg, ffmpeg-python, soundfile,
  matplotlib, tqdm, insightface, onnxruntime-gpu;
- insightface 0.7.3 has no wheel: pip builds it from its sdist (a small Cython
  extension), so a C compiler and the Python headers must be present. Its FaceAnalysis
  runs the buffalo_l ONNX models with onnxruntime, on the CPU provider when the worker
  runs on the CPU (onnxruntime-gpu carries both providers);
- left out (not on the inference path): mediapipe, scenedetect, lpips, face-alignment,
  gradio, python_speech_features, DeepCache (inference.sh's --enable_deepcache is a
  speed-up that skips UNet blocks; lipbench runs the full UNet at every step).

`python -m lipbench.models.latentsync.env --dest DIR [--checkout DIR]` builds it and
prints the interpreter's path; `pip freeze` of the result goes to DIR/lipbench-freeze.txt.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

PYTHON_VERSION = (3, 11)

# LatentSync a229c39 requirements.txt, as far as the inference path needs them.
PINS = (
    "torch==2.5.1",
    "torchvision==0.20.1",
    "diffusers==0.32.2",
    "transformers==4.48.0",
    "huggingface-hub==0.30.2",
    "accelerate==0.26.1",
    "einops==0.7.0",
    "omegaconf==2.3.0",
    "opencv-python-headless==4.9.0.80",  # upstream: opencv-python==4.9.0.80 (same release, no GUI)
    "numpy==1.26.4",
    "decord==0.6.0",
    "kornia==0.8.0",
    "librosa==0.10.1",
    "imageio==2.31.1",
    "imageio-ffmpeg==0.5.1",
    "ffmpeg-python==0.2.0",
    "onnxruntime-gpu==1.21.0",
)
# unpinned upstream (they come with mediapipe / librosa / gradio there)
UNPINNED = ("soundfile", "matplotlib", "tqdm", "scipy", "packaging")
# built from its sdist (no wheel on the registry), after the pins are in place
SDIST = ("insightface==0.7.3",)


class EnvError(RuntimeError):
    pass


def find_python() -> str:
    """A Python 3.11 interpreter to make the venv with."""
    if sys.version_info[:2] == PYTHON_VERSION:
        return sys.executable
    for name in ("python3.11", "python3"):
        found = shutil.which(name)
        if found:
            out = subprocess.run(
                [found, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"], capture_output=True, text=True
            )
            if out.stdout.strip() == "True":
                return found
    raise EnvError("LatentSync's environment needs Python 3.11 (python3.11 on PATH)")


def _run(cmd: list[str], what: str) -> None:
    print(f"[latentsync env] {what}: {' '.join(cmd)}", flush=True)
    started = time.monotonic()
    done = subprocess.run(cmd)  # inherits stdout/stderr: pip's own progress is visible
    if done.returncode:
        raise EnvError(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}")
    print(f"[latentsync env] {what}: done in {time.monotonic() - started:.0f} s", flush=True)


def interpreter(dest: Path) -> Path:
    return Path(dest) / "bin" / "python"


def create_env(dest: Path, checkout: Path | None = None) -> Path:
    """Make (or complete) the venv at `dest` with LatentSync's pins; return its python.

    `checkout`: the user's LatentSync checkout (bytedance/LatentSync at a229c39); when
    given, it is checked to hold the package the worker imports and is recorded in
    dest/lipbench-checkout.txt. Nothing from it is installed: the worker puts it on
    sys.path itself.
    """
    dest = Path(dest).resolve()
    if checkout is not None:
        checkout = Path(checkout).resolve()
        if not (checkout / "latentsync" / "pipelines" / "lipsync_pipeline.py").is_file():
            raise EnvError(f"{checkout} is not a LatentSync checkout (no latentsync/pipelines/lipsync_pipeline.py)")
    python = interpreter(dest)
    if not python.exists():
        _run([find_python(), "-m", "venv", str(dest)], "venv")
    pip = [str(python), "-m", "pip", "install", "--progress-bar", "on"]
    _run(pip + ["--upgrade", "pip", "setuptools", "wheel"], "pip upgrade")
    constraints = dest / "lipbench-constraints.txt"
    constraints.write_text("\n".join(PINS) + "\n")
    _run(pip + ["-c", str(constraints), *PINS, *UNPINNED], "LatentSync pins")
    _run(pip + ["-c", str(constraints), *SDIST], "insightface (from its sdist)")
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True)
    (dest / "lipbench-freeze.txt").write_text(freeze.stdout)
    if checkout is not None:
        (dest / "lipbench-checkout.txt").write_text(str(checkout) + "\n")
    check = "import torch, diffusers, transformers, insightface, onnxruntime, decord, kornia; print(torch.__version__)"
    _run([str(python), "-c", check], "import check")
    return python


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lipbench.models.latentsync.env",
        description="build LatentSync 1.6's environment for lipbench's worker",
    )
    parser.add_argument("--dest", required=True, type=Path, help="where the venv goes")
    parser.add_argument("--checkout", type=Path, default=None, help="the LatentSync checkout (a229c39)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        python = create_env(args.dest, args.checkout)
    except EnvError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"[latentsync env] built in {time.monotonic() - started:.0f} s")
    print(f"export LIPBENCH_LATENTSYNC_PYTHON={python}")
    if args.checkout is not None:
        print(f"export LIPBENCH_LATENTSYNC_CHECKOUT={Path(args.checkout).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
