"""lmd@dlib68 (and ssim@face224, computed in the same loop upstream) against numbers the
paper's authors' script produced on the same frames with the same predictor file
(tests/fixtures/lmd: README.md says how)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lipbench import io, metrics
from lipbench.metrics.base import ClipContext, Video
from lipbench.weights import MissingWeightError
from tests.conftest import require_module

dlib = require_module("dlib", reason="lmd@dlib68 needs dlib (pip install 'lipbench[dlib]')")

from lipbench.faces.dlib68 import PREDICTOR_FILE, Dlib68, train_stand_in  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "lmd"
STAND_IN = FIXTURES / "predictor_stand_in.dat"  # dlib's format, made by train_stand_in(seed=0)


def lmd_cases(samples: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reference, generated) RGB frames of each case, from the shared HDTF pairs."""
    real, _ = io.read_video(samples / "real" / "RD_Radio33_000_cfr25.mp4", max_frames=5)
    fake, _ = io.read_video(samples / "fake" / "RD_Radio33_000_synced.mp4", max_frames=5)
    cases = {"RD_Radio33_000": (real, fake)}
    # another size (upstream resizes it back to the reference's), and a black frame that
    # has no face for MediaPipe (upstream skips the frame for SSIM and LMD)
    real, _ = io.read_video(samples / "real" / "RD_Radio1_000_cfr25.mp4", max_frames=5)
    fake, _ = io.read_video(samples / "fake" / "RD_Radio1_000_synced.mp4", max_frames=5)
    fake = np.stack([cv2.resize(f, (400, 400), interpolation=cv2.INTER_AREA) for f in fake])
    fake[2] = 0
    cases["RD_Radio1_000_resized_black2"] = (real, fake)
    return cases


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dlib")
    (folder / PREDICTOR_FILE).write_bytes(STAND_IN.read_bytes())
    return folder


def test_lmd_and_ssim_match_the_papers_script(hdtf_samples, weights_dir):
    parity = json.loads((FIXTURES / "parity.json").read_text())
    lmd, ssim = metrics.create("lmd@dlib68", weights_dir=weights_dir), metrics.create("ssim@face224")
    for name, (reference, generated) in lmd_cases(hdtf_samples).items():
        expected = parity["cases"][name]
        ctx = ClipContext(name, Video(generated, 25.0), Video(reference, 25.0))
        got = lmd.compute(ctx)["lmd@dlib68"]
        assert got == pytest.approx(expected["mean_lmd"], abs=1e-9), name
        assert ctx.notes["lmd_dlib68_frames"] == expected["lmd_frames"], name
        assert ssim.compute(ctx)["ssim@face224"] == pytest.approx(expected["mean_ssim"], abs=1e-5), name
        assert ctx.notes["ssim_face224_frames_skipped"] == expected["skipped_frames"], name
    assert parity["cases"]["RD_Radio1_000_resized_black2"]["skipped_frames"] == 1  # the case tests the skip


def test_landmarks_are_dlibs_on_the_largest_face(hdtf_samples):
    frame = lmd_cases(hdtf_samples)["RD_Radio33_000"][0][0]
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(STAND_IN))
    rects = detector(gray, 1)
    assert len(rects) >= 1  # the real HOG detector finds the real face
    shape = predictor(gray, max(rects, key=lambda r: r.width() * r.height()))
    expected = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    np.testing.assert_array_equal(Dlib68(STAND_IN).landmarks(frame), expected)
    assert Dlib68(STAND_IN).landmarks(np.zeros((120, 120, 3), np.uint8)) is None


def test_stand_in_is_a_dlib_predictor_of_68_points(tmp_path):
    train_stand_in(tmp_path / PREDICTOR_FILE, seed=1)
    predictor = dlib.shape_predictor(str(tmp_path / PREDICTOR_FILE))
    shape = predictor(np.full((96, 96), 128, np.uint8), dlib.rectangle(16, 16, 80, 80))
    assert shape.num_parts == 68
    (tmp_path / "bad.dat").write_bytes(b"not a predictor")
    with pytest.raises(ValueError, match="bad.dat: cannot be loaded as a dlib shape predictor"):
        Dlib68(tmp_path / "bad.dat")


def test_missing_predictor_is_named_before_any_clip(tmp_path, monkeypatch):
    from lipbench.evaluate import create_metrics

    monkeypatch.delenv("LIPBENCH_WEIGHTS", raising=False)
    monkeypatch.setenv("LIPBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        MissingWeightError,
        match=rf"{PREDICTOR_FILE} \(needed by lmd@dlib68\).*"
        rf"lipbench weights fetch {PREDICTOR_FILE}",
    ):
        create_metrics(["lmd@dlib68"], weights_dir=tmp_path)
    assert metrics.create("lmd").protocol == "mediapipe"  # the default needs no optional package
