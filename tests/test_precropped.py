"""`--crop none`: inputs that are already face crops are scored as crops, no detector runs.

The frames are smooth random images in which MediaPipe finds no face, so a value can only
come from taking the frames as the crops. Each precropped value is checked against the
functions the protocol is built from, called directly on the frames (those functions
are themselves checked against pytorch-fid, LatentSync's FVD and skimage in test_fid,
test_fvd and test_metrics).
"""

import functools
import json

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from lipbench import io, metrics
from lipbench.cli import main
from lipbench.faces import face_crop
from lipbench.metrics.fid import FID, FID_WEIGHTS, activations, build_inception, frechet_distance
from lipbench.metrics.fvd import I3D_WEIGHTS, fvd_latentsync
from lipbench.random_weights import write_random_weights

N_CLIPS, N_FRAMES, SIZE = 3, 36, 224  # fvd@latentsync reads frames 20-35 and pools over >= 2 clips


def stripes(rng, n: int) -> np.ndarray:
    """(n, 224, 224, 3) uint8 tinted vertical sine stripes of random frequency: no face
    for MediaPipe (random noise blocks sometimes have one at its fallback confidence 0.2)."""
    x = np.arange(SIZE, dtype=np.float64)
    out = []
    for _ in range(n):
        row = 127 + 120 * np.sin(x * rng.uniform(0.02, 0.2) + rng.uniform(0, 6))
        out.append(np.broadcast_to(row[None, :, None] * rng.uniform(0.3, 1, 3), (SIZE, SIZE, 3)))
    return np.stack(out).astype(np.uint8)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """(fake folder, real folder, weights folder, {clip: (real frames, fake frames)})."""
    root = tmp_path_factory.mktemp("precropped")
    fake_dir, real_dir = root / "fake", root / "real"
    fake_dir.mkdir()
    real_dir.mkdir()
    rng = np.random.default_rng(11)
    frames = {}
    for i in range(N_CLIPS):
        real = stripes(rng, N_FRAMES)
        fake = np.roll(real, int(rng.integers(2, 9)), axis=2)  # stripes shifted: a different, face-free video
        io.write_video(real_dir / f"c{i}.mkv", real, 25.0)
        io.write_video(fake_dir / f"c{i}.mkv", fake, 25.0)
        frames[f"c{i}"] = (real, fake)
    write_random_weights(root / "weights", seed=3, names=[FID_WEIGHTS, I3D_WEIGHTS])
    return fake_dir, real_dir, root / "weights", frames


SPECS = "fid@per_video,fid@pooled,ssim@face224,fvd@latentsync"


def test_crop_none_scores_the_frames_as_crops_without_a_detector(crops, tmp_path, monkeypatch):
    fake_dir, real_dir, weights, frames = crops
    assert not any(face_crop.detect_face_crops(f).found.any() for pair in frames.values() for f in pair)
    # The crop path is what is tested: the FID network's first block (64 features) keeps
    # the test fast; the protocols' code is the same at any depth.
    monkeypatch.setattr(FID, "__init__", functools.partialmethod(FID.__init__, dims=64))

    def no_detector(*args, **kwargs):
        raise AssertionError("--crop none ran the face detector")

    monkeypatch.setattr(face_crop, "detect_face_crops", no_detector)
    out = tmp_path / "scores.json"
    code = main(
        [
            "eval",
            "--fake",
            str(fake_dir),
            "--real",
            str(real_dir),
            "--crop",
            "none",
            "--metrics",
            SPECS,
            "--weights-dir",
            str(weights),
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    assert code == 0, result["failures"]
    assert result["metrics"] == [
        "fid@per_video_precropped",
        "fid@pooled_precropped",
        "ssim@face224_precropped",
        "fvd@latentsync_precropped",
    ]
    scored = result["models"]["fake"]
    clips = sorted(frames)

    inception = build_inception(weights / FID_WEIGHTS, dims=64)
    acts = {c: (activations(inception, frames[c][0]), activations(inception, frames[c][1])) for c in clips}
    per_video = {c: frechet_distance(*acts[c]) for c in clips}
    for c in clips:
        assert scored["clips"][c]["fid@per_video_precropped"] == pytest.approx(per_video[c], rel=1e-6)
    assert scored["metrics"]["fid@per_video_precropped"]["value"] == pytest.approx(
        np.mean(list(per_video.values())), rel=1e-6
    )
    pooled = frechet_distance(np.concatenate([acts[c][0] for c in clips]), np.concatenate([acts[c][1] for c in clips]))
    assert scored["metrics"]["fid@pooled_precropped"]["value"] == pytest.approx(pooled, rel=1e-6)

    gray = lambda f: cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)  # noqa: E731
    for c in clips:
        ssim = np.mean([structural_similarity(gray(r), gray(g)) for r, g in zip(*frames[c])])
        assert scored["clips"][c]["ssim@face224_precropped"] == pytest.approx(ssim, abs=1e-12)

    i3d = torch.jit.load(str(weights / I3D_WEIGHTS))

    def features(video):  # eval_fvd.py: frames [20:36] / 255, (B, C, T, H, W), no rescale or resize
        clip = torch.from_numpy(video[20:36]).float().div(255).permute(3, 0, 1, 2).unsqueeze(0)
        return i3d(clip, rescale=False, resize=False, return_features=True).detach().numpy()

    real = np.concatenate([features(frames[c][0]) for c in clips])
    fake = np.concatenate([features(frames[c][1]) for c in clips])
    assert scored["metrics"]["fvd@latentsync_precropped"]["value"] == pytest.approx(
        fvd_latentsync(real, fake), rel=1e-5
    )


def test_without_crop_none_the_same_inputs_have_no_face(crops, tmp_path):
    """The detector path on the same crops fails, naming why: the values above can only
    come from taking the frames as the crops."""
    fake_dir, real_dir, weights, _ = crops
    out = tmp_path / "auto.json"
    code = main(
        ["eval", "--fake", str(fake_dir), "--real", str(real_dir), "--metrics", "ssim@face224", "--out", str(out)]
    )
    failed = json.loads(out.read_text())["models"]["fake"]["metrics"]["ssim@face224"]["failed"]
    assert code == 1 and len(failed) == N_CLIPS and all("no frame with a face" in r for r in failed.values()), failed


def test_crop_none_maps_every_face_crop_protocol_and_keeps_the_others():
    specs = [
        "fid@per_video",
        "fid@pooled",
        "ssim@face224",
        "ssim@full",
        "fvd@latentsync",
        "fvd@stylegan_v",
        "lpips@mouth",
        "lpips@full",
        "syncnet@latentsync",
        "syncnet@syncnet_python",
        "psnr",
        "lmd",
    ]
    assert metrics.resolve_specs(specs, "none") == [
        "fid@per_video_precropped",
        "fid@pooled_precropped",
        "ssim@face224_precropped",
        "ssim@full",
        "fvd@latentsync_precropped",
        "fvd@stylegan_v",
        "lpips@mouth_precropped",
        "lpips@full",
        "syncnet@precropped",
        "psnr@full",
        "lmd@mediapipe",
    ]
    assert metrics.resolve_specs(specs, "auto")[0] == "fid@per_video"
    assert metrics.resolve_specs(["lipforcing"], "none") == [
        "syncnet@precropped",
        "csim@arcface112",
        "fid@per_video_precropped",
        "fvd@latentsync_precropped",
        "ssim@face224_precropped",
    ]


def test_crop_none_with_a_run_directory_is_refused(tmp_path):
    """A run directory's crop comes from its config: the flag must not be silently ignored."""
    assert main(["eval", str(tmp_path), "--crop", "none"]) == 2
