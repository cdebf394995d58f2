"""The `lipbench` command."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from lipbench import defaults
from lipbench.errors import LipbenchError, UsageError
from lipbench.metric_keys import AUDIO_CHOICES


def _load_run_inputs(args):
    """(the config and clips as given, the models and clips to run now). `--models`,
    `--clips` and `--limit` narrow only what runs now: the run directory keeps
    recording the whole config."""
    from lipbench.config import check_device, check_dtype, load_config, resolve_data

    config = load_config(args.config)
    if getattr(args, "device", None):
        config.device = check_device(args.device, "--device")
    if getattr(args, "dtype", None):
        config.dtype = check_dtype(args.dtype, "--dtype")
    if getattr(args, "weights_dir", None):
        config.weights_dir = args.weights_dir
    manifest = resolve_data(config)
    models, clips = config.models, manifest.clips
    if getattr(args, "models", None):
        models = _select(models, args.models, lambda m: m.label, f"{config.source}: no models named")
    if getattr(args, "clips", None):
        clips = _select(clips, args.clips, lambda c: c.id, f"{manifest.name}: no clips named")
    if getattr(args, "limit", None):
        clips = clips[: args.limit]
    return config, manifest, models, clips


def _select(items, names_csv: str, name_of, error: str) -> list:
    """The items named in a comma-separated list, in their own order; unknown names are an error."""
    wanted = names_csv.split(",")
    unknown = set(wanted) - {name_of(item) for item in items}
    if unknown:
        raise UsageError(f"{error} {sorted(unknown)}")
    return [item for item in items if name_of(item) in wanted]


def _run(
    config,
    manifest,
    out,
    phases=("generate", "evaluate", "report"),
    models=None,
    clips=None,
    force: bool = False,
    wait: bool = False,
) -> tuple[int, dict | None]:
    """Run the phases on `models` x `clips` (default: everything in the config), holding
    the run directory's lock; returns (exit code, results of the report or None)."""
    from dataclasses import replace

    from lipbench import distributed
    from lipbench.data.manifest import Manifest
    from lipbench.rundir import RunDir

    run = RunDir(out)
    with distributed.rank0_lock(run, wait):
        if distributed.is_main():
            run.save_inputs(config, manifest, force=force)  # what the directory holds: the whole config
        distributed.barrier()
        saved = run.load_config()
        # now: the chosen models and clips, under every metric the directory holds
        config = replace(config, models=models or config.models, metrics=saved.metrics)
        manifest = Manifest(manifest.name, clips or manifest.clips, manifest.path, manifest.description, manifest.extra)
        results, metric_objects = None, None
        if "generate" in phases and "evaluate" in phases:
            # a missing or bad metric weight file stops the run before any clip
            metric_objects = _preflight_metrics(config)
        if "generate" in phases:
            from lipbench.runner import generate

            counts = generate(config, manifest, run)
            print(f"generate: {counts['done']} made, {counts['skipped']} already done, {counts['failed']} failed")
        if not distributed.is_main():
            return 0, None  # the other ranks' units are on disk; rank 0 evaluates and reports
        if "evaluate" in phases:
            results = _evaluate(config, manifest, run, metric_objects)
        if "report" in phases:
            from lipbench.report.build import write_report

            results = write_report(run)
        return _report_failures(run, config, manifest, phases), results


def _preflight_metrics(config) -> list | None:
    """Before the generate phase: find and load every metric network once, on the CPU,
    so that a missing or bad weight file stops `run` now rather than after the generate
    phase. Rank 0 checks; every rank stops with it. Returns the loaded metrics for the
    evaluate phase when it runs on the CPU too; on a GPU they are let go (the evaluate
    phase loads them on its device, so they take no device memory while models are
    timed)."""
    from lipbench import distributed
    from lipbench.evaluate import create_metrics

    error, objects = None, None
    if distributed.is_main():
        try:
            objects = create_metrics(config.metric_specs(), "cpu", config.weights_dir)
        except LipbenchError as exc:
            error = exc
    if not distributed.all_ranks_agree(error is None):
        raise error or LipbenchError("rank 0 stopped on a missing or bad metric weight file (see its error)")
    return objects if config.device == "cpu" else None


