"""User-facing errors share one base class: the CLI prints them as one line naming the
input and exits 2; every other exception (a bug) keeps its traceback."""

import sys

import pytest
import yaml

from lipbench import cli, io
from lipbench.config import ConfigError
from lipbench.data.hdtf import HDTFError
from lipbench.data.manifest import ManifestError
from lipbench.errors import (
    LipbenchError,
    MissingDependencyError,
    MissingInputError,
    UnknownNameError,
    UnknownProtocolError,
    UsageError,
)
from lipbench.weights import BadWeightError, DownloadError, MissingWeightError


@pytest.mark.parametrize(
    "cls, old_base",
    [
        (ConfigError, ValueError),
        (ManifestError, ValueError),
        (io.MediaError, RuntimeError),
        (MissingWeightError, FileNotFoundError),
        (DownloadError, ValueError),
        (BadWeightError, ValueError),
        (UnknownNameError, KeyError),
        (UnknownProtocolError, ValueError),
        (UsageError, ValueError),
        (MissingInputError, FileNotFoundError),
        (MissingDependencyError, ImportError),
        (HDTFError, RuntimeError),
    ],
)
def test_user_errors_share_the_base_and_keep_their_old_one(cls, old_base):
    assert issubclass(cls, LipbenchError) and issubclass(cls, old_base)


def test_unknown_name_message_is_not_quoted():
    assert str(UnknownNameError("unknown model 'x'")) == "unknown model 'x'"
    assert str(KeyError("unknown model 'x'")) == "\"unknown model 'x'\""  # what the override avoids


def error_line(capsys, argv) -> str:
    """Run the CLI, expect exit code 2 and exactly one line on stderr; return that line."""
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lipbench: error: "), lines
    return lines[0]


@pytest.fixture
def bench(synth_set, tmp_path):
    """A valid config file over the session's synthetic clips."""
    path = tmp_path / "bench.yaml"
    path.write_text(
        yaml.safe_dump({"data": {"manifest": str(synth_set.path)}, "models": ["ground_truth"], "metrics": ["psnr"]}),
        encoding="utf-8",
    )
    return path


def test_missing_config(capsys, tmp_path):
    line = error_line(capsys, ["run", str(tmp_path / "nonexistent.yaml"), "--out", str(tmp_path / "run")])
    assert "nonexistent.yaml: no such config file" in line


def test_a_bad_config_is_refused_before_any_clip_is_made(capsys, tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump({"data": {"synthetic": {"clips": 2, "frames": 0}}, "models": ["still"]}))
    line = error_line(capsys, ["run", str(path), "--out", str(tmp_path / "run")])
    assert "bench.yaml: data.synthetic.frames: expected a positive integer, got 0" in line
    assert not (tmp_path / "cache").exists()  # the synthetic set (LIPBENCH_CACHE, tests/conftest.py) was not made


def test_unknown_model_in_models_flag(capsys, bench, tmp_path):
    line = error_line(capsys, ["generate", str(bench), "--out", str(tmp_path / "run"), "--models", "ground_truht"])
    assert "bench.yaml" in line and "ground_truht" in line


def test_limit_must_be_positive(capsys, bench, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["generate", str(bench), "--out", str(tmp_path / "run"), "--limit", "0"])
    assert exit_.value.code == 2
    assert "argument --limit: expected a positive integer, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["eval", "--fake", "{tmp}/missing/", "--metrics", "psnr"], "missing: no such file or folder"),
        (["eval", "--fake", "{tmp}", "--metrics", "psnr"], "no video files (.mp4, .mkv, .mov, .avi, .webm) in"),
        (["eval", "--fake", "{video}", "--metrics", "shrapness"], "unknown metric 'shrapness'"),
        (["eval", "--fake", "{video}", "--metrics", "psnr@face"], "psnr has no protocol 'face'"),
        (
            ["eval", "--fake", "{video}", "--metrics", "psnr", "--pair-regex", "(?P<id"],
            "pairing pattern '(?P<id' is not a valid regular expression",
        ),
        (["eval", "--fake", "{video}"], "lipbench eval --fake: choose metrics with --metrics LIST"),
        (["eval"], "lipbench eval needs a run directory or --fake"),
        (["eval", "{tmp}", "--fake", "{video}"], "lipbench eval: give either a run directory or --fake"),
        (["data", "verify", "{tmp}/missing.yaml"], "missing.yaml: manifest not found"),
        (["compare", "{tmp}", "{tmp}"], ": not a run directory"),
        (["weights", "fetch", "wav2lip_gn.pth"], "unknown weight file 'wav2lip_gn.pth'. Did you mean wav2lip_gan.pth"),
        (["weights", "random"], "lipbench weights random needs --weights-dir DIR"),
        (
            ["data", "hdtf", "prepare", "--raw", "{tmp}", "--annotations", "{tmp}/no_annotations", "--out", "{tmp}/o"],
            "no_annotations: annotation folder not found",
        ),
    ],
)
def test_user_mistakes_are_one_line(capsys, synth_set, tmp_path, argv, expected):
    values = {"tmp": str(tmp_path), "video": str(synth_set.clips[0].video)}
    assert expected in error_line(capsys, [arg.format(**values) for arg in argv])


def test_missing_dlib_is_one_line(capsys, synth_set, tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "shape_predictor_68_face_landmarks.dat").write_bytes(b"present; dlib is what is missing")
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError
    line = error_line(
        capsys,
        [
            "eval",
            "--fake",
            str(synth_set.clips[0].video),
            "--metrics",
            "lmd@dlib68",
            "--weights-dir",
            str(weights),
            "--out",
            str(tmp_path / "e.json"),
        ],
    )
    assert "dlib landmarks need the dlib package: pip install 'lipbench[dlib]'" in line


def test_a_multi_line_message_is_printed_on_one_line(capsys, monkeypatch):
    def fails(args):
        raise UsageError("runs are not comparable:\n  weight file a differs\n  clip c00 differs")

    monkeypatch.setattr(cli, "cmd_ls", fails)
    assert (
        error_line(capsys, ["ls", "configs"])
        == "lipbench: error: runs are not comparable: weight file a differs; clip c00 differs"
    )


@pytest.mark.parametrize(
    "bug",
    [
        ZeroDivisionError("division by zero"),
        KeyError("x"),
        ValueError("bad"),
        OSError("disk"),
        ImportError("no module"),
        RuntimeError("oops"),
    ],
)
def test_a_bug_keeps_its_traceback(monkeypatch, capsys, bug):
    def fails(args):
        raise bug

    monkeypatch.setattr(cli, "cmd_ls", fails)
    with pytest.raises(type(bug)):
        cli.main(["ls", "configs"])
    assert "lipbench: error" not in capsys.readouterr().err
