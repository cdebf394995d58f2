"""lipbench compare: paired verdicts over clips scored in both runs, and a gate that cannot pass on nothing."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from lipbench.cli import main
from lipbench.config import config_from_dict
from lipbench.data.manifest import Manifest
from lipbench.errors import LipbenchError
from lipbench.report.compare import NotComparable, compare_runs
from lipbench.rundir import RunDir
from lipbench.storage import read_json, write_json
from lipbench.types import Clip

M = "still"  # a registered model name: fabricated runs name models the config loader knows


def fake_run(
    root: Path,
    values: dict,
    metrics=("psnr", "ssim@full"),
    weights=None,
    sha="a" * 64,
    timing=None,
    errors=None,
    device_name="Test CPU",
    clips=None,
    models=None,
    unit_extra=None,
    fingerprints=None,
) -> RunDir:
    """A run directory written as the runner and evaluator would. `values` maps (model, clip)
    to its metric values, or to an error text for a failed unit; `timing` and `unit_extra`
    to unit fields, `errors` to metric errors, `fingerprints` to the metric rows' fingerprints.
    `clips`/`models` widen the config x manifest beyond the units written."""
    models = models or sorted({m for m, _ in values})
    clips = clips or sorted({c for _, c in values})
    config = config_from_dict(
        {
            "name": root.name,
            "data": {"manifest": "x.yaml"},
            "models": models,
            "metrics": list(metrics),
            "bootstrap_resamples": 500,
            "set_resamples": 50,
        },
        "test",
    )
    manifest = Manifest(name="m", clips=[Clip(id=c, video=root / f"{c}.mkv", sha256=sha) for c in clips])
    run = RunDir(root)
    run.save_inputs(config, manifest)
    if weights:
        write_json(root / "weights.json", weights)
    for (model, clip), vals in values.items():
        unit = {
            "model": model,
            "clip": clip,
            "device": "cpu",
            "device_name": device_name,
            **(unit_extra or {}).get((model, clip), {}),
        }
        if isinstance(vals, str):
            write_json(run.unit(model, clip), {**unit, "status": "error", "error": vals})
            continue
        write_json(
            run.unit(model, clip),
            {
                **unit,
                "status": "ok",
                "video": "v.mkv",
                "ttff_s": 0.1,
                "fps": 25.0,
                "total_s": 3.0,
                "n_frames": 75,
                "chunk_frames": [75],
                "chunk_s": [3.0],
                **(timing or {}).get((model, clip), {}),
            },
        )
        row = {"model": model, "clip": clip, "values": vals, "errors": (errors or {}).get((model, clip), {})}
        if fingerprints:
            row["fingerprints"] = fingerprints
        write_json(run.metrics(model, clip), row)
    return run


def clip_values(seed, shift=0.0, n=30):
    rng = np.random.default_rng(seed)
    base = rng.normal(30, 2, n)  # clips differ a lot from each other...
    return {
        f"c{i:02d}": {"psnr@full": float(b + shift + rng.normal(0, 0.3)), "ssim@full": 0.9} for i, b in enumerate(base)
    }


def verdicts(result, model=M):
    return {r["metric"]: r["verdict"] for r in result["rows"] if r["model"] == model}


def row(result, metric, model=M):
    return next(r for r in result["rows"] if r["model"] == model and r["metric"] == metric)


def test_compare_calls_a_real_shift_and_not_noise(tmp_path):
    base_vals = clip_values(0)
    base = fake_run(tmp_path / "base", {(M, c): v for c, v in base_vals.items()})
    rng = np.random.default_rng(5)
    noisy = fake_run(
        tmp_path / "noisy",
        {(M, c): {**v, "psnr@full": v["psnr@full"] + rng.normal(0, 0.3)} for c, v in base_vals.items()},
    )
    worse = fake_run(
        tmp_path / "worse",
        {(M, c): {**v, "psnr@full": v["psnr@full"] - 0.5 + rng.normal(0, 0.3)} for c, v in base_vals.items()},
    )
    result = compare_runs(base.root, noisy.root, resamples=1000)
    assert verdicts(result)["psnr@full"] == "unchanged" and verdicts(result)["ssim@full"] == "unchanged"
    assert result["gate"] == [] and result["shared_clips"] == 30
    result = compare_runs(base.root, worse.root, resamples=1000)
    psnr = row(result, "psnr@full")
    assert psnr["verdict"] == "regressed" and psnr["ci95"][1] < 0 and psnr["n_clips"] == 30
    # ...and the paired test sees a 0.5 dB shift that the clip-to-clip spread (2 dB) would hide unpaired
    assert main(["compare", str(base.root), str(worse.root), "--fail-on-regression"]) == 1
    assert main(["compare", str(base.root), str(noisy.root), "--fail-on-regression"]) == 0


def test_compare_refuses_different_weights_inputs_and_protocols(tmp_path):
    vals = {(M, c): v for c, v in clip_values(0, n=5).items()}
    base = fake_run(tmp_path / "base", vals, weights={"syncnet_v2.model": "1" * 64})
    other_weights = fake_run(tmp_path / "w", vals, weights={"syncnet_v2.model": "2" * 64})
    other_inputs = fake_run(tmp_path / "i", vals, weights={"syncnet_v2.model": "1" * 64}, sha="b" * 64)
    with pytest.raises(NotComparable, match="weight file syncnet_v2.model: sha256 111111111111 in .*, 222222222222"):
        compare_runs(base.root, other_weights.root)
    with pytest.raises(NotComparable, match="clip c00: input sha256 differs"):
        compare_runs(base.root, other_inputs.root)
    assert compare_runs(base.root, other_inputs.root, force=True)["forced_despite"]
    assert main(["compare", str(base.root), str(other_inputs.root)]) == 2  # a user-facing error, one line
    sync_base = fake_run(tmp_path / "sb", vals, metrics=("psnr", "ssim@full", "syncnet@latentsync"))
    sync_new = fake_run(tmp_path / "sn", vals, metrics=("psnr", "ssim@full", "syncnet@syncnet_python"))
    with pytest.raises(
        NotComparable,
        match=f"metric syncnet: protocol latentsync in {sync_base.root}, syncnet_python in {sync_new.root}",
    ):
        compare_runs(sync_base.root, sync_new.root)


def test_not_comparable_is_a_user_facing_error():
    assert issubclass(NotComparable, LipbenchError) and issubclass(NotComparable, ValueError)


def test_a_clip_replaced_on_disk_is_caught_by_the_unit_hashes(tmp_path):
    """Both manifests carry the same sha256; the units hashed different files."""
    vals = {(M, c): v for c, v in clip_values(0, n=4).items()}
    base = fake_run(tmp_path / "base", vals, unit_extra={(M, c): {"clip_sha256": "c" * 64} for _, c in vals})
    replaced = {(M, c): {"clip_sha256": ("d" if c == "c02" else "c") * 64} for _, c in vals}
    new = fake_run(tmp_path / "new", vals, unit_extra=replaced)
    with pytest.raises(NotComparable, match=r"clip c02: input sha256 differs between the runs \(cccccccccccc"):
        compare_runs(base.root, new.root)
    assert compare_runs(base.root, new.root, force=True)["forced_despite"] == [
        f"clip c02: input sha256 differs between the runs (cccccccccccc in {base.root}, dddddddddddd in {new.root})"
    ]
    # a unit without clip_sha256 falls back to the manifest's hash
    old = fake_run(tmp_path / "old", vals, sha="c" * 64)
    assert compare_runs(base.root, old.root)["forced_despite"] == []
    with pytest.raises(NotComparable, match="clip c02"):
        compare_runs(old.root, new.root)


def test_weight_hashes_from_metric_rows_of_shared_metrics(tmp_path):
    vals = {(M, c): v for c, v in clip_values(0, n=4).items()}

    def prints(sha):
        return {"psnr@full": {"weights": {"psnr.pt": sha}}, "ssim@full": {"weights": {}}}

    base = fake_run(tmp_path / "base", vals, fingerprints=prints("1" * 64))
    same = fake_run(tmp_path / "same", vals, fingerprints=prints("1" * 64))
    other = fake_run(tmp_path / "other", vals, fingerprints=prints("2" * 64))
    assert compare_runs(base.root, same.root)["forced_despite"] == []
    with pytest.raises(NotComparable, match="weight file psnr.pt: sha256 111111111111 in .*, 222222222222 in"):
        compare_runs(base.root, other.root)
    # the file belongs to a metric only NEW computes: nothing to compare it with
    only_new = fake_run(
        tmp_path / "only_new",
        {(M, c): {"psnr@full": v["psnr@full"]} for (_, c), v in vals.items()},
        metrics=("psnr",),
        fingerprints={"ssim@full": {"weights": {"psnr.pt": "3" * 64}}},
    )
    psnr_base = fake_run(
        tmp_path / "psnr_base",
        {(M, c): {"psnr@full": v["psnr@full"]} for (_, c), v in vals.items()},
        metrics=("psnr",),
        fingerprints=prints("1" * 64),
    )
    assert compare_runs(psnr_base.root, only_new.root)["forced_despite"] == []
    # weights.json of one run and metric rows of the other are read alike
    legacy = fake_run(tmp_path / "legacy", vals, weights={"psnr.pt": "2" * 64})
    with pytest.raises(NotComparable, match="weight file psnr.pt"):
        compare_runs(base.root, legacy.root)


def test_only_clips_scored_in_both_runs_are_compared(tmp_path):
    vals = {(M, c): v for c, v in clip_values(0, n=6).items()}
    base = fake_run(tmp_path / "base", vals)
    new_vals = dict(vals)
    new_vals[(M, "c01")] = {"psnr@full": float("nan"), "ssim@full": 0.9}  # not finite
    new_vals[(M, "c02")] = {"ssim@full": 0.9}  # missing
    new_vals[(M, "c04")] = "RuntimeError: the model failed"  # unit failed
    new = fake_run(
        tmp_path / "new", new_vals, errors={(M, "c03"): {"psnr@full": "ValueError: bad"}}
    )  # value there, family failed
    result = compare_runs(base.root, new.root, resamples=200)
    assert row(result, "psnr@full")["n_clips"] == 2  # c00, c05
    assert row(result, "ssim@full")["n_clips"] == 5
    assert row(result, "fps")["n_clips"] == 5
    assert result["scored_units"] == {"base": 6, "new": 5}
    assert result["shared_clips"] == 5
    assert "new run incomplete: 1 of 6 units failed (still: 1)" in result["gate"]
    assert "new run incomplete: 3 of 10 metric values of ok units failed or missing (psnr@full: 3)" in result["gate"]


def run_cli(capsys, *args):
    code = main(["compare", *map(str, args)])
    return code, capsys.readouterr().out


def test_every_unit_of_new_failed_fails_the_gate(tmp_path, capsys):
    vals = {(M, c): v for c, v in clip_values(0, n=3).items()}
    base = fake_run(tmp_path / "base", vals)
    new = fake_run(tmp_path / "new", {u: "RuntimeError: CUDA out of memory" for u in vals})
    code, out = run_cli(capsys, base.root, new.root, "--fail-on-regression")
    assert code == 1
    assert "gate failed: new run incomplete: 3 of 3 units failed (still: 3)" in out
    assert "gate failed: new run has fewer ok units than base: 0 against 3" in out
    assert "gate failed: nothing to compare: no clip is scored in both runs" in out
    assert "0 regressions over 0 clips scored in both runs" in out
    code, out = run_cli(capsys, base.root, new.root)  # without the flag: warnings, exit 0
    assert code == 0 and "warning: new run incomplete: 3 of 3 units failed (still: 3)" in out


def test_an_empty_new_run_fails_the_gate(tmp_path, capsys):
    vals = {(M, c): v for c, v in clip_values(0, n=3).items()}
    base = fake_run(tmp_path / "base", vals)
    empty = fake_run(tmp_path / "empty", {}, models=[M], clips=["c00", "c01", "c02"])
    code, out = run_cli(capsys, base.root, empty.root, "--fail-on-regression")
    assert code == 1
    assert "gate failed: new run incomplete: 3 of 3 units missing (still: 3)" in out
    assert "gate failed: new run has fewer scored values than base: psnr@full 0 against 3, ssim@full 0 against 3" in out


def test_runs_sharing_no_scored_clip_fail_the_gate(tmp_path, capsys):
    values = clip_values(0, n=6)
    base = fake_run(tmp_path / "base", {(M, c): values[c] for c in ("c00", "c01", "c02")})
    new = fake_run(tmp_path / "new", {(M, c): values[c] for c in ("c03", "c04", "c05")})
    code, out = run_cli(capsys, base.root, new.root, "--fail-on-regression")
    assert code == 1 and "gate failed: nothing to compare: no clip is scored in both runs" in out
    assert "no clip scored in both" in out  # the rows say so too
    assert run_cli(capsys, base.root, new.root)[0] == 0


def test_new_with_fewer_scored_units_fails_the_gate(tmp_path, capsys):
    """Both runs complete, NEW on a subset of BASE's clips: the comparison itself is clean."""
    values = clip_values(0, n=5)
    base = fake_run(tmp_path / "base", {(M, c): v for c, v in values.items()})
    new = fake_run(tmp_path / "new", {(M, c): values[c] for c in ("c00", "c01", "c02")})
    result = compare_runs(base.root, new.root, resamples=200)
    assert result["regressions"] == 0 and result["shared_clips"] == 3
    assert result["gate"] == [
        "new run has fewer ok units than base: 3 against 5",
        "new run has fewer scored values than base: psnr@full 3 against 5, ssim@full 3 against 5",
    ]
    assert run_cli(capsys, base.root, new.root, "--fail-on-regression")[0] == 1
    assert run_cli(capsys, new.root, base.root, "--fail-on-regression")[0] == 0  # more is fine


