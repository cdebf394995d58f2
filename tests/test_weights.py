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
