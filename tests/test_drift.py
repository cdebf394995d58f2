"""Drift over a stream (lipbench.metrics.drift): window series, slopes, and a model that
degrades on purpose against one that does not."""

import json

import numpy as np
import pytest

from lipbench.cli import main
from lipbench.data.synthetic import SynthRecipe, synthesize
from lipbench.metrics.drift import Drift, window_series, within_slope
from tests.helpers import config_file


def test_windows_are_whole_and_centred():
    t, means = window_series(np.arange(60, dtype=float), fps=25.0)  # two whole windows, 10 frames left out
    np.testing.assert_allclose(t, [0.5, 1.5])
    np.testing.assert_allclose(means, [12.0, 37.0])


def test_within_clip_slope_ignores_offsets_between_clips():
    t = np.arange(6) + 0.5
    # two clips on the same slope (-0.2 per s) but far apart: a pooled fit without
    # per-clip intercepts would be pulled by the offset, the within-clip fit is not
    series = [(t, 30.0 - 0.2 * t), (t[:4], 10.0 - 0.2 * t[:4])]
    assert within_slope(series) == pytest.approx(-0.2)
    metric = Drift()
    features = [{"t": a, "psnr": b, "ssim": b / 100} for a, b in series]
    assert metric.combine(features) == pytest.approx({"psnr_drift@full": -12.0, "ssim_drift@full": -0.12})
    times, mean = Drift.mean_over_clips(features, "psnr")
    np.testing.assert_allclose(times, t)
    np.testing.assert_allclose(mean[:4], 20.0 - 0.2 * t[:4])
    np.testing.assert_allclose(mean[4:], 30.0 - 0.2 * t[4:])  # only the longer clip reaches them
    with pytest.raises(ValueError, match="at least two windows"):
        within_slope([(t[:1], t[:1])])


