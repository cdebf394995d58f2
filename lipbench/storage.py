"""Atomic writes (a reader, or a resumed run, sees a whole file or none) and file hashes
cached across processes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import yaml

from lipbench.errors import LipbenchError

# Temporaries of atomic writes are named `.<stem>.<random>.partial<suffix>`: the suffix
# stays (writers pick the format by it), and a run directory can find and remove the
# ones a killed process left behind (`remove_partials`).
PARTIAL_MARK = ".partial"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()  # what open() would have given; mkstemp gives 0600


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); rename it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=PARTIAL_MARK + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def resolved(path) -> Path:
    """`path` made absolute with its symlinks resolved; a symlink loop (on which
    Path.resolve raises before Python 3.13) stays the link's own absolute path, so the
    file is still named and fails where it is read."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_safe(value):
    """NaN and infinity are not JSON; they are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path, data) -> None:
    write_text(path, json.dumps(_json_safe(data), indent=2, sort_keys=False) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_jsonl(path, rows) -> None:
    write_text(path, "".join(json.dumps(_json_safe(r)) + "\n" for r in rows))


def remove_partials(root) -> list[Path]:
    """Delete the temporaries of atomic writes interrupted under `root` (a kill -9 leaves
    them); only safe while no other process writes there."""
    found = [p for p in Path(root).rglob(".*") if PARTIAL_MARK in p.name and p.is_file()]
    for path in found:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return found


def parse_yaml(text: str, where, error=LipbenchError):
    """YAML text read from `where` (a path, named in the error) as Python data; invalid
    YAML raises `error` (a LipbenchError class) naming the file and the parser's message."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML ({exc})") from exc


def _hash_cache_path() -> Path:
    from lipbench.config import cache_dir

    return cache_dir() / "sha256_cache.json"


_hash_cache: dict[str, list] = {}


def file_sha256(path, cached: bool = True) -> str:
    """sha256 of a file's bytes. Cached (in memory and in the user cache, so every
    process of a sweep shares it) for as long as the file's size and mtime stay the
    same; `cached=False` reads the file now (verifying a file against a recorded hash)."""
    path = Path(path)
    if not cached:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        return h.hexdigest()
    stat = path.stat()
    key, stamp = str(path.resolve()), [stat.st_size, stat.st_mtime_ns]
    if key not in _hash_cache:
        with contextlib.suppress(OSError, ValueError):
            _hash_cache.update(read_json(_hash_cache_path()))
    entry = _hash_cache.get(key)
    if entry and entry[:2] == stamp:
        return entry[2]
    digest = file_sha256(path, cached=False)
    _hash_cache[key] = stamp + [digest]
    with contextlib.suppress(OSError):  # a read-only cache only costs a rehash next time
        write_json(_hash_cache_path(), _hash_cache)
    return digest
