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
    if getattr(args, "weights_dir", None):
        config.weights_dir = args.weights_dir
    if getattr(args, "models", None):
        config.models = _select(config.models, args.models, lambda m: m.label, f"{config.source}: no models named")
    manifest = resolve_data(config)
    if getattr(args, "clips", None):
        manifest.clips = _select(manifest.clips, args.clips, lambda c: c.id, f"{manifest.name}: no clips named")
    if getattr(args, "limit", None):
        manifest.clips = manifest.clips[:args.limit]
    return config, manifest


def _select(items, names_csv: str, name_of, error: str) -> list:
    """The items named in a comma-separated list, in their own order; unknown names are an error."""
    wanted = names_csv.split(",")
    unknown = set(wanted) - {name_of(item) for item in items}
    if unknown:
        raise KeyError(f"{error} {sorted(unknown)}")
    return [item for item in items if name_of(item) in wanted]


def _run(config, manifest, out, phases=("generate", "evaluate", "report")) -> dict | None:
    from lipbench.evaluate import evaluate
    from lipbench.report import write_report
    from lipbench.rundir import RunDir
    from lipbench.runner import generate

    from lipbench import distributed

    run = RunDir(out)
    if "generate" in phases:
        counts = generate(config, manifest, run)
        print(f"generate: {counts['done']} made, {counts['skipped']} already done, {counts['failed']} failed")
    if not distributed.is_main():
        return None  # the other ranks' units are on disk; rank 0 evaluates and reports
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
    if args.run and args.fake:
        raise ValueError("give either a run directory or --fake, not both")
    if args.run:
        from lipbench.evaluate import evaluate
        from lipbench.rundir import RunDir

        run = RunDir(args.run)
        config = run.load_config()
        config.weights_dir = args.weights_dir or config.weights_dir
        config.device = args.device or config.device
        counts = evaluate(config, run.load_manifest(), run)
        print(f"evaluate: {counts['done']} scored, {counts['skipped']} already scored, "
              f"{counts['missing']} without a generated video")
        return 0
    if not args.fake:
        raise ValueError("lipbench eval needs a run directory or --fake PATH [PATH ...]")
    return cmd_eval_files(args)


def cmd_eval_files(args):
    from lipbench import metrics
    from lipbench.evaluate import DEFAULT_PAIR_REGEX, evaluate_files, pair_files
    from lipbench.storage import write_json

    items = ([args.suite] if args.suite else []) + (args.metrics.split(",") if args.metrics else [])
    if not items:
        raise ValueError("choose metrics with --metrics LIST and/or --suite NAME "
                         f"(suites: {', '.join(metrics.SUITES)}; lipbench ls metrics)")
    specs = metrics.resolve_specs(items)
    pairs = pair_files(args.fake, args.real, args.pair_regex or DEFAULT_PAIR_REGEX)
    result = evaluate_files(pairs, specs, device=args.device or "cpu", weights_dir=args.weights_dir,
                            face_crops=args.crop == "none")
    out = Path(args.out)
    write_json(out, result)
    rows = [[key, "-" if agg["value"] is None else f"{agg['value']:.4f}",
             agg.get("error") or ("-" if not agg["ci95"] else f"[{agg['ci95'][0]:.4f}, {agg['ci95'][1]:.4f}]"), agg["n"]]
            for key, agg in result["aggregate"].items()]
    from tabulate import tabulate

    print(tabulate(rows, headers=["metric", "value", "ci95", "clips"], tablefmt="github"))
    for cid, error in result["failed"].items():
        print(f"failed: {cid}: {error}", file=sys.stderr)
    unscored = len(result["pairs"]) - len(result["clips"])
    print(f"{len(result['clips'])}/{result['n_clips']} clips scored ({result['n_failed']} with errors, "
          f"{unscored} not scored at all); results: {out}")
    return 1 if result["failed"] else 0


