"""lipbench's FID against pytorch-fid 0.3.0 run its own way on the same frames.

On the shared HDTF samples the reference is the paper's script itself, run once with
the same seeded weights (tests/fixtures/fid: README.md says how). Elsewhere the
reference side follows the paper's script (jinhyukj/eval_metrics
eval/eval_fid_videos.py): frames as lossless PNGs read with cv2, FaceCropper crops
written back as PNGs (frames without a face deleted), then pytorch-fid's
`calculate_fid_given_paths([real dir, fake dir])`, whose only change here is that the
weight download returns a local file. The weights are seeded random values with the
real file's key names and shapes (taken from pytorch-fid's own network).

Most checks use dims=64 (pytorch-fid's block 0, as `--dims 64`): the same code path,
and a Frechet distance over 64x64 matrices instead of 2048x2048 (scipy's sqrtm of the
singular 2048-d product takes tens of seconds). The 2048-d network is checked on its
features and statistics.
"""

import json
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
from pytorch_fid import fid_score
from pytorch_fid import inception as fid_inception

from lipbench.metrics.base import ClipContext, Video
from lipbench.metrics.fid import FID, FID_WEIGHTS, activations, build_inception, statistics
from lipbench.weights import MissingWeightError
from tests.fixtures.fid.make_fixtures import random_fid_state_dict
from tests.fixtures.fvd.make_fixtures import decode_first, hdtf_pairs
from tests.test_face_crop import astronaut_frames, upstream_crops

# pytorch-fid 0.3.0 passes sqrtm's `disp`, deprecated in SciPy 1.16-1.17 (lipbench hides it the same way)
pytestmark = pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")

PARITY = json.loads((Path(__file__).parent / "fixtures" / "fid" / "fid_parity.json").read_text())
SEED = PARITY["weights_seed"]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fid_weights")
    torch.save(random_fid_state_dict(SEED), folder / FID_WEIGHTS)
    return folder


@pytest.fixture(scope="module")
def local_download(weights_dir):
    """pytorch-fid's weight download, answered from the seeded file."""
    with mock.patch.object(
        fid_inception,
        "load_state_dict_from_url",
        lambda *a, **k: torch.load(weights_dir / FID_WEIGHTS, weights_only=True),
    ):
        yield


def write_pngs_like_eval_fid_videos(frames_rgb: np.ndarray, folder: Path) -> int:
    """The script's frame handling: every frame a PNG; each replaced by its face crop,
    or deleted when there is none. Returns the number of frames kept."""
    folder.mkdir(parents=True, exist_ok=True)
    kept = 0
    for i, (crop_bgr, _) in enumerate(upstream_crops(frames_rgb)):
        if crop_bgr is not None:
            assert cv2.imwrite(str(folder / f"{i + 1:06d}.png"), crop_bgr)
            kept += 1
    return kept


@pytest.fixture(scope="module")
def clips():
    """Two clips: real = a moving real face; generated = blurred and noisier, with one
    frame without a face (black) that both sides must drop."""
    out = []
    for k in range(2):
        real = astronaut_frames(8, seed=10 + k)
        rng = np.random.default_rng(20 + k)
        fake = np.stack([cv2.GaussianBlur(f, (5, 5), 1.5) for f in real]).astype(np.float64)
        fake = np.clip(fake + rng.normal(0, 8, fake.shape), 0, 255).astype(np.uint8)
        fake[3] = 0
        out.append((f"clip{k}", real, fake))
    return out


def contexts(clips):
    return [ClipContext(name, Video(fake, 25.0), Video(real, 25.0)) for name, real, fake in clips]


def relative(a, b):
    return abs(a - b) / abs(b)


def test_network_is_pytorch_fids_with_local_weights(weights_dir, local_download):
    ours = build_inception(weights_dir / FID_WEIGHTS, 2048)
    theirs = fid_inception.InceptionV3([3]).eval()
    assert ours.resize_input and ours.normalize_input
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [type(m) for m in ours.modules()] == [type(m) for m in theirs.modules()]