def test_an_incomplete_base_run_fails_the_gate(tmp_path, capsys):
    vals = {(M, c): v for c, v in clip_values(0, n=3).items()}
    base = fake_run(tmp_path / "base", vals, errors={(M, "c00"): {"ssim@full": "ValueError: x"}})
    new = fake_run(tmp_path / "new", vals)
    code, out = run_cli(capsys, base.root, new.root, "--fail-on-regression")
    assert code == 1
    assert "gate failed: base run incomplete: 1 of 6 metric values of ok units failed or missing (ssim@full: 1)" in out


def timed(factors, seed=0, n=12, fps=30.0, ttff=0.4):
    """Unit timings per clip: clips differ from each other by up to +-30%; each is scaled by factors[i]."""
    rng = np.random.default_rng(seed)
    spread = rng.uniform(0.7, 1.3, n)
    return {
        (M, f"c{i:02d}"): {
            "fps": fps * spread[i] * factors[i],
            "total_s": 75 / (fps * spread[i] * factors[i]),
            "ttff_s": ttff / spread[i] / factors[i],
        }
        for i in range(n)
    }


def timing_runs(tmp_path, new_factors, base_device="Test CPU", new_device="Test CPU"):
    n = len(new_factors)
    vals = {(M, f"c{i:02d}"): {"psnr@full": 30.0, "ssim@full": 0.9} for i in range(n)}
    base = fake_run(tmp_path / "base", vals, timing=timed([1.0] * n, n=n), device_name=base_device)
    new = fake_run(tmp_path / "new", vals, timing=timed(new_factors, n=n), device_name=new_device)
    return base, new


