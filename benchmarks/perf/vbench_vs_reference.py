"""Time lipbench's four VBench metric families against VBench 0.1.5's own code, on the same frames.

Families (lipbench/metrics/vbench) and what VBench runs for each (as in the parity
fixtures' make_fixtures.py, tests/fixtures/vbench_{subject,background,motion,imaging}):

- subject_consistency@dino_vitb16 (timm's ViT-B/16) against
  `vbench.subject_consistency.subject_consistency(model, [video], "cpu", read_frame=False)`
  with DINO's hub model (`torch.hub.load(<dino checkout>, "dino_vitb16", source="local",
  pretrained=False)` + `load_state_dict` of dino_vitbase16_pretrain.pth);
- background_consistency@clip_vitb32 (open_clip) against
  `vbench.background_consistency.background_consistency(model, preprocess, [video], "cpu", False)`
  with `clip.load(ViT-B-32.pt, device="cpu")` (OpenAI's clip package);
- motion_smoothness@amt_s (lipbench's AMT-S) against
  `vbench.motion_smoothness.MotionSmoothness(AMT-S.yaml, amt-s.pth, "cpu").motion_score(folder)`
  on a folder of lossless PNG frames (VBench's frame-folder path);
- imaging_quality@musiq_spaq (pyiqa's MUSIQ) against
  `vbench.imaging_quality.technical_quality(model, [video], "cpu", imaging_quality_preprocessing_mode="longer")`
  with `MUSIQ(pretrained_model_path=musiq_spaq_ckpt-358bb6af.pth)`, `model.training = False`
  (what `compute_imaging_quality` builds; the per-video part is timed separately from it).

Both sides get the same frames: the first --frames frames of the first --clips HDTF samples
(`../shared/data/hdtf_samples/fake/*.mp4`, decoded once by lipbench.io.read_video, native
size) saved as uint8 (T, H, W, 3) .npy files in <work>/frames. VBench's `load_video` is
replaced, in the VBench module that imported it, by a function returning the exact
(T, 3, H, W) uint8 tensor (what it returns for a decoded .mp4), as the fixtures do; for
motion the frames are written as BGR PNG files and read by VBench itself (the time it
spends reading them is recorded and left out of its per-clip time, since the other
families and lipbench get frames already in memory). Both sides use the same seeded
stand-in weights in the real formats (`lipbench weights random NAME`; the times do not
depend on the values).

Each side of each family runs in its own process (lipbench's venv; the reference venv
of that family, see the fixtures' READMEs), with torch.set_num_threads(--threads) and
OMP_NUM_THREADS/MKL_NUM_THREADS set to the same number. Measured with perf_counter in
each process: `import` (the modules), `load` (building the network and reading the
weights: lipbench's `metric.load()`, VBench's construction as above) and each clip's
compute (lipbench's `metric.compute(ClipContext(clip_id, Video(frames, 25.0)))`,
VBench's per-video function on a one-video list). VBench runs as it runs itself: the
background and imaging functions have no torch.no_grad (autograd records the forward),
subject and motion use it. The first clip pays one-time costs on both sides; every
clip's time is kept.

The per-clip values are compared: VBench's `video_results` (imaging: / 100, lipbench's
0..1 scale; motion: `motion_score`'s return) against lipbench's, with the parity tests'
tolerances (subject and background 1e-6, motion 1e-5, imaging 5e-5 on VBench's MOS scale).

Usage (see benchmarks/perf/README.md, "VBench dimensions"):
  .venv/bin/python benchmarks/perf/vbench_vs_reference.py --work /tmp/vbench_perf
Writes <work>/report.md and <work>/result.json after each family (an interrupted run keeps
the families done), prints the report at the end, and keeps one log per process.
--only FAMILY... runs a subset; --lipbench-batch-size N sets lipbench's images (motion: frame
pairs) per network call (default: lipbench's; on a CPU 16 for subject and background, 1 for
motion and imaging); --crop N (smoke tests only) centre-crops the frames.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hdtf_samples" / "fake"
LIPBENCH_PYTHON = REPO / ".venv" / "bin" / "python"

# family -> lipbench spec, weight file, reference venv, tolerance on lipbench's scale
FAMILIES = {
    "subject": {
        "spec": "subject_consistency@dino_vitb16",
        "weight": "dino_vitbase16_pretrain.pth",
        "venv": "/tmp/vbench_venv",
        "tolerance": 1e-6,
    },
    "background": {
        "spec": "background_consistency@clip_vitb32",
        "weight": "ViT-B-32.pt",
        "venv": "/tmp/vbench_background",
        "tolerance": 1e-6,
    },
    "motion": {
        "spec": "motion_smoothness@amt_s",
        "weight": "amt-s.pth",
        "venv": "/tmp/vbench_motion",
        "tolerance": 1e-5,
    },
    "imaging": {
        "spec": "imaging_quality@musiq_spaq",
        "weight": "musiq_spaq_ckpt-358bb6af.pth",
        "venv": "/tmp/vbench_imaging",
        "tolerance": 5e-7,  # 5e-5 on VBench's MOS scale (0..100)
    },
}

# packages whose versions each side reports
LIPBENCH_PACKAGES = ["torch", "torchvision", "numpy", "timm", "open_clip_torch", "pyiqa"]
VBENCH_PACKAGES = {
    "subject": ["vbench", "torch", "torchvision", "numpy"],
    "background": ["vbench", "openai-clip", "torch", "torchvision", "numpy"],
    "motion": ["vbench", "torch", "numpy", "opencv-python", "omegaconf"],
    "imaging": ["vbench", "pyiqa", "torch", "torchvision", "numpy"],
}


# what lipbench's load() imports lazily (lipbench.metrics.vbench.require), per family
LIPBENCH_LIBRARIES = {
    "subject": ("timm.models.vision_transformer", "torchvision.transforms.functional"),
    "background": ("open_clip", "open_clip.model", "torchvision.transforms.functional"),
    "imaging": ("pyiqa.archs.musiq_arch", "pyiqa.archs.arch_util"),
}


def versions(packages) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ------------------------------------------------------------------ child: lipbench side


def lipbench_child(family: str, cfg: dict) -> dict:
    """lipbench's metric: create, load (timed), compute per clip (timed)."""
    start = time.perf_counter()
    import numpy as np
    import torch

    torch.set_num_threads(cfg["threads"])
    from lipbench.metrics import create
    from lipbench.metrics.base import ClipContext, Video

    # the library lipbench builds the network with, imported here (it is imported lazily by
    # load()) so that `load` times building and reading weights only, as on VBench's side
    for module in LIPBENCH_LIBRARIES.get(family, ()):
        importlib.import_module(module)
    spec = FAMILIES[family]["spec"]
    metric = create(spec, weights_dir=cfg["weights_dir"])
    if cfg.get("batch_size"):  # --lipbench-batch-size: other than lipbench's default
        metric.batch_size = cfg["batch_size"]
    import_s = time.perf_counter() - start

    start = time.perf_counter()
    metric.load()
    load_s = time.perf_counter() - start

    clips = []
    for clip in cfg["clips"]:
        frames = np.load(clip["npy"])
        ctx = ClipContext(clip["id"], Video(frames, 25.0))
        start = time.perf_counter()
        values = metric.compute(ctx)
        seconds = time.perf_counter() - start
        (key, value), *rest = values.items()
        assert not rest, values
        clips.append({"id": clip["id"], "seconds": seconds, "key": key, "value": float(value)})
    return {
        "import_s": import_s,
        "load_s": load_s,
        "clips": clips,
        "batch_size": metric.batch_size,
        "threads": torch.get_num_threads(),
        "versions": versions(LIPBENCH_PACKAGES),
    }


