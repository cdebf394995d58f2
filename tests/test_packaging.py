"""What ships: the YAML the package reads by name (the demo config, the HDTF split, the
paper's table) must be real files inside the wheel, so an installed lipbench (not an
editable checkout) finds them; and the repository holds no symlinks (they break on
Windows checkouts and in sdists)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO


def tracked_files() -> list[tuple[str, str]]:
    """(mode, path) of every file git tracks; skips outside a git checkout."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    out = subprocess.run(["git", "ls-files", "-s"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [(line.split()[0], line.split("\t", 1)[1]) for line in out.splitlines()]


def test_no_symlinks_are_tracked():
    links = [path for mode, path in tracked_files() if mode == "120000"]
    assert links == [], f"symlinks in the repository: {links}"


def test_wheel_ships_the_yaml_the_package_reads(tmp_path):
    source = tmp_path / "src"
    for mode, path in tracked_files():
        if path.startswith("lipbench/") or path in ("pyproject.toml", "README.md", "LICENSE"):
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / path, source / path)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("lipbench-*.whl")
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".yaml")}
    in_package = {str(p.relative_to(source)) for p in (source / "lipbench").rglob("*.yaml")}
    assert in_package and shipped == in_package

    # Installed from the wheel alone, each is found by name.
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], check=True
    )
    probe = (
        "import lipbench, pathlib, sys\n"
        "assert pathlib.Path(lipbench.__file__).is_relative_to(sys.argv[1]), lipbench.__file__\n"
        "from lipbench.config import load_config\n"
        "from lipbench.data.hdtf import split_manifest\n"
        "from lipbench.report.paper import load_paper\n"
        "split = split_manifest('hdtf_test33')\n"
        "print(load_config('demo').name, len(split.clips), load_paper('lip_forcing')['split'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", probe, str(site)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["demo", "33", "hdtf_test33"]
