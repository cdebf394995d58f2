"""benchmarks/beyond_synthetic.yaml: everything beyond Table 1's reconstruction scores
in one CPU run (drift, stream hold, noref, VBench's network dimensions), run as shipped
with its clips shortened and seeded stand-in weights in the real formats."""

import json

import numpy as np
import yaml

from lipbench import metrics
from lipbench.cli import main
from lipbench.random_weights import write_random_weights
from tests.conftest import REPO

CONFIG = REPO / "benchmarks" / "beyond_synthetic.yaml"
WEIGHT_FILES = [
    "alexnet-owt-7be5be79.pth",  # drift@lpips
    "ms1mv3_arcface_r100_fp16.pth",  # drift@identity
    "dino_vitbase16_pretrain.pth",
    "ViT-B-32.pt",
    "musiq_spaq_ckpt-358bb6af.pth",
    "amt-s.pth",
]


def test_the_config_names_every_protocol_beyond_table_1():
    data = yaml.safe_load(CONFIG.read_text())
    specs = metrics.resolve_specs(data["metrics"])
    vbench = ["subject_consistency", "background_consistency", "motion_smoothness", "imaging_quality"]
    # drift@sync is left to drift_hdtf.yaml: S3FD needs real faces (the comment says so)
    wanted = ["drift@full", "drift@lpips", "drift@identity", "noref@mediapipe"] + metrics.resolve_specs(vbench)
    assert specs == wanted
    assert "drift@sync" in metrics.resolve_specs(
        yaml.safe_load((REPO / "benchmarks" / "drift_hdtf.yaml").read_text())["metrics"]
    )
    needed = {name for spec in specs for name in metrics.create(spec).weight_files()}
    assert needed == set(WEIGHT_FILES)
    for name in WEIGHT_FILES[2:]:  # the header's fetch line names each file it needs (ArcFace: manual)
        assert name in CONFIG.read_text()


def test_the_shipped_config_runs_end_to_end(tmp_path, capsys):
    weights = tmp_path / "weights"
    write_random_weights(weights, seed=0, names=WEIGHT_FILES)
    data = yaml.safe_load(CONFIG.read_text())
    assert data["data"]["synthetic"] == {"clips": 2, "frames": 500, "size": 128}  # 20 s clips for by-hand runs
    data["data"]["synthetic"].update(clips=1, frames=52)  # two whole 1-s windows
    data.update(models=["procedural"], warmup_clips=0, weights_dir=str(weights))
    (tmp_path / "beyond.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", str(tmp_path / "beyond.yaml"), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    model = results["models"]["procedural"]
    expected = metrics.outputs(metrics.resolve_specs(data["metrics"]))
    assert set(model["metrics"]) == set(expected)
    for key, agg in model["metrics"].items():
        assert agg["n"] == 1 and np.isfinite(agg["value"]), (key, agg)
    assert "fps_hold" in model["stream"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Over the whole stream" in report and "drift_ssim-full.png" in report
