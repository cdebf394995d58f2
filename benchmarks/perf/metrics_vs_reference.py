"""Time lipbench's paper suite against the paper authors' own scripts, on the same files.

lipbench side: `lipbench.evaluate.evaluate_files` with the `lipforcing` suite
(syncnet@latentsync, csim@arcface112, fid@per_video, fvd@latentsync, ssim@face224).
Authors' side: jinhyukj/eval_metrics eval/eval_{fvd,fid_videos,csim,ssim_lmd,sync}.py, one
process each with the arguments eval/run_metrics.sh gives them.

Both sides get the same trimmed copies of the HDTF sample pairs (first --frames frames,
video re-encoded losslessly as libx264rgb qp 0, audio as AAC) and the same seeded random
weights (`lipbench weights random`). Each side runs in its own Python process, so imports
and weight loading count on both sides. Inside each process, perf_counter accumulators
(installed by this script only, by monkeypatching) split the time into:
- network forward passes: the outermost torch module call (global forward hooks), and the
  SyncNet `forward_*` methods (called directly, not through `__call__`);
- MediaPipe face detection / face mesh `process` calls;
- scipy's sqrtm (FID's 2048x2048 and FVD's 400x400 matrix square roots);
- everything else (decoding, face tracking, resizing, I/O, ffmpeg subprocesses, ...).

The authors' scripts need stand-ins to run here (all in `upstream_child`): `.cuda()` is the
identity (CPU only); `latentsync.utils.util` is replaced by `red_text` and a no-op
`check_model_and_download` (the real module imports einops, which is not installed);
`dlib` is a stub and eval_ssim_lmd's `compute_lmd` returns 0.0, so SSIM is timed without
LMD (the paper's suite, which lipbench runs here, has no LMD); pytorch-fid's weight
download returns the seeded file. Per-clip values are recorded at
full precision by wrapping the functions that compute them (the scripts print rounded values).

Usage (see benchmarks/perf/README.md):
  python benchmarks/perf/metrics_vs_reference.py --eval-metrics /tmp/em \
      --weights-dir /tmp/w --frames 81 --work /tmp/perf
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import types
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hdtf_samples"
SUITE = "lipforcing"

# Tolerances of the parity tests (tests/test_{fid,ssim,csim,syncnet,fvd}.py): (kind, bound).
TOLERANCES = {
    "fid": ("rel", 1e-3),
    "ssim": ("abs", 1e-5),
    "csim": ("abs", 1e-4),
    "sync_c": ("abs", 1e-4),
    "sync_d": ("abs", 1e-4),
    "fvd": ("rel", 1e-3),
}

# Script, the flags run_metrics.sh passes (paths filled in later), in run_metrics.sh's order.
UPSTREAM = ["fvd", "fid", "csim", "ssim", "sync"]


# ------------------------------------------------------------------ timers (both children)


class Timers:
    """Seconds and call counts per label; only the outermost timed call counts, so a network
    called inside a timed method is not counted twice."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self.depth = 0
        self._open = []

    @contextlib.contextmanager
    def span(self, label):
        self.enter(label)
        try:
            yield
        finally:
            self.leave()

    def enter(self, label):
        self.depth += 1
        if self.depth == 1:
            self._open.append((label, time.perf_counter()))

    def leave(self):
        if self.depth == 1 and self._open:
            label, start = self._open.pop()
            self.seconds[label] += time.perf_counter() - start
            self.calls[label] += 1
        self.depth -= 1

    def wrap(self, owner, name, label):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            with self.span(label(*args) if callable(label) else label):
                return original(*args, **kwargs)

        setattr(owner, name, timed)

    def as_dict(self):
        return {k: {"seconds": self.seconds[k], "calls": self.calls[k]} for k in sorted(self.seconds)}


