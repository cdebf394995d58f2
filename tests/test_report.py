import json
from pathlib import Path

import numpy as np
import pytest

from lipbench.cli import main
from lipbench.report import stats, tables
from lipbench.report.pareto import pareto_status

SNAPSHOTS = Path(__file__).parent / "snapshots"


def test_pareto_fronts_with_ties_and_missing_values():
    points = {
        "fast_bad": (100, 0.5),
        "slow_good": (10, 0.9),
        "dominated": (50, 0.4),
        "tie_a": (60, 0.7),
        "tie_b": (60, 0.7),
        "no_fps": (None, 0.99),
        "nan_quality": (200, float("nan")),
        "middle": (60, 0.6),
    }
    status = pareto_status(points, x_higher=True, y_higher=True)
    assert status == {
        "fast_bad": "front",
        "slow_good": "front",
        "dominated": "dominated",
        "tie_a": "front",
        "tie_b": "front",
        "no_fps": "missing",
        "nan_quality": "missing",
        "middle": "dominated",
    }
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


def snapshot_results():
    def agg(value, n=3, ci=None, failed=(), error=None):
        return {"value": value, "ci95": ci, "n": n, "failed": {c: "RuntimeError: boom" for c in failed}, "error": error}

    return {
        "metrics_info": {
            "psnr@full": {"higher_is_better": True, "unit": "dB", "description": ""},
            "lmd@mediapipe": {"higher_is_better": False, "unit": "px", "description": ""},
            "av_lag@mesh_energy": {"higher_is_better": None, "unit": "frames", "description": ""},
            "fvd@latentsync": {"higher_is_better": False, "unit": "", "description": ""},
        },
        "models": {
            "model_a": {
                "n_ok": 3,
                "n_clips": 3,
                "timing": {"fps": agg(31.58, ci=[0.5, 0.7]), "ttff_s": agg(0.32)},
                "metrics": {
                    "psnr@full": agg(28.1234, ci=[27.5, 28.6]),
                    "lmd@mediapipe": agg(1.71),
                    "av_lag@mesh_energy": agg(0.0),
                    "fvd@latentsync": agg(120.5),
                },
            },
            "model_b": {
                "n_ok": 2,
                "n_clips": 3,  # one unit failed, one clip without a face (lmd NaN)
                "timing": {"fps": agg(1234.5, 2, failed=["c3"]), "ttff_s": agg(0.0012, 2, failed=["c3"])},
                "metrics": {
                    "psnr@full": agg(19.8, 2, failed=["c3"]),
                    "lmd@mediapipe": agg(2.38, 1, failed=["c2", "c3"]),
                    "av_lag@mesh_energy": agg(None, 0, failed=["c1", "c2", "c3"]),
                    "fvd@latentsync": agg(None, 2, failed=["c3"], error="ValueError: too few"),
                },
            },
        },
    }


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
    config.write_text(
        json.dumps(
            {
                "name": "paper_check",
                "data": {"manifest": str(synth_set.path)},
                "warmup_clips": 0,
                "metrics": ["psnr"],
                "bootstrap_resamples": 200,
                "models": [{"name": "lip_forcing_14b", "model": "precomputed", "args": {"folder": str(outputs)}}],
            }
        )
    )
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
