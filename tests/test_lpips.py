"""LPIPS against the lpips package used the ordinary way: lpips.LPIPS(net="alex") with
torchvision reading the same (seeded random) AlexNet file from its hub cache."""

import warnings

import cv2
import numpy as np
import pytest
import torch

from lipbench.faces import mesh
from lipbench.metrics.base import ClipContext, Video
from lipbench.metrics.lpips_metric import LPIPS, MOUTH_CROP_SIZE, TRUNK_FILE, build_lpips, lpips_per_frame, mouth_boxes
from lipbench.weights import MissingWeightError

TRUNK_SEED = 20240612


def seeded_alexnet_state(seed: int = TRUNK_SEED) -> dict:
    """torchvision AlexNet keys and shapes; the conv trunk drawn with NumPy's PCG64 (the
    same on every machine), the classifier (unused by LPIPS) zeros."""
    from torchvision.models import alexnet

    rng = np.random.default_rng(seed)
    state = {}
    for key, template in alexnet(weights=None).state_dict().items():
        shape = tuple(template.shape)
        if key.startswith("classifier."):
            values = np.zeros(shape)
        elif key.endswith(".weight"):
            values = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        else:
            values = rng.normal(0.0, 0.05, shape)
        state[key] = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return state


@pytest.fixture(scope="session")
def trunk_dirs(tmp_path_factory):
    """(lipbench weights dir, torch hub dir), both holding the same trunk file."""
    weights = tmp_path_factory.mktemp("lpips_weights")
    hub = tmp_path_factory.mktemp("torch_hub")
    torch.save(seeded_alexnet_state(), weights / TRUNK_FILE)
    (hub / "checkpoints").mkdir()
    (hub / "checkpoints" / TRUNK_FILE).symlink_to(weights / TRUNK_FILE)
    return weights, hub


@pytest.fixture(scope="session")
def package_lpips(trunk_dirs):
    """The reference: the package's default construction; torchvision finds the trunk
    in the hub cache, so nothing is downloaded."""
    import lpips

    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(trunk_dirs[1]))
    try:
        with warnings.catch_warnings():  # torchvision's notes on lpips' use of `pretrained=`
            warnings.simplefilter("ignore", UserWarning)
            return lpips.LPIPS(net="alex", verbose=False).eval()
    finally:
        torch.hub.set_dir(previous)


@pytest.fixture(scope="session")
def metric_factory(trunk_dirs):
    return lambda protocol, **kw: LPIPS(protocol, weights_dir=trunk_dirs[0], **kw)


