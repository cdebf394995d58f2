"""The cross-audio (dubbing) protocol: each clip driven by another clip's speech."""

import json

import numpy as np
import pytest
import yaml

from lipbench import io, metrics
from lipbench.cli import main
from lipbench.config import ConfigError, config_from_dict, load_config
from lipbench.data.hdtf import split_manifest
from lipbench.data.manifest import Manifest, describe_clip
from lipbench.data.pairing import cross_audio, derangement, load_pairing, pairing_for
from lipbench.metric_keys import metric_key, split_audio, with_audio
from tests.conftest import REPO


def test_a_derangement_moves_every_clip_and_its_seed_fixes_it():
    for n in range(2, 12):
        ids = [f"c{i}" for i in range(n)]
        for seed in range(5):
            pairs = derangement(ids, seed)
            assert list(pairs) == ids and sorted(pairs.values()) == sorted(ids)  # a permutation
            assert all(clip != driver for clip, driver in pairs.items())  # no clip keeps its own speech
            assert derangement(ids, seed) == pairs
    ids = [f"c{i}" for i in range(33)]
    assert derangement(ids, 0) != derangement(ids, 1)
    with pytest.raises(ValueError, match="at least 2 clips"):
        derangement(["only"], 0)


def test_the_shipped_hdtf_pairing_is_what_its_seed_gives():
    split = split_manifest("hdtf_test33")
    shipped = load_pairing("hdtf_test33")
    ids = [c.id for c in split.clips]
    assert shipped["manifest"] == "hdtf_test33" and len(ids) == 33
    assert shipped["pairs"] == derangement(ids, shipped["seed"])
    assert list(shipped["pairs"]) == ids
    # with this seed no clip is even driven by its own speaker's other interval
    speaker = {c.id: c.info["speaker"] for c in split.clips}
    assert all(speaker[clip] != speaker[driver] for clip, driver in shipped["pairs"].items())


def _clip_file(path, n_frames, samples):
    frames = np.full((n_frames, 16, 16, 3), 100, np.uint8)
    io.write_video(path, frames, 25.0, samples, 16000)
    return describe_clip(path.stem, path)


def test_the_driving_audio_is_the_other_clips_speech_cut_or_zero_padded(tmp_path):
    rng = np.random.default_rng(3)
    # on the int16 grid the lossless file stores, so decoding gives these samples back
    long, short = (np.round(rng.uniform(-0.5, 0.5, n) * 32768) / 32768 for n in (8000, 4000))
    a = _clip_file(tmp_path / "a.mkv", 10, long.astype(np.float32))  # 10 frames at 25 fps: 6400 samples
    b = _clip_file(tmp_path / "b.mkv", 10, short.astype(np.float32))
    np.testing.assert_array_equal(a.driving_audio(), long.astype(np.float32))  # own: the whole track as it is
    dubbed = {c.id: c for c in cross_audio(Manifest("m", [a, b]), {"a": "b", "b": "a"}).clips}
    assert dubbed["a"].audio_from == "b" and dubbed["a"].audio == b.video
    np.testing.assert_array_equal(dubbed["a"].driving_audio(), np.concatenate([short, np.zeros(2400)]))
    np.testing.assert_array_equal(dubbed["b"].driving_audio(), long[:6400])
    request = dubbed["a"].request()
    assert request.n_samples == 6400 and request.n_frames == 10
    with pytest.raises(ValueError, match="a is paired with itself"):
        cross_audio(Manifest("m", [a, b]), {"a": "a", "b": "a"})
    with pytest.raises(ValueError, match="b is paired with c, which is not in the manifest"):
        cross_audio(Manifest("m", [a, b]), {"a": "b", "b": "c"})
    with pytest.raises(ValueError, match="no cross-audio pairing is shipped for manifest 'm' \\(shipped: hdtf_test33"):
        pairing_for(Manifest("m", [a, b]))


def test_keys_name_the_audio_and_are_built_by_metric_keys():
    assert metric_key("sync_c", "latentsync") == "sync_c@latentsync"
    assert metric_key("sync_c", "latentsync", "cross") == "sync_c@latentsync+cross_audio"
    assert split_audio("sync_c@latentsync+cross_audio") == ("sync_c@latentsync", "cross")
    assert split_audio("sync_c@latentsync") == ("sync_c@latentsync", "own")
    assert with_audio(with_audio("fid@per_video", "cross"), "own") == "fid@per_video"
    with pytest.raises(ValueError):
        metric_key("sync_c", "latentsync", "dubbed")
    metric = metrics.create("syncnet@latentsync+cross_audio")
    assert [o.key for o in metric.outputs] == [
        "sync_c@latentsync+cross_audio",
        "sync_d@latentsync+cross_audio",
        "av_offset@latentsync+cross_audio",
    ]
    assert metrics.resolve_specs(["sync_c@latentsync+cross_audio", "avsync"]) == [
        "syncnet@latentsync+cross_audio",
        "avsync@mesh_energy",
    ]


