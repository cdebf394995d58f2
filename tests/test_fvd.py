"""lipbench's FVD against numbers the upstream code produced on the same inputs
(tests/fixtures/fvd: README.md says how), with the same seeded stand-in I3D."""

import json
from pathlib import Path

import numpy as np
import pytest

from lipbench.metrics.base import Alignment, ClipContext, Video
from lipbench.metrics.fvd import FVD, I3D_WEIGHTS, feature_stats, fvd_latentsync, fvd_stylegan_v
from lipbench.weights import MissingWeightError
from tests.fixtures.fvd.make_fixtures import build_fake_i3d, decode_first, hdtf_pairs, stylegan_v_videos
from tests.test_face_crop import astronaut_frames

FIXTURES = Path(__file__).parent / "fixtures" / "fvd"
PARITY = json.loads((FIXTURES / "fvd_parity.json").read_text())


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("i3d")
    build_fake_i3d(folder / I3D_WEIGHTS, seed=PARITY["latentsync_hdtf5"]["i3d_seed"])
    return folder


def relative(a, b):
    return abs(a - b) / abs(b)


def test_latentsync_matches_the_papers_script_on_hdtf(hdtf_samples, weights_dir):
    expected = PARITY["latentsync_hdtf5"]
    upstream_features = np.load(FIXTURES / "latentsync_hdtf5_features.npz")
    metric = FVD("latentsync", weights_dir=weights_dir)
    features = []
    for name, real, fake in hdtf_pairs(hdtf_samples):
        assert name in expected["clips"]
        ctx = ClipContext(name, Video(decode_first(fake), 25.0), Video(decode_first(real), 25.0))
        features.append(metric.features(ctx))
    for side in ("real", "fake"):
        ours = np.concatenate([f[side] for f in features])
        assert ours.shape == (5, 400) and ours.dtype == np.float32
        # a crop one pixel off, another frame or another range moves these by 1e-2 or more
        np.testing.assert_allclose(ours, upstream_features[side], rtol=0, atol=1e-4, err_msg=side)
    got = metric.combine(features)["fvd@latentsync"]
    assert expected["fvd_eval_metrics"] == expected["fvd_latentsync"]  # the two scripts agree
    assert relative(got, expected["fvd_eval_metrics"]) <= 1e-3, (got, expected["fvd_eval_metrics"])


def test_stylegan_v_matches_upstream_compute_fvd(weights_dir):
    expected = PARITY["stylegan_v_synthetic"]
    real, fake = stylegan_v_videos(expected["seed"])
    assert real.shape == (expected["videos"], expected["frames"], expected["size"], expected["size"], 3)
    metric = FVD("stylegan_v", weights_dir=weights_dir)
    features = [
        metric.features(ClipContext(f"v{i}", Video(fake[i], 25.0), Video(real[i], 25.0))) for i in range(len(real))
    ]
    got = metric.combine(features)["fvd@stylegan_v"]
    assert relative(got, expected["fvd"]) <= 1e-3, (got, expected["fvd"])
    # the other protocol's statistics on the same features give another number
    pooled = {k: np.concatenate([f[k] for f in features]) for k in ("real", "fake")}
    assert relative(fvd_latentsync(pooled["real"], pooled["fake"]), expected["fvd"]) > 1e-2


def test_statistics_are_the_references():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    mean, cov = feature_stats(x)
    np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False, bias=True), atol=1e-12)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=0), atol=1e-12)
    y = x + rng.normal(size=x.shape).astype(np.float32)
    assert fvd_stylegan_v(x, x) == pytest.approx(0, abs=1e-9)
    assert fvd_latentsync(x, y) > 0 and fvd_stylegan_v(x, y) > 0


