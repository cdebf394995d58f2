"""`lipbench data hdtf prepare` on fake raw downloads with the real annotation formats."""

import hashlib

import numpy as np
import pytest

from lipbench import io
from lipbench.cli import main
from lipbench.data import hdtf
from lipbench.data.manifest import Manifest, load_manifest, verify
from lipbench.types import Clip

SOURCE_FPS = 30.0
SOURCE_RATE = 48000
W, H = 320, 240


def source_frame(j: int) -> np.ndarray:
    """Red and green encode the source pixel's x and y, blue the frame index (7 levels a step),
    so a crop's offset and the chosen source frame can be read back after compression."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x % 251, y % 251, np.full_like(x, 20 + 7 * (j % 30))], -1).astype(np.uint8)


def write_source(path, seconds: float):
    n = int(seconds * SOURCE_FPS)
    frames = np.stack([source_frame(j) for j in range(n)])
    t = np.arange(int(seconds * SOURCE_RATE)) / SOURCE_RATE
    # a click every whole second on the left channel, silence on the right
    left = np.where((t % 1.0) < 0.01, 0.5, 0.0)
    io.write_video(path, frames, SOURCE_FPS, np.stack([left, np.zeros_like(left)], 1).astype(np.float32), SOURCE_RATE)


@pytest.fixture(scope="module")
def raw_and_annotations(tmp_path_factory):
    root = tmp_path_factory.mktemp("hdtf")
    raw, ann = root / "raw", root / "HDTF_dataset"
    raw.mkdir(), ann.mkdir()
    write_source(raw / "Speaker1.mkv", 5.0)
    write_source(raw / "Speaker2.mkv", 2.0)
    (ann / "WRA_annotion_time.txt").write_text(
        "Speaker1.mp4 00:00-00:01 00:01-00:05 \nSpeaker2.mp4 00:00-00:02\nAbsent.mp4 00:00-00:30\n"
    )
    (ann / "WRA_crop_wh.txt").write_text(
        "Speaker1_0.mp4 10 100 0 100\nSpeaker1_1.mp4 33 101 17 91\nSpeaker2_0.mp4 0 64 0 64\nAbsent_0.mp4 0 64 0 64\n"
    )
    (ann / "WRA_crop_ratio.txt").write_text("Speaker1_1.mp4 1.2\n")
    (ann / "WRA_video_url.txt").write_text("Speaker1.mp4 https://example.invalid/1\n")
    return raw, ann


def split(*ids):
    return Manifest(name="test_split", clips=[Clip(id=i, video=None) for i in ids])


def test_prepare_cuts_resamples_crops_and_hashes(raw_and_annotations, tmp_path):
    raw, ann = raw_and_annotations
    manifest, problems = hdtf.prepare(
        split("WRA_Speaker1_001", "WRA_Speaker2_000", "WRA_Absent_000", "WRA_Speaker1_002"),
        raw,
        ann,
        tmp_path / "out",
        n_frames=20,
        progress=False,
    )
    assert set(problems) == {"WRA_Absent_000", "WRA_Speaker1_002"}  # one bad clip does not stop the others
    assert "has 2 annotated intervals, no interval 2" in problems["WRA_Speaker1_002"]
    assert "source video Absent.mp4 not found" in problems["WRA_Absent_000"]
    assert manifest.clip("WRA_Speaker2_000").width == 64
    clip = manifest.clip("WRA_Speaker1_001")
    assert (clip.n_frames, clip.fps, clip.width, clip.height, clip.audio_rate) == (20, 25.0, 100, 90, SOURCE_RATE)
    assert clip.info == {
        "subset": "WRA",
        "speaker": "Speaker1",
        "interval": 1,
        "crop_ratio": 1.2,
        "driving_audio_rate": 16000,
    }
    frames, fps = io.read_video(clip.video)
    # crop: x from 33 rounded down to 32, y from 17 to 16 (even, as ffmpeg's crop filter)
    assert abs(float(frames[:, 5:-5, 5:-5, 0].mean()) - (32 + 5 + 44.5)) < 1.5
    assert abs(int(np.median(frames[0, :, 0, 1])) - (16 + 45)) <= 2
    # 25 fps from 30 fps, starting at 1.00 s: output i takes source frame round(30 * (1 + i / 25))
    expected = [round(SOURCE_FPS * (1 + i / 25)) for i in range(20)]
    read_back = [int(round((np.median(f[..., 2]) - 20) / 7)) for f in frames]
    assert read_back == [j % 30 for j in expected]
    # audio from the interval start: the click of second 1 sits at the start, at 48 kHz, stereo
    with __import__("av").open(str(clip.video)) as c:
        assert c.streams.audio[0].rate == SOURCE_RATE and c.streams.audio[0].channels == 2
    speech = io.read_audio(clip.video, 16000)
    assert abs(len(speech) / 16000 - 20 / 25) < 0.07
    assert np.argmax(np.abs(speech) > 0.1) < 40  # within 2.5 ms of the start
    # the manifest's hash is of the file as written; preparing again gives the same frames
    # (up to libx264's run-to-run rounding, seen here as a grey level or two) and audio
    assert clip.sha256 == hashlib.sha256(clip.video.read_bytes()).hexdigest()
    again, _ = hdtf.prepare(split("WRA_Speaker1_001"), raw, ann, tmp_path / "again", n_frames=20, progress=False)
    frames_again, _ = io.read_video(again.clips[0].video)
    assert np.abs(frames_again.astype(int) - frames).mean() < 1.0
    np.testing.assert_array_equal(io.read_audio(again.clips[0].video, 16000), speech)
    assert verify(load_manifest(tmp_path / "out" / "manifest.yaml")) == []


def test_too_short_intervals_and_missing_sources_are_reported_per_clip(raw_and_annotations, tmp_path, capsys):
    raw, ann = raw_and_annotations
    _, problems = hdtf.prepare(split("WRA_Speaker1_000"), raw, ann, tmp_path / "o", n_frames=30, progress=False)
    assert "shorter than 30 frames" in problems["WRA_Speaker1_000"]
    code = main(
        [
            "data",
            "hdtf",
            "prepare",
            "--raw",
            str(raw),
            "--annotations",
            str(ann),
            "--out",
            str(tmp_path / "c"),
            "--clips",
            "WRA_Speaker2_000,WRA_Absent_000",
            "--frames",
            "10",
            "--download",
            "--split",
            "hdtf_test33",
        ]
    )
    # those two ids are not in the paper's split: nothing to do, nothing fails
    assert code == 0


def test_verify_catches_truncated_changed_and_missing_prepared_clips(raw_and_annotations, tmp_path):
    raw, ann = raw_and_annotations
    manifest, _ = hdtf.prepare(split("WRA_Speaker1_001"), raw, ann, tmp_path / "out", n_frames=20, progress=False)
    path = manifest.clips[0].video
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    assert any("WRA_Speaker1_001" in p for p in verify(load_manifest(manifest.path)))
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x01
    path.write_bytes(bytes(changed))
    assert any("content changed" in p or "decoding failed" in p for p in verify(load_manifest(manifest.path)))
    path.unlink()
    assert verify(load_manifest(manifest.path)) == [f"WRA_Speaker1_001: {path}: file not found"]


def test_annotation_errors_name_file_and_line(tmp_path):
    (tmp_path / "RD_annotion_time.txt").write_text("Radio1.mp4 00:02-02:25\nRadio2.mp4 0:2x-00:10\n")
    with pytest.raises(hdtf.HDTFError, match=r"RD_annotion_time.txt:2: bad time stamp '0:2x'"):
        hdtf.load_annotations(tmp_path)
    with pytest.raises(hdtf.HDTFError, match="not an HDTF clip id"):
        hdtf.parse_clip_id("Radio1_0")
    assert hdtf.parse_clip_id("WDA_LucilleRoybal-Allard_000") == ("WDA", "LucilleRoybal-Allard", 0)
    assert hdtf.parse_time("01:02:03", "x") == 3723.0


def test_the_shipped_split_is_the_papers():
    split33 = hdtf.split_manifest("hdtf_test33")
    assert len(split33.clips) == 33 and len({c.id for c in split33.clips}) == 33
    assert split33.clips[0].id == "RD_Radio18_000" and split33.clips[-1].id == "WRA_MittRomney_000"
    assert all(c.n_frames == 81 and c.fps == 25.0 for c in split33.clips)
    assert sum(c.info["subset"] == "WDA" for c in split33.clips) == 21
