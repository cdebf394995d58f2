import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lipbench import loudness, metrics
from lipbench.faces import mesh
from lipbench.metrics.avsync import MIN_FACE_PX, MIN_OVERLAP_FRAMES, AVSync, lagged_correlation, sync_score
from lipbench.metrics.base import ClipContext, Video
from lipbench.metrics.image import PSNR_CAP_DB, psnr_per_frame, ssim_per_frame
from lipbench.metrics.landmarks import mouth_lmd
from lipbench.models.oracles import AVShift, Still


@pytest.fixture
def frame_pairs():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (4, 40, 52, 3), dtype=np.uint8)
    noise = rng.normal(0, [3, 10, 25, 60], (40, 52, 3, 4)).transpose(3, 0, 1, 2)
    gen = np.clip(ref + noise, 0, 255).astype(np.uint8)
    return ref, gen


def test_psnr_matches_skimage(frame_pairs):
    ref, gen = frame_pairs
    expected = [peak_signal_noise_ratio(r, g, data_range=255) for r, g in zip(ref, gen)]
    np.testing.assert_allclose(psnr_per_frame(ref, gen), expected, rtol=1e-12)
    assert psnr_per_frame(ref, ref).tolist() == [PSNR_CAP_DB] * 4


def test_ssim_matches_the_reference_scripts_call(frame_pairs):
    """eval_metrics' eval_ssim_lmd.py: BGR frames from OpenCV, BGR2GRAY, skimage defaults."""
    ref, gen = frame_pairs
    expected = []
    for r, g in zip(ref, gen):
        r_bgr, g_bgr = r[..., ::-1].copy(), g[..., ::-1].copy()
        expected.append(
            structural_similarity(cv2.cvtColor(r_bgr, cv2.COLOR_BGR2GRAY), cv2.cvtColor(g_bgr, cv2.COLOR_BGR2GRAY))
        )
    np.testing.assert_allclose(ssim_per_frame(ref, gen), expected, rtol=1e-12)
    values = ssim_per_frame(ref, gen)
    assert np.all(np.diff(values) < 0)  # more noise, lower SSIM


def test_lmd_closed_form_and_reference_formula():
    rng = np.random.default_rng(2)
    ref = rng.normal(0, 10, (3, 20, 2))
    # moving the whole mouth does not count
    np.testing.assert_allclose(mouth_lmd(ref, ref + [5.0, -7.0]), 0, atol=1e-12)
    # moving one of P points by d: after centring, 2|d|(P-1)/P^2
    moved = ref.copy()
    moved[:, 0] += [3.0, 4.0]
    np.testing.assert_allclose(mouth_lmd(ref, moved), 2 * 5.0 * 19 / 20**2)
    # eval_metrics compute_lmd: centre each, sum of norms / P
    gen = ref + rng.normal(0, 2, ref.shape)
    expected = []
    for r, g in zip(ref, gen):
        r = r - r.mean(0, keepdims=True)
        g = g - g.mean(0, keepdims=True)
        expected.append(np.sum(np.linalg.norm(r - g, axis=1)) / r.shape[0])
    np.testing.assert_allclose(mouth_lmd(ref, gen), expected, rtol=1e-12)


def test_lagged_correlation_is_pearson_at_each_lag():
    rng = np.random.default_rng(3)
    a = rng.normal(size=60)
    v = np.roll(a, 4) + 0.1 * rng.normal(size=60)
    r = lagged_correlation(v, a, 6)
    for lag in (-3, 0, 4):
        expected = np.corrcoef(v[max(lag, 0) : 60 + min(lag, 0)], a[max(-lag, 0) : 60 - max(lag, 0)])[0, 1]
        assert r[lag + 6] == pytest.approx(expected, abs=1e-12)
    assert sync_score(v, a, 6)[1] == 4.0


def test_sync_score_raises_instead_of_a_stand_in_number():
    """A mouth that never moves, or too few frames with a face: no number, a reason."""
    a = np.random.default_rng(4).normal(size=60)
    with pytest.raises(ValueError, match="mouth aperture has no variance over the 60 frames with a face"):
        sync_score(np.full(60, 0.3), a, 6)
    few = np.full(60, np.nan)
    few[: MIN_OVERLAP_FRAMES - 1] = np.linspace(0.1, 0.4, MIN_OVERLAP_FRAMES - 1)
    with pytest.raises(ValueError, match=f"only {MIN_OVERLAP_FRAMES - 1} of 60 frames have a face"):
        sync_score(few, a, 6)
    with pytest.raises(ValueError, match="speech loudness has no variance"):
        sync_score(a, np.full(60, -100.0), 6)