# ------------------------------------------------------------------ child: VBench side


def video_tensors(cfg: dict) -> dict:
    """clip id -> (T, 3, H, W) uint8 tensor, what VBench's load_video returns."""
    import numpy as np
    import torch

    return {
        c["id"]: torch.from_numpy(np.ascontiguousarray(np.load(c["npy"]).transpose(0, 3, 1, 2))) for c in cfg["clips"]
    }


def vbench_subject(cfg: dict) -> tuple:
    """(load, per-clip function -> value) for subject consistency, as the fixture."""
    import torch
    import vbench.subject_consistency as vsc

    def load():
        state = torch.load(cfg["weights"], map_location="cpu", weights_only=True)
        model = torch.hub.load(cfg["dino"], "dino_vitb16", source="local", pretrained=False)
        model.load_state_dict(state, strict=True)  # DINO's key names, one to one
        return model.eval()

    def clip_value(model, clip_id):
        _, per_video = vsc.subject_consistency(model, [clip_id], "cpu", read_frame=False)
        return per_video[0]["video_results"]

    return vsc, load, clip_value


def vbench_background(cfg: dict) -> tuple:
    import warnings

    warnings.simplefilter("ignore")  # pkg_resources and TorchScript deprecation notes
    import clip
    import vbench.background_consistency as vbc

    def load():
        return clip.load(cfg["weights"], device="cpu")  # jit=False, VBench's call

    def clip_value(loaded, clip_id):
        model, preprocess = loaded
        _, per_video = vbc.background_consistency(model, preprocess, [clip_id], "cpu", False)
        return per_video[0]["video_results"]

    return vbc, load, clip_value


