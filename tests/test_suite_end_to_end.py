"""The paper's metric suite end to end on a shared HDTF pair, with seeded random weights
in the real file formats (`lipbench weights random`): every loader, detector, network
and protocol path runs; the values themselves mean nothing."""

import json

import cv2
import numpy as np
import pytest

from lipbench import io
from lipbench.cli import main
from lipbench.random_weights import write_random_weights

SUITE_METRICS = ["syncnet@latentsync", "fvd@latentsync", "ssim@face224"]
SUITE_FILES = [
    "syncnet_v2.model",
    "sfd_face.pth",
    "pt_inception-2015-12-05-6726825d.pth",
    "i3d_torchscript.pt",
    "ms1mv3_arcface_r100_fp16.pth",
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    write_random_weights(folder, seed=0, names=SUITE_FILES)
    return folder


@pytest.fixture(scope="module")
def pair(hdtf_samples, tmp_path_factory):
    """56 frames of two real/generated pairs at 160x160 (SyncNet's LatentSync protocol
    needs a face track longer than 50 frames; FVD's window is frames 20-35 and its
    covariance needs two clips)."""
    root = tmp_path_factory.mktemp("pair")
    (root / "real").mkdir(), (root / "fake").mkdir()
    for name in ("RD_Radio33_000", "RD_Radio34_001"):
        for kind, suffix in (("real", "_cfr25"), ("fake", "_synced")):
            path = hdtf_samples / kind / f"{name}{suffix}.mp4"
            frames, fps = io.read_video(path, max_frames=56)
            small = np.stack([cv2.resize(f, (160, 160), interpolation=cv2.INTER_AREA) for f in frames])
            io.write_video(root / kind / f"{name}{suffix}.mkv", small, fps, io.read_audio(path)[: 56 * 640], 16000)
    return root


def test_lipforcing_suite_runs_end_to_end(pair, weights, tmp_path, capsys):
    """The suite less CSIM and FID: ArcFace r100 and Inception on these 224 frames would
    take a minute and a half of the test suite's time; they go through `eval` below, on
    8 frames (SyncNet's protocol needs the 56 frames here, FVD two clips)."""
    from lipbench.metrics import SUITES

    assert SUITES["lipforcing"] == [SUITE_METRICS[0], "csim@arcface112", "fid@per_video", *SUITE_METRICS[1:]]
    out = tmp_path / "scores.json"
    code = main(
        [
            "eval",
            "--fake",
            str(pair / "fake"),
            "--real",
            str(pair / "real"),
            "--metrics",
            ",".join(SUITE_METRICS),
            "--weights-dir",
            str(weights),
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    assert code == 0, result["failures"]
    (model,) = result["models"].values()
    assert model["n_clips"] == 2
    clip = model["clips"]["RD_Radio33_000"]
    for key in ("sync_c@latentsync", "sync_d@latentsync", "av_offset@latentsync", "ssim@face224"):
        assert key in clip and np.isfinite(clip[key]), key
    assert np.isfinite(model["metrics"]["fvd@latentsync"]["value"])
    assert set(result["weights"]) == {"syncnet_v2.model", "sfd_face.pth", "i3d_torchscript.pt"}
    assert all(len(h) == 64 for h in result["weights"].values())
    assert "sync_c@latentsync" in capsys.readouterr().out


def test_a_missing_weight_file_names_itself_the_metric_and_the_fix(pair, weights, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in SUITE_FILES:
        if name != "pt_inception-2015-12-05-6726825d.pth":
            (partial / name).symlink_to(weights / name)
    code = main(
        [
            "eval",
            "--fake",
            str(pair / "fake"),
            "--real",
            str(pair / "real"),
            "--suite",
            "lipforcing",
            "--weights-dir",
            str(partial),
            "--out",
            str(tmp_path / "x.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "weight file pt_inception-2015-12-05-6726825d.pth (needed by fid@per_video) not found" in err
    assert "lipbench weights fetch pt_inception-2015-12-05-6726825d.pth" in err
    assert not (tmp_path / "x.json").exists()  # nothing was decoded or scored


def test_csim_and_fid_run_through_eval(pair, weights, tmp_path):
    short = tmp_path / "short"
    for kind in ("real", "fake"):
        (short / kind).mkdir(parents=True)
        path = next((pair / kind).glob("RD_Radio33_000*.mkv"))
        frames, fps = io.read_video(path, max_frames=8)
        io.write_video(short / kind / path.name, frames, fps, io.read_audio(path)[: 8 * 640], 16000)
    out = tmp_path / "csim.json"
    assert (
        main(
            [
                "eval",
                "--fake",
                str(short / "fake"),
                "--real",
                str(short / "real"),
                "--metrics",
                "csim@arcface112,fid@per_video",
                "--weights-dir",
                str(weights),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    (model,) = result["models"].values()
    for key in ("csim@arcface112", "fid@per_video"):
        assert np.isfinite(model["clips"]["RD_Radio33_000"][key]), key
    assert set(result["weights"]) == {"ms1mv3_arcface_r100_fp16.pth", "pt_inception-2015-12-05-6726825d.pth"}
