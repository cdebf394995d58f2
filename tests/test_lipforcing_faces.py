"""lipbench.models.lipforcing.faces against upstream's numbers (tests/fixtures/lipforcing_faces).

Image comparisons allow 1 uint8 level: both sides sample bilinearly in float32 and
truncate to uint8 (upstream: kornia; here: torch grid_sample with the same grid), so
values that land within float noise of an integer may truncate either way.
"""

import cv2
import numpy as np
import pytest

from lipbench.models.lipforcing import faces as F
from tests.conftest import require_module, require_shared
from tests.helpers import fixture_maker

FIXTURES, mf = fixture_maker("lipforcing_faces")


@pytest.fixture(scope="module")
def upstream():
    return dict(np.load(FIXTURES / "parity.npz"))


class Scripted(F.FaceProtocol):
    """A protocol whose points come from a list (None: no face on that frame)."""

    name = "scripted"

    def __init__(self, points, resolution=mf.RESOLUTION):
        self.script = list(points)
        super().__init__(resolution)

    def points(self, frame):
        return self.script.pop(0)

    def mask(self):
        return mf.composite_mask()


def assert_images_close(ours, theirs, levels=1, fraction=0.01):
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert ours.shape == theirs.shape
    assert diff.max() <= levels, diff.max()
    assert (diff > 0).mean() < fraction, (diff > 0).mean()


def assert_half_close(ours, theirs):
    """Matrices rounded to float16 on both sides: equal, or one float16 step apart."""
    step = np.abs(theirs.astype(np.float16).astype(np.float32)) * 2.0**-10 + 1e-6
    assert np.all(np.abs(ours - theirs) <= step)


def test_crop_size_and_template_follow_upstream_arithmetic():
    assert F.crop_size(512) == (420, 560)
    assert F.crop_size(256) == (210, 280)
    np.testing.assert_allclose(F.template_points(512), [[95.2, 112.0], [324.8, 112.0], [210.0, 224.0]])


def test_align_and_ema_match_upstream(upstream):
    frames = mf.seeded_frames(mf.ALIGN_FRAMES, *mf.FRAME_HW)
    protocol = Scripted(mf.seeded_points(mf.ALIGN_FRAMES))
    units = [protocol.align(frame) for frame in frames]
    assert tuple(upstream["align_crop_shape"][:2]) == protocol.crop_size[::-1]
    assert all(unit.box == (0, 0) + protocol.crop_size for unit in units)
    assert_half_close(np.stack([u.affine for u in units]), upstream["align_matrices"])
    np.testing.assert_allclose(protocol._bias, upstream["align_p_bias"], atol=1e-5)
    assert_images_close(np.stack([u.face for u in units]), upstream["align_faces"])


@pytest.mark.parametrize("mouth_only", [True, False])
def test_composite_matches_upstream(upstream, mouth_only):
    frames = mf.seeded_frames(mf.ALIGN_FRAMES, *mf.FRAME_HW)
    protocol = Scripted(mf.seeded_points(mf.ALIGN_FRAMES))
    units = [protocol.align(frame) for frame in frames]
    n = mf.COMPOSITE_FRAMES
    out = protocol.composite(mf.seeded_generated(n), frames[:n], units[:n], mouth_only=mouth_only)
    assert out.dtype == np.uint8
    assert_images_close(out, upstream["composite_mouth" if mouth_only else "composite_full"], fraction=0.001)


def tiny_latentsync(upstream, tmp_path):
    mask = tmp_path / "mask.png"
    cv2.imwrite(str(mask), (mf.composite_mask() * 255).astype(np.uint8))
    mean, std = upstream["landmark_input_mean_std"]  # the tiny model normalises outside its graph
    return F.LatentSyncFaces(
        mf.RESOLUTION,
        detector=FIXTURES / "tiny_det.onnx",
        landmarker=FIXTURES / "tiny_2d106.onnx",
        mask=mask,
        landmark_mean=float(mean),
        landmark_std=float(std),
    )