NETWORK_NAMES = {
    "RecursiveScriptModule": "I3D (TorchScript)",
    "IResNet": "iresnet100 (ArcFace)",
    "S3FDNet": "S3FD",
    "InceptionV3": "InceptionV3 (FID)",
}


def install_timers(timers: Timers, syncnet_classes=()):
    import mediapipe as mp
    import scipy.linalg
    import torch

    def pre(module, args):
        timers.enter("net: " + NETWORK_NAMES.get(type(module).__name__, type(module).__name__))

    def post(module, args, output):
        timers.leave()

    torch.nn.modules.module.register_module_forward_pre_hook(pre)
    torch.nn.modules.module.register_module_forward_hook(post, always_call=True)
    for cls in syncnet_classes:  # forward_aud / forward_lip are called directly
        for name in [n for n in vars(cls) if n.startswith("forward_")]:
            timers.wrap(cls, name, "net: SyncNet")
    timers.wrap(mp.solutions.face_detection.FaceDetection, "process", "mediapipe: face detection")
    timers.wrap(mp.solutions.face_mesh.FaceMesh, "process", "mediapipe: face mesh")
    timers.wrap(scipy.linalg, "sqrtm", lambda m, *a: f"sqrtm {m.shape[0]}x{m.shape[1]}")


# ------------------------------------------------------------------ lipbench child


def lipbench_child(cfg: dict) -> dict:
    from lipbench.evaluate import evaluate_files, pair_files
    from lipbench.metrics import resolve_specs
    from lipbench.metrics.syncnet.network import SyncNet

    timers = Timers()
    install_timers(timers, [SyncNet])
    pairs = pair_files([cfg["fake"]], cfg["real"])
    start = time.perf_counter()
    result = evaluate_files(pairs, resolve_specs([SUITE]), device="cpu", weights_dir=cfg["weights_dir"], progress=False)
    return {
        "evaluate_s": time.perf_counter() - start,
        "timers": timers.as_dict(),
        "clips": result["clips"],
        "aggregate": result["aggregate"],
        "failed": result["failed"],
    }


# ------------------------------------------------------------------ authors' scripts child


def stub_modules():
    """Stand-ins for modules the scripts import but that cannot be installed/used here."""
    util = types.ModuleType("latentsync.utils.util")
    util.red_text = lambda text: text
    util.check_model_and_download = lambda path, *a, **k: None  # the file is already in place
    sys.modules["latentsync.utils.util"] = util
    dlib = types.ModuleType("dlib")  # LMD is not in the suite compared: switched off below
    dlib.get_frontal_face_detector = lambda: lambda image, upsample=0: []
    dlib.shape_predictor = lambda path: None
    sys.modules["dlib"] = dlib