@pytest.fixture(scope="module")
def synth_reference(synth_set):
    clip = synth_set.clips[0]
    return clip, Video(clip.frames(), clip.fps, clip.driving_audio(), 16000)


def as_video(frames, reference):
    """A generated video that carries the driving audio, as the runner writes it."""
    return Video(frames, reference.fps, reference.audio, reference.audio_rate)


@pytest.mark.parametrize("shift", [-3, 0, 2, 5])
def test_sync_lag_recovers_injected_shift(synth_reference, shift):
    clip, reference = synth_reference
    shifted = AVShift(shift_frames=shift).generate(clip.request())
    values = AVSync().compute(ClipContext(clip.id, as_video(shifted, reference)))  # no reference needed
    assert values["av_lag@mesh_energy"] == shift
    assert values["av_ncc@mesh_energy"] > 0.8


def downscaled(frames, long_side):
    height, width = frames.shape[1:3]
    size = (round(width * long_side / max(height, width)), round(height * long_side / max(height, width)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def test_sync_refuses_a_face_below_the_measured_size(synth_reference):
    """Issue 11: at 96 px the synthetic face is ~27 px between the outer eye corners, where
    the mesh's lip gap no longer follows the mouth (lags of -10..+10 on correctly synced clips)."""
    clip, reference = synth_reference
    small = downscaled(clip.frames()[:5], 96)
    with pytest.raises(
        ValueError,
        match=rf"synth_000: face is 2\d\.\d px \(median distance between the outer eye "
        rf"corners over the 5 frames with a face\); av_ncc/av_lag need >= "
        rf"{MIN_FACE_PX:g} px: .*benchmarks/perf/avsync_face_size.py",
    ):
        AVSync().compute(ClipContext(clip.id, as_video(small, reference)))


def test_sync_without_a_face_raises(synth_reference):
    clip, reference = synth_reference
    blank = np.full((12, 64, 64, 3), 128, dtype=np.uint8)
    with pytest.raises(ValueError, match="synth_000: the face mesh found no face in any of the 12 frames"):
        AVSync().compute(ClipContext(clip.id, as_video(blank, reference)))


def test_sync_of_the_ground_truth_at_a_reliable_size(synth_reference):
    """160 px: a ~46 px face, above MIN_FACE_PX; the lag is still exactly 0."""
    clip, reference = synth_reference
    values = AVSync().compute(ClipContext(clip.id, as_video(downscaled(clip.frames(), 160), reference)))
    assert values["av_lag@mesh_energy"] == 0.0
    assert values["av_ncc@mesh_energy"] > 0.5


def test_still_face_has_no_sync_and_ground_truth_is_perfect(synth_reference):
    clip, reference = synth_reference
    still = Still().generate(clip.request())
    ctx = ClipContext(clip.id, as_video(still, reference), reference)
    assert AVSync().compute(ctx)["av_ncc@mesh_energy"] < 0.5
    gt = ClipContext(clip.id, as_video(clip.frames(), reference), reference)
    scores = {}
    for name in ("psnr", "ssim@full", "lmd"):
        scores.update(metrics.create(name).compute(gt))
    assert scores == {"psnr@full": PSNR_CAP_DB, "ssim@full": 1.0, "lmd@mediapipe": 0.0}


def test_mesh_aperture_follows_the_synthetic_mouth(synth_reference):
    clip, reference = synth_reference
    aperture = mesh.mouth_aperture(reference.landmarks.astype(float))
    openness = loudness.mouth_openness(reference.audio, 16000, 25.0, len(aperture))
    assert np.corrcoef(aperture, openness)[0, 1] > 0.9


def test_shorter_and_resized_outputs_are_aligned_and_noted(synth_reference):
    clip, reference = synth_reference
    gen = np.stack([cv2.resize(f, (200, 200)) for f in clip.frames()[:-3]])
    ctx = ClipContext(clip.id, as_video(gen, reference), reference)
    assert ctx.n == len(gen) and ctx.generated_frames.shape[1:3] == (256, 256)
    assert ctx.notes["frames_trimmed_from"] == {"reference": 49, "generated": 46}
    assert ctx.notes["generated_resized_from"] == [200, 200]
    assert metrics.create("psnr").compute(ctx)["psnr@full"] > 25


def test_metric_specs_and_errors(synth_reference):
    with pytest.raises(KeyError, match="Did you mean ssim"):
        metrics.create("ssmi")
    with pytest.raises(ValueError, match="has no protocol 'face'; protocols: full"):
        metrics.create("psnr@face")
    assert metrics.create("lmd").protocol == "mediapipe"
    assert list(metrics.outputs(["avsync", "psnr@full"])) == ["av_ncc@mesh_energy", "av_lag@mesh_energy", "psnr@full"]
    clip, reference = synth_reference
    with pytest.raises(ValueError, match="synth_000: .* compares with a reference video, and none was given"):
        metrics.create("psnr").compute(ClipContext(clip.id, as_video(clip.frames(), reference)))


def test_ssim_face224_follows_the_papers_script(hdtf_samples):
    """eval_ssim_lmd.py per frame: generated resized to the real size if needed, each
    frame's first MediaPipe face (fallback 0.2) cut from the BGR frame, INTER_AREA to
    224, BGR2GRAY, skimage SSIM with defaults; frames without a face in either skipped."""
    import mediapipe as mp

    from lipbench import io

    real, _ = io.read_video(hdtf_samples / "real" / "RD_Radio33_000_cfr25.mp4", max_frames=6)
    fake, _ = io.read_video(hdtf_samples / "fake" / "RD_Radio33_000_synced.mp4", max_frames=6)
    detectors = [
        mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=c) for c in (0.5, 0.2)
    ]

    def crop(bgr):
        h, w = bgr.shape[:2]
        for det in detectors:
            found = det.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).detections
            if found:
                b = found[0].location_data.relative_bounding_box
                x0, y0 = max(0, int(b.xmin * w)), max(0, int(b.ymin * h))
                x1, y1 = min(w, x0 + int(b.width * w)), min(h, y0 + int(b.height * h))
                return cv2.resize(bgr[y0:y1, x0:x1], (224, 224), interpolation=cv2.INTER_AREA)
        return None

    expected = []
    for r, f in zip(real, fake):
        cr, cf = crop(r[..., ::-1].copy()), crop(f[..., ::-1].copy())
        if cr is not None and cf is not None:
            expected.append(
                structural_similarity(cv2.cvtColor(cr, cv2.COLOR_BGR2GRAY), cv2.cvtColor(cf, cv2.COLOR_BGR2GRAY))
            )
    ctx = ClipContext("RD_Radio33_000", Video(fake, 25.0), Video(real, 25.0))
    value = metrics.create("ssim@face224").compute(ctx)["ssim@face224"]
    assert len(expected) == 6 and value == pytest.approx(np.mean(expected), abs=1e-5)
    assert metrics.create("ssim").protocol == "face224"  # the paper's is the default