@pytest.mark.parametrize("k", range(len(mf.DETECT_FRAME_HW)))
def test_scrfd_and_landmarks_match_insightface(upstream, tmp_path, k):
    require_module("onnxruntime", "onnxruntime runs the detector")
    protocol = tiny_latentsync(upstream, tmp_path)
    frames = mf.seeded_frames(mf.DETECT_FRAMES, *mf.DETECT_FRAME_HW[k], seed=100 + 10 * k)
    boxes, scores, kps = protocol.detector.detect(frames[0])
    theirs = upstream[f"det{k}_boxes"]
    assert len(boxes) == len(theirs) > 1  # several faces: NMS and the choice are exercised
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(boxes, theirs, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(scores, upstream[f"det{k}_scores"], rtol=1e-5)
    np.testing.assert_allclose(kps, upstream[f"det{k}_kps"], rtol=0, atol=1e-5 * np.abs(upstream[f"det{k}_kps"]).max())
    landmarks = np.stack([protocol.landmarker.landmarks(frames[0], box) for box in boxes])
    theirs = upstream[f"det{k}_landmarks"]
    np.testing.assert_allclose(landmarks, theirs, rtol=0, atol=1e-5 * np.abs(theirs).max())


@pytest.mark.parametrize("k", range(len(mf.DETECT_FRAME_HW)))
def test_latentsync_chain_matches_upstream(upstream, tmp_path, k):
    """Detection -> choice of face -> 106 landmarks -> 3 points -> EMA -> aligned face."""
    require_module("onnxruntime", "onnxruntime runs the detector")
    protocol = tiny_latentsync(upstream, tmp_path)
    frames = mf.seeded_frames(mf.DETECT_FRAMES, *mf.DETECT_FRAME_HW[k], seed=100 + 10 * k)
    units = [protocol.align(frame) for frame in frames]
    assert [i for i, u in enumerate(units) if u.affine is None] == list(upstream[f"det{k}_failed"])
    assert_half_close(np.stack([u.affine for u in units]), upstream[f"det{k}_matrices"])
    assert_images_close(np.stack([u.face for u in units]), upstream[f"det{k}_faces"])


def test_failed_frames_reuse_the_face_and_pass_through():
    frames = mf.seeded_frames(4, *mf.FRAME_HW)
    points = list(mf.seeded_points(4))
    protocol = Scripted([points[0], None, points[2], points[3]])
    units = [protocol.align(frame) for frame in frames]
    assert units[1].affine is None and units[1].box is None
    assert units[1].face is units[0].face
    # a failed frame leaves the EMA alone: frame 2 aligns as if frame 1 never came
    clean = Scripted([points[0], points[2]])
    expected = [clean.align(frame) for frame in (frames[0], frames[2])][1]
    np.testing.assert_array_equal(units[2].affine, expected.affine)
    out = protocol.composite(mf.seeded_generated(4), frames, units)
    np.testing.assert_array_equal(out[1], frames[1])
    assert not np.array_equal(out[0], frames[0])


def test_no_face_on_the_first_frame_is_an_error_naming_it():
    frames = mf.seeded_frames(3, *mf.FRAME_HW)
    protocol = Scripted([None])
    with pytest.raises(F.NoFaceError, match="frame 0"):
        protocol.align(frames[0])
    protocol = Scripted([mf.seeded_points(1)[0], None, None])
    protocol.align(frames[0])
    protocol.reset()  # a new clip: nothing to fall back on again
    with pytest.raises(F.NoFaceError, match="frame 0"):
        protocol.align(frames[1])


def test_apply_mask_and_faces_to_tensor():
    import torch

    protocol = Scripted(mf.seeded_points(2))
    units = [protocol.align(frame) for frame in mf.seeded_frames(2, *mf.FRAME_HW)]
    pixels = F.faces_to_tensor(units)
    assert pixels.shape == (1, 3, 2, mf.RESOLUTION, mf.RESOLUTION) and pixels.dtype == torch.float32
    np.testing.assert_allclose(pixels[0, :, 0].permute(1, 2, 0).numpy(), units[0].face / 255.0 * 2 - 1, atol=1e-6)
    masked = protocol.apply_mask(pixels)
    mouth = protocol.mask() == 0
    assert mouth.any() and (~mouth).any()
    assert torch.all(masked[..., torch.from_numpy(mouth)] == 0)
    assert torch.equal(masked[..., torch.from_numpy(~mouth)], pixels[..., torch.from_numpy(~mouth)])
    np.testing.assert_array_equal(protocol.apply_mask(pixels.numpy()), masked.numpy())


def test_procedural_mask_is_binary_with_the_mouth_region():
    mask = F.procedural_mouth_mask(512)
    assert mask.shape == (512, 512) and mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0}
    assert mask[:180].all() and mask[300, 50] == 0 and mask[300, 256] == 0 and mask[210, 256] == 1
    assert 0.39 < (mask == 0).mean() < 0.42  # mask.png masks 40.7 %