def _evaluate(config, manifest, run, metric_objects=None):
    from lipbench.evaluate import evaluate

    counts = evaluate(config, manifest, run, metric_objects=metric_objects)
    print(
        f"evaluate: {counts['done']} scored ({counts['failed']} metric values failed), "
        f"{counts['skipped']} already scored, {counts['missing']} without a generated video"
    )


def _report_failures(run, config, manifest, phases) -> int:
    """List what was asked for and not produced (failed units, failed metric values), with
    counts; returns the exit code: 0 all produced, 1 some failed."""
    from lipbench.report.schema import first_line

    units, values = [], []
    specs = config.metric_specs() if "evaluate" in phases else []
    for spec in config.models:
        for clip in manifest.clips:
            unit = run.read_unit(spec.label, clip.id) or {"status": "pending", "error": "not generated"}
            if unit.get("status") != "ok":
                units.append(f"{spec.label}/{clip.id} ({unit.get('stage', unit['status'])}): {unit.get('error')}")
                continue
            row = run.read_metrics(spec.label, clip.id) or {}
            for metric in specs:
                error = (row.get("errors") or {}).get(metric)
                if error is not None or metric not in (row.get("fingerprints") or {}):
                    values.append(f"{metric} {spec.label}/{clip.id}: {first_line(error or 'not computed')}")
    if not units and not values:
        return 0
    print(
        f"failed: {len(units)} of {len(config.models) * len(manifest.clips)} units, {len(values)} metric values",
        file=sys.stderr,
    )
    for line in units + values:
        print(f"  {line}", file=sys.stderr)
    return 1


def cmd_run(args, phases=("generate", "evaluate", "report")):
    config, manifest, models, clips = _load_run_inputs(args)
    code, results = _run(config, manifest, args.out, phases, models, clips, force=args.force, wait=args.wait)
    if results:
        print(results["table"])
        print(f"report: {Path(args.out) / 'report.md'}")
    return code


def cmd_eval(args):
    if args.run and args.fake:
        raise UsageError("lipbench eval: give either a run directory or --fake, not both")
    if args.run:
        from lipbench.rundir import RunDir

        given = [
            flag
            for flag, value in (
                ("--crop", args.crop),
                ("--min-coverage", args.min_coverage),
                ("--resample-fps", args.resample_fps or None),
                ("--audio", args.audio),
            )
            if value is not None
        ]
        if given:
            raise UsageError(
                f"lipbench eval DIR: {', '.join(given)} apply to --fake; a run directory takes "
                "crop, min_coverage, resample_fps and audio from its config"
            )
        run = RunDir(args.run)
        config = run.load_config()
        config.weights_dir = args.weights_dir or config.weights_dir
        config.device = args.device or config.device
        manifest = run.load_manifest()
        with run.lock(args.wait):
            _evaluate(config, manifest, run)
            return _report_failures(run, config, manifest, ("evaluate",))
    if not args.fake:
        raise UsageError("lipbench eval needs a run directory or --fake PATH [PATH ...]")
    return cmd_eval_files(args)


