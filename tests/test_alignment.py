"""Lining a generated video up with its reference: frame rate, variable rate, coverage,
and the notes that record every trim, resize and resampling (issue 11)."""

import json
from fractions import Fraction

import av
import numpy as np
import pytest
import yaml

from lipbench import io
from lipbench.cli import main
from lipbench.config import ConfigError, config_from_dict
from lipbench.evaluate import score_clip
from lipbench.metrics import create
from lipbench.metrics.base import Alignment, ClipContext, Video, resample_indices


def numbered(n: int, size: int = 16) -> np.ndarray:
    """Frames whose grey level is their index: which source frame a resampling chose is
    readable from the pixels."""
    return np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], size * size * 3).reshape(n, size, size, 3)


def write_at_times(path, frames: np.ndarray, times_ms: list[int], nominal_fps: int = 25) -> None:
    """MKV (lossless) whose frames are shown at the given times: a variable frame rate."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=nominal_fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        stream.time_base = Fraction(1, 1000)
        for image, t in zip(frames, times_ms):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="bgr0")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


PSNR = create("psnr@full")


def test_another_frame_rate_fails_the_reference_metrics_unless_resampled():
    reference = Video(numbered(25), 25.0)
    fast = Video(numbered(60), 60.0)  # the same second at 60 fps
    ctx = ClipContext("c", fast, reference)
    assert "frame rate 60 fps, the reference's is 25 fps" in ctx.reference_problem
    assert "--resample-fps" in ctx.reference_problem
    values, errors, _ = score_clip([PSNR], ctx)
    assert values == {} and "frame rate 60 fps" in errors["psnr@full"]

    ctx = ClipContext("c", Video(numbered(60), 60.0), reference, Alignment(resample_fps=True))
    assert ctx.reference_problem is None and ctx.n == 25
    # frame k of 25 fps shows the 60 fps frame on screen at k/25 s: floor(k * 60 / 25)
    assert ctx.generated_frames[:, 0, 0, 0].tolist() == [k * 60 // 25 for k in range(25)]
    assert ctx.notes["generated_resampled"] == {
        "from_fps": 60.0,
        "to_fps": 25.0,
        "why": "frame rate 60 fps, the reference's is 25 fps",
        "frames_before": 60,
        "frames_after": 25,
    }


def test_a_variable_frame_rate_is_found_from_the_timestamps_and_resampled_by_time(tmp_path):
    times = [0, 40, 80, 200, 240, 280, 320, 360, 400, 440]  # a 120 ms gap: frames dropped
    write_at_times(tmp_path / "vfr.mkv", numbered(10), times)
    video = Video.from_file(tmp_path / "vfr.mkv")
    assert video.times.tolist() == pytest.approx([t / 1000 for t in times])
    assert "variable frame rate: frame intervals from 40.0 to 120.0 ms" in video.variable_rate()
    reference = Video(numbered(12), 25.0)
    assert "variable frame rate" in ClipContext("c", video, reference).reference_problem
    ctx = ClipContext("c", video, reference, Alignment(resample_fps=True))
    # at 120 and 160 ms the frame shown is still the one of 80 ms (index 2)
    assert ctx.generated_frames[:, 0, 0, 0].tolist() == [0, 1, 2, 2, 2, 3, 4, 5, 6, 7, 8, 9]
    assert ctx.n == 12 and ctx.reference_problem is None

    write_at_times(tmp_path / "cfr.mkv", numbered(10), [40 * i for i in range(10)])
    assert Video.from_file(tmp_path / "cfr.mkv").variable_rate() is None


@pytest.mark.parametrize("n_generated, ok", [(41, True), (37, True), (36, False), (20, False), (1, False)])
def test_coverage_below_the_threshold_fails_with_both_counts(n_generated, ok):
    ctx = ClipContext("c", Video(numbered(n_generated), 25.0), Video(numbered(41), 25.0))
    values, errors, _ = score_clip([PSNR], ctx)
    if ok:  # 37 of 41 is 90.2%
        assert ctx.reference_problem is None and values["psnr@full"] == 100.0
    else:
        assert values == {}
        assert f"{n_generated} frames for the reference's 41" in errors["psnr@full"]
        assert "90% required" in errors["psnr@full"]
    assert ctx.notes.get("frames_trimmed_from") == (
        None if n_generated == 41 else {"reference": 41, "generated": n_generated}
    )


def test_the_coverage_threshold_is_configurable():
    ctx = ClipContext("c", Video(numbered(20), 25.0), Video(numbered(41), 25.0), Alignment(min_coverage=0.4))
    assert ctx.reference_problem is None and ctx.n == 20
    with pytest.raises(Exception, match="min_coverage must be in"):
        Alignment(min_coverage=0)


def test_sync_metrics_still_score_a_clip_whose_reference_cannot_be_compared():
    """Metrics that read only the generated video and its audio do not need alignment."""
    ctx = ClipContext("c", Video(numbered(60), 60.0), Video(numbered(25), 25.0))
    assert ctx.reference_problem
    metric = create("avsync@mesh_energy")
    assert not metric.needs_reference


def test_eval_records_notes_per_clip_and_the_alignment(tmp_path):
    real, fake = tmp_path / "real", tmp_path / "fake"
    real.mkdir(), fake.mkdir()
    frames = numbered(41, 32)
    io.write_video(real / "a.mkv", frames, 25.0)
    io.write_video(real / "b.mkv", frames, 25.0)
    io.write_video(fake / "a.mkv", frames[:39, :16, :16], 25.0)  # shorter and smaller: trimmed, resized
    io.write_video(fake / "b.mkv", np.repeat(frames, 2, axis=0)[:80], 50.0)  # 50 fps: resampled when asked
    out = tmp_path / "scores.json"
    assert main(["eval", "--fake", str(fake), "--real", str(real), "--metrics", "psnr", "--out", str(out)]) == 1
    result = json.loads(out.read_text())
    notes = result["models"]["fake"]["clip_notes"]
    assert notes["a"]["frames_trimmed_from"] == {"reference": 41, "generated": 39}
    assert notes["a"]["generated_resized_from"] == [16, 16] and notes["a"]["frames_compared"] == 39
    assert "frame rate 50 fps" in result["models"]["fake"]["metrics"]["psnr@full"]["failed"]["b"]
    assert result["alignment"] == {"min_coverage": 0.9, "resample_fps": False} and result["complete"] is True

    assert (
        main(
            [
                "eval",
                "--fake",
                str(fake),
                "--real",
                str(real),
                "--metrics",
                "psnr",
                "--out",
                str(out),
                "--resample-fps",
                "--min-coverage",
                "0.96",
            ]
        )
        == 1
    )
    result = json.loads(out.read_text())
    failed = result["models"]["fake"]["metrics"]["psnr@full"]["failed"]
    assert list(failed) == ["a"] and "39 frames for the reference's 41 (95% covered, 96% required" in failed["a"]
    assert result["models"]["fake"]["clips"]["b"]["psnr@full"] == 100.0  # frame 2k of the 50 fps video
    assert result["models"]["fake"]["clip_notes"]["b"]["generated_resampled"]["from_fps"] == 50.0


def test_resample_indices_hold_the_frame_on_screen():
    times = np.array([0.0, 0.1, 0.2])
    assert resample_indices(times, 0.3, 20).tolist() == [0, 0, 1, 1, 2, 2]


def test_run_config_keys_are_checked_and_reach_the_specs():
    base = {"data": {"synthetic": {"clips": 1}}, "models": ["ground_truth"], "metrics": ["fid@per_video", "psnr"]}
    config = config_from_dict({**base, "crop": "none", "min_coverage": 0.5, "resample_fps": True})
    assert config.metric_specs() == ["fid@per_video_precropped", "psnr@full"]
    assert config.alignment() == Alignment(0.5, True)
    for key, value, message in [
        ("crop", "off", "is not one of auto, none"),
        ("min_coverage", 1.5, "expected a share in (0, 1]"),
        ("resample_fps", "yes", "expected true or false"),
    ]:
        with pytest.raises(
            ConfigError,
            match=f"{key}: .*{message}".replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]"),
        ):
            config_from_dict({**base, key: value})


def test_a_run_with_crop_none_computes_the_precropped_protocols(synth_set, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "crops",
                "data": {"manifest": str(synth_set.path)},
                "warmup_clips": 0,
                "models": ["ground_truth"],
                "metrics": ["ssim@face224"],
                "crop": "none",
            }
        )
    )
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["metrics"] == ["ssim@face224_precropped"]
    assert results["models"]["ground_truth"]["metrics"]["ssim@face224_precropped"]["value"] == 1.0


def test_a_run_config_sets_min_coverage_and_a_change_recomputes(synth_set, tmp_path, capsys):
    """Outputs made elsewhere 40 frames long against 49-frame clips (82%): failed under the
    default 90%, scored once the config asks for 80%, and only the reference metrics redone."""
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    for clip in synth_set.clips:
        io.write_video(fakes / f"{clip.id}.mkv", clip.frames()[:40], clip.fps, clip.driving_audio())

    def run(**settings):
        config = tmp_path / "c.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "name": "cover",
                    "data": {"manifest": str(synth_set.path)},
                    "warmup_clips": 0,
                    "models": [{"name": "elsewhere", "model": "precomputed", "args": {"folder": str(fakes)}}],
                    "metrics": ["psnr"],
                    **settings,
                }
            )
        )
        code = main(["run", str(config), "--out", str(tmp_path / "run")])
        return code, json.loads((tmp_path / "run" / "results.json").read_text())["models"]["elsewhere"]

    code, model = run()
    assert code == 1 and model["metrics"]["psnr@full"]["n"] == 0
    assert all(
        "40 frames for the reference's 49 (82% covered, 90% required" in reason
        for reason in model["metrics"]["psnr@full"]["failed"].values()
    )
    capsys.readouterr()
    code, model = run(min_coverage=0.8)
    assert code == 0 and model["metrics"]["psnr@full"]["value"] == 100.0
    assert "evaluate psnr@full: 2 values, failed before" in capsys.readouterr().out
    assert all(
        notes["frames_trimmed_from"] == {"reference": 49, "generated": 40} for notes in model["clip_notes"].values()
    )
    code, model = run(min_coverage=0.81)  # still met: the values are recomputed under the new setting
    assert code == 0 and "evaluate psnr@full: 2 values, settings changed" in capsys.readouterr().out