def vbench_imaging(cfg: dict) -> tuple:
    import vbench.imaging_quality as iq

    def load():  # what compute_imaging_quality builds
        model = iq.MUSIQ(pretrained_model_path=cfg["weights"])
        model.to("cpu")
        model.training = False
        return model

    def clip_value(model, clip_id):
        _, per_video = iq.technical_quality(model, [clip_id], "cpu", imaging_quality_preprocessing_mode="longer")
        return per_video[0]["video_results"] / 100.0  # lipbench's 0..1 scale

    return iq, load, clip_value


def vbench_motion(cfg: dict) -> tuple:
    import cv2
    import numpy as np
    import vbench
    from vbench.motion_smoothness import MotionSmoothness

    config = Path(vbench.__file__).parent / "third_party" / "amt" / "cfgs" / "AMT-S.yaml"
    read = {"s": 0.0}  # seconds VBench spends reading the PNG frames

    # the frames as PNG folders (BGR, lossless), written before any timing
    for clip in cfg["clips"]:
        folder = Path(cfg["work"]) / "png" / clip["id"]
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(np.load(clip["npy"])):
            assert cv2.imwrite(str(folder / f"{i:04d}.png"), np.ascontiguousarray(frame[..., ::-1]))

    def load():
        motion = MotionSmoothness(str(config), cfg["weights"], "cpu")
        reader = motion.fp.get_frames_from_img_folder

        def timed_reader(folder):
            start = time.perf_counter()
            try:
                return reader(folder)
            finally:
                read["s"] += time.perf_counter() - start

        motion.fp.get_frames_from_img_folder = timed_reader
        return motion

    def clip_value(motion, clip_id):
        return float(motion.motion_score(str(Path(cfg["work"]) / "png" / clip_id)))

    return None, load, clip_value, read


def vbench_child(family: str, cfg: dict) -> dict:
    """VBench's own code: load (timed), the per-video function per clip (timed)."""
    start = time.perf_counter()
    import torch

    torch.set_num_threads(cfg["threads"])
    made = {"subject": vbench_subject, "background": vbench_background, "imaging": vbench_imaging}
    read = None
    if family == "motion":
        module, load, clip_value, read = vbench_motion(cfg)
    else:
        module, load, clip_value = made[family](cfg)
    import_s = time.perf_counter() - start  # (motion: includes writing the PNG folders)

    start = time.perf_counter()
    model = load()
    load_s = time.perf_counter() - start

    if module is not None:  # the exact frames instead of a decode, as the fixtures do
        tensors = video_tensors(cfg)
        module.load_video = lambda path, *args, **kwargs: tensors[path].clone()

    clips = []
    for clip in cfg["clips"]:
        read_before = read["s"] if read else 0.0
        start = time.perf_counter()
        value = clip_value(model, clip["id"])
        seconds = time.perf_counter() - start
        read_s = (read["s"] - read_before) if read else 0.0
        # the time without reading PNG files (motion), to compare with lipbench's in-memory frames
        clips.append({"id": clip["id"], "seconds": seconds - read_s, "read_s": read_s, "value": float(value)})
    return {
        "import_s": import_s,
        "load_s": load_s,
        "clips": clips,
        "threads": torch.get_num_threads(),
        "versions": versions(VBENCH_PACKAGES[family]),
    }


# ------------------------------------------------------------------ parent


def make_weights(weights_dir: Path, names) -> None:
    """Seeded stand-ins in the real formats, those not there yet."""
    missing = [n for n in names if not (weights_dir / n).exists()]
    if missing:
        lipbench = REPO / ".venv" / "bin" / "lipbench"
        subprocess.run([str(lipbench), "weights", "random", *missing, "--weights-dir", str(weights_dir)], check=True)