def test_latentsync_fails_a_clip_with_a_face_missing_in_frames_20_to_35(weights_dir):
    frames = astronaut_frames(36, seed=5, size=128)
    fake = frames.copy()
    fake[27] = 0
    with pytest.raises(ValueError, match=r"frame\(s\) \[27\] of the generated video"):
        FVD("latentsync", weights_dir=weights_dir).features(ClipContext("c", Video(fake, 25.0), Video(frames, 25.0)))
    short = ClipContext("c", Video(frames[:30], 25.0), Video(frames[:30], 25.0))
    with pytest.raises(ValueError, match=r"30 frames.*\[20:36\]"):
        FVD("latentsync", weights_dir=weights_dir).features(short)
    short = ClipContext("c", Video(frames[:12], 25.0), Video(frames[:12], 25.0))
    with pytest.raises(ValueError, match="needs 16"):
        FVD("stylegan_v", weights_dir=weights_dir).features(short)


def test_set_needs_two_clips_and_weights(tmp_path, monkeypatch, weights_dir):
    monkeypatch.delenv("LIPBENCH_WEIGHTS", raising=False)
    with pytest.raises(ValueError, match="at least 2 clips"):
        FVD("latentsync").combine([{"real": np.zeros((1, 400)), "fake": np.zeros((1, 400))}])
    frames = astronaut_frames(16, seed=6, size=64)
    with pytest.raises(MissingWeightError, match=I3D_WEIGHTS):
        FVD("stylegan_v", weights_dir=tmp_path).features(ClipContext("c", Video(frames, 25.0), Video(frames, 25.0)))
    assert FVD.protocols[0] == "latentsync" and FVD().weight_files() == (I3D_WEIGHTS,)


@pytest.mark.parametrize("protocol", ["latentsync", "stylegan_v"])
def test_few_clips_take_the_exact_low_rank_distance_of_the_references_formula(protocol):
    # 12 clips against 400 dims (every real split has fewer clips than dims): the
    # references' sqrtm formula on their own statistics, against what lipbench returns.
    from lipbench.metrics.fvd import frechet

    rng = np.random.default_rng(4)
    real = rng.normal(size=(12, 400)).astype(np.float32)
    fake = (real * 0.8 + rng.normal(size=real.shape) + 0.2).astype(np.float32)
    if protocol == "latentsync":
        formula = frechet(real.mean(axis=0), np.cov(real, rowvar=False), fake.mean(axis=0), np.cov(fake, rowvar=False))
        got = fvd_latentsync(real, fake)
    else:
        formula = frechet(*feature_stats(fake), *feature_stats(real))
        got = fvd_stylegan_v(real, fake)
    # the formula's scipy sqrtm of a singular product is itself off: by 2.4e-7 to 2.7e-7
    # relative here across OpenBLAS kernels (OPENBLAS_CORETYPE Prescott, Haswell, AVX-512 default),
    # so 1e-6 left under 4x to another LAPACK; 1e-5 is still far below a formula mistake
    # (covariance with ddof 0 instead of 1 over these 12 clips moves it by 7 %)
    assert got == pytest.approx(formula, rel=1e-5)
    # more clips than dims: the formula as written, bit for bit
    many_real = rng.normal(size=(450, 400)).astype(np.float32)
    many_fake = (many_real + rng.normal(size=many_real.shape)).astype(np.float32)
    if protocol == "latentsync":
        assert fvd_latentsync(many_real, many_fake) == frechet(
            many_real.mean(axis=0),
            np.cov(many_real, rowvar=False),
            many_fake.mean(axis=0),
            np.cov(many_fake, rowvar=False),
        )
    else:
        assert fvd_stylegan_v(many_real, many_fake) == frechet(*feature_stats(many_fake), *feature_stats(many_real))


def test_reference_features_are_computed_once_per_clip(weights_dir):
    frames = astronaut_frames(16, seed=7, size=64)
    reference = Video(frames, 25.0)  # one decoded reference, compared with two models' videos
    metric = FVD("stylegan_v", weights_dir=weights_dir)
    first = metric.features(ClipContext("c", Video(frames[::-1].copy(), 25.0), reference))
    second = metric.features(ClipContext("c", Video(frames, 25.0), reference))
    assert first["real"] is second["real"] and not np.array_equal(first["fake"], second["fake"])
    with pytest.raises(ValueError, match="12 frames compared.*needs 16"):  # fewer frames compared: not the cache
        metric.features(ClipContext("c", Video(frames[:12], 25.0), reference, Alignment(min_coverage=0.5)))