def cmd_eval_files(args):
    from lipbench import metrics
    from lipbench.evaluate import DEFAULT_PAIR_REGEX, evaluate_files, pair_files
    from lipbench.metric_keys import with_audio
    from lipbench.metrics.base import Alignment

    items = ([args.suite] if args.suite else []) + (args.metrics.split(",") if args.metrics else [])
    if not items:
        raise UsageError(
            "lipbench eval --fake: choose metrics with --metrics LIST and/or --suite NAME "
            f"(suites: {', '.join(metrics.SUITES)}; lipbench ls metrics)"
        )
    specs = metrics.resolve_specs(items, args.crop or "auto")
    if args.audio == "cross":
        problem = metrics.cross_audio_problem(specs)
        if problem:
            raise UsageError(f"lipbench eval --audio cross: {problem}")
        specs = [with_audio(s, "cross") for s in specs]
    out = checked_output(args.out)
    pairs = pair_files(args.fake, args.real, args.pair_regex or DEFAULT_PAIR_REGEX)
    alignment = Alignment(
        args.min_coverage if args.min_coverage is not None else Alignment.min_coverage, args.resample_fps
    )
    result = evaluate_files(
        pairs,
        specs,
        device=args.device or "cpu",
        weights_dir=args.weights_dir,
        alignment=alignment,
        name=args.name,
        out=out,
        audio=args.audio or "own",
    )
    from tabulate import tabulate

    from lipbench.report import tables
    from lipbench.report.schema import failure_lines

    ((name, model),) = result["models"].items()
    rows = []
    for key, agg in model["metrics"].items():
        col = tables.Column(key, key, None, "metrics")
        value, ci = tables.cell(result, name, col)
        rows.append(
            [
                key,
                tables.no_value(result, name, col) if value is None else f"{value:.4f}",
                "-" if not ci else f"[{ci[0]:.4f}, {ci[1]:.4f}]",
                f"{agg['n']}/{model['n_clips']}",
                len(agg["failed"]) + bool(agg["error"]),
            ]
        )
    print(f"{name}: {model['n_clips']} clips")
    print(
        tabulate(
            rows, headers=["metric", "value", "95% CI", "clips", "failed"], tablefmt="github", disable_numparse=True
        )
    )
    for line in failure_lines(result):
        print(line, file=sys.stderr)
    print(f"results: {out}")
    counts = result["failures"]["counts"]
    return 1 if counts["units"] or counts["metric_values"] else 0


def cmd_weights(args):
    from lipbench import weights

    if args.action == "random":
        if not args.weights_dir:
            raise UsageError("lipbench weights random needs --weights-dir DIR (where the stand-ins go)")
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
    for name in args.names or weights.WEIGHTS:
        entry = weights.spec(name)
        needed = ", ".join(entry.needed_by)
        if args.action == "verify":  # ok, unknown hash, wrong hash, truncated, unreadable or missing
            verdict = weights.verify(name, args.weights_dir)
            said = f"{verdict.path}: {verdict.detail}" if verdict.path else verdict.detail
            rows.append([name, verdict.status, needed, f"{said}; {verdict.action}" if verdict.action else said])
            problems += verdict.problem
            continue
        try:
            path = weights.find_weight(name, args.weights_dir)
        except weights.MissingWeightError:
            rows.append([name, "missing", needed, f"get it: {entry.how_to_get()}"])
            continue
        rows.append([name, "present", needed, str(path)])
    print(tabulate(rows, headers=["file", "state", "needed by", "where"], tablefmt="plain"))
    print(f"searched: {', '.join(str(d) for d in weights.search_dirs(args.weights_dir))}")
    return 1 if problems else 0


def cmd_report(args):
    from lipbench.report.build import write_report
    from lipbench.rundir import RunDir

    results = write_report(RunDir(args.run), paper_name=args.paper)
    print(results["table"])
    print(f"report: {Path(args.run) / 'report.md'} and report.html")


def cmd_compare(args):
    from tabulate import tabulate

    from lipbench.report.compare import compare_runs, exit_status
    from lipbench.storage import write_json

    result = compare_runs(
        args.base, args.new, force=args.force, timing_threshold=args.timing_threshold, timing_floor_s=args.timing_floor
    )
    for problem in result["forced_despite"]:
        print(f"warning (forced): {problem}", file=sys.stderr)

    def interval(ci, fmt):
        return "-" if not ci else f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"

    rows = [
        [
            r["model"],
            r["metric"],
            "-" if r["difference"] is None else f"{r['difference']:+.4g}",
            interval(r["ci95"], "+.4g"),
            interval(r["relative_ci95"], "+.1%") if "relative_ci95" in r else "",
            r["n_clips"],
            r["verdict"] + (f" ({r['note']})" if r.get("note") else ""),
        ]
        for r in result["rows"]
    ]
    print(
        tabulate(
            rows,
            headers=["model", "metric", "new - base", "95% CI", "relative CI", "clips", "verdict"],
            tablefmt="github",
        )
    )
    print(f"{result['regressions']} regressions over {result['shared_clips']} clips scored in both runs")
    code, reason = exit_status(result, args.fail_on_regression)
    for problem in result["gate"]:
        print(f"{'gate failed' if args.fail_on_regression else 'warning'}: {problem}")
    result["exit"] = {"code": code, "reason": reason}
    if args.out:
        write_json(args.out, result)
    return code


