"""Weight files: download (plain and bz2, as dlib publishes its models), hash check,
lookup order."""

import bz2
import hashlib

import pytest

from lipbench import weights
from lipbench.weights import WeightFile


@pytest.fixture
def published(tmp_path, monkeypatch):
    """Two registered files served from file:// URLs: one plain, one bz2-compressed."""
    content = bytes(range(256)) * 4096
    (tmp_path / "plain.bin").write_bytes(content)
    (tmp_path / "packed.bin.bz2").write_bytes(bz2.compress(content))
    digest = hashlib.sha256(content).hexdigest()
    entries = {"plain.bin": WeightFile("plain.bin", "test", ("x",), "test", url=(tmp_path / "plain.bin").as_uri(),
                                       sha256=digest),
               "packed.bin": WeightFile("packed.bin", "test", ("x",), "test",
                                        url=(tmp_path / "packed.bin.bz2").as_uri(), sha256=digest),
               "changed.bin": WeightFile("changed.bin", "test", ("x",), "test",
                                         url=(tmp_path / "plain.bin").as_uri(), sha256="0" * 64)}
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
    from lipbench.cli import main

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
    assert "verified" in rows["plain.bin"] and "DIFFERENT" in rows["packed.bin"]
