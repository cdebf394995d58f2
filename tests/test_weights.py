"""Weight files: download (plain and bz2, as dlib publishes its models), hash check,
lookup order; what `weights verify` and the one reader (lipbench.checkpoints) say about
bad files (empty, truncated, text, a pickle of Python objects, another network, another
hash), and that a bad metric file stops a run before any clip."""

import bz2
import hashlib
import os
import pickle
import shlex
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from lipbench import checkpoints, weights
from lipbench.cli import main
from lipbench.errors import LipbenchError
from lipbench.random_weights import write_random_weights
from lipbench.weights import BadWeightError, WeightFile
from tests.conftest import require_module
from tests.test_errors import error_line


@pytest.fixture
def published(tmp_path, monkeypatch):
    """Two registered files served from file:// URLs: one plain, one bz2-compressed."""
    content = bytes(range(256)) * 4096
    (tmp_path / "plain.bin").write_bytes(content)
    (tmp_path / "packed.bin.bz2").write_bytes(bz2.compress(content))
    digest = hashlib.sha256(content).hexdigest()
    entries = {
        "plain.bin": WeightFile(
            "plain.bin", "test", ("x",), "test", url=(tmp_path / "plain.bin").as_uri(), sha256=digest
        ),
        "packed.bin": WeightFile(
            "packed.bin", "test", ("x",), "test", url=(tmp_path / "packed.bin.bz2").as_uri(), sha256=digest
        ),
        "changed.bin": WeightFile(
            "changed.bin", "test", ("x",), "test", url=(tmp_path / "plain.bin").as_uri(), sha256="0" * 64
        ),
    }
    monkeypatch.setattr(weights, "WEIGHTS", {**weights.WEIGHTS, **entries})
    return content


def test_fetch_downloads_decompresses_and_checks(published, tmp_path, monkeypatch):
    dest = tmp_path / "weights"
    for name in ("plain.bin", "packed.bin"):
        path = weights.fetch(name, dest, progress=False)
        assert path == dest / name and path.read_bytes() == published
        assert weights.check(name, path) == (True, hashlib.sha256(published).hexdigest())
    with pytest.raises(ValueError, match="changed.bin: downloaded file has sha256 .* not the published file"):
        weights.fetch("changed.bin", dest, progress=False)
    assert not (dest / "changed.bin").exists()  # a wrong file is never left behind
    monkeypatch.setenv("LIPBENCH_WEIGHTS", str(dest))
    assert weights.find_weight("packed.bin", tmp_path / "elsewhere") == dest / "packed.bin"


def test_every_registered_file_says_how_to_get_it():
    for entry in weights.WEIGHTS.values():
        assert entry.url or entry.manual, entry.name
    assert weights.WEIGHTS["shape_predictor_68_face_landmarks.dat"].url.endswith(".bz2")