def cmd_check_adapter(args):
    import yaml

    from lipbench import check_adapter

    extra = {}
    for item in args.arg or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--arg expects KEY=VALUE, got {item!r}")
        extra[key] = yaml.safe_load(value)
    label, model = check_adapter.model_from(args.name, args.config, extra)
    request = check_adapter.clip_request(args.clip) if args.clip else check_adapter.synthetic_request()
    device = args.device or "cpu"
    start = time.perf_counter()
    try:
        model.load(device)
        print(
            f"loaded {label} in {time.perf_counter() - start:.1f} s; streaming {request.clip_id} "
            f"({request.n_frames} frames, {request.frames.shape[2]}x{request.frames.shape[1]}) twice"
        )
        checks, timing = check_adapter.run_checks(model, request, device)
    finally:
        model.close()
    print(check_adapter.summary(label, model, checks, timing))
    return 0 if all(c.ok for c in checks) else 1


# model -> "module" with main(argv) building its environment (python -m module --dest --checkout)
MODEL_ENVS = {"latentsync": "lipbench.models.latentsync.env"}


def cmd_env(args):
    import importlib

    argv = ["--dest", args.dest] + (["--checkout", args.checkout] if args.checkout else [])
    return importlib.import_module(MODEL_ENVS[args.model]).main(argv)


def cmd_demo(args):
    from lipbench.config import load_config, resolve_data

    start = time.perf_counter()
    config = load_config("demo")
    synth = dict(config.data["synthetic"])
    synth.update({k: v for k, v in (("clips", args.clips), ("frames", args.frames)) if v})
    config.data = {"synthetic": synth}
    manifest = resolve_data(config)
    code, results = _run(config, manifest, args.out, force=args.force, wait=args.wait)
    print()
    print(results["table"])
    print()
    print(f"demo finished in {time.perf_counter() - start:.1f} s")
    print(f"report: {Path(args.out) / 'report.md'}  (also report.html, results.json, per_clip.jsonl, plots)")
    return code


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
    manifest, problems = hdtf.prepare(
        split, args.raw, args.annotations, args.out, n_frames=args.frames, fetch=args.download
    )
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


def checked_output(path) -> Path:
    """An output file path that can be written, checked before any work: not a folder,
    its folder creatable and writable."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--out {path}: is a folder; give a file name (e.g. {path / 'eval.json'})")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {path}: its folder cannot be created ({exc.strerror or exc})") from exc
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--out {path}: folder {folder} is not writable")
    return path


def _checked(convert, ok, expected: str):
    """An argparse type: `convert(text)` when it works and `ok(value)`; else an error
    naming what was expected."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


share = _checked(float, lambda v: 0 < v <= 1, "a share in (0, 1], e.g. 0.9")
# `--limit 0` would silently run nothing
positive_int = _checked(int, lambda v: v >= 1, "a positive integer")