def load_script(root: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"upstream_{name}", root / "eval" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upstream_child(cfg: dict) -> dict:
    import torch

    root, metric, weights = Path(cfg["eval_metrics"]), cfg["metric"], Path(cfg["weights_dir"])
    sys.path.insert(0, str(root))  # run_metrics.sh puts the checkout on PYTHONPATH
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    stub_modules()
    import pytorch_fid.inception

    pytorch_fid.inception.load_state_dict_from_url = lambda *a, **k: torch.load(
        weights / "pt_inception-2015-12-05-6726825d.pth", weights_only=True
    )
    from eval.syncnet.syncnet import S

    timers = Timers()
    install_timers(timers, [S])
    values: dict = defaultdict(dict)
    real, fake = cfg["real"], cfg["fake"]

    if metric == "fvd":
        import eval.fvd

        compute = eval.fvd.compute_our_fvd

        def recorded(*a, **k):
            values["_set"]["fvd"] = float(compute(*a, **k))
            return values["_set"]["fvd"]

        eval.fvd.compute_our_fvd = recorded
        module = load_script(root, "eval_fvd")
        run = lambda: module.eval_fvd(real, fake)  # noqa: E731  (the script's __main__ block)
    elif metric == "fid":
        import pytorch_fid.fid_score as fid_score

        compute = fid_score.calculate_fid_given_paths

        def recorded(paths, *a, **k):
            value = compute(paths, *a, **k)
            values[Path(paths[1]).parent.name]["fid"] = float(value)  # <tmp>/<key>/previews
            return value

        fid_score.calculate_fid_given_paths = recorded
        module = load_script(root, "eval_fid_videos")
        argv = [
            "--inputs_dir",
            real,
            "--previews_dir",
            fake,
            "--log_path",
            cfg["log"],
            "--device",
            "cpu",
            "--batch-size",
            "64",
            "--dims",
            "2048",
            "--min_detection_confidence",
            "0.5",
            "--fallback_detection_confidence",
            "0.2",
            "--ffmpeg_path",
            "ffmpeg",
        ]
        run = module.main
    elif metric == "csim":
        module = load_script(root, "eval_csim")
        read, load = module.read_mp4, module.load_model
        current = {}

        def read_recorded(path, *a, **k):
            current["name"] = Path(path).name
            return read(path, *a, **k)

        def load_recorded(*a, **k):
            net = load(*a, **k)

            def hook(mod, args, out):  # the script embeds cat(real, fake) in one call per clip
                real_f, fake_f = out.detach().float().chunk(2)
                cos = torch.nn.functional.cosine_similarity(real_f, fake_f)
                values[current["name"]]["csim"] = float(cos.double().mean())

            net.register_forward_hook(hook)
            return net

        module.read_mp4, module.load_model = read_recorded, load_recorded
        argv = [
            "--real_videos_dir",
            real,
            "--fake_videos_dir",
            fake,
            "--weight",
            str(weights / "ms1mv3_arcface_r100_fp16.pth"),
            "--arcface_dir",
            str(root / "arcface_torch"),
            "--model_name",
            "r100",
            "--batch_size",
            "512",
        ]
        run = module.main
    elif metric == "ssim":
        module = load_script(root, "eval_ssim_lmd")
        compute = module.compute_video_ssim_lmd

        def recorded(real_path, fake_path, *a, **k):
            stats = compute(real_path, fake_path, *a, **k)
            values[Path(fake_path).name]["ssim"] = float(stats["mean_ssim"])
            return stats

        module.compute_video_ssim_lmd = recorded
        module.compute_lmd = lambda *a, **k: 0.0  # not in the paper's suite: switched off
        Path(cfg["log"]).with_suffix(".dat").write_bytes(b"")
        argv = [
            "--real_videos_dir",
            real,
            "--fake_videos_dir",
            fake,
            "--shape_predictor_path",
            str(Path(cfg["log"]).with_suffix(".dat")),
            "--log_path",
            cfg["log"],
            "--min_detection_confidence",
            "0.5",
            "--fallback_detection_confidence",
            "0.2",
        ]
        run = module.main
    elif metric == "sync":
        import eval.syncnet
        import eval.syncnet_detect

        detect, evaluate = eval.syncnet_detect.SyncNetDetector.__call__, eval.syncnet.SyncNetEval.evaluate
        current, tracks = {}, defaultdict(list)

        def detect_recorded(self, video_path, *a, **k):
            current["name"] = Path(video_path).name
            return detect(self, video_path, *a, **k)

        def evaluate_recorded(self, *a, **k):
            out = evaluate(self, *a, **k)
            tracks[current["name"]].append(out)
            _, min_dist, conf = out
            n = len(tracks[current["name"]])  # eval_sync averages over the clip's tracks
            values[current["name"]].update(
                sync_d=float(sum(float(t[1]) for t in tracks[current["name"]]) / n),
                sync_c=float(sum(float(t[2]) for t in tracks[current["name"]]) / n),
                tracks=n,
            )
            return out

        eval.syncnet_detect.SyncNetDetector.__call__ = detect_recorded
        eval.syncnet.SyncNetEval.evaluate = evaluate_recorded
        module = load_script(root, "eval_sync")
        argv = ["--videos_dir", fake, "--initial_model", str(weights / "syncnet_v2.model")]
        run = module.main
    else:
        raise ValueError(f"unknown metric {metric!r}")

    if metric != "fvd":
        sys.argv = [f"eval_{metric}.py", *argv]
    start = time.perf_counter()
    status = run()
    return {
        "script_s": time.perf_counter() - start,
        "status": status,
        "timers": timers.as_dict(),
        "values": dict(values),
    }


# ------------------------------------------------------------------ parent


def trim_inputs(data: Path, out: Path, frames: int, clips: int) -> tuple[Path, Path]:
    """First `frames` frames of the first `clips` pairs, lossless video, same files for both sides."""
    real_out, fake_out = out / "real", out / "fake"
    real_out.mkdir(parents=True, exist_ok=True)
    fake_out.mkdir(parents=True, exist_ok=True)
    fakes = sorted((data / "fake").glob("*.mp4"))[:clips]
    if not fakes:
        raise FileNotFoundError(f"{data / 'fake'}: no .mp4 files")
    for fake in fakes:
        key = fake.stem.rsplit("_", 1)[0]
        real = data / "real" / f"{key}_cfr25.mp4"
        if not real.exists():
            raise FileNotFoundError(f"{real}: no real video for {fake.name}")
        for src, dst in ((real, real_out / real.name), (fake, fake_out / fake.name)):
            if dst.exists():
                continue
            # libx264rgb qp 0 is lossless RGB: every reader (PyAV, cv2, decord, ffmpeg) decodes the
            # same pixels; -t cuts the audio to the video's length (25 fps inputs).
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    str(src),
                    "-frames:v",
                    str(frames),
                    "-t",
                    f"{frames / 25:.3f}",
                    "-c:v",
                    "libx264rgb",
                    "-qp",
                    "0",
                    "-pix_fmt",
                    "rgb24",
                    "-c:a",
                    "aac",
                    "-ar",
                    "16000",
                    str(dst),
                ],
                check=True,
            )
    return real_out, fake_out