def test_timing_noise_of_a_few_percent_is_unchanged(tmp_path, capsys):
    """Two runs of one config on one machine: a few % either way, even consistently."""
    noise = 1 + np.random.default_rng(3).uniform(-0.04, 0.04, 12)
    base, new = timing_runs(tmp_path, list(noise))
    result = compare_runs(base.root, new.root, resamples=500)
    assert verdicts(result)["fps"] == verdicts(result)["ttff_s"] == "unchanged"
    slower = tmp_path / "slower"
    slower.mkdir()
    base, new = timing_runs(slower, [0.97 + 0.005 * (i % 3) for i in range(12)])  # 2-3% slower, every clip
    result = compare_runs(base.root, new.root, resamples=500)
    assert verdicts(result)["fps"] == verdicts(result)["ttff_s"] == "unchanged"
    assert row(result, "fps")["ci95"][1] < 0  # the CI alone excludes zero: the threshold is what holds
    code, out = run_cli(capsys, base.root, new.root, "--fail-on-regression")
    assert code == 0 and "0 regressions over 12 clips scored in both runs" in out


def test_a_consistent_slowdown_regresses_and_swapped_improves(tmp_path):
    base, new = timing_runs(tmp_path, [0.8 * (1 + 0.01 * (-1) ** i) for i in range(12)])  # 20% slower
    result = compare_runs(base.root, new.root, resamples=500)
    assert verdicts(result)["fps"] == verdicts(result)["ttff_s"] == "regressed"
    assert result["regressions"] == 2
    assert -0.25 < row(result, "fps")["relative_ci95"][0] < row(result, "fps")["relative_ci95"][1] < -0.15
    swapped = compare_runs(new.root, base.root, resamples=500)
    assert verdicts(swapped)["fps"] == verdicts(swapped)["ttff_s"] == "improved"