def test_list_and_verify_say_what_is_where_and_what_needs_it(published, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LIPBENCH_WEIGHTS", raising=False)
    monkeypatch.setenv("LIPBENCH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "plain.bin").write_bytes(published)
    (folder / "packed.bin").write_bytes(b"another file under the name")

    def table(out: str) -> dict[str, str]:
        return {line.split()[0]: line for line in out.splitlines() if line.strip()}

    assert main(["weights", "list", "--weights-dir", str(folder)]) == 0
    rows = table(capsys.readouterr().out)
    assert "present" in rows["plain.bin"] and str(folder / "plain.bin") in rows["plain.bin"]
    assert "missing" in rows["changed.bin"] and "lipbench weights fetch changed.bin" in rows["changed.bin"]
    assert "lmd@dlib68" in rows["shape_predictor_68_face_landmarks.dat"]
    assert "fid" in rows["pt_inception-2015-12-05-6726825d.pth"].split()
    assert main(["weights", "verify", "--weights-dir", str(folder)]) == 1  # missing and changed files
    rows = table(capsys.readouterr().out)
    assert rows["plain.bin"].split()[1] == "ok" and "the published file" in rows["plain.bin"]
    assert rows["packed.bin"].split()[1] == "unreadable" and "a text file" in rows["packed.bin"]
    assert "missing" in rows["changed.bin"] and "lipbench weights fetch changed.bin" in rows["changed.bin"]
    assert main(["weights", "verify", "plain.bin", "--weights-dir", str(folder)]) == 0  # only the files named
    assert list(table(capsys.readouterr().out)) == ["file", "plain.bin", "searched:"]
    assert main(["weights", "list", "changed.bin", "--weights-dir", str(folder)]) == 0  # list takes names too
    assert list(table(capsys.readouterr().out)) == ["file", "changed.bin", "searched:"]


# ------------------------------------------------------------ bad files, in words


class Evil:
    """What a malicious weight file holds: unpickling it runs a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


def small_torch_file(path, legacy: bool = False):
    """A real torch.save file (zip format, or the pre-1.6 one), a few kilobytes."""
    torch.save({"weight": torch.arange(4096, dtype=torch.float32)}, path, _use_new_zipfile_serialization=not legacy)
    return path


def cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return len(data) // 2


def write_bad(kind: str, path, marker) -> str:
    """Write a bad file of `kind` at `path`; returns text its problem must contain."""
    if kind == "empty":
        path.write_bytes(b"")
        return "empty file (0 bytes)"
    if kind in ("truncated", "truncated_legacy"):
        size = cut_in_half(small_torch_file(path, legacy=kind == "truncated_legacy"))
        return f"truncated ({size} bytes; "
    if kind == "html":
        path.write_bytes(
            b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Quota exceeded</body></html>\n"
        )
        return "an HTML page"
    if kind == "text":
        path.write_text("this is not a checkpoint\n")
        return "a text file (starts 'this is not a checkpoint')"
    if kind == "pickle":
        path.write_bytes(pickle.dumps(Evil(marker), protocol=2))
        return checkpoints.REFUSED + "; it asks for posix.system"
    if kind == "pickle4":
        path.write_bytes(pickle.dumps({"weight": Evil(marker)}, protocol=4))
        return checkpoints.REFUSED + "; it asks for posix.system"
    if kind == "torch_pickle":  # torch.save's zip format around the same object
        torch.save({"weight": Evil(marker)}, path)
        return checkpoints.REFUSED + "; it asks for posix.system"
    raise AssertionError(kind)


BAD_KINDS = {
    "empty": "unreadable",
    "truncated": "truncated",
    "truncated_legacy": "truncated",
    "html": "unreadable",
    "text": "unreadable",
    "pickle": "unreadable",
    "pickle4": "unreadable",
    "torch_pickle": "unreadable",
}


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("LIPBENCH_WEIGHTS", raising=False)
    folder = tmp_path / "weights"
    folder.mkdir()
    return folder


def verify_row(capsys, folder, name) -> tuple[int, str, str]:
    """(exit code, state, the rest of the row) of `lipbench weights verify NAME`."""
    code = main(["weights", "verify", name, "--weights-dir", str(folder)])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(name + " ")]
    assert len(rows) == 1, rows
    state = next(
        s
        for s in ("ok", "unknown hash", "wrong hash", "truncated", "unreadable", "missing")
        if rows[0][len(name) :].lstrip().startswith(s + " ")
    )
    return code, state, rows[0]


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize(
    "name, hint",
    [
        ("syncnet_v2.model", "get a good copy with: lipbench weights fetch syncnet_v2.model"),
        ("wav2lip.pth", "get a good copy: no direct link: download wav2lip.pth from the Wav2Lip README's Google Drive"),
    ],
)
def test_verify_says_what_is_wrong_and_what_to_do(kind, name, hint, weights_dir, tmp_path, capsys):
    marker = tmp_path / "code_ran"
    problem = write_bad(kind, weights_dir / name, marker)
    code, state, row = verify_row(capsys, weights_dir, name)
    assert (code, state) == (1, BAD_KINDS[kind])
    assert f"{weights_dir / name}: " in row and problem in row and row.index(problem) < row.index(hint)
    assert "weights_only" not in row and "unchecked" not in row
    assert not marker.exists()  # the pickle's code never ran


def test_verify_knows_the_published_file_and_says_when_a_registered_hash_differs(weights_dir, capsys, monkeypatch):
    name = "i3d_torchscript.pt"
    assert main(["weights", "random", name, "--weights-dir", str(weights_dir)]) == 0
    capsys.readouterr()
    code, state, row = verify_row(capsys, weights_dir, name)  # no published sha256: says that it loads
    assert (code, state) == (0, "unknown hash")
    assert "no published sha256 to compare with" in row and row.endswith("it loads")
    monkeypatch.setitem(
        weights.WEIGHTS, name, replace(weights.WEIGHTS[name], sha256=weights.file_sha256(weights_dir / name))
    )
    code, state, row = verify_row(capsys, weights_dir, name)
    assert (code, state) == (0, "ok") and "the published file" in row
    module = torch.jit.load(str(weights_dir / name))  # the same network, other values
    with torch.no_grad():
        module.proj.weight.mul_(2)
    torch.jit.save(module, str(weights_dir / name))
    code, state, row = verify_row(capsys, weights_dir, name)
    assert (code, state) == (1, "wrong hash")
    assert "the published file's is" in row and "it loads, but results made with it are not" in row
    assert row.endswith(f"for the published file: lipbench weights fetch {name}")


def test_verify_calls_a_stand_in_for_a_published_file_wrong(weights_dir, capsys):
    require_module("dlib", reason="the dlib stand-in needs dlib (pip install 'lipbench[dlib]')")
    name = "shape_predictor_68_face_landmarks.dat"  # a registered sha256
    assert main(["weights", "random", name, "--weights-dir", str(weights_dir)]) == 0
    capsys.readouterr()
    code, state, row = verify_row(capsys, weights_dir, name)
    assert (code, state) == (1, "wrong hash") and "the published file's is fbdc2cb80eb9aa7a" in row
    (weights_dir / name).write_bytes(b"<html>404</html>")
    code, state, row = verify_row(capsys, weights_dir, name)
    assert (code, state) == (1, "unreadable") and "an HTML page" in row


def test_verify_says_when_a_file_does_not_load_into_its_network(weights_dir, capsys):
    small_torch_file(weights_dir / "syncnet_v2.model")  # reads, but holds another network's keys
    code, state, row = verify_row(capsys, weights_dir, "syncnet_v2.model")
    assert (code, state) == (1, "unknown hash")
    assert "it does not load: not a SyncNet state_dict" in row and "unexpected keys: ['weight']" in row
    assert row.endswith("lipbench weights fetch syncnet_v2.model")
    # a TorchScript file where a state_dict belongs, and the other way round
    (weights_dir / "syncnet_v2.model").write_bytes(b"")
    write_random_weights(weights_dir, names=["i3d_torchscript.pt"])
    shutil.copy(weights_dir / "i3d_torchscript.pt", weights_dir / "syncnet_v2.model")
    small_torch_file(weights_dir / "i3d_torchscript.pt")
    for name, said in (
        ("syncnet_v2.model", "a TorchScript module (torch.jit.save), not a torch.save file"),
        ("i3d_torchscript.pt", "a torch.save file of tensors (no TorchScript code in it)"),
    ):
        code, state, row = verify_row(capsys, weights_dir, name)
        assert (code, state) == (1, "unreadable") and said in row


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_the_reader_names_the_problem_never_torchs_advice(kind, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "syncnet_v2.model"
    problem = write_bad(kind, path, marker)
    with pytest.raises(BadWeightError) as error:
        checkpoints.read_state_dict(path, "SyncNet syncnet_v2.model")
    message = str(error.value)
    assert (
        message == f"weight file {path}: {error.value.problem}; get a good copy with: "
        f"lipbench weights fetch syncnet_v2.model"
    )
    assert problem in message and error.value.problem.strip()
    assert "weights_only" not in message and "\n" not in message
    assert isinstance(error.value, LipbenchError) and isinstance(error.value, ValueError)
    assert not marker.exists()


def test_a_torchscript_file_goes_through_the_same_reader(tmp_path):
    write_random_weights(tmp_path, names=["i3d_torchscript.pt"])
    assert callable(checkpoints.read_torchscript(tmp_path / "i3d_torchscript.pt"))
    cut_in_half(tmp_path / "i3d_torchscript.pt")
    with pytest.raises(
        BadWeightError,
        match=r"i3d_torchscript\.pt: truncated \(\d+ bytes; .*"
        r"lipbench weights fetch i3d_torchscript\.pt$",
    ):
        checkpoints.read_torchscript(tmp_path / "i3d_torchscript.pt")


# ------------------------------------------------------------ preflight: before any clip


@pytest.fixture
def decoded(monkeypatch):
    """Every video decoded (paths), recorded."""
    from lipbench import io

    seen, read = [], io.read_video_timed

    def recording(path, *args, **kwargs):
        seen.append(path)
        return read(path, *args, **kwargs)

    monkeypatch.setattr(io, "read_video_timed", recording)
    return seen


@pytest.mark.parametrize("kind", ["truncated", "empty", "torch_pickle"])
def test_eval_stops_on_a_bad_metric_weight_file_before_any_clip(
    kind, synth_set, weights_dir, tmp_path, capsys, decoded
):
    marker = tmp_path / "code_ran"
    problem = write_bad(kind, weights_dir / "syncnet_v2.model", marker)
    folder = str(synth_set.clips[0].video.parent)
    line = error_line(
        capsys,
        [
            "eval",
            "--fake",
            folder,
            "--real",
            folder,
            "--metrics",
            "psnr,syncnet@precropped",
            "--weights-dir",
            str(weights_dir),
            "--out",
            str(tmp_path / "e.json"),
        ],
    )
    assert line.startswith(f"lipbench: error: weight file {weights_dir / 'syncnet_v2.model'}: {problem}")
    assert line.endswith("; get a good copy with: lipbench weights fetch syncnet_v2.model")
    assert "weights_only=False" not in line
    assert decoded == [] and not (tmp_path / "e.json").exists() and not marker.exists()


def test_run_stops_on_a_bad_metric_weight_file_before_generating(synth_set, weights_dir, tmp_path, capsys, decoded):
    write_bad("truncated", weights_dir / "syncnet_v2.model", None)
    config = tmp_path / "bench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"manifest": str(synth_set.path)},
                "models": ["ground_truth"],
                "metrics": ["psnr", "syncnet@precropped"],
                "warmup_clips": 0,
            }
        )
    )
    line = error_line(capsys, ["run", str(config), "--out", str(tmp_path / "run"), "--weights-dir", str(weights_dir)])
    assert f"weight file {weights_dir / 'syncnet_v2.model'}: truncated (" in line
    assert line.endswith("; get a good copy with: lipbench weights fetch syncnet_v2.model")
    assert "weights_only=False" not in line
    assert decoded == [] and not list((tmp_path / "run").glob("units/**/*.json"))


def test_each_network_is_loaded_once_not_per_clip(synth_set, weights_dir, tmp_path, monkeypatch, capsys):
    write_random_weights(weights_dir, names=["i3d_torchscript.pt"])
    reads, read = [], checkpoints.read_file

    def counting(path, *args, **kwargs):
        reads.append(Path(path).name)
        return read(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "read_file", counting)
    folder = str(synth_set.clips[0].video.parent)
    code = main(
        [
            "eval",
            "--fake",
            folder,
            "--real",
            folder,
            "--metrics",
            "fvd@stylegan_v",
            "--weights-dir",
            str(weights_dir),
            "--out",
            str(tmp_path / "e.json"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert len(synth_set.clips) == 2 and reads == ["i3d_torchscript.pt"]


def test_a_bad_wav2lip_checkpoint_fails_its_units_with_the_clear_error(
    synth_set, weights_dir, tmp_path, capsys, decoded
):
    write_bad("truncated", weights_dir / "wav2lip.pth", None)
    config = tmp_path / "bench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"manifest": str(synth_set.path)},
                "metrics": ["psnr"],
                "warmup_clips": 0,
                "models": [{"model": "wav2lip", "args": {"weights_dir": str(weights_dir), "detector": "mediapipe"}}],
            }
        )
    )
    assert main(["generate", str(config), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.splitlines() if "wav2lip/synth_" in line]
    assert len(lines) == 2 and decoded == []  # the model failed to load: no clip was read
    for line in lines:
        assert f"(load): BadWeightError: weight file {weights_dir / 'wav2lip.pth'}: truncated (" in line
        assert "get a good copy: no direct link: download wav2lip.pth" in line and "weights_only" not in line
