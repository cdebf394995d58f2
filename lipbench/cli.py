"""The `lipbench` command."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lipbench import io

DEFAULT_DEMO_OUT = "runs/demo"


def _load_run_inputs(args):
    from lipbench.config import load_config, resolve_data

    config = load_config(args.config)
    if getattr(args, "device", None):
        config.device = args.device
    if getattr(args, "models", None):
        wanted = args.models.split(",")
        unknown = set(wanted) - {m.label for m in config.models}
        if unknown:
            raise KeyError(f"{config.source}: no models named {sorted(unknown)} in this config")
        config.models = [m for m in config.models if m.label in wanted]
    manifest = resolve_data(config)
    if getattr(args, "limit", None):
        manifest.clips = manifest.clips[:args.limit]
    return config, manifest


def _run(config, manifest, out, phases=("generate", "evaluate", "report")) -> dict | None:
    from lipbench.evaluate import evaluate
    from lipbench.report import write_report
    from lipbench.rundir import RunDir
    from lipbench.runner import generate

    run = RunDir(out)
    if "generate" in phases:
        counts = generate(config, manifest, run)
        print(f"generate: {counts['done']} made, {counts['skipped']} already done, {counts['failed']} failed")
    if "evaluate" in phases:
        counts = evaluate(config, manifest, run)
        print(f"evaluate: {counts['done']} scored, {counts['skipped']} already scored, "
              f"{counts['missing']} without a generated video")
    if "report" in phases:
        return write_report(run)
    return None


def cmd_run(args, phases=("generate", "evaluate", "report")):
    config, manifest = _load_run_inputs(args)
    results = _run(config, manifest, args.out, phases)
    if results:
        print(results["table"])
        print(f"report: {Path(args.out) / 'report.md'}")


def cmd_eval(args):
    from lipbench.evaluate import evaluate
    from lipbench.rundir import RunDir

    run = RunDir(args.run)
    counts = evaluate(run.load_config(), run.load_manifest(), run)
    print(f"evaluate: {counts['done']} scored, {counts['skipped']} already scored, "
          f"{counts['missing']} without a generated video")


def cmd_report(args):
    from lipbench.report import write_report
    from lipbench.rundir import RunDir

    results = write_report(RunDir(args.run))
    print(results["table"])
    print(f"report: {Path(args.run) / 'report.md'}")


def cmd_demo(args):
    from lipbench.config import load_config, resolve_data

    start = time.perf_counter()
    config = load_config("demo")
    synth = dict(config.data["synthetic"])
    synth.update({k: v for k, v in (("clips", args.clips), ("frames", args.frames)) if v})
    config.data = {"synthetic": synth}
    manifest = resolve_data(config)
    results = _run(config, manifest, args.out)
    print()
    print(results["table"])
    print()
    print(f"demo finished in {time.perf_counter() - start:.1f} s")
    print(f"report: {Path(args.out) / 'report.md'}  (also results.json, per_clip.jsonl, pareto.png)")


def cmd_synth(args):
    from lipbench.data.synthetic import SynthRecipe, synthesize

    recipe = SynthRecipe(clips=args.clips, seed=args.seed, frames=args.frames, size=args.size)
    manifest = synthesize(args.out, recipe)
    print(f"{len(manifest.clips)} clips and their manifest in {manifest.path}")


def cmd_verify(args):
    from lipbench.data.manifest import load_manifest, verify

    manifest = load_manifest(args.manifest)
    problems = verify(manifest, check_hash=not args.no_hash, progress=True)
    for line in problems:
        print(line)
    bad = len({p.split(":", 1)[0] for p in problems})
    print(f"{len(manifest.clips) - bad}/{len(manifest.clips)} clips OK, {len(problems)} problems")
    return 1 if problems else 0


def cmd_manifest(args):
    from lipbench.data.manifest import build_manifest, save_manifest

    manifest = build_manifest(args.folder, args.name, args.strip_suffix)
    out = Path(args.out) if args.out else Path(args.folder) / "manifest.yaml"
    save_manifest(manifest, out)
    print(f"{len(manifest.clips)} clips -> {out}")


def cmd_ls(args):
    from lipbench.config import shipped_configs
    from lipbench.metrics import METRICS
    from lipbench.models import MODELS

    if args.what == "models":
        for name in MODELS.names():
            cls = MODELS.resolve(name)
            kind = "causal, chunks " + "/".join(map(str, cls.chunk_frames)) if cls.causal else "one-shot"
            print(f"{name:14s} {kind:24s} {cls.parameters:>14,d} params  {(cls.__doc__ or '').strip().splitlines()[0]}")
    elif args.what == "metrics":
        for name in METRICS.names():
            cls = METRICS.resolve(name)
            for protocol in cls.protocols:
                for out in cls.outputs_for(protocol):
                    arrow = {True: "higher is better", False: "lower is better", None: ""}[out.higher_is_better]
                    print(f"{name:8s} {out.key:26s} {out.unit:7s} {arrow:17s} {out.description}")
    else:
        print("\n".join(shipped_configs()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lipbench", description="Benchmark and evaluation suite for lip-sync video generation.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="synthetic clips -> four weight-free models -> metrics -> report (CPU, minutes)")
    p.add_argument("--out", default=DEFAULT_DEMO_OUT, help=f"run directory (default {DEFAULT_DEMO_OUT})")
    p.add_argument("--clips", type=int, help="number of synthetic clips (default 8)")
    p.add_argument("--frames", type=int, help="frames per clip (default 81)")
    p.set_defaults(func=cmd_demo)

    for name, phases, text in (("run", ("generate", "evaluate", "report"), "generate, evaluate and report"),
                               ("generate", ("generate",), "the generate phase only")):
        p = sub.add_parser(name, help=f"{text} for a benchmark config")
        p.add_argument("config", help="config file, or the name of a shipped one (lipbench ls configs)")
        p.add_argument("--out", required=True, help="run directory (rerunning it resumes)")
        p.add_argument("--device", help="override the config's device (cpu, cuda, cuda:1)")
        p.add_argument("--models", help="comma-separated model names from the config")
        p.add_argument("--limit", type=int, help="only the first N clips")
        p.set_defaults(func=lambda a, ph=phases: cmd_run(a, ph))

    p = sub.add_parser("eval", help="score the generated videos of a run directory")
    p.add_argument("run")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("report", help="write results.json, report.md and pareto.png of a run directory")
    p.add_argument("run")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("ls", help="list models, metrics or shipped configs")
    p.add_argument("what", choices=["models", "metrics", "configs"])
    p.set_defaults(func=cmd_ls)

    data = sub.add_parser("data", help="test data: synthesise, describe, verify").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("synth", help="write the synthetic talking-head set and its manifest")
    p.add_argument("--out", required=True)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=81)
    p.add_argument("--size", type=int, default=256)
    p.set_defaults(func=cmd_synth)
    p = data.add_parser("verify", help="check a manifest's files: present, decodable, as described, unchanged")
    p.add_argument("manifest")
    p.add_argument("--no-hash", action="store_true", help="skip the content hashes")
    p.set_defaults(func=cmd_verify)
    p = data.add_parser("manifest", help="write a manifest for every video in a folder")
    p.add_argument("folder")
    p.add_argument("--out", help="manifest path (default FOLDER/manifest.yaml)")
    p.add_argument("--name", help="manifest name (default: the folder's name)")
    p.add_argument("--strip-suffix", default="", help="cut this from file stems to make clip ids (e.g. _cfr25)")
    p.set_defaults(func=cmd_manifest)
    return parser


def main(argv=None) -> int:
    from lipbench.config import ConfigError
    from lipbench.data.manifest import ManifestError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (io.MediaError, ManifestError, ConfigError, KeyError, FileNotFoundError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"lipbench: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