def test_drifting_model_drifts_and_procedural_does_not(tmp_path, capsys):
    clips = synthesize(tmp_path / "clips", SynthRecipe(clips=4, frames=500, size=64, seed=11), progress=False)
    models = [
        "procedural",
        {"name": "drifting", "model": "tests.helpers:DriftingMouth", "args": {"fade_per_chunk": 0.02}},
    ]
    config = config_file(tmp_path / "drift.json", clips, models, metrics=["drift@full"], set_resamples=400)
    assert main(["run", config, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    for key in ("psnr_drift@full", "ssim_drift@full"):
        drifting = results["models"]["drifting"]["metrics"][key]
        steady = results["models"]["procedural"]["metrics"][key]
        assert drifting["ci95"][1] < 0, (key, drifting)  # quality lost as the stream goes on
        assert steady["ci95"][0] <= 0 <= steady["ci95"][1], (key, steady)
        assert drifting["statistic"] == "pooled over clips" and drifting["n"] == 4
    rows = [json.loads(line) for line in (tmp_path / "run" / "per_clip.jsonl").read_text().splitlines()]
    assert all(r["psnr_drift@full"] < 0 for r in rows if r["model"] == "drifting")
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Over the whole stream" in report  # 20-s streams: whether each keeps its pace
    assert {"procedural", "drifting"} <= {m for m, agg in results["models"].items() if "fps_hold" in agg["stream"]}
    assert "drift_psnr-full.png" in report and (tmp_path / "run" / "drift_psnr-full.png").stat().st_size > 0


def test_a_clip_shorter_than_two_windows_fails_its_drift_by_name(tmp_path, capsys):
    clips = synthesize(tmp_path / "clips", SynthRecipe(clips=1, frames=30, size=64, seed=1), progress=False)
    config = config_file(tmp_path / "c.json", clips, ["ground_truth"], metrics=["drift@full"])
    main(["run", config, "--out", str(tmp_path / "run")])
    capsys.readouterr()
    row = json.loads((tmp_path / "run" / "per_clip.jsonl").read_text().splitlines()[0])
    assert "1.20 s gives 1 whole 1-s window(s); drift needs at least two (drift@full)" in json.dumps(row)


def test_shipped_drift_config_runs(tmp_path, capsys):
    """benchmarks/drift_synthetic.yaml as shipped, its clips shortened (60 s clips are for by-hand runs)."""
    import yaml

    from tests.conftest import REPO

    data = yaml.safe_load((REPO / "benchmarks" / "drift_synthetic.yaml").read_text())
    assert data["data"]["synthetic"]["frames"] == 1500  # a minute at 25 fps
    data["data"]["synthetic"].update(clips=2, frames=60, size=64)
    (tmp_path / "drift.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", str(tmp_path / "drift.yaml"), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["models"]["ground_truth"]["metrics"]["psnr_drift@full"]["value"] == 0.0  # capped PSNR: flat
    assert results["models"]["procedural"]["metrics"]["ssim_drift@full"]["n"] == 2


@pytest.fixture(scope="module")
def stand_in_weights(tmp_path_factory):
    from lipbench.metrics.csim import WEIGHT_FILE
    from lipbench.metrics.lpips_metric import TRUNK_FILE
    from lipbench.random_weights import write_random_weights

    folder = tmp_path_factory.mktemp("drift_weights")
    write_random_weights(folder, seed=0, names=[TRUNK_FILE, WEIGHT_FILE])
    return folder


def test_lpips_drift_is_lpips_at_full_per_window_and_sees_the_drift(tmp_path, capsys, stand_in_weights):
    from lipbench.metrics import create
    from lipbench.metrics.base import Video
    from lipbench.metrics.lpips_metric import lpips_per_frame
    from lipbench.rundir import RunDir

    clips = synthesize(tmp_path / "clips", SynthRecipe(clips=3, frames=125, size=64, seed=5), progress=False)
    models = [
        "ground_truth",
        {"name": "drifting", "model": "tests.helpers:DriftingMouth", "args": {"fade_per_chunk": 0.05}},
    ]
    config = config_file(
        tmp_path / "c.json",
        clips,
        models,
        metrics=["lpips_drift"],
        weights_dir=str(stand_in_weights),
        set_resamples=300,
    )
    assert main(["run", config, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    drifting = results["models"]["drifting"]["metrics"]["lpips_drift@lpips"]
    assert drifting["ci95"][0] > 0  # LPIPS (lower is better) grows as the mouth fades
    assert results["models"]["ground_truth"]["metrics"]["lpips_drift@lpips"]["value"] == 0.0
    # the window series are lpips@full's per-frame values (its own network call), averaged per second
    run, lpips = RunDir(tmp_path / "run"), create("lpips@full", weights_dir=stand_in_weights)
    clip = clips.clips[0]
    generated = Video.from_file(run.video("drifting", clip.id))
    per_frame = lpips_per_frame(lpips.net, clip.frames(), generated.frames)
    windows = run.load_features("drifting", clip.id, "drift@lpips")["lpips"]
    np.testing.assert_allclose(windows, per_frame[:125].reshape(5, 25).mean(axis=1), rtol=1e-6)
    assert (tmp_path / "run" / "drift_lpips-lpips.png").exists()


def test_identity_drift_is_the_cosine_to_the_first_seconds_mean_face(stand_in_weights):
    from lipbench.metrics import create, resolve_specs

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (30, 64, 64, 3), dtype=np.uint8)  # the first second (25) and a few after
    assert resolve_specs(["csim_first_drift", "lpips_drift", "ssim_drift"]) == [
        "drift@identity",
        "drift@lpips",
        "drift@full",
    ]
    drift = create("drift@identity", weights_dir=stand_in_weights)
    assert drift.weight_files() == create("csim").weight_files()
    per_frame = drift.per_frame("csim_first", frames, frames, fps=25.0)
    embeddings = create("csim", weights_dir=stand_in_weights).embeddings(frames).numpy().astype(np.float64)
    anchor = embeddings[:25].mean(axis=0)
    expected = embeddings @ anchor / (np.linalg.norm(embeddings, axis=1) * np.linalg.norm(anchor))
    np.testing.assert_allclose(per_frame, expected, atol=1e-5)


def _sync_result(dists: np.ndarray):
    from lipbench.metrics.syncnet.scores import SyncResult

    mean = dists.mean(axis=0)
    return SyncResult(int(15 - mean.argmin()), float(mean.min()), float(np.median(mean) - mean.min()), mean, dists)


def test_sync_windows_are_syncnet_confidence_over_each_seconds_positions():
    from lipbench.metrics.drift import sync_windows

    rng = np.random.default_rng(7)
    dists = rng.uniform(8.0, 12.0, (60, 31))
    dists[:25, 15] -= 3.0  # first second: a clear minimum at offset 0
    dists[25:50, 10] -= 1.0  # second second: a weaker one elsewhere
    t, conf = sync_windows([((0, 63), _sync_result(dists))])
    np.testing.assert_allclose(t, [0.5, 1.5])  # positions 50-59 make a part window: left out
    for w, rows in enumerate((dists[:25], dists[25:50])):
        mean = rows.mean(axis=0)
        assert conf[w] == pytest.approx(np.median(mean) - mean.min())
    assert conf[0] > conf[1] > 0
    # a track starting at frame 10: its first window is part of second 0, left out
    t, conf = sync_windows([((10, 73), _sync_result(dists))])
    np.testing.assert_allclose(t, [1.5])
    mean = dists[15:40].mean(axis=0)
    assert conf[0] == pytest.approx(np.median(mean) - mean.min())


def test_sync_drift_reads_the_clips_own_syncnet_distances(hdtf_samples, tmp_path_factory):
    """On a real HDTF clip with stand-in weights: drift@sync's windows come from the same
    SyncNet call as sync_c@latentsync (computed once), and one window over all positions
    would be the clip's Sync-C."""
    import cv2

    from lipbench import io
    from lipbench.metrics import create
    from lipbench.metrics.base import ClipContext, Video
    from lipbench.metrics.drift import sync_windows
    from lipbench.random_weights import write_random_weights

    folder = tmp_path_factory.mktemp("sync_weights")
    write_random_weights(folder, seed=0, names=["syncnet_v2.model", "sfd_face.pth"])
    path = hdtf_samples / "real" / "RD_Radio33_000_cfr25.mp4"
    frames, fps = io.read_video(path, max_frames=79)
    frames = np.stack([cv2.resize(f, (160, 160), interpolation=cv2.INTER_AREA) for f in frames])
    video = Video(frames, fps, io.read_audio(path)[: 79 * 640])
    ctx = ClipContext("RD_Radio33_000", video, video)
    drift, syncnet = create("drift@sync", weights_dir=folder), create("syncnet@latentsync", weights_dir=folder)
    features = drift.features(ctx)
    results = syncnet.track_results(video, ctx)
    assert results is drift.inner.track_results(video, ctx)  # shared: SyncNet ran once
    ((first, last), result) = results[0]
    t, conf = sync_windows(results)
    np.testing.assert_allclose(features["t"], t)
    np.testing.assert_allclose(features["sync_c"], conf)
    assert len(t) >= 2 and np.isfinite(drift.compute(ctx)["sync_c_drift@sync"])
    whole = _sync_result(result.dists)  # every position in one window: the clip's own score
    assert whole.conf == pytest.approx(syncnet.compute(ctx)["sync_c@latentsync"], abs=1e-5)