def cmd_weights(args):
    from lipbench import weights

    if args.action == "random":
        if not args.weights_dir:
            raise ValueError("lipbench weights random needs --weights-dir DIR (where the stand-ins go)")
        from lipbench.random_weights import write_random_weights

        for name, path in write_random_weights(args.weights_dir, args.seed, args.names or None).items():
            print(f"{name}: seeded random stand-in (seed {args.seed}) -> {path}")
        print("these files have the real formats but meaningless values: for smoke tests and timing only")
        return 0
    if args.action == "fetch":
        names = args.names or [n for n, w in weights.WEIGHTS.items() if w.url]
        for name in names:
            print(f"{name}: saved to {weights.fetch(name, args.weights_dir)}")
        return 0
    from tabulate import tabulate

    problems, rows = 0, []
    for name, entry in weights.WEIGHTS.items():
        needed = ", ".join(entry.needed_by)
        try:
            path = weights.find_weight(name, args.weights_dir)
        except weights.MissingWeightError:
            rows.append([name, "missing", needed, f"get it: {entry.how_to_get()}"])
            problems += args.action == "verify"
            continue
        if args.action == "list":
            rows.append([name, "present", needed, str(path)])
            continue
        ok, digest = weights.check(name, path)
        rows.append([name, {True: "verified", False: "DIFFERENT", None: "unchecked"}[ok], needed,
                     f"sha256 {digest[:16]}  {path}"])
        problems += ok is False
    print(tabulate(rows, headers=["file", "state", "needed by", "where"], tablefmt="plain"))
    print(f"searched: {', '.join(str(d) for d in weights.search_dirs(args.weights_dir))}")
    return 1 if problems else 0


def cmd_report(args):
    from lipbench.report import write_report
    from lipbench.rundir import RunDir

    results = write_report(RunDir(args.run), paper_name=args.paper)
    print(results["table"])
    print(f"report: {Path(args.run) / 'report.md'} and report.html")


def cmd_compare(args):
    from tabulate import tabulate

    from lipbench.report.compare import REGRESSED, compare_runs
    from lipbench.storage import write_json

    result = compare_runs(args.base, args.new, force=args.force)
    for problem in result["forced_despite"]:
        print(f"warning (forced): {problem}", file=sys.stderr)
    rows = [[r["model"], r["metric"], f"{r['difference']:+.4g}",
             "-" if not r["ci95"] else f"[{r['ci95'][0]:+.4g}, {r['ci95'][1]:+.4g}]", r["n_clips"], r["verdict"]]
            for r in result["rows"]]
    print(tabulate(rows, headers=["model", "metric", "new - base", "95% CI", "clips", "verdict"], tablefmt="github"))
    if args.out:
        write_json(args.out, result)
    print(f"{result['regressions']} regressions over {result['shared_clips']} shared clips")
    return 1 if args.fail_on_regression and any(r["verdict"] == REGRESSED for r in result["rows"]) else 0


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
    print(f"report: {Path(args.out) / 'report.md'}  (also report.html, results.json, per_clip.jsonl, plots)")


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


def cmd_hdtf_prepare(args):
    from lipbench.data import hdtf

    split = hdtf.split_manifest(args.split)
    if args.clips:
        wanted = args.clips.split(",")
        split.clips = [c for c in split.clips if c.id in wanted]
    manifest, problems = hdtf.prepare(split, args.raw, args.annotations, args.out, n_frames=args.frames,
                                      fetch=args.download)
    for clip_id, problem in problems.items():
        print(f"{clip_id}: {problem}", file=sys.stderr)
    print(f"{len(manifest.clips)}/{len(split.clips)} clips prepared; manifest: {manifest.path}")
    return 1 if problems else 0