def test_only_metrics_without_a_ground_truth_of_the_speech_run_under_cross_audio():
    valid = {name: metrics.METRICS.resolve(name).valid_under_cross_audio() for name in metrics.METRICS.names()}
    expected = {"syncnet": True, "avsync": True, "csim": True, "fid": True}
    expected.update(dict.fromkeys(("psnr", "ssim", "lmd", "lpips", "fvd"), False))
    assert {k: valid[k] for k in expected} == expected

    def config(**settings):
        return config_from_dict({"data": {"synthetic": {}}, "models": ["ground_truth"], **settings}, "c.yaml")

    ok = config(audio="cross", metrics=["syncnet", "avsync", "csim", "fid@per_video"])
    assert ok.metric_specs() == [
        "syncnet@latentsync+cross_audio",
        "avsync@mesh_energy+cross_audio",
        "csim@arcface112+cross_audio",
        "fid@per_video+cross_audio",
    ]
    assert config(metrics=["syncnet"]).metric_specs() == ["syncnet@latentsync"]
    with pytest.raises(ConfigError) as refused:
        config(audio="cross", metrics=["avsync", "psnr", "lpips@mouth", "fvd"])
    message = str(refused.value)
    assert message.startswith("c.yaml: metrics: psnr@full+cross_audio, lpips@mouth+cross_audio, fvd@latentsync+")
    assert "compare each frame with the reference's frame" in message and "avsync" not in message.split(";")[0]
    with pytest.raises(ConfigError, match="ssim@full\\+cross_audio, lmd@mediapipe\\+cross_audio compare"):
        config(audio="cross")  # the default weight-free suite compares frames
    with pytest.raises(ConfigError, match="c.yaml: audio: 'dubbed' is not one of own, cross"):
        config(audio="dubbed", metrics=["avsync"])


def test_the_shipped_dubbing_configs_load():
    for name in ("dubbing_synthetic", "dubbing_hdtf33"):
        config = load_config(REPO / "benchmarks" / f"{name}.yaml")
        assert config.audio == "cross"
        assert all(split_audio(s)[1] == "cross" for s in config.metric_specs())
    assert load_config(REPO / "benchmarks" / "dubbing_hdtf33.yaml").metric_specs() == [
        "syncnet@latentsync+cross_audio",
        "csim@arcface112+cross_audio",
        "fid@per_video+cross_audio",
        "avsync@mesh_energy+cross_audio",
        "noref@mediapipe+cross_audio",
        "subject_consistency@dino_vitb16+cross_audio",
        "background_consistency@clip_vitb32+cross_audio",
        "motion_smoothness@amt_s+cross_audio",
        "imaging_quality@musiq_spaq+cross_audio",
    ]


def _per_clip(run) -> dict:
    return {(r["model"], r["clip"]): r for r in map(json.loads, (run / "per_clip.jsonl").read_text().splitlines())}


