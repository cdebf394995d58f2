import json
import shutil

import numpy as np
import pytest

from lipbench import io, metrics
from lipbench.cli import main
from lipbench.evaluate import clip_id, pair_files


@pytest.fixture
def fake_and_real(synth_set, tmp_path):
    """Real clips named like HDTF's (_cfr25), fakes like generated ones (_synced): the
    fake of synth_001 is a frozen face, and an extra fake has no real counterpart."""
    real, fake = tmp_path / "real", tmp_path / "generated"
    real.mkdir(), fake.mkdir()
    for clip in synth_set.clips:
        shutil.copy(clip.video, real / f"{clip.id}_cfr25.mkv")
        frames = clip.frames() if clip.id == "synth_000" else np.repeat(clip.frames()[:1], len(clip.frames()), 0)
        io.write_video(fake / f"{clip.id}_synced.mkv", frames[:-2], 25.0, clip.driving_audio(), 16000)
    shutil.copy(fake / "synth_000_synced.mkv", fake / "orphan_synced.mkv")
    return fake, real


def test_pairing_strips_role_suffixes(fake_and_real):
    fake, real = fake_and_real
    pairs = pair_files([fake], real)
    assert [(cid, f.name, r.name if r else None) for cid, f, r in pairs] == [
        ("orphan", "orphan_synced.mkv", None),
        ("synth_000", "synth_000_synced.mkv", "synth_000_cfr25.mkv"),
        ("synth_001", "synth_001_synced.mkv", "synth_001_cfr25.mkv"),
    ]
    assert clip_id(fake / "A_B_take2.mp4", r"^(?P<id>.+)_take\d$") == "A_B"


def test_eval_cli_scores_pairs_and_lists_failures(fake_and_real, tmp_path, capsys):
    fake, real = fake_and_real
    out = tmp_path / "eval.json"
    code = main(
        ["eval", "--fake", str(fake), "--real", str(real), "--metrics", "psnr,ssim@full,av_ncc", "--out", str(out)]
    )
    assert code == 1  # the orphan has nothing to compare with
    result = json.loads(out.read_text())
    assert result["lipbench_results"] == 2 and result["kind"] == "eval"
    assert list(result["models"]) == ["generated"]  # named after the folder of the fake videos
    model = result["models"]["generated"]
    assert model["n_clips"] == 3 and model["n_failed_values"] == 2
    reason = "no real video with clip id 'orphan'"
    # psnr and ssim need the real video and fail for the orphan; the sync metric still scores it
    assert [(v["clip"], v["metric"]) for v in result["failures"]["metric_values"]] == [
        ("orphan", "psnr@full"),
        ("orphan", "ssim@full"),
    ]
    assert all(reason in v["error"] for v in result["failures"]["metric_values"])
    assert result["failures"]["counts"] == {"units": 0, "metric_values": 2, "pending_units": 0}
    clips = model["clips"]
    assert clips["synth_000"]["psnr@full"] == 100.0  # identical frames (2 fewer, aligned)
    assert clips["synth_001"]["av_ncc@mesh_energy"] < clips["synth_000"]["av_ncc@mesh_energy"]
    agg = model["metrics"]["psnr@full"]
    assert agg["n"] == 2 and agg["value"] == pytest.approx(
        np.mean([clips[c]["psnr@full"] for c in ("synth_000", "synth_001")])
    )
    assert agg["ci95"][0] <= agg["value"] <= agg["ci95"][1]
    assert list(agg["failed"]) == ["orphan"] and reason in agg["failed"]["orphan"]
    assert model["metrics"]["av_ncc@mesh_energy"]["n"] == 3
    assert result["metrics"] == ["psnr@full", "ssim@full", "avsync@mesh_energy"]
    printed = capsys.readouterr()
    table = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in printed.out.splitlines()
        if line.startswith("| ")
    }
    assert table["psnr@full"][2:] == ["2/3", "1"] and table["av_ncc@mesh_energy"][2:] == ["3/3", "0"]
    assert (
        f"failed values: generated/orphan: psnr@full, ssim@full: {fake / 'orphan_synced.mkv'}: {reason}" in printed.err
    )
    assert "failures: 0 units, 2 metric values" in printed.err


def test_eval_name_and_all_failed_values(fake_and_real, tmp_path, capsys):
    """--name names the scored set; a video that cannot be decoded fails every metric
    value of its clip, listed at the end, and the exit code is 1."""
    fake, real = fake_and_real
    (fake / "orphan_synced.mkv").unlink()
    (fake / "synth_001_synced.mkv").write_bytes(b"not a video")
    out = tmp_path / "eval.json"
    assert (
        main(["eval", "--fake", str(fake), "--real", str(real), "--metrics", "psnr", "--name", "v2", "--out", str(out)])
        == 1
    )
    result = json.loads(out.read_text())
    agg = result["models"]["v2"]["metrics"]["psnr@full"]
    assert (
        agg["n"] == 1 and list(agg["failed"]) == ["synth_001"] and "synth_001_synced.mkv" in agg["failed"]["synth_001"]
    )
    assert agg["ci95"] is None and agg["resamples_ok"] == 0  # one clip: no interval
    assert "failed values: v2/synth_001: psnr@full:" in capsys.readouterr().err


def test_sync_only_needs_the_fake_video(fake_and_real, tmp_path):
    fake, _ = fake_and_real
    out = tmp_path / "gt.json"
    assert main(["eval", "--fake", str(fake), "--metrics", "avsync", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["models"]["generated"]["metrics"]["av_ncc@mesh_energy"]["n"] == 3
    assert result["failures"]["counts"]["metric_values"] == 0


def test_metric_names_keys_and_suites_resolve():
    assert metrics.resolve_specs(["av_lag", "psnr", "avsync@mesh_energy", "weight_free"]) == [
        "avsync@mesh_energy",
        "psnr@full",
        "ssim@full",
        "lmd@mediapipe",
    ]
    with pytest.raises(ValueError, match="psnr has no protocol 'face224'"):
        metrics.resolve_specs(["psnr@face224"])
    with pytest.raises(KeyError, match="unknown metric 'sharpness'"):
        metrics.resolve_specs(["sharpness"])