def cmd_ls(args):
    from lipbench.config import shipped_configs
    from lipbench.metrics import METRICS
    from lipbench.models import MODELS

    if args.what == "models":
        for name in MODELS.names():
            cls = MODELS.resolve(name)
            kind = "causal, chunks " + "/".join(map(str, cls.chunk_frames)) if cls.causal else "one-shot"
            summary = ((cls.__doc__ or "").strip().splitlines() or [""])[0]
            print(f"{name:14s} {kind:24s} {cls.parameters:>14,d} params  {summary}")
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
        p.add_argument("--clips", help="comma-separated clip ids")
        p.add_argument("--limit", type=int, help="only the first N clips")
        p.add_argument("--weights-dir", help="folder with the weight files (also $LIPBENCH_WEIGHTS)")
        p.set_defaults(func=lambda a, ph=phases: cmd_run(a, ph))

    p = sub.add_parser("eval", help="score a run directory, or videos made elsewhere (--fake)")
    p.add_argument("run", nargs="?", help="a run directory (omit when using --fake)")
    p.add_argument("--fake", nargs="+", help="generated videos: files and/or folders")
    p.add_argument("--real", help="folder of reference videos, paired with --fake by clip id")
    p.add_argument("--pair-regex", help="regex on file stems whose group 'id' (or first group) is the clip id "
                                        "(default: stem less _cfr25/_synced/...)")
    p.add_argument("--metrics", help="comma-separated: keys (sync_c@precropped), names (sync_c: default protocol)")
    p.add_argument("--suite", help="a named metric set, e.g. lipforcing (the paper's exact set)")
    p.add_argument("--crop", choices=["auto", "none"], default="auto",
                   help="none: the inputs are already face crops, no face detection")
    p.add_argument("--weights-dir", help="folder with the weight files (also $LIPBENCH_WEIGHTS)")
    p.add_argument("--out", default="eval.json", help="results JSON (default eval.json)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default cpu)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("weights", help="the weight files metrics and models need")
    p.add_argument("action", choices=["list", "fetch", "verify", "random"],
                   help="random: write seeded random stand-ins in the real formats (smoke tests, timing)")
    p.add_argument("names", nargs="*", help="with fetch: which files (default: all with a download)")
    p.add_argument("--weights-dir", help="folder to look in / fetch into")
    p.add_argument("--seed", type=int, default=0, help="with random: the seed")
    p.set_defaults(func=cmd_weights)
    p = sub.add_parser("report", help="write the tables, plots, report.md and report.html of a run directory")
    p.add_argument("run")
    p.add_argument("--paper", help="compare with a published table (e.g. lip_forcing)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="regression verdicts of NEW against BASE, paired over shared clips")
    p.add_argument("base")
    p.add_argument("new")
    p.add_argument("--force", action="store_true", help="compare even when protocols, weights or inputs differ")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when any metric regressed")
    p.add_argument("--out", help="also write the comparison as JSON")
    p.set_defaults(func=cmd_compare)

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
    hdtf = data.add_parser("hdtf", help="the HDTF test split").add_subparsers(dest="hdtf_command", required=True)
    p = hdtf.add_parser("prepare", help="cut, resample to 25 fps, crop and hash the split's clips from your downloads")
    p.add_argument("--raw", required=True, help="folder of downloaded source videos (Name.mp4)")
    p.add_argument("--annotations", required=True, help="HDTF_dataset folder (XX_annotion_time.txt, XX_crop_wh.txt, ...)")
    p.add_argument("--out", required=True, help="where the clips and their manifest go")
    p.add_argument("--split", default="hdtf_test33", help="split manifest: a path or a shipped name (default hdtf_test33)")
    p.add_argument("--frames", type=int, default=81, help="frames per clip (default 81, the paper's)")
    p.add_argument("--clips", help="comma-separated clip ids (default: the whole split)")
    p.add_argument("--download", action="store_true", help="fetch missing sources with yt-dlp (needs it and a network)")
    p.set_defaults(func=cmd_hdtf_prepare)

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
    except (io.MediaError, ManifestError, ConfigError, KeyError, OSError, ValueError, ImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"lipbench: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