def make_frames(work: Path, data: Path, clips: int, frames: int, crop: int | None = None) -> list[dict]:
    """The first `frames` frames of the first `clips` samples as uint8 (T, H, W, 3) .npy."""
    import numpy as np

    from lipbench.io import read_video

    out = []
    for path in sorted(data.glob("*.mp4"))[:clips]:
        video, fps = read_video(path, max_frames=frames)
        if crop:  # smoke tests: a small centre crop
            top, left = (video.shape[1] - crop) // 2, (video.shape[2] - crop) // 2
            video = video[:, top : top + crop, left : left + crop]
        npy = work / "frames" / f"{path.stem}.npy"
        npy.parent.mkdir(parents=True, exist_ok=True)
        np.save(npy, np.ascontiguousarray(video[:frames]))
        out.append({"id": path.stem, "npy": str(npy), "shape": list(video[:frames].shape), "fps": fps})
    if not out:
        raise SystemExit(f"no .mp4 in {data}")
    return out


def run_child(python: str, side: str, family: str, cfg: dict, work: Path) -> dict:
    """Run this file as a child (`--child SIDE --family F --config cfg.json`) with `python`."""
    name = f"{side}_{family}"
    if not Path(python).is_file():
        return {"error": f"no Python at {python} (--{family}-venv: VBench's venv)", "log_tail": "", "wall_s": 0.0}
    config, result, log = (work / f"{name}{ext}" for ext in (".config.json", ".json", ".log"))
    config.write_text(json.dumps({**cfg, "out": str(result)}, indent=1))
    result.unlink(missing_ok=True)
    threads = str(cfg["threads"])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
    if side == "lipbench":
        env["PYTHONPATH"] = str(REPO)
    command = [python, str(Path(__file__).resolve()), "--child", side, "--family", family, "--config", str(config)]
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(command)}", flush=True)
    start = time.perf_counter()
    with log.open("w") as handle:
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO).returncode
    wall = time.perf_counter() - start
    if code != 0 or not result.exists():
        tail = log.read_text()[-3000:]
        return {"error": f"exit {code}; see {log}", "log_tail": tail, "wall_s": wall}
    return {**json.loads(result.read_text()), "wall_s": wall}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mean(xs) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


READ = "read_s"  # (a name: Python 3.11 f-strings cannot nest the same quotes)