def test_lmd_dlib68_without_dlib_says_how_to_install_it_before_any_clip(hdtf_samples, tmp_path, monkeypatch, capsys):
    import sys

    from lipbench.cli import main
    from lipbench.faces.dlib68 import PREDICTOR_FILE

    monkeypatch.setitem(sys.modules, "dlib", None)  # as on a machine without dlib
    (tmp_path / PREDICTOR_FILE).write_bytes(b"present, never read")
    code = main(
        [
            "eval",
            "--fake",
            str(hdtf_samples / "fake"),
            "--real",
            str(hdtf_samples / "real"),
            "--metrics",
            "lmd@dlib68",
            "--weights-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "x.json"),
        ]
    )
    assert code == 2
    assert "pip install 'lipbench[dlib]'" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_network_metrics_take_their_own_cpu_batch_size():
    """AMT-S and MUSIQ run one image per call on a CPU (faster there at 512 px:
    benchmarks/perf/README.md), the others defaults.metric_batch_size's; a GPU batches all,
    and an explicit batch size wins."""
    from lipbench.defaults import metric_batch_size
    from lipbench.metrics.vbench.motion import MotionSmoothness

    sizes = {name: metrics.create(name).batch_size for name in ("motion_smoothness", "imaging_quality", "csim")}
    assert sizes == {"motion_smoothness": 1, "imaging_quality": 1, "csim": metric_batch_size("cpu")}
    assert metrics.create("motion_smoothness", device="cuda").batch_size == metric_batch_size("cuda")
    assert MotionSmoothness(batch_size=4).batch_size == 4