def test_timing_threshold_flag_changes_the_verdict(tmp_path, capsys):
    base, new = timing_runs(tmp_path, [0.9 * (1 + 0.01 * (-1) ** i) for i in range(12)])  # 10% slower
    assert verdicts(compare_runs(base.root, new.root, resamples=500))["fps"] == "regressed"
    assert verdicts(compare_runs(base.root, new.root, resamples=500, timing_threshold=0.2))["fps"] == "unchanged"
    assert run_cli(capsys, base.root, new.root, "--fail-on-regression")[0] == 1
    code, out = run_cli(capsys, base.root, new.root, "--fail-on-regression", "--timing-threshold", "0.2")
    assert code == 0 and "0 regressions" in out
    for bad, message in (
        ("1.5", "1.5 is not a fraction in [0, 1)"),
        ("-0.1", "-0.1 is not a fraction"),
        ("five", "not a number: 'five'"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["compare", str(base.root), str(new.root), "--timing-threshold", bad])
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_changes_of_milliseconds_per_clip_are_below_the_timing_floor(tmp_path, capsys):
    """An oracle that takes a few ms per clip, twice as slow on a busy machine: not a regression."""
    n = 12
    vals = {(M, f"c{i:02d}"): {"psnr@full": 30.0, "ssim@full": 0.9} for i in range(n)}
    base = fake_run(tmp_path / "base", vals, timing=timed([1.0] * n, n=n, fps=30000.0, ttff=0.001))
    new = fake_run(tmp_path / "new", vals, timing=timed([0.5] * n, n=n, fps=30000.0, ttff=0.001))
    result = compare_runs(base.root, new.root, resamples=500)
    assert verdicts(result)["fps"] == verdicts(result)["ttff_s"] == "unchanged"
    assert row(result, "ttff_s")["note"] == "change below the 5 ms timing floor"
    code, out = run_cli(capsys, base.root, new.root, "--fail-on-regression", "--timing-floor", "0")
    assert code == 1 and "2 regressions" in out
    assert run_cli(capsys, base.root, new.root, "--fail-on-regression")[0] == 0


def test_timing_on_different_devices_is_not_comparable(tmp_path, capsys):
    base, new = timing_runs(tmp_path, [0.5] * 12, base_device="NVIDIA H100 80GB HBM3", new_device="NVIDIA A10G")
    result = compare_runs(base.root, new.root, resamples=200)
    fps = row(result, "fps")
    assert fps["verdict"] == row(result, "ttff_s")["verdict"] == "not comparable"
    assert fps["note"] == "device NVIDIA H100 80GB HBM3 in base, NVIDIA A10G in new"
    assert result["regressions"] == 0
    code, out = run_cli(capsys, base.root, new.root, "--fail-on-regression")
    assert code == 0 and "not comparable (device NVIDIA H100 80GB HBM3 in base, NVIDIA A10G in new)" in out


def test_device_name_falls_back_to_the_model_record(tmp_path):
    base, new = timing_runs(tmp_path, [0.5] * 12, base_device=None, new_device=None)
    assert verdicts(compare_runs(base.root, new.root, resamples=200))["fps"] == "not comparable"  # unknown: no
    for run, name in ((base, "Test CPU"), (new, "Test CPU")):
        write_json(run.root / "models" / f"{M}.json", {"device": "cpu", "device_name": name})
    assert verdicts(compare_runs(base.root, new.root, resamples=200))["fps"] == "regressed"
    write_json(new.root / "models" / f"{M}.json", {"device": "cpu", "device_name": "Other CPU"})
    assert verdicts(compare_runs(base.root, new.root, resamples=200))["fps"] == "not comparable"
    # units that name their device win over the model record; one model on two devices is not comparable
    mixed = read_json(new.unit(M, "c00"))
    write_json(new.unit(M, "c00"), {**mixed, "device_name": "Test CPU"})
    assert verdicts(compare_runs(base.root, new.root, resamples=200))["fps"] == "not comparable"


def test_out_json_has_counts_gate_and_exit_reason(tmp_path, capsys):
    vals = {(M, c): v for c, v in clip_values(0, n=4).items()}
    base = fake_run(tmp_path / "base", vals)
    new = fake_run(tmp_path / "new", {**vals, (M, "c03"): "RuntimeError: boom"})
    out = tmp_path / "cmp.json"
    assert main(["compare", str(base.root), str(new.root), "--fail-on-regression", "--out", str(out)]) == 1
    data = json.loads(out.read_text())
    assert {r["metric"]: r["n_clips"] for r in data["rows"]} == {"psnr@full": 3, "ssim@full": 3, "fps": 3, "ttff_s": 3}
    assert data["scored_units"] == {"base": 4, "new": 3} and data["units"] == {"base": 4, "new": 4}
    assert data["shared_clips"] == 3 and data["shared_units"] == 3
    assert data["gate"][0] == "new run incomplete: 1 of 4 units failed (still: 1)"
    assert data["exit"] == {"code": 1, "reason": "3 gate problems"}
    main(["compare", str(base.root), str(new.root), "--out", str(out)])
    assert json.loads(out.read_text())["exit"] == {"code": 0, "reason": "3 gate problems (no --fail-on-regression)"}
    main(["compare", str(base.root), str(base.root), "--fail-on-regression", "--out", str(out)])
    assert json.loads(out.read_text())["exit"] == {"code": 0, "reason": "no regression, both runs complete"}


def test_two_real_runs_of_one_config(synth_set, tmp_path, capsys):
    """The real run directory layout: two runs of one config, timing fabricated (a few % apart)."""
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "t",
                "data": {"manifest": str(synth_set.path)},
                "models": ["ground_truth", "still"],
                "metrics": ["psnr"],
                "warmup_clips": 0,
            }
        )
    )
    runs = [tmp_path / "a", tmp_path / "b"]
    for run_dir in runs:
        main(["run", str(config), "--out", str(run_dir)])
    for run_dir, factor in zip(runs, (1.0, 0.97)):
        for unit in sorted(Path(run_dir, "units").rglob("*.json")):
            record = read_json(unit)
            write_json(unit, {**record, "fps": 100.0 * factor, "ttff_s": 0.05 / factor, "device_name": "Test CPU"})
    code, out = run_cli(capsys, *runs, "--fail-on-regression")
    assert code == 0, out
    assert "0 regressions over 2 clips scored in both runs" in out
    unit = RunDir(runs[1]).unit("still", "synth_001")
    write_json(unit, {**read_json(unit), "status": "error", "error": "RuntimeError: x"})
    code, out = run_cli(capsys, *runs, "--fail-on-regression")
    assert code == 1 and "gate failed: new run incomplete: 1 of 4 units failed (still: 1)" in out


