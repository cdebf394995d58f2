"""One results document for a run and for `lipbench eval --fake` (lipbench.report.schema),
and failures shown as failures."""

import json

import numpy as np
import pytest
import yaml

from lipbench import metrics
from lipbench.cli import main
from lipbench.config import config_from_dict
from lipbench.data.manifest import Manifest
from lipbench.evaluate import evaluate_files
from lipbench.metrics.base import SetMetric, Value
from lipbench.report import schema, stats
from lipbench.report.build import write_report
from lipbench.rundir import RunDir
from lipbench.storage import write_json
from lipbench.types import Clip

AGGREGATE_FIELDS = set(schema.Aggregate.__annotations__)


class PooledMean(SetMetric):
    """A set-level test metric: the mean brightness pooled over at least `min_clips` clips."""

    name = "pooled_mean"
    protocols = ("test",)
    values = (Value("pooled_mean", True, "", "mean brightness, pooled"),)
    min_clips = 3

    def features(self, ctx):
        return {"x": np.array([ctx.generated_frames.mean()])}

    def combine(self, features):
        if len(features) < self.min_clips:
            raise ValueError(f"needs at least {self.min_clips} clips, got {len(features)}")
        return {"pooled_mean@test": float(np.mean([f["x"][0] for f in features]))}


@pytest.fixture
def pooled_mean(monkeypatch):
    monkeypatch.setitem(metrics.METRICS.builtin, "pooled_mean", f"{__name__}:PooledMean")
    return PooledMean


def write_config(path, synth_set, models, metric_list):
    path.write_text(
        yaml.safe_dump(
            {
                "name": "schema",
                "data": {"manifest": str(synth_set.path)},
                "warmup_clips": 0,
                "models": models,
                "metrics": metric_list,
                "set_resamples": 50,
            }
        )
    )
    return path


def test_a_run_and_eval_of_the_same_videos_give_the_same_document(synth_set, tmp_path):
    config = write_config(tmp_path / "c.yaml", synth_set, ["ground_truth", "still"], ["psnr", "ssim@full"])
    out = tmp_path / "run"
    main(["run", str(config), "--out", str(out)])
    run = json.loads((out / "results.json").read_text())
    assert run["lipbench_results"] == schema.SCHEMA_VERSION == 2 and run["kind"] == "run"
    for model in ("ground_truth", "still"):
        pairs = [(c.id, out / RunDir(out).read_unit(model, c.id)["video"], c.video) for c in synth_set.clips]
        evaluated = evaluate_files(pairs, ["psnr@full", "ssim@full"], progress=False, name=model)
        assert evaluated["lipbench_results"] == 2 and evaluated["kind"] == "eval"
        common = {
            "lipbench_results",
            "kind",
            "created",
            "metrics",
            "metrics_info",
            "timing_definition",
            "models",
            "failures",
            "weights",
            "environment",
            "audio",
        }
        assert run["audio"] == evaluated["audio"] == {"protocol": "own"}
        assert set(run) == common | {"run", "data", "config"}
        assert set(evaluated) == common | {"pairs", "alignment", "complete"} and evaluated["complete"] is True
        mine, theirs = run["models"][model], evaluated["models"][model]
        assert set(mine) == set(theirs) and mine["clips"] == theirs["clips"]
        assert mine["clip_notes"] == theirs["clip_notes"] and all(
            notes["frames_compared"] == 49 for notes in mine["clip_notes"].values()
        )
        for key in ("psnr@full", "ssim@full"):
            assert set(mine["metrics"][key]) == AGGREGATE_FIELDS
            assert mine["metrics"][key] == theirs["metrics"][key], (model, key)
        assert mine["metrics"]["psnr@full"]["n"] == 2 and mine["metrics"]["psnr@full"]["resamples_ok"] == 2000
        assert (
            set(mine["timing"]["fps"]) == AGGREGATE_FIELDS and mine["timing"]["fps"]["statistic"] == "median over clips"
        )
        assert theirs["timing"] == {}  # no timing for videos made elsewhere
    still = run["models"]["still"]["metrics"]["psnr@full"]
    per_clip = [v["psnr@full"] for v in run["models"]["still"]["clips"].values()]
    assert still["value"] == pytest.approx(np.mean(per_clip)) and still["std"] == pytest.approx(
        np.std(per_clip, ddof=1)
    )


def test_eval_names_the_set_fake_when_the_videos_come_from_several_folders(synth_set, tmp_path):
    import shutil

    first, second = synth_set.clips
    (tmp_path / "other").mkdir()
    moved = shutil.copy(second.video, tmp_path / "other" / second.video.name)
    result = evaluate_files(
        [(first.id, first.video, first.video), (second.id, moved, second.video)], ["psnr@full"], progress=False
    )
    assert list(result["models"]) == ["fake"] and result["models"]["fake"]["metrics"]["psnr@full"]["n"] == 2