def test_pool3_features_match_pytorch_fid_on_png_files(weights_dir, local_download, clips, tmp_path):
    # batch sizes differ on purpose: the result must not depend on them
    _, real, _ = clips[0]
    crops = [c for c, _ in upstream_crops(real[:3])]
    for i, crop in enumerate(crops):
        cv2.imwrite(str(tmp_path / f"{i:06d}.png"), crop)
    files = sorted(tmp_path.glob("*.png"))
    theirs = fid_score.get_activations(files, fid_inception.InceptionV3([3]), batch_size=64, dims=2048)
    rgb = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops])
    ours = activations(build_inception(weights_dir / FID_WEIGHTS, 2048), rgb, batch_size=2)
    assert ours.shape == (3, 2048) and theirs.shape == (3, 2048)
    assert np.abs(theirs).max() > 1e-3  # the random network does not collapse to zeros
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())
    mu_ours, sigma_ours = statistics(ours)
    mu_theirs, sigma_theirs = np.mean(theirs, axis=0), np.cov(theirs, rowvar=False)
    assert mu_ours.dtype == np.float64 and sigma_ours.shape == (2048, 2048)
    np.testing.assert_allclose(mu_ours, mu_theirs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sigma_ours, sigma_theirs, rtol=1e-3, atol=1e-6 * np.abs(sigma_theirs).max())


@pytest.fixture(scope="module")
def reference_values(local_download, clips, tmp_path_factory):
    """pytorch-fid's values on the script's PNG folders: per clip, and pooled over clips."""
    root = tmp_path_factory.mktemp("fid_pngs")
    per_clip, kept = {}, {}
    for name, real, fake in clips:
        kept[name] = (
            write_pngs_like_eval_fid_videos(real, root / name / "inputs"),
            write_pngs_like_eval_fid_videos(fake, root / name / "previews"),
        )
        per_clip[name] = fid_score.calculate_fid_given_paths(
            [str(root / name / "inputs"), str(root / name / "previews")], batch_size=64, device="cpu", dims=64
        )
    model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[64]])
    stats = [
        fid_score.calculate_activation_statistics(sorted(root.glob(f"*/{side}/*.png")), model, dims=64)
        for side in ("inputs", "previews")
    ]
    pooled = fid_score.calculate_frechet_distance(*stats[0], *stats[1])
    return {"per_clip": per_clip, "pooled": pooled, "kept": kept}


@pytest.fixture(scope="module")
def clip_contexts(clips):
    """Shared by the two protocols, as in a run: one Inception pass per video."""
    return contexts(clips)


def test_per_video_fid_matches_the_papers_script(weights_dir, clips, clip_contexts, reference_values):
    metric = FID("per_video", weights_dir=weights_dir, dims=64)
    features = []
    for ctx, (name, real, fake) in zip(clip_contexts, clips):
        assert reference_values["kept"][name] == (8, 7)  # the black frame is deleted upstream
        expected = reference_values["per_clip"][name]
        got = metric.compute(ctx)["fid@per_video"]
        assert expected > 0 and relative(got, expected) <= 1e-3, (name, got, expected)
        assert ctx.notes["fid_face_crops"]["generated"] == {"frames": 8, "missed": 1, "fallback": 0}
        features.append(metric.features(ctx))
    expected_mean = np.mean(list(reference_values["per_clip"].values()))
    assert relative(metric.combine(features)["fid@per_video"], expected_mean) <= 1e-3


def test_pooled_fid_matches_pytorch_fid_over_all_frames(weights_dir, clip_contexts, reference_values):
    metric = FID("pooled", weights_dir=weights_dir, dims=64)
    features = [metric.features(ctx) for ctx in clip_contexts]
    assert metric.compute(clip_contexts[0]) == {}
    assert [len(f["real"]) for f in features] == [8, 8] and [len(f["fake"]) for f in features] == [7, 7]
    got = metric.combine(features)["fid@pooled"]
    assert relative(got, reference_values["pooled"]) <= 1e-3, (got, reference_values["pooled"])


