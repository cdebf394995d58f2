import json
from pathlib import Path

import numpy as np
import pytest

from lipbench.cli import main
from lipbench.config import config_from_dict
from lipbench.data.manifest import Manifest
from lipbench.report import stats, tables
from lipbench.report.compare import NotComparable, compare_runs
from lipbench.report.pareto import pareto_status
from lipbench.rundir import RunDir
from lipbench.storage import write_json
from lipbench.types import Clip

SNAPSHOTS = Path(__file__).parent / "snapshots"


def test_pareto_fronts_with_ties_and_missing_values():
    points = {"fast_bad": (100, 0.5), "slow_good": (10, 0.9), "dominated": (50, 0.4), "tie_a": (60, 0.7),
              "tie_b": (60, 0.7), "no_fps": (None, 0.99), "nan_quality": (200, float("nan")), "middle": (60, 0.6)}
    status = pareto_status(points, x_higher=True, y_higher=True)
    assert status == {"fast_bad": "front", "slow_good": "front", "dominated": "dominated", "tie_a": "front",
                      "tie_b": "front", "no_fps": "missing", "nan_quality": "missing", "middle": "dominated"}
    # lower-is-better axes flip the directions (TTFF against FVD)
    lower = pareto_status({"a": (0.3, 120.0), "b": (0.5, 100.0), "c": (0.6, 130.0)}, False, False)
    assert lower == {"a": "front", "b": "front", "c": "dominated"}


def test_bootstrap_ci_covers_the_true_mean_at_its_nominal_rate():
    covered = 0
    for trial in range(300):
        sample = np.random.default_rng(1000 + trial).normal(3.0, 2.0, 33)
        lo, hi = stats.bootstrap_mean_ci(sample, n_resamples=2000, seed=trial)
        covered += lo <= 3.0 <= hi
    assert 0.90 <= covered / 300 <= 0.99, covered / 300


def test_bootstrap_is_seeded_and_handles_tiny_samples():
    assert stats.bootstrap_mean_ci([1.0, 2.0, 4.0]) == stats.bootstrap_mean_ci([1.0, 2.0, 4.0])
    assert stats.bootstrap_mean_ci([1.0]) is None
    assert stats.bootstrap_mean_ci([1.0, None, float("nan")]) is None


def fake_run(root: Path, values: dict, metrics=("psnr", "ssim@full"), weights=None, sha="a" * 64, fps=None) -> RunDir:
    """A run directory written as the runner and evaluator would: `values` maps
    (model, clip) to metric values."""
    models = sorted({m for m, _ in values})
    clips = sorted({c for _, c in values})
    config = config_from_dict({"name": root.name, "data": {"manifest": "x.yaml"}, "models": models,
                               "metrics": list(metrics), "bootstrap_resamples": 500, "set_resamples": 50}, "test")
    manifest = Manifest(name="m", clips=[Clip(id=c, video=root / f"{c}.mkv", sha256=sha) for c in clips])
    run = RunDir(root)
    run.save_inputs(config, manifest)
    if weights:
        write_json(root / "weights.json", weights)
    for (model, clip), vals in values.items():
        write_json(run.unit(model, clip), {"model": model, "clip": clip, "status": "ok", "video": "v.mkv",
                                           "ttff_s": 0.1, "fps": (fps or {}).get(model, 25.0), "total_s": 3.0,
                                           "n_frames": 75, "chunk_frames": [75], "chunk_s": [3.0]})
        write_json(run.metrics(model, clip), {"model": model, "clip": clip, "values": vals, "errors": {}})
    return run


def clip_values(seed, shift=0.0, n=30):
    rng = np.random.default_rng(seed)
    base = rng.normal(30, 2, n)  # clips differ a lot from each other...
    return {f"c{i:02d}": {"psnr@full": float(b + shift + rng.normal(0, 0.3)), "ssim@full": 0.9} for i, b in enumerate(base)}


def test_compare_calls_a_real_shift_and_not_noise(tmp_path):
    base_vals = clip_values(0)
    base = fake_run(tmp_path / "base", {("m", c): v for c, v in base_vals.items()})
    rng = np.random.default_rng(5)
    noisy = fake_run(tmp_path / "noisy", {("m", c): {**v, "psnr@full": v["psnr@full"] + rng.normal(0, 0.3)}
                                          for c, v in base_vals.items()})
    worse = fake_run(tmp_path / "worse", {("m", c): {**v, "psnr@full": v["psnr@full"] - 0.5 + rng.normal(0, 0.3)}
                                          for c, v in base_vals.items()})
    verdicts = {r["metric"]: r["verdict"] for r in compare_runs(base.root, noisy.root, resamples=1000)["rows"]}
    assert verdicts["psnr@full"] == "unchanged" and verdicts["ssim@full"] == "unchanged"
    result = compare_runs(base.root, worse.root, resamples=1000)
    row = next(r for r in result["rows"] if r["metric"] == "psnr@full")
    assert row["verdict"] == "regressed" and row["ci95"][1] < 0 and row["n_clips"] == 30
    # ...and the paired test sees a 0.5 dB shift that the clip-to-clip spread (2 dB) would hide unpaired
    assert main(["compare", str(base.root), str(worse.root), "--fail-on-regression"]) == 1
    assert main(["compare", str(base.root), str(noisy.root), "--fail-on-regression"]) == 0


