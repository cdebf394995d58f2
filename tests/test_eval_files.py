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
    real, fake = tmp_path / "real", tmp_path / "fake"
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
        ("synth_001", "synth_001_synced.mkv", "synth_001_cfr25.mkv")]
    assert clip_id(fake / "A_B_take2.mp4", r"^(?P<id>.+)_take\d$") == "A_B"


def test_eval_cli_scores_pairs_and_lists_failures(fake_and_real, tmp_path, capsys):
    fake, real = fake_and_real
    out = tmp_path / "eval.json"
    code = main(["eval", "--fake", str(fake), "--real", str(real), "--metrics", "psnr,ssim@full,av_ncc",
                 "--out", str(out)])
    assert code == 1  # the orphan has nothing to compare with
    result = json.loads(out.read_text())
    assert result["n_clips"] == 3 and list(result["failed"]) == ["orphan"]
    assert "no real video with clip id 'orphan'" in result["failed"]["orphan"]
    clips = result["clips"]
    assert clips["synth_000"]["psnr@full"] == 100.0  # identical frames (2 fewer, aligned)
    assert clips["synth_001"]["av_ncc@mesh_energy"] < clips["synth_000"]["av_ncc@mesh_energy"]
    agg = result["aggregate"]["psnr@full"]
    assert agg["n"] == 2 and agg["value"] == pytest.approx(np.mean([c["psnr@full"] for c in clips.values()]))
    assert agg["ci95"][0] <= agg["value"] <= agg["ci95"][1]
    assert result["metrics"] == ["psnr@full", "ssim@full", "avsync@mesh_energy"]
    assert "psnr@full" in capsys.readouterr().out


def test_sync_only_needs_the_fake_video(fake_and_real, tmp_path):
    fake, _ = fake_and_real
    out = tmp_path / "gt.json"
    assert main(["eval", "--fake", str(fake), "--metrics", "avsync", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["aggregate"]["av_ncc@mesh_energy"]["n"] == 3


def test_metric_names_keys_and_suites_resolve():
    assert metrics.resolve_specs(["av_lag", "psnr", "avsync@mesh_energy", "weight_free"]) == [
        "avsync@mesh_energy", "psnr@full", "ssim@full", "lmd@mediapipe"]
    with pytest.raises(ValueError, match="psnr has no protocol 'face224'"):
        metrics.resolve_specs(["psnr@face224"])
    with pytest.raises(KeyError, match="unknown metric 'sharpness'"):
        metrics.resolve_specs(["sharpness"])
