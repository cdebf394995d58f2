"""SyncNet Sync-C / Sync-D / AV offset against the upstream code's numbers on the same
frames, audio and seeded weights (tests/fixtures/syncnet/parity.json, made by
make_fixtures.py there; see its README)."""

import json
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lipbench import io
from lipbench.metrics.base import ClipContext, Video
from lipbench.metrics.syncnet import metric as syncnet_metric, network, s3fd, scores
from tests.fixtures.syncnet.make_fixtures import S3FD_SEED, SYNCNET_SEED

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "syncnet" / "parity.json").read_text())
TOL = 1e-4  # required agreement on sync_c, sync_d (the offset must be equal)


@pytest.fixture(scope="module")
def clip(synth_set):
    """Clip 0 of SynthRecipe(frames=49, seed=7), the fixture's input: (path, RGB frames, int16 audio)."""
    path = synth_set.clips[0].video
    frames, _ = io.read_video(path)
    assert int(frames.astype(np.int64).sum()) == FIXTURE["inputs"]["frames_sum"], (
        "the synthetic clip changed since the fixture was made: rerun make_fixtures.py"
    )
    audio = io.int16_values(io.read_audio(path))
    assert len(audio) == FIXTURE["inputs"]["audio_samples"]
    return path, frames, audio


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """Both weight files in the published format: torch.save of an OrderedDict."""
    folder = tmp_path_factory.mktemp("weights")
    torch.save(OrderedDict(network.random_state_dict(SYNCNET_SEED)), folder / network.SYNCNET_WEIGHTS)
    torch.save(OrderedDict(s3fd.random_state_dict(S3FD_SEED)), folder / syncnet_metric.S3FD_WEIGHTS)
    return folder


@pytest.fixture(scope="module")
def net(weights_dir):
    return network.load_syncnet(weights_dir / network.SYNCNET_WEIGHTS)


def assert_matches(result, expected):
    assert result.av_offset == expected["av_offset"]
    assert abs(result.min_dist - expected["min_dist"]) <= TOL
    assert abs(result.conf - expected["conf"]) <= TOL


def test_state_dict_is_upstreams():
    mine = {k: list(v.shape) for k, v in network.SyncNet().state_dict().items()}
    assert mine == FIXTURE["syncnet_python_evaluate"]["state_dict_shapes"]
    params = sum(v.numel() for k, v in network.SyncNet().named_parameters())
    assert params == 13_631_616  # "13.6M"