def run_child(kind: str, cfg: dict, work: Path, cwd: Path, env: dict) -> dict:
    cfg_path = work / f"{kind}_{cfg.get('metric', 'all')}.json"
    out_path = cfg_path.with_suffix(".out.json")
    cfg = {**cfg, "out": str(out_path)}
    cfg_path.write_text(json.dumps(cfg))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), f"--_{kind}", str(cfg_path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    (work / f"{kind}_{cfg.get('metric', 'all')}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out_path.exists():
        tail = (proc.stdout + proc.stderr)[-3000:]
        return {"wall_s": wall, "error": f"exit {proc.returncode}\n{tail}"}
    return {"wall_s": wall, **json.loads(out_path.read_text())}


def clip_key(name: str) -> str:
    stem = Path(name).stem
    for suffix in ("_cfr25", "_synced"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def lipbench_value(values: dict, metric: str):
    """The lipbench per-clip output that matches the authors' number."""
    wanted = {
        "fid": ["fid"],
        "ssim": ["ssim"],
        "csim": ["csim"],
        "sync_c": ["sync_c", "syncnet_c", "lse_c"],
        "sync_d": ["sync_d", "syncnet_d", "lse_d"],
    }[metric]
    for key, value in values.items():  # lipbench keys are "family@protocol"
        if key.split("@")[0].lower() in wanted:
            return value
    return None


def compare(lip: dict, ups: dict) -> list[dict]:
    rows = []
    up_values = defaultdict(dict)
    for res in ups.values():
        for name, vals in res.get("values", {}).items():
            up_values[clip_key(name) if name != "_set" else "_set"].update(vals)
    for metric in ("sync_c", "sync_d", "csim", "fid", "ssim"):
        for cid, values in sorted(lip.get("clips", {}).items()):
            rows.append(row(metric, cid, lipbench_value(values, metric), up_values.get(cid, {}).get(metric)))
    fvd = next((v.get("value") for k, v in lip.get("aggregate", {}).items() if "fvd" in k.lower()), None)
    rows.append(row("fvd", "(set)", fvd, up_values.get("_set", {}).get("fvd")))
    return rows


def row(metric, cid, ours, theirs):
    kind, bound = TOLERANCES[metric]
    if ours is None or theirs is None:
        return {"metric": metric, "clip": cid, "lipbench": ours, "authors": theirs, "diff": None, "ok": False}
    diff = abs(ours - theirs) if kind == "abs" else abs(ours - theirs) / max(abs(theirs), 1e-12)
    return {
        "metric": metric,
        "clip": cid,
        "lipbench": ours,
        "authors": theirs,
        "diff": diff,
        "diff_kind": kind,
        "ok": diff <= bound,
    }


def split(timers: dict, total: float) -> list[tuple[str, float]]:
    lines = sorted(((k, v["seconds"]) for k, v in timers.items()), key=lambda kv: -kv[1])
    nets = sum(s for k, s in lines if k.startswith("net: "))
    mp = sum(s for k, s in lines if k.startswith("mediapipe"))
    sq = sum(s for k, s in lines if k.startswith("sqrtm"))
    return lines + [
        ("= network forward passes (torch)", nets),
        ("= MediaPipe", mp),
        ("= scipy sqrtm", sq),
        ("= everything else (decode, tracking, resize, I/O, imports)", total - nets - mp - sq),
    ]


def report(res: dict) -> str:
    lip, ups = res["lipbench"], res["authors"]
    up_total = sum(r["wall_s"] for r in ups.values())
    out = [
        f"# lipbench `{SUITE}` suite vs jinhyukj/eval_metrics scripts",
        "",
        f"{res['clips']} HDTF sample pairs, first {res['frames']} frames, CPU ({os.cpu_count()} cores), "
        "seeded random weights (`lipbench weights random`).",
        "",
        "| side | wall time (s) |",
        "|---|---|",
        f"| lipbench (process, `evaluate_files` {lip.get('evaluate_s', float('nan')):.1f} s inside) | "
        f"{lip['wall_s']:.1f} |",
    ]
    for name, r in ups.items():
        out.append(f"| authors: {name} | {r['wall_s']:.1f}{' (FAILED)' if 'error' in r else ''} |")
    out += [
        f"| authors: total | {up_total:.1f} |",
        "",
        f"**ratio authors / lipbench: {up_total / lip['wall_s']:.2f}**",
        "",
        "## lipbench time split (inside the process)",
        "",
        "| part | seconds |",
        "|---|---|",
    ]
    out += [f"| {k} | {s:.1f} |" for k, s in split(lip.get("timers", {}), lip["wall_s"])]
    out += ["", "## authors' time split (sum over the five scripts)", "", "| part | seconds |", "|---|---|"]
    merged = defaultdict(lambda: {"seconds": 0.0})
    for r in ups.values():
        for k, v in r.get("timers", {}).items():
            merged[k]["seconds"] += v["seconds"]
    out += [f"| {k} | {s:.1f} |" for k, s in split(merged, up_total)]
    out += [
        "",
        "## agreement (tolerances of the parity tests)",
        "",
        "| metric | clip | lipbench | authors | diff | ok |",
        "|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "—" if v is None else f"{v:.6g}"  # noqa: E731
    for r in res["agreement"]:
        out.append(
            f"| {r['metric']} | {r['clip']} | {fmt(r['lipbench'])} | {fmt(r['authors'])} | "
            f"{fmt(r['diff'])} {r.get('diff_kind', '')} | {'yes' if r['ok'] else 'NO'} |"
        )
    errors = {k: r["error"] for k, r in {"lipbench": lip, **ups}.items() if "error" in r}
    if errors or lip.get("failed"):
        out += [
            "",
            "## errors",
            "",
            "```",
            json.dumps({**errors, **{"lipbench failed": lip.get("failed")}}, indent=1)[:4000],
            "```",
        ]
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-metrics", type=Path, help="checkout of jinhyukj/eval_metrics")
    parser.add_argument("--weights-dir", type=Path, help="from `lipbench weights random --weights-dir DIR`")
    parser.add_argument("--frames", type=int, default=81, help="first N frames of each clip (paper: 81)")
    parser.add_argument("--clips", type=int, default=5, help="first N of the sample pairs")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lipbench_perf"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with real/ and fake/")
    parser.add_argument("--only", nargs="*", default=UPSTREAM, choices=UPSTREAM, help="authors' scripts to run")
    parser.add_argument("--skip-lipbench", action="store_true")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="redo the comparison and report from <work>/result.json without running anything",
    )
    parser.add_argument("--_lipbench", dest="lipbench_cfg", help=argparse.SUPPRESS)
    parser.add_argument("--_upstream", dest="upstream_cfg", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    for child, cfg_path in ((lipbench_child, args.lipbench_cfg), (upstream_child, args.upstream_cfg)):
        if cfg_path:
            cfg = json.loads(Path(cfg_path).read_text())
            Path(cfg["out"]).write_text(json.dumps(child(cfg)))
            return 0
    work = args.work.resolve()
    if args.report_only:
        return finish(json.loads((work / "result.json").read_text()), work)
    if not args.eval_metrics or not args.weights_dir:
        parser.error("--eval-metrics and --weights-dir are required")
    weights = args.weights_dir.resolve()
    real, fake = trim_inputs(args.data, work / "inputs", args.frames, args.clips)
    # The scripts read sfd_face.pth and i3d_torchscript.pt from checkpoints/auxiliary/ in the
    # working directory; run them in a folder of their own with links to the shared files.
    cwd = work / "authors_cwd"
    (cwd / "checkpoints" / "auxiliary").mkdir(parents=True, exist_ok=True)
    for name in ("sfd_face.pth", "i3d_torchscript.pt", "syncnet_v2.model"):
        link = cwd / "checkpoints" / "auxiliary" / name
        if not link.exists():
            link.symlink_to(weights / name)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    common = {"real": str(real), "fake": str(fake), "weights_dir": str(weights)}

    res = {"frames": args.frames, "clips": args.clips, "authors": {}}
    previous = work / "result.json"
    if previous.exists():  # a partial rerun (--only, --skip-lipbench) keeps the other measurements
        old = json.loads(previous.read_text())
        if (old.get("frames"), old.get("clips")) == (args.frames, args.clips):
            res["authors"] = old.get("authors", {})
            if "lipbench" in old and not old["lipbench"].get("skipped"):
                res["lipbench"] = old["lipbench"]
    if not args.skip_lipbench:
        print("lipbench ...", file=sys.stderr, flush=True)
        res["lipbench"] = run_child("lipbench", common, work, REPO, env)
    for metric in args.only:
        print(f"authors' {metric} ...", file=sys.stderr, flush=True)
        cfg = {
            **common,
            "metric": metric,
            "eval_metrics": str(args.eval_metrics.resolve()),
            "log": str(work / f"authors_{metric}_metric.log"),
        }
        up_env = {
            **env,
            "PYTHONPATH": os.pathsep.join([str(args.eval_metrics.resolve()), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
        }
        res["authors"][metric] = run_child("upstream", cfg, work, cwd, up_env)
    res.setdefault("lipbench", {"wall_s": float("nan"), "skipped": True})
    return finish(res, work)


def finish(res: dict, work: Path) -> int:
    res["agreement"] = compare(res["lipbench"], res["authors"])
    (work / "result.json").write_text(json.dumps(res, indent=1))
    text = report(res)
    (work / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