def test_a_failed_metric_fails_every_key_it_reports():
    records = [
        schema.ClipRecord("a", scored=True, values={"av_ncc@mesh_energy": 0.5, "av_lag@mesh_energy": 1.0}),
        schema.ClipRecord("b", scored=True, errors={"avsync@mesh_energy": "RuntimeError: no face\nTraceback"}),
        schema.ClipRecord("c", scored=True),
    ]  # scored before avsync was added: pending, not failed
    agg = schema.aggregate_model(records, ["avsync@mesh_energy"], 100, 10, timing_keys=())
    for key in ("av_ncc@mesh_energy", "av_lag@mesh_energy"):
        assert agg["metrics"][key]["n"] == 1 and agg["metrics"][key]["failed"] == {"b": "RuntimeError: no face"}


def test_a_set_level_metric_that_cannot_be_pooled_is_null_with_its_reason(
    synth_set, tmp_path, pooled_mean, monkeypatch
):
    config = write_config(tmp_path / "c.yaml", synth_set, ["ground_truth"], ["psnr", "pooled_mean"])
    out = tmp_path / "run"
    main(["run", str(config), "--out", str(out)])  # 2 clips, the metric needs 3
    results = json.loads((out / "results.json").read_text())
    agg = results["models"]["ground_truth"]["metrics"]["pooled_mean@test"]
    assert agg["value"] is None and agg["error"] == "ValueError: needs at least 3 clips, got 2"
    assert agg["n"] == 2 and agg["failed"] == {} and agg["statistic"] == "pooled over clips"
    assert results["failures"]["metric_values"] == [
        {"model": "ground_truth", "clip": None, "metric": "pooled_mean@test", "error": agg["error"]}
    ]
    assert results["models"]["ground_truth"]["metrics"]["psnr@full"]["value"] == 100.0
    report = (out / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| ground_truth"))
    assert row.split("|")[5].strip() == "failed"  # model, fps, ttff_s, psnr, then the pooled metric
    assert "## Failures" in report and "ground_truth (pooled over clips): pooled_mean@test: ValueError" in report

    monkeypatch.setattr(pooled_mean, "min_clips", 2)  # the same features pool once the metric accepts two clips
    assert main(["report", str(out)]) == 0
    agg = json.loads((out / "results.json").read_text())["models"]["ground_truth"]["metrics"]["pooled_mean@test"]
    assert agg["error"] is None and np.isfinite(agg["value"]) and 0 < agg["resamples_ok"] <= 50
    assert "## Failures" not in (out / "report.md").read_text()


def test_eval_of_a_set_level_metric_that_cannot_be_pooled(synth_set, tmp_path, pooled_mean):
    pairs = [(c.id, c.video, c.video) for c in synth_set.clips]
    result = evaluate_files(pairs, ["pooled_mean@test"], progress=False)
    agg = result["models"][synth_set.path.parent.name]["metrics"]["pooled_mean@test"]
    assert agg["value"] is None and "needs at least 3 clips" in agg["error"]
    assert result["failures"]["counts"]["metric_values"] == 1


def test_set_bootstrap_counts_the_resamples_that_gave_a_value():
    succeeded = []

    def statistic(sample):
        if len(set(sample)) < 2:
            raise ValueError("one distinct clip")
        if sample[0] == 2:
            return float("nan")
        succeeded.append(1)
        return float(np.mean(sample))

    ci, ok = stats.bootstrap_set_ci([0, 1, 2], statistic, 300)
    assert 0 < ok < 300 and ok == len(succeeded) and ci[0] <= ci[1]
    assert stats.bootstrap_set_ci([0], statistic, 300) == (None, 0)


def fabricated_run(root):
    """Model 'still': c0 failed to generate, c1 ssim failed, c2 psnr NaN (stored as null),
    c3 fine. Model 'ground_truth': every clip's video undecodable (an old row's 'decode'
    key on c0, the error under every spec elsewhere)."""
    clips = ["c0", "c1", "c2", "c3"]
    config = config_from_dict(
        {
            "name": "fab",
            "data": {"manifest": "x.yaml"},
            "models": ["still", "ground_truth"],
            "metrics": ["psnr", "ssim@full"],
            "bootstrap_resamples": 200,
        },
        "test",
    )
    run = RunDir(root)
    run.save_inputs(
        config, Manifest(name="m", clips=[Clip(id=c, video=root / f"{c}.mkv", sha256="a" * 64) for c in clips])
    )

    def unit(model, clip, **extra):
        write_json(
            run.unit(model, clip),
            {
                "model": model,
                "clip": clip,
                "status": "ok",
                "video": "v.mkv",
                "ttff_s": 0.1,
                "fps": 25.0,
                "total_s": 3.0,
                **extra,
            },
        )

    write_json(
        run.unit("still", "c0"),
        {
            "model": "still",
            "clip": "c0",
            "status": "error",
            "stage": "generate",
            "error": "RuntimeError: out of memory",
        },
    )
    rows = {
        "c1": ({"psnr@full": 20.0}, {"ssim@full": "ValueError: bad frame\nTraceback ..."}),
        "c2": ({"psnr@full": float("nan"), "ssim@full": 0.5}, {}),
        "c3": ({"psnr@full": 30.0, "ssim@full": 0.7}, {}),
    }
    for clip, (values, errors) in rows.items():
        unit("still", clip)
        write_json(run.metrics("still", clip), {"model": "still", "clip": clip, "values": values, "errors": errors})
    for clip in clips:
        unit("ground_truth", clip)
        errors = (
            {"decode": "x.mkv: cannot decode"}
            if clip == "c0"
            else {"psnr@full": "x.mkv: cannot decode", "ssim@full": "x.mkv: cannot decode"}
        )
        write_json(
            run.metrics("ground_truth", clip), {"model": "ground_truth", "clip": clip, "values": {}, "errors": errors}
        )
    return run


def test_failed_and_nan_values_are_counted_and_shown_as_failed(tmp_path):
    run = fabricated_run(tmp_path / "run")
    results = write_report(run)
    assert json.loads((run.root / "results.json").read_text())["failures"] == results["failures"]
    still = results["models"]["still"]
    assert (still["n_clips"], still["n_ok"], still["n_failed"], still["n_failed_values"]) == (4, 3, 1, 2)
    assert still["failed_units"] == {"c0": "RuntimeError: out of memory"}
    psnr, ssim = still["metrics"]["psnr@full"], still["metrics"]["ssim@full"]
    assert psnr["n"] == 2 and psnr["value"] == 25.0  # the NaN is not averaged in, nor counted in n
    assert list(psnr["failed"]) == ["c0", "c2"] and "not a finite number" in psnr["failed"]["c2"]
    assert psnr["failed"]["c0"] == "unit failed (generate): RuntimeError: out of memory"
    assert ssim["n"] == 2 and ssim["failed"]["c1"] == "ValueError: bad frame"
    assert still["timing"]["fps"]["n"] == 3 and list(still["timing"]["fps"]["failed"]) == ["c0"]
    gt = results["models"]["ground_truth"]
    assert gt["metrics"]["psnr@full"]["value"] is None and gt["metrics"]["psnr@full"]["n"] == 0
    assert set(gt["metrics"]["psnr@full"]["failed"].values()) == {"x.mkv: cannot decode"}
    assert gt["n_failed_values"] == 8  # 4 clips x 2 keys, the old 'decode' row included

    failures = results["failures"]
    assert failures["units"] == [
        {"model": "still", "clip": "c0", "stage": "generate", "error": "RuntimeError: out of memory"}
    ]
    assert [(v["model"], v["clip"], v["metric"]) for v in failures["metric_values"]][:2] == [
        ("still", "c2", "psnr@full"),
        ("still", "c1", "ssim@full"),
    ]
    assert failures["counts"] == {"units": 1, "metric_values": 10, "pending_units": 0}

    table = {
        line.split("|")[1].strip().removesuffix(" (reference)"): [c.strip() for c in line.split("|")[2:-1]]
        for line in (run.root / "report.md").read_text().splitlines()
        if line.startswith("| ")
    }
    assert table["still"][2].endswith("[2/4, 2 failed]") and table["still"][2].startswith("25.000")
    assert table["ground_truth"][2:4] == ["failed (4/4)", "failed (4/4)"]
    assert table["still"][4] == "3/4"  # clips ok
    tex = (run.root / "results.tex").read_text()
    assert "[2/4, 2 failed]" in tex and "failed (4/4)" in tex
    page = (run.root / "report.html").read_text()
    assert "[2/4, 2 failed]" in page and "failed (4/4)" in page and "<h2>Failures</h2>" in page
    csv = (run.root / "results.csv").read_text().splitlines()
    header, still_row = csv[0].split(","), dict(zip(csv[0].split(","), csv[1].split(",")))
    assert "psnr@full_failed" in header and still_row["psnr@full_n"] == "2" and still_row["psnr@full_failed"] == "2"
    report = (run.root / "report.md").read_text()
    assert "failed unit: still/c0 (generate): RuntimeError: out of memory" in report
    assert "failed values: ground_truth/c0: psnr@full, ssim@full: x.mkv: cannot decode" in report


def test_pending_clips_are_neither_counted_nor_failed(tmp_path):
    run = fabricated_run(tmp_path / "run")
    run.unit("still", "c3").unlink()  # not generated yet
    results = write_report(run)
    psnr = results["models"]["still"]["metrics"]["psnr@full"]
    assert psnr["n"] == 1 and list(psnr["failed"]) == ["c0", "c2"] and results["models"]["still"]["n_pending"] == 1
    assert results["failures"]["counts"]["pending_units"] == 1


def test_a_cell_says_dash_only_when_nothing_was_computed():
    from lipbench.report import tables

    results = {
        "metrics_info": {"psnr@full": {"higher_is_better": True, "unit": "dB", "description": ""}},
        "models": {
            m: {
                "n_ok": 2,
                "n_clips": 2,
                "timing": {},
                "metrics": {"psnr@full": {"value": None, "ci95": None, "n": 0, "failed": failed, "error": None}},
            }
            for m, failed in (("pending", {}), ("broken", {"c1": "x"}))
        },
    }
    col = tables.Column("psnr@full", "psnr@full", True, "metrics")
    assert tables.no_value(results, "pending", col) == "-"
    assert tables.no_value(results, "broken", col) == "failed (1/2)"