def test_latentsync_mask_from_png(tmp_path):
    """Upstream's two readings of mask.png: > 0.5 after a bilinear resize (the encode
    mask) and a Lanczos resize of the uint8 image / 255 (the mouth-only blend)."""
    require_module("onnxruntime", "the protocol loads the detector")
    png = np.full((256, 256), 255, np.uint8)
    png[100:190, 50:190] = 0  # edges off the 16i + 8 sample boundaries
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), png)
    protocol = F.LatentSyncFaces(
        128, detector=FIXTURES / "tiny_det.onnx", landmarker=FIXTURES / "tiny_2d106.onnx", mask=path
    )
    expected = cv2.resize(png.astype(np.float32) / 255, (128, 128), interpolation=cv2.INTER_LINEAR) > 0.5
    np.testing.assert_array_equal(protocol.mask(), expected.astype(np.float32))
    soft = protocol.composite_mask()
    assert soft.min() >= 0 and soft.max() <= 1 and 0 < ((soft > 0) & (soft < 1)).mean() < 0.05
    latent = protocol.latent_mask(16)  # 256 -> 16: every 16th pixel pair, as torch's bilinear samples
    np.testing.assert_array_equal(latent, (png[7::16, 7::16] > 127).astype(np.float32))


def test_missing_weights_say_where_to_get_them(monkeypatch, tmp_path):
    from lipbench.weights import MissingWeightError

    monkeypatch.delenv("LIPBENCH_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightError, match="det_10g.onnx.*buffalo_l.zip.*mediapipe"):
        F.face_protocol("latentsync", weights_dir=tmp_path)
    with pytest.raises(MissingWeightError, match="nowhere.onnx is not a file"):
        F.face_protocol("latentsync", detector=tmp_path / "nowhere.onnx")
    with pytest.raises(KeyError, match="known: latentsync, mediapipe"):
        F.face_protocol("dlib")


def test_mediapipe_aligns_a_real_hdtf_frame():
    samples = require_shared()
    require_module("mediapipe", "the mediapipe protocol runs MediaPipe face mesh")
    from lipbench.faces.mesh import detect_landmarks

    capture = cv2.VideoCapture(str(samples / "real" / "RD_Radio1_000_cfr25.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    protocol = F.face_protocol("mediapipe", video=False)  # 512, as the paper
    try:
        unit = protocol.align(frame)
        # the face lands on the template: brows and nose found again in the aligned face
        found = detect_landmarks(unit.face[None], video=False)[0]
        points = np.stack(
            [found[F.MESH_LEFT_BROW].mean(0), found[F.MESH_RIGHT_BROW].mean(0), found[F.MESH_NOSE].mean(0)]
        )
        width, height = protocol.crop_size
        template = protocol.template * [512 / width, 512 / height]
        brow_distance = template[1, 0] - template[0, 0]
        assert np.abs(points - template).max() < 0.08 * brow_distance
        # compositing the aligned face itself gives the frame back
        generated = unit.face.transpose(2, 0, 1)[None] / 255.0
        out = protocol.composite(generated, frame[None], [unit], mouth_only=False)[0]
        inverse = cv2.invertAffineTransform(unit.affine.astype(np.float64))
        covered = F.affine_warp(np.ones((height, width, 1), np.float32), inverse, frame.shape[1::-1], 0.0)[..., 0]
        # outside the crop (and the few pixels its blurred edge reaches) the frame is untouched
        outside = cv2.dilate((covered > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
        assert outside.mean() > 0.3
        np.testing.assert_array_equal(out[outside], frame[outside])
        inner = cv2.erode((covered > 0.999).astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)
        assert inner.mean() > 0.1
        error = np.abs(out.astype(int) - frame.astype(int))[inner]
        assert error.mean() < 4 and np.percentile(error, 99) < 25, (error.mean(), np.percentile(error, 99))
    finally:
        protocol.close()


def test_registry_loaders_refuse_other_files(tmp_path):
    """read_onnx / read_mask are lipbench.weights' loaders for the three files."""
    require_module("onnxruntime", "read_onnx opens an onnxruntime session")
    from lipbench.weights import BadWeightError

    junk = tmp_path / "junk"
    junk.write_bytes(b"<html>not a model</html>")
    with pytest.raises(BadWeightError):
        F.read_onnx(junk)
    with pytest.raises(BadWeightError):
        F.read_mask(junk)
    with pytest.raises(BadWeightError, match="not SCRFD's 9"):
        F.ScrfdDetector(FIXTURES / "tiny_2d106.onnx")
    assert F.read_onnx(FIXTURES / "tiny_det.onnx").get_inputs()[0].name == "input.1"