def test_per_video_fid_matches_eval_fid_videos_run_on_hdtf(hdtf_samples, weights_dir):
    expected = PARITY["first24"]
    assert PARITY["dims"] == 64
    metric = FID("per_video", weights_dir=weights_dir, dims=64, batch_size=24)
    features, names = [], ["RD_Radio33_000", "RD_Radio34_001", "RD_Radio50_000"]  # 376, 514, 776 px: time
    for name, real, fake in [pair for pair in hdtf_pairs(hdtf_samples) if pair[0] in names]:
        ctx = ClipContext(name, Video(decode_first(fake, 24), 25.0), Video(decode_first(real, 24), 25.0))
        got = metric.compute(ctx)["fid@per_video"]
        reference = expected["per_video"][name]
        assert relative(got, reference["fid"]) <= 1e-3, (name, got, reference["fid"])
        counts = ctx.notes["fid_face_crops"]
        found = {
            side: counts[key]["frames"] - counts[key]["missed"]
            for side, key in (("real", "reference"), ("fake", "generated"))
        }
        assert found == reference["frames_with_face"]
        features.append(metric.features(ctx))
    expected_mean = np.mean([expected["per_video"][name]["fid"] for name in names])
    assert relative(metric.combine(features)["fid@per_video"], expected_mean) <= 1e-3


def test_clip_without_any_face_is_an_error_naming_the_side(weights_dir, clips):
    name, real, fake = clips[0]
    ctx = ClipContext(name, Video(np.zeros_like(fake), 25.0), Video(real, 25.0))
    with pytest.raises(ValueError, match="no face found .* generated video"):
        FID("per_video", weights_dir=weights_dir, dims=64).compute(ctx)


def test_missing_weights_name_the_file(tmp_path, monkeypatch, clips):
    monkeypatch.delenv("LIPBENCH_WEIGHTS", raising=False)
    name, real, fake = clips[0]
    with pytest.raises(MissingWeightError, match=FID_WEIGHTS):
        FID(weights_dir=tmp_path).compute(ClipContext(name, Video(fake, 25.0), Video(real, 25.0)))


def test_protocols_and_options():
    assert FID.protocols[0] == "per_video" and FID().weight_files() == (FID_WEIGHTS,)
    with pytest.raises(ValueError, match="dims"):
        FID(dims=100)


def test_low_rank_distance_equals_pytorch_fid_with_fewer_samples_than_dims():
    """Per-video FID has fewer frames than feature dimensions: lipbench takes the exact
    low-rank identity there instead of scipy's sqrtm; it must agree with pytorch-fid."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    from lipbench.metrics.fid import frechet_distance, statistics
    from lipbench.metrics.frechet import frechet_distance_low_rank

    rng = np.random.default_rng(3)
    real = np.abs(rng.normal(size=(40, 256))) * rng.uniform(0.1, 1, 256)
    fake = real[:33] + 0.3 * np.abs(rng.normal(size=(33, 256)))
    expected = calculate_frechet_distance(*statistics(real), *statistics(fake))
    # scipy's sqrtm of the singular product is off by 1.06e-7 to 1.24e-7 relative here
    # across OpenBLAS kernels (OPENBLAS_CORETYPE Prescott, Sandybridge, Haswell, AVX-512 default)
    assert frechet_distance_low_rank(real, fake) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(real, fake) == frechet_distance_low_rank(real, fake)
    many = np.abs(rng.normal(size=(300, 16)))  # more samples than dims: pytorch-fid itself
    assert frechet_distance(many, many[::-1] + 0.1) == pytest.approx(
        calculate_frechet_distance(*statistics(many), *statistics(many[::-1] + 0.1)), rel=1e-12
    )