def test_weight_file_checks(weights_dir, tmp_path):
    state = network.random_state_dict(SYNCNET_SEED)
    # files saved before PyTorch 0.4.1 have no num_batches_tracked: still accepted
    torch.save(
        OrderedDict((k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")), tmp_path / "old.model"
    )
    old = network.load_syncnet(tmp_path / "old.model")
    assert torch.equal(old.state_dict()["netfclip.3.weight"], state["netfclip.3.weight"])
    missing = OrderedDict((k, v) for k, v in state.items() if k != "netcnnlip.0.weight")
    torch.save(missing, tmp_path / "missing.model")
    with pytest.raises(ValueError, match=r"missing\.model.*netcnnlip\.0\.weight"):
        network.load_syncnet(tmp_path / "missing.model")
    torch.save(OrderedDict(state, extra=torch.zeros(1)), tmp_path / "extra.model")
    with pytest.raises(ValueError, match=r"extra\.model.*unexpected keys: \['extra'\]"):
        network.load_syncnet(tmp_path / "extra.model")
    torch.save(OrderedDict(state, **{"netfcaud.0.weight": torch.zeros(512, 100)}), tmp_path / "shape.model")
    with pytest.raises(ValueError, match=r"shape\.model.*does not fit"):
        network.load_syncnet(tmp_path / "shape.model")
    torch.save([1, 2], tmp_path / "list.model")
    with pytest.raises(ValueError, match=r"list\.model.*expected a state_dict"):
        network.load_syncnet(tmp_path / "list.model")


def test_scores_match_syncnet_python(net, clip):
    """SyncNetInstance.evaluate on the same 224x224 BGR frames and int16 audio."""
    _, frames, audio = clip
    bgr224 = np.stack([cv2.resize(f, (224, 224)) for f in frames[..., ::-1]])
    expected = FIXTURE["syncnet_python_evaluate"]
    result = scores.sync_scores(net, bgr224, audio, batch_size=16)
    # av_offset is an argmin over 31 offsets, compared exactly: that is the same on every
    # machine only while the runner-up is more than 2 * TOL behind (here by 0.055)
    best, runner_up = np.sort(expected["mean_dists"])[:2]
    assert runner_up - best > 2 * TOL
    assert_matches(result, expected)
    np.testing.assert_allclose(result.mean_dists, expected["mean_dists"], atol=TOL, rtol=0)
    np.testing.assert_allclose(result.dists, np.array(expected["dists"]), atol=TOL, rtol=0)


def test_precropped_metric_matches_latentsync_evaluate(weights_dir, clip):
    """The metric end to end on the file; LatentSync's and the paper's SyncNetEval
    (which resize each 256 frame to 224 themselves) gave these numbers."""
    path, _, _ = clip
    metric = syncnet_metric.SyncNetMetric("precropped", weights_dir=weights_dir)
    values = metric.compute(ClipContext("synth_000", Video.from_file(path)))
    for name in ("latentsync_evaluate", "eval_metrics_evaluate"):
        expected = FIXTURE[name]
        assert values["av_offset@precropped"] == expected["av_offset"]
        assert abs(values["sync_d@precropped"] - expected["min_dist"]) <= TOL
        assert abs(values["sync_c@precropped"] - expected["conf"]) <= TOL
    assert metric.weight_files() == (network.SYNCNET_WEIGHTS,)


def test_latentsync_metric_matches_upstream_pipeline(weights_dir, clip, monkeypatch):
    """Tracks, crops, the track's audio and the scores, against upstream track_face +
    crop_video + the paper's SyncNetEval. Random S3FD weights find no faces, so the
    fixture's boxes stand in for the detections, and min_track is lowered to fit the
    49-frame clip (the only two changes)."""
    path, _, _ = clip
    boxes = [np.array(d, dtype=np.float64).reshape(-1, 5) for d in FIXTURE["crops"]["detections"]]
    monkeypatch.setattr(syncnet_metric.SyncNetMetric, "detections", lambda self, video: boxes)
    monkeypatch.setitem(syncnet_metric.MIN_TRACK, "latentsync", FIXTURE["inputs"]["crop_min_track"])
    metric = syncnet_metric.SyncNetMetric("latentsync", weights_dir=weights_dir)
    ctx = ClipContext("synth_000", Video.from_file(path))
    values = metric.compute(ctx)
    expected = FIXTURE["crops"]["score"]
    assert values["av_offset@latentsync"] == expected["av_offset"]
    assert abs(values["sync_d@latentsync"] - expected["min_dist"]) <= TOL
    assert abs(values["sync_c@latentsync"] - expected["conf"]) <= TOL
    assert ctx.notes["syncnet_tracks@latentsync"] == [[0, 48]]
    # the crops are left for other metrics in the video's shared analyses
    assert any(key.startswith("syncnet_face_crops:latentsync") for key in ctx.generated._shared)


def test_no_face_track_is_an_error_naming_the_clip(weights_dir, clip):
    """Random S3FD weights find no face at the pipelines' confidence 0.9."""
    _, frames, audio = clip
    metric = syncnet_metric.SyncNetMetric("latentsync", weights_dir=weights_dir)
    assert metric.weight_files() == (network.SYNCNET_WEIGHTS, syncnet_metric.S3FD_WEIGHTS)
    video = Video(frames[:12], 25.0, audio[: 12 * 640] / 32768.0)
    with pytest.raises(ValueError, match="synth_000: no face track"):
        metric.compute(ClipContext("synth_000", video))


def test_missing_audio_and_short_clips_are_errors(net, weights_dir, clip):
    _, frames, audio = clip
    metric = syncnet_metric.SyncNetMetric("precropped", weights_dir=weights_dir)
    with pytest.raises(io.MediaError, match="no audio"):
        metric.compute(ClipContext("silent", Video(frames[:8], 25.0)))
    bgr = np.zeros((5, 224, 224, 3), np.uint8)
    with pytest.raises(ValueError, match="short clip: too short"):
        scores.sync_scores(net, bgr, audio[: 5 * 640], what="short clip")


def test_vectorised_distances_follow_upstream_loop_and_offset_sign():
    """calc_pdist's loop, written out, against the vectorised version; audio features
    that match video 3 frames later give AV offset +3 (video lags audio)."""
    rng = np.random.default_rng(0)
    video = torch.from_numpy(rng.normal(size=(40, 16)).astype(np.float32))
    audio = torch.roll(video, 3, dims=0) + 0.01 * torch.from_numpy(rng.normal(size=(40, 16)).astype(np.float32))
    vshift = 15
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    loop = torch.stack(
        [
            torch.nn.functional.pairwise_distance(video[[i]].repeat(2 * vshift + 1, 1), padded[i : i + 2 * vshift + 1])
            for i in range(40)
        ]
    )
    fast = scores.shifted_distances(video, audio, vshift)
    torch.testing.assert_close(fast, loop, atol=1e-6, rtol=0)
    mean = fast.T.contiguous().mean(1)
    assert vshift - int(torch.argmin(mean)) == -3
    audio_leads = torch.roll(video, -3, dims=0)  # audio feature j matches video j + 3
    mean = scores.shifted_distances(video, audio_leads, vshift).T.contiguous().mean(1)
    assert vshift - int(torch.argmin(mean)) == 3


def test_batching_does_not_change_scores(net, clip):
    _, frames, audio = clip
    bgr = np.stack([cv2.resize(f, (224, 224)) for f in frames[:10, ..., ::-1]])
    one = scores.sync_scores(net, bgr, audio[: 10 * 640], batch_size=1)
    many = scores.sync_scores(net, bgr, audio[: 10 * 640], batch_size=4)
    np.testing.assert_allclose(one.dists, many.dists, atol=1e-5, rtol=0)


def test_int16_values_and_fps_resampling():
    samples = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    np.testing.assert_array_equal(io.int16_values(samples.astype(np.float32) / 32768.0), samples)
    frames = np.arange(30)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    at25 = syncnet_metric.resample_to_25fps(frames.astype(np.uint8), 30.0)  # 1 s of 30 fps -> 25 frames
    assert len(at25) == 25 and at25[0, 0, 0, 0] == 0 and at25[-1, 0, 0, 0] == 29
    assert syncnet_metric.resample_to_25fps(frames, 25.0) is frames