def add_run_dir_flags(parser, force: bool = True) -> None:
    if force:
        parser.add_argument(
            "--force",
            action="store_true",
            help="add to a run directory that holds other clips or other metric protocols",
        )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="when another lipbench process is writing the run directory, wait for it "
        "(default: say who holds it and stop)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lipbench", description="Benchmark and evaluation suite for lip-sync video generation."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="synthetic clips -> four weight-free models -> metrics -> report (CPU, minutes)")
    p.add_argument("--out", default=defaults.DEMO_OUT, help=f"run directory (default {defaults.DEMO_OUT})")
    p.add_argument("--clips", type=positive_int, help=f"number of synthetic clips (default {defaults.SYNTH_CLIPS})")
    p.add_argument("--frames", type=positive_int, help=f"frames per clip (default {defaults.SYNTH_FRAMES})")
    add_run_dir_flags(p)
    p.set_defaults(func=cmd_demo)

    for name, phases, text in (
        ("run", ("generate", "evaluate", "report"), "generate, evaluate and report"),
        ("generate", ("generate",), "the generate phase only"),
    ):
        p = sub.add_parser(name, help=f"{text} for a benchmark config")
        p.add_argument("config", help="config file, or the name of a shipped one (lipbench ls configs)")
        p.add_argument("--out", required=True, help="run directory (rerunning it resumes)")
        p.add_argument("--device", help="override the config's device (cpu, cuda, cuda:1)")
        p.add_argument("--models", help="comma-separated model names from the config")
        p.add_argument("--clips", help="comma-separated clip ids")
        p.add_argument("--limit", type=positive_int, help="only the first N clips")
        p.add_argument(
            "--weights-dir",
            help="folder with the weight files (also $LIPBENCH_WEIGHTS); given to every model and metric",
        )
        p.add_argument(
            "--dtype",
            choices=("auto", "fp32", "fp16", "bf16"),
            help="run-wide dtype for models that offer one (a model's own args win)",
        )
        add_run_dir_flags(p)
        p.set_defaults(func=lambda a, ph=phases: cmd_run(a, ph))

    p = sub.add_parser(
        "check-adapter",
        help="conformance check of one model: loads it, streams a clip twice, "
        "checks frames, chunks, determinism; prints its timing",
    )
    p.add_argument(
        "name",
        help="a model name (lipbench ls models), package.module:Class, or with --config "
        "the name of one of the config's models",
    )
    p.add_argument("--config", help="benchmark config whose model entry (and args) to check")
    p.add_argument("--clip", help="video to stream, with its own audio (default: a synthetic 33-frame clip)")
    p.add_argument(
        "--arg",
        action="append",
        metavar="KEY=VALUE",
        help="an adapter argument (YAML value), e.g. --arg random_weights=true; repeatable",
    )
    p.add_argument("--device", help="cpu (default), cuda, cuda:1")
    p.set_defaults(func=cmd_check_adapter)

    p = sub.add_parser("eval", help="score a run directory, or videos made elsewhere (--fake)")
    p.add_argument("run", nargs="?", help="a run directory (omit when using --fake)")
    p.add_argument("--fake", nargs="+", help="generated videos: files and/or folders")
    p.add_argument("--real", help="folder of reference videos, paired with --fake by clip id")
    p.add_argument(
        "--pair-regex",
        help="regex on file stems whose group 'id' (or first group) is the clip id "
        "(default: stem less _cfr25/_synced/...)",
    )
    p.add_argument("--metrics", help="comma-separated: keys (sync_c@precropped), names (sync_c: default protocol)")
    p.add_argument("--suite", help="a named metric set, e.g. lipforcing (the paper's exact set)")
    p.add_argument(
        "--crop",
        choices=["auto", "none"],
        help="none: the videos are already face crops: every face-crop metric takes each frame as "
        "the crop (resized as its protocol resizes crops) and runs no detector, under its "
        "*_precropped protocol (fid@per_video_precropped, ssim@face224_precropped, "
        "fvd@latentsync_precropped, lpips@mouth_precropped, syncnet@precropped); "
        "auto (default): detect faces",
    )
    p.add_argument(
        "--audio",
        choices=AUDIO_CHOICES,
        help="which speech drove the fakes: own (default: each clip's own, reconstruction) or cross "
        "(another clip's, dubbing): every key ends in +cross_audio and metrics that compare frames "
        "with the reference are refused",
    )
    p.add_argument(
        "--min-coverage",
        type=share,
        metavar="SHARE",
        help="least share of the reference's frames a fake must have to be compared with it "
        "(default 0.9); below it the clip's reference metrics fail with both frame counts",
    )
    p.add_argument(
        "--resample-fps",
        action="store_true",
        help="resample a fake whose frame rate differs from its reference's, or varies, to the "
        "reference's rate by frame time (noted per clip); without it such a clip's reference "
        "metrics fail",
    )
    p.add_argument("--weights-dir", help="folder with the weight files (also $LIPBENCH_WEIGHTS)")
    p.add_argument("--out", default="eval.json", help="results JSON (default eval.json)")
    p.add_argument("--name", help="name of the scored set in the results (default: the folder of the fake videos)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default cpu)")
    add_run_dir_flags(p, force=False)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("weights", help="the weight files metrics and models need")
    p.add_argument(
        "action",
        choices=["list", "fetch", "verify", "random"],
        help="random: write seeded random stand-ins in the real formats (smoke tests, timing)",
    )
    p.add_argument("names", nargs="*", help="which files (default: all; fetch: all with a download)")
    p.add_argument("--weights-dir", help="folder to look in / fetch into")
    p.add_argument("--seed", type=int, default=0, help="with random: the seed")
    p.set_defaults(func=cmd_weights)
    p = sub.add_parser("env", help="build the Python environment of a model that cannot share lipbench's")
    p.add_argument("action", choices=["create"])
    p.add_argument("model", choices=list(MODEL_ENVS), help="the model whose environment to build")
    p.add_argument("--dest", required=True, help="where the virtual environment goes")
    p.add_argument("--checkout", help="your checkout of the model's code (checked, and recorded in the env)")
    p.set_defaults(func=cmd_env)
    p = sub.add_parser("report", help="write the tables, plots, report.md and report.html of a run directory")
    p.add_argument("run")
    p.add_argument("--paper", help="compare with a published table (e.g. lip_forcing)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="regression verdicts of NEW against BASE, paired over shared clips")
    p.add_argument("base")
    p.add_argument("new")
    p.add_argument("--force", action="store_true", help="compare even when protocols, weights or inputs differ")
    p.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when any metric regressed, either run is incomplete, NEW scored fewer units than "
        "BASE, or no clip is scored in both",
    )

    def timing_threshold(text):  # imported only when given: the report package is slow to import
        from lipbench.report.compare import threshold_arg

        return threshold_arg(text)

    p.add_argument(
        "--timing-threshold",
        type=timing_threshold,
        default=0.05,
        metavar="FRACTION",
        help="fps/ttff_s verdicts need the paired 95%% CI beyond this relative change (default 0.05)",
    )
    p.add_argument(
        "--timing-floor",
        type=float,
        default=0.005,
        metavar="SECONDS",
        help="timing changes smaller than this many seconds per clip are unchanged (default 0.005)",
    )
    p.add_argument("--out", help="also write the comparison as JSON")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("ls", help="list models, metrics or shipped configs")
    p.add_argument("what", choices=["models", "metrics", "configs"])
    p.set_defaults(func=cmd_ls)

    data = sub.add_parser("data", help="test data: synthesise, describe, verify").add_subparsers(
        dest="data_command", required=True
    )
    p = data.add_parser("synth", help="write the synthetic talking-head set and its manifest")
    p.add_argument("--out", required=True)
    p.add_argument("--clips", type=positive_int, default=defaults.SYNTH_CLIPS, help="default %(default)s")
    p.add_argument("--seed", type=int, default=defaults.SYNTH_SEED, help="default %(default)s")
    p.add_argument("--frames", type=positive_int, default=defaults.SYNTH_FRAMES, help="default %(default)s")
    p.add_argument(
        "--size", type=positive_int, default=defaults.SYNTH_SIZE, help="frame side in pixels (default %(default)s)"
    )
    p.set_defaults(func=cmd_synth)
    p = data.add_parser("verify", help="check a manifest's files: present, decodable, as described, unchanged")
    p.add_argument("manifest")
    p.add_argument("--no-hash", action="store_true", help="skip the content hashes")
    p.set_defaults(func=cmd_verify)
    hdtf = data.add_parser("hdtf", help="the HDTF test split").add_subparsers(dest="hdtf_command", required=True)
    p = hdtf.add_parser("prepare", help="cut, resample to 25 fps, crop and hash the split's clips from your downloads")
    p.add_argument("--raw", required=True, help="folder of downloaded source videos (Name.mp4)")
    p.add_argument(
        "--annotations", required=True, help="HDTF_dataset folder (XX_annotion_time.txt, XX_crop_wh.txt, ...)"
    )
    p.add_argument("--out", required=True, help="where the clips and their manifest go")
    p.add_argument(
        "--split", default="hdtf_test33", help="split manifest: a path or a shipped name (default hdtf_test33)"
    )
    p.add_argument(
        "--frames",
        type=positive_int,
        default=defaults.CLIP_FRAMES,
        help="frames per clip (default %(default)s, the paper's)",
    )
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


def one_line(error: Exception) -> str:
    """An error's message on one line: its first line, then any further lines joined by '; '."""
    head, *rest = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    return f"{head} {'; '.join(rest)}" if rest else head


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LipbenchError as exc:
        # Only a user's mistake (bad input, usage, config, missing file) is one line and
        # exit code 2; anything else is a bug and keeps its traceback.
        print(f"lipbench: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