def test_a_cross_audio_run_end_to_end(tmp_path, capsys):
    # the shipped synthetic dubbing config, shrunk: 3 short clips, two models, the mesh sync metric, no warm-up
    data = yaml.safe_load((REPO / "benchmarks" / "dubbing_synthetic.yaml").read_text())
    data.update(
        data={"synthetic": {"clips": 3, "frames": 50}},
        models=["ground_truth", "procedural"],
        metrics=["avsync"],
        warmup_clips=0,
    )
    paths = {}
    for audio in ("cross", "own"):
        paths[audio] = tmp_path / f"{audio}.yaml"
        paths[audio].write_text(yaml.safe_dump({**data, "audio": audio}))
        assert main(["run", str(paths[audio]), "--out", str(tmp_path / audio)]) == 0
    capsys.readouterr()
    cross, own = tmp_path / "cross", tmp_path / "own"
    ids = ["synth_000", "synth_001", "synth_002"]
    pairs = derangement(ids, 0)  # the recipe's seed

    results = json.loads((cross / "results.json").read_text())
    assert results["audio"] == {"protocol": "cross", "pairs": pairs}
    assert json.loads((own / "results.json").read_text())["audio"] == {"protocol": "own"}
    assert results["metrics"] == ["avsync@mesh_energy+cross_audio"]
    assert set(results["models"]["procedural"]["metrics"]) == {
        "av_ncc@mesh_energy+cross_audio",
        "av_lag@mesh_energy+cross_audio",
    }
    rows, own_rows = _per_clip(cross), _per_clip(own)
    assert all(r["audio"] == "cross" and r["audio_from"] == pairs[r["clip"]] for r in rows.values())
    assert all(r["audio"] == "own" and "audio_from" not in r for r in own_rows.values())
    assert all("av_ncc@mesh_energy" not in r for r in rows.values())

    # tables and titles say it
    report = (cross / "report.md").read_text()
    assert report.startswith("# lipbench report: dubbing_synthetic (cross audio: dubbing)\n\nCross audio (dubbing)")
    assert "| av_ncc@mesh_energy+cross_audio ↑" in report
    page = (cross / "report.html").read_text()
    assert "<h1>lipbench report: dubbing_synthetic (cross audio: dubbing)</h1>" in page
    assert "their keys end in <code>+cross_audio</code>" in page
    assert "av_ncc@mesh_energy+cross_audio," in (cross / "results.csv").read_text().splitlines()[0]
    assert (own / "report.md").read_text().startswith("# lipbench report: dubbing_synthetic\n")

    # what the videos show: the reference's mouth follows its own speech, not the new one;
    # the procedural model follows the speech it is given, at lag 0
    ncc, lag = "av_ncc@mesh_energy", "av_lag@mesh_energy"
    for clip in ids:
        truth_own, truth_cross = (
            own_rows[("ground_truth", clip)][ncc],
            rows[("ground_truth", clip)][ncc + "+cross_audio"],
        )
        assert truth_cross < truth_own - 0.2
        assert rows[("procedural", clip)][lag + "+cross_audio"] == 0.0
    means = {m: results["models"][m]["metrics"][ncc + "+cross_audio"]["value"] for m in ("ground_truth", "procedural")}
    assert means["procedural"] > 0.7 and means["procedural"] > means["ground_truth"] + 0.15

    # compare refuses to mix the protocols; forced, it pairs no metric value across them
    assert main(["compare", str(own), str(cross)]) == 2
    err = capsys.readouterr().err
    assert "audio: own (reconstruction: each clip's own speech) in" in err
    assert "cross (dubbing: another clip's speech) in" in err
    out = tmp_path / "forced.json"
    assert main(["compare", str(own), str(cross), "--force", "--out", str(out)]) == 0
    forced = json.loads(out.read_text())
    assert forced["rows"] and {r["metric"] for r in forced["rows"]} <= {"fps", "ttff_s"}

    # the same config again: the same pairing, so nothing is remade
    assert main(["run", str(paths["cross"]), "--out", str(cross)]) == 0
    assert "generate: 0 made, 6 already done" in capsys.readouterr().out

    # one run directory holds one audio protocol, even with --force
    assert main(["run", str(paths["own"]), "--out", str(cross), "--force"]) == 2
    assert "holds a run under audio: cross, this config asks for audio: own" in capsys.readouterr().err


def test_eval_of_videos_made_elsewhere_takes_the_audio_protocol(synth_set, tmp_path, capsys):
    """`lipbench eval --fake ... --audio cross`: dubbed videos scored by the metrics that
    need no ground truth of the new speech, under +cross_audio keys; a frame-comparing
    metric is refused before any clip is decoded, and a run directory takes audio from its config."""
    fakes = [str(c.video) for c in synth_set.clips]
    out = tmp_path / "dub.json"
    code = main(["eval", "--fake", *fakes, "--metrics", "avsync,ssim@full", "--audio", "cross", "--out", str(out)])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "--audio cross: ssim@full compare each frame with the reference's frame" in err
    assert "avsync" in err.split("appearance only:")[1]  # the families that can run are named
    assert main(["eval", "--fake", *fakes, "--metrics", "avsync", "--audio", "cross", "--out", str(out)]) == 0
    capsys.readouterr()
    dubbed = json.loads(out.read_text())
    assert dubbed["audio"] == {"protocol": "cross"}
    keys = set(dubbed["models"][next(iter(dubbed["models"]))]["metrics"])
    assert keys and all(k.endswith("+cross_audio") for k in keys)
    assert main(["eval", "--fake", *fakes, "--metrics", "avsync", "--out", str(tmp_path / "own.json")]) == 0
    capsys.readouterr()
    own = json.loads((tmp_path / "own.json").read_text())
    own_keys = {with_audio(k, "cross") for k in own["models"][next(iter(own["models"]))]["metrics"]}
    assert own["audio"] == {"protocol": "own"} and own_keys == keys
    assert main(["eval", str(tmp_path), "--audio", "cross"]) == 2
    assert "--audio apply to --fake" in capsys.readouterr().err