def test_compare_refuses_different_weights_inputs_and_protocols(tmp_path):
    vals = {("m", c): v for c, v in clip_values(0, n=5).items()}
    base = fake_run(tmp_path / "base", vals, weights={"syncnet_v2.model": "1" * 64})
    other_weights = fake_run(tmp_path / "w", vals, weights={"syncnet_v2.model": "2" * 64})
    other_inputs = fake_run(tmp_path / "i", vals, weights={"syncnet_v2.model": "1" * 64}, sha="b" * 64)
    with pytest.raises(NotComparable, match="weight file syncnet_v2.model"):
        compare_runs(base.root, other_weights.root)
    with pytest.raises(NotComparable, match="clip c00: input sha256 differs"):
        compare_runs(base.root, other_inputs.root)
    assert compare_runs(base.root, other_inputs.root, force=True)["forced_despite"]
    from lipbench.report import compare as compare_module
    problems = compare_module._check_comparable(base, base, ["syncnet@latentsync"], ["syncnet@syncnet_python"],
                                                base.load_manifest(), base.load_manifest())
    assert problems == [f"metric syncnet: protocol latentsync in {base.root}, syncnet_python in {base.root}"]


def snapshot_results():
    ci = {"ci95": [0.5, 0.7]}
    return {
        "metrics_info": {"psnr@full": {"higher_is_better": True, "unit": "dB", "description": ""},
                         "lmd@mediapipe": {"higher_is_better": False, "unit": "px", "description": ""},
                         "av_lag@mesh_energy": {"higher_is_better": None, "unit": "frames", "description": ""}},
        "models": {
            "model_a": {"n_ok": 3, "n_clips": 3,
                        "timing": {"fps": {"median": 31.58, **ci}, "ttff_s": {"median": 0.32}},
                        "metrics": {"psnr@full": {"mean": 28.1234, "ci95": [27.5, 28.6]},
                                    "lmd@mediapipe": {"mean": 1.71}, "av_lag@mesh_energy": {"mean": 0.0}}},
            "model_b": {"n_ok": 2, "n_clips": 3,
                        "timing": {"fps": {"median": 1234.5}, "ttff_s": {"median": 0.0012}},
                        "metrics": {"psnr@full": {"mean": 19.8}, "lmd@mediapipe": {"mean": 2.38},
                                    "av_lag@mesh_energy": {"mean": None}}},
        }}


@pytest.mark.parametrize("fmt", ["md", "csv", "tex"])
def test_table_snapshots(fmt):
    results = snapshot_results()
    text = {"md": tables.to_markdown, "csv": tables.to_csv, "tex": tables.to_latex}[fmt](results)
    expected = (SNAPSHOTS / f"table.{fmt}").read_text()
    assert text.strip() == expected.strip()


def test_paper_layout_and_comparison_of_precomputed_rows(synth_set, tmp_path):
    from lipbench import io

    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for clip in synth_set.clips:
        io.write_video(outputs / f"{clip.id}.mkv", clip.frames(), 25.0, clip.driving_audio(), 16000)
        (outputs / f"{clip.id}.json").write_text(json.dumps({"ttff_s": 0.54, "fps": 15.11}))
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"name": "paper_check", "data": {"manifest": str(synth_set.path)},
                                  "warmup_clips": 0, "metrics": ["psnr"], "bootstrap_resamples": 200,
                                  "models": [{"name": "lip_forcing_14b", "model": "precomputed",
                                              "args": {"folder": str(outputs)}}]}))
    run = tmp_path / "run"
    assert main(["run", str(config), "--out", str(run)]) == 0
    assert main(["report", str(run), "--paper", "lip_forcing"]) == 0
    comparison = json.loads((run / "paper_comparison.json").read_text())
    fps = next(r for r in comparison["rows"] if r["metric"] == "fps")
    assert fps["paper_row"] == "Lip Forcing 14B" and fps["measured"] == 15.11 and fps["paper"] == 15.11
    assert fps["difference"] == 0.0
    floors = {c["method"]: c for c in comparison["floor_checks"]}
    assert not floors["Lip Forcing 1.3B"]["below_floor_as_seconds"]
    assert floors["Lip Forcing 1.3B"]["below_floor_if_read_as_ms"]  # "0.32 ms" is impossible
    assert not (run / "latency.png").exists()  # no chunk timing was measured for outputs made elsewhere
    for name in ("report.md", "report.html", "results.csv", "results.tex", "pareto.png", "pareto.svg"):
        assert (run / name).stat().st_size > 0, name
    page = (run / "report.html").read_text()
    assert "data:image/png;base64," in page and "Lip Forcing 14B" in page
    md = (run / "report.md").read_text()
    assert "## Against Lip Forcing" in md and "impossible (below the floor) if read as ms" in md