def test_a_damaged_record_counts_as_missing_and_stays_put(tmp_path, capsys):
    vals = {(M, c): v for c, v in clip_values(0, n=3).items()}
    base = fake_run(tmp_path / "base", vals)
    new = fake_run(tmp_path / "new", vals)
    new.unit(M, "c01").write_text('{"model": "still", "sta')  # a truncated write
    code = main(["compare", str(base.root), str(new.root), "--fail-on-regression"])
    captured = capsys.readouterr()
    assert code == 1 and "new run incomplete: 1 of 3 units missing (still: 1)" in captured.out
    assert f"{new.unit(M, 'c01')}: damaged record" in captured.err
    assert new.unit(M, "c01").exists() and not (new.root / "damaged").exists()  # compare only reads


def test_set_level_metrics_pair_the_clips_with_features_in_both(tmp_path):
    clips = [f"c{i:02d}" for i in range(8)]
    rng = np.random.default_rng(0)
    real = {c: rng.normal(size=(1, 8)) for c in clips}
    vals = {(M, c): {"psnr@full": 30.0} for c in clips}
    base = fake_run(tmp_path / "base", vals, metrics=("psnr", "fvd@stylegan_v"))
    new = fake_run(
        tmp_path / "new",
        vals,
        metrics=("psnr", "fvd@stylegan_v"),
        errors={(M, "c07"): {"fvd@stylegan_v": "ValueError: 12 frames compared"}},
    )
    for c in clips:
        base.save_features(M, c, "fvd@stylegan_v", {"real": real[c], "fake": real[c] + rng.normal(0, 0.1, (1, 8))})
        if c != "c06":  # c06: no features; c07: features left from before, but the metric failed
            new.save_features(M, c, "fvd@stylegan_v", {"real": real[c], "fake": real[c] + 3.0})
    result = compare_runs(base.root, new.root, resamples=200)
    fvd = row(result, "fvd@stylegan_v")
    assert fvd["n_clips"] == 6 and fvd["verdict"] == "regressed" and fvd["difference"] > 0
    assert (
        "new run incomplete: 2 of 16 metric values of ok units failed or missing (fvd@stylegan_v: 2)" in result["gate"]
    )