def _reference_lpips(net, reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    to01 = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    with torch.no_grad():
        return net(to01(reference), to01(generated), normalize=True).flatten().numpy()


def _frames(seed: int, n: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, height // 8, width // 8, 3))
    reference = coarse.repeat(8, 1).repeat(8, 2).astype(np.uint8)
    noise = rng.integers(-120, 121, reference.shape) * np.arange(n)[:, None, None, None] // max(n - 1, 1)
    generated = np.clip(reference.astype(np.int64) + noise, 0, 255).astype(np.uint8)
    return reference, generated


def test_full_matches_lpips_package(metric_factory, package_lpips):
    reference, generated = _frames(0, 5, 72, 96)
    metric = metric_factory("full", batch_size=2)
    expected = _reference_lpips(package_lpips, reference, generated)
    got = lpips_per_frame(metric.net, reference, generated, batch_size=2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[1:], expected[1:], rtol=1e-4)  # random trunks give small values
    assert got[0] == pytest.approx(0.0, abs=1e-6) and (np.diff(got) > 0).all()  # frame 0 has no noise
    value = metric.compute(ClipContext("c", Video(generated, 25.0), Video(reference, 25.0)))["lpips@full"]
    assert abs(value - expected.mean()) <= 1e-5


def test_mouth_box_and_patches(metric_factory, package_lpips):
    """Boxes from given landmarks: one clip scale, per-frame centre, kept inside the
    frame, frames without a face skipped and counted."""
    reference, generated = _frames(1, 4, 120, 160)
    landmarks = np.full((4, mesh.N_LANDMARKS, 2), np.nan, np.float32)
    rng = np.random.default_rng(2)
    lips = np.stack([rng.uniform(0, 40, len(mesh.LIPS)), rng.uniform(0, 16, len(mesh.LIPS))], axis=1)
    lips[0], lips[1] = (0, 0), (40, 16)  # lip box exactly 40 x 16: extent 40, side 60
    landmarks[0, mesh.LIPS] = lips + (50, 60)  # centre (70, 68)
    landmarks[2, mesh.LIPS] = lips + (115, 95)  # centre (135, 103): crosses the right and lower edges
    landmarks[3, mesh.LIPS] = lips * (1.5, 1.0) + (10, 10)  # wider (60): the median side is still 60
    assert mouth_boxes(landmarks, 120, 160).tolist() == [[40, 38, 60], [-1, -1, -1], [100, 60, 60], [10, 0, 60]]

    video = Video(reference, 25.0)
    video.shared("mediapipe_mesh", lambda: landmarks)  # the mesh, as if MediaPipe had run
    ctx = ClipContext("c", Video(generated, 25.0), video)
    value = metric_factory("mouth").compute(ctx)["lpips@mouth"]
    assert ctx.notes["lpips_mouth_frames_without_face"] == 1

    import cv2

    def patch(frame, x, y):
        return cv2.resize(
            frame[y : y + 60, x : x + 60], (MOUTH_CROP_SIZE, MOUTH_CROP_SIZE), interpolation=cv2.INTER_AREA
        )

    boxes = {0: (40, 38), 2: (100, 60), 3: (10, 0)}
    expected = _reference_lpips(
        package_lpips,
        np.stack([patch(reference[t], *b) for t, b in boxes.items()]),
        np.stack([patch(generated[t], *b) for t, b in boxes.items()]),
    )
    assert abs(value - expected.mean()) <= 1e-5


def test_mouth_without_any_face_fails_with_the_reason(metric_factory):
    """Not computable is an error, never a NaN standing in for a value."""
    reference, generated = _frames(3, 2, 64, 64)
    video = Video(reference, 25.0)
    video.shared("mediapipe_mesh", lambda: np.full((2, mesh.N_LANDMARKS, 2), np.nan, np.float32))
    ctx = ClipContext("c", Video(generated, 25.0), video)
    with pytest.raises(ValueError, match="no face mesh in any of the 2 reference frames"):
        metric_factory("mouth").compute(ctx)
    assert ctx.notes["lpips_mouth_frames_without_face"] == 2


def test_mouth_precropped_is_the_fixed_lower_box(metric_factory):
    """mouth_precropped needs no landmarks: the lower-centre square of each frame."""
    reference, generated = _frames(3, 2, 64, 48)  # 64 high, 48 wide: a 24 px square at x 12, y 40
    ctx = ClipContext("c", Video(generated, 25.0), Video(reference, 25.0))
    metric = metric_factory("mouth_precropped")
    h, w = reference.shape[1:3]
    side = min(h, w) // 2
    y0, x0 = h - side, (w - side) // 2

    def patch(f):
        return np.stack([cv2.resize(x[y0:, x0 : x0 + side], (64, 64), interpolation=cv2.INTER_AREA) for x in f])

    expected = _reference_lpips(metric.net, patch(reference), patch(generated)).mean()
    assert metric.compute(ctx)["lpips@mouth_precropped"] == pytest.approx(float(expected), abs=1e-6)


def test_mouth_on_a_real_face(metric_factory):
    """MediaPipe landmarks of a real photo: the patch holds the lips, and a change to
    the mouth alone weighs more in the mouth patch than in the whole frame."""
    import cv2
    from skimage.data import astronaut

    face = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    reference = np.stack([face, face])
    landmarks = mesh.detect_landmarks(reference, video=False)
    assert np.isfinite(landmarks).all(), "MediaPipe found no face in skimage's astronaut"
    (x, y, side), _ = mouth_boxes(landmarks, 256, 256)
    lips = landmarks[0, mesh.LIPS]
    assert (lips >= (x, y)).all() and (lips <= (x + side, y + side)).all()

    generated = reference.copy()
    generated[:, y : y + side, x : x + side] = cv2.GaussianBlur(reference[0, y : y + side, x : x + side], (9, 9), 3)
    video = Video(reference, 25.0)
    video.shared("mediapipe_mesh", lambda: landmarks)
    ctx = ClipContext("c", Video(generated, 25.0), video)
    mouth = metric_factory("mouth").compute(ctx)["lpips@mouth"]
    full = metric_factory("full").compute(ctx)["lpips@full"]
    assert mouth > full > 0


def test_nothing_is_downloaded(trunk_dirs, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    torch.manual_seed(5)
    net = build_lpips(trunk_dirs[0] / TRUNK_FILE)
    after_build = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after_build, torch.rand(3))  # the caller's random stream is untouched
    state = seeded_alexnet_state()
    assert torch.equal(getattr(net.net.slice3, "6").weight, state["features.6.weight"])
    assert not (tmp_path / "empty_torch_home").exists()


@pytest.mark.parametrize("damage", ["missing", "shape"])
def test_wrong_trunk_file_is_named(tmp_path, damage):
    state = seeded_alexnet_state()
    if damage == "missing":
        del state["features.3.weight"]
    else:
        state["features.10.bias"] = torch.zeros(7)
    path = tmp_path / f"bad_{damage}.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("classifier.")}, path)
    with pytest.raises(ValueError, match=rf"bad_{damage}\.pth.*features\.{3 if damage == 'missing' else 10}"):
        build_lpips(path)


def test_declarations_and_missing_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("LIPBENCH_WEIGHTS", raising=False)
    for protocol in ("full", "mouth"):
        metric = LPIPS(protocol, weights_dir=tmp_path)
        assert metric.weight_files() == (TRUNK_FILE,)
        (out,) = metric.outputs
        assert out.key == f"lpips@{protocol}" and out.higher_is_better is False
    assert LPIPS(weights_dir=tmp_path).protocol == "full"
    with pytest.raises(MissingWeightError, match=TRUNK_FILE):
        LPIPS(weights_dir=tmp_path).net
    with pytest.raises(ValueError, match="no protocol"):
        LPIPS("lips")