def report(result: dict) -> str:
    lines = [
        "# VBench dimensions: lipbench vs VBench 0.1.5",
        "",
        f"{result['date']}; CPU {result['cpu']} ({result['cores']} cores), torch threads {result['threads']} "
        f"on both sides; {len(result['clips'])} clip(s) of {result['clips'][0]['shape']} uint8 frames "
        f"({', '.join(c['id'] for c in result['clips'])}); load average at the start {result['load_start']}, "
        f"at the end {result['load_end']}.",
        "",
        "| family | lipbench load s | VBench load s | load ratio | lipbench per-clip s | VBench per-clip s "
        "| per-clip ratio | max abs value diff | tolerance | agree |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for family, sides in result["families"].items():
        lb, vb = sides["lipbench"], sides["vbench"]
        if "error" in lb or "error" in vb:
            lines.append(f"| {family} | {lb.get('error', '')} | {vb.get('error', '')} | | | | | | | |")
            continue
        lb_clip = [c["seconds"] for c in lb["clips"]]
        vb_clip = [c["seconds"] for c in vb["clips"]]
        diff = max(abs(a["value"] - b["value"]) for a, b in zip(lb["clips"], vb["clips"]))
        tol = FAMILIES[family]["tolerance"]
        lines.append(
            f"| {FAMILIES[family]['spec']} | {lb['load_s']:.2f} | {vb['load_s']:.2f} "
            f"| {vb['load_s'] / lb['load_s']:.2f} "
            f"| {mean(lb_clip):.2f} ({' / '.join(f'{s:.2f}' for s in lb_clip)}) "
            f"| {mean(vb_clip):.2f} ({' / '.join(f'{s:.2f}' for s in vb_clip)}) "
            f"| {mean(vb_clip) / mean(lb_clip):.2f} | {diff:.2e} | {tol:.0e} | {'yes' if diff <= tol else 'NO'} |"
        )
        values = ", ".join(f"{a['value']:.9f} / {b['value']:.9f}" for a, b in zip(lb["clips"], vb["clips"]))
        notes.append(
            f"- {family}: values lipbench / VBench per clip: {values}; imports {lb['import_s']:.2f} / "
            f"{vb['import_s']:.2f} s; process wall {lb['wall_s']:.1f} / {vb['wall_s']:.1f} s; "
            f"lipbench batch {lb['batch_size']}"
            + (
                f"; VBench PNG reading {' / '.join(f'{c[READ]:.2f}' for c in vb['clips'])} s per clip (not in its time)"
                if family == "motion"
                else ""
            )
        )
    lines += [
        "",
        "Ratios are VBench time / lipbench time (above 1: lipbench is faster). Per-clip: the mean over clips, each "
        "clip in brackets (the first pays one-time costs).",
        "",
        *notes,
        "",
        "Versions: lipbench side "
        + json.dumps(result["versions"]["lipbench"])
        + "; VBench side "
        + json.dumps(result["versions"]["vbench"]),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/vbench_perf"), help="work folder (frames, logs, report)"
    )
    parser.add_argument("--clips", type=int, default=2, help="how many HDTF samples (sorted by name)")
    parser.add_argument("--frames", type=int, default=33, help="first N frames of each")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, both sides")
    parser.add_argument("--only", nargs="+", choices=list(FAMILIES), help="a subset of the families")
    parser.add_argument("--weights-dir", type=Path, help="stand-ins (made there when missing; default <work>/weights)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of .mp4 samples")
    parser.add_argument(
        "--lipbench-batch-size", type=int, help="images (motion: frame pairs) per network call on lipbench's side"
    )
    parser.add_argument("--crop", type=int, help="centre-crop frames to N x N (smoke tests only)")
    parser.add_argument("--dino", default="/tmp/dino_src", help="facebookresearch/dino checkout (hubconf.py)")
    for family, spec in FAMILIES.items():
        parser.add_argument(f"--{family}-venv", default=spec["venv"], help=f"reference venv for {family}")
    # internal: run one side of one family (this file, started by the parent)
    parser.add_argument("--child", choices=["lipbench", "vbench"], help=argparse.SUPPRESS)
    parser.add_argument("--family", choices=list(FAMILIES), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        cfg = json.loads(args.config.read_text())
        child = lipbench_child if args.child == "lipbench" else vbench_child
        Path(cfg["out"]).write_text(json.dumps(child(args.family, cfg), indent=1))
        return

    from lipbench.storage import write_json, write_text  # the parent runs in lipbench's venv, the children may not

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    weights_dir = (args.weights_dir or work / "weights").resolve()
    families = args.only or list(FAMILIES)
    make_weights(weights_dir, [FAMILIES[f]["weight"] for f in families])
    clips = make_frames(work, args.data, args.clips, args.frames, args.crop)
    cfg = {
        "threads": args.threads,
        "clips": clips,
        "work": str(work),
        "dino": args.dino,
        "batch_size": args.lipbench_batch_size,
    }

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "load_start": round(os.getloadavg()[0], 2),
        "clips": clips,
        "families": {},
        "versions": {"lipbench": {}, "vbench": {}},
    }
    for family in families:
        spec = FAMILIES[family]
        weights = str(weights_dir / spec["weight"])
        venv_python = str(Path(getattr(args, f"{family}_venv")) / "bin" / "python")
        sides = {
            "lipbench": run_child(
                str(LIPBENCH_PYTHON), "lipbench", family, {**cfg, "weights_dir": str(weights_dir)}, work
            ),
            "vbench": run_child(venv_python, "vbench", family, {**cfg, "weights": weights}, work),
        }
        result["families"][family] = sides
        for side, out in sides.items():
            result["versions"][side].update({k: v for k, v in out.get("versions", {}).items() if v})
            if "error" in out:
                print(f"{side} {family} failed: {out['error']}\n{out['log_tail']}", flush=True)
        # after each family, so an interrupted run keeps the families already timed
        result["load_end"] = round(os.getloadavg()[0], 2)
        write_json(work / "result.json", result)
        write_text(work / "report.md", report(result))
        print(f"[{time.strftime('%H:%M:%S')}] {family} done: {work / 'report.md'}", flush=True)
    print(report(result))


if __name__ == "__main__":
    main()
