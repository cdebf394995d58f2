import shutil

import numpy as np
import pytest

from lipbench import io, loudness
from lipbench.cli import main
from lipbench.data.manifest import ManifestError, build_manifest, load_manifest, save_manifest, verify
from lipbench.data.synthetic import SynthRecipe, synthesize


def test_same_seed_same_clips_other_seed_other_clips(tmp_path):
    recipe = SynthRecipe(clips=1, frames=12, seed=3)
    a = synthesize(tmp_path / "a", recipe, progress=False).clips[0]
    b = synthesize(tmp_path / "b", recipe, progress=False).clips[0]
    c = synthesize(tmp_path / "c", SynthRecipe(clips=1, frames=12, seed=4), progress=False).clips[0]
    np.testing.assert_array_equal(a.frames(), b.frames())
    np.testing.assert_array_equal(a.driving_audio(), b.driving_audio())
    assert not np.array_equal(a.driving_audio(), c.driving_audio())
    assert not np.array_equal(a.frames(), c.frames())


def test_data_synth_cli_writes_the_recipe_it_is_given(tmp_path, capsys):
    argv = [
        "data",
        "synth",
        "--out",
        str(tmp_path / "cli"),
        "--clips",
        "2",
        "--seed",
        "3",
        "--frames",
        "9",
        "--size",
        "64",
    ]
    assert main(argv) == 0
    made = load_manifest(tmp_path / "cli" / "manifest.yaml")
    assert len(made.clips) == 2 and "2 clips and their manifest" in capsys.readouterr().out
    assert {(c.n_frames, c.width, c.height) for c in made.clips} == {(9, 64, 64)}
    same = synthesize(tmp_path / "api", SynthRecipe(clips=1, seed=3, frames=9, size=64), progress=False).clips[0]
    np.testing.assert_array_equal(made.clips[0].frames(), same.frames())


def test_data_synth_cli_defaults_are_the_recipe_defaults(capsys):
    from lipbench import defaults
    from lipbench.cli import build_parser

    args = build_parser().parse_args(["data", "synth", "--out", "x"])
    assert (args.clips, args.seed, args.frames, args.size) == (
        defaults.SYNTH_CLIPS,
        defaults.SYNTH_SEED,
        defaults.SYNTH_FRAMES,
        defaults.SYNTH_SIZE,
    )
    assert SynthRecipe() == SynthRecipe(clips=args.clips, seed=args.seed, frames=args.frames, size=args.size)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["data", "synth", "--out", "x", "--clips", "0"])
    assert "expected a positive integer, got '0'" in capsys.readouterr().err


def test_synthetic_clips_are_as_specified_and_talk(synth_set):
    assert [c.id for c in synth_set.clips] == ["synth_000", "synth_001"]
    for clip in synth_set.clips:
        frames = clip.frames()
        assert frames.shape == (49, 256, 256, 3) and clip.fps == 25.0
        speech = clip.driving_audio()
        assert len(speech) == 49 * 640
        openness = loudness.mouth_openness(speech, 16000, 25.0, 49)
        # speech with pauses: some frames closed, some well open
        assert (openness == 0).mean() > 0.05 and (openness > 0.5).mean() > 0.2
        # the mouth region moves, the forehead hardly does (beyond head motion)
        assert frames[:, 150:200, 100:160].std(axis=0).mean() > frames[:, 20:60, 100:160].std(axis=0).mean()


def test_verify_passes_then_catches_missing_truncated_and_changed(synth_set, tmp_path, capsys):
    folder = tmp_path / "copy"
    shutil.copytree(synth_set.path.parent, folder)
    manifest_path = folder / "manifest.yaml"
    assert verify(load_manifest(manifest_path)) == []
    assert main(["data", "verify", str(manifest_path)]) == 0
    assert "2/2 clips OK, 0 problems" in capsys.readouterr().out

    first, second = folder / "synth_000.mkv", folder / "synth_001.mkv"
    data = bytearray(second.read_bytes())
    data[-20] ^= 0xFF  # a flipped byte near the end: still decodes, different content
    second.write_bytes(bytes(data))
    problems = verify(load_manifest(manifest_path))
    assert any("synth_001" in p and "content changed" in p for p in problems)

    first.write_bytes(first.read_bytes()[:4000])  # truncated
    problems = verify(load_manifest(manifest_path))
    assert any(p.startswith("synth_000:") and "synth_000.mkv" in p for p in problems)

    first.unlink()
    assert main(["data", "verify", str(manifest_path)]) == 1
    out = capsys.readouterr().out
    assert "synth_000.mkv: file not found" in out and "0/2 clips OK" in out


def test_manifest_of_a_folder_round_trips(hdtf_samples, tmp_path):
    manifest = build_manifest(hdtf_samples / "fake", name="hallo3_outputs", strip_suffix="_synced")
    assert len(manifest.clips) == 5
    clip = manifest.clip("RD_Radio33_000")
    assert (clip.n_frames, clip.fps, clip.audio_rate, clip.width) == (361, 25.0, 16000, 376)
    out = tmp_path / "m.yaml"
    save_manifest(manifest, out)
    again = load_manifest(out)
    assert [c.sha256 for c in again.clips] == [c.sha256 for c in manifest.clips]
    assert again.input_hash() == manifest.input_hash()
    assert verify(again, check_hash=False) == []


def test_bad_manifests_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("clips:\n  - {id: a}\n")
    with pytest.raises(ManifestError, match="bad.yaml: clip #0 needs at least 'id' and 'video'"):
        load_manifest(path)
    path.write_text("clips: [{id: a, video: x.mp4}, {id: a, video: y.mp4}]\n")
    with pytest.raises(ManifestError, match="appears twice"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="nothere.yaml: manifest not found"):
        load_manifest(tmp_path / "nothere.yaml")


def test_clip_with_separate_driving_audio(tmp_path):
    frames = np.zeros((5, 16, 16, 3), np.uint8)
    io.write_video(tmp_path / "v.mkv", frames, 25.0)
    speech = (np.round(np.arange(3200) % 50 / 100 * 32768) / 32768).astype(np.float32)  # int16 grid: stored exactly
    io.write_video(tmp_path / "a.mkv", frames, 25.0, speech, 16000)
    path = tmp_path / "m.yaml"
    path.write_text("clips: [{id: c, video: v.mkv, audio: a.mkv, audio_rate: 16000}]\n")
    clip = load_manifest(path).clips[0]
    np.testing.assert_array_equal(clip.driving_audio(), speech)
    assert verify(load_manifest(path)) == []


def test_shipped_sample_manifests_verify(hdtf_samples):
    from tests.conftest import REPO

    for name in ("hdtf_samples_real", "hdtf_samples_hallo3"):
        manifest = load_manifest(REPO / "data_manifests" / f"{name}.yaml")
        assert len(manifest.clips) == 5
        assert verify(manifest) == [], name
