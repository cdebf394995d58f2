"""Under CI (CI=true, as `.ci/run` runs), tests that need the shared sample data fail
when ../shared/data is missing instead of skipping; other skips (an optional package
not installed) stay skips. Checked by running pytest on a copy of tests/conftest.py in
a checkout with no ../shared beside it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import pytest


def test_needs_the_samples(hdtf_samples):
    assert (hdtf_samples / "real").is_dir()


def test_needs_an_optional_package():
    pytest.importorskip("lipbench_no_such_optional_package")
"""


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """tests/conftest.py and a probe test in a checkout without ../shared beside it."""
    root = tmp_path_factory.mktemp("ci") / "checkout"
    (root / "tests").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "conftest.py", root / "tests" / "conftest.py")
    (root / "tests" / "test_probe.py").write_text(PROBE)
    assert not (root.parent / "shared").exists()
    return root


def run_pytest(checkout: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("ci", [None, "false"])
def test_missing_shared_data_skips_outside_ci(checkout, ci):
    done = run_pytest(checkout, ci)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 skipped" in done.stdout and "shared HDTF samples not found" in done.stdout, done.stdout[-3000:]


def test_missing_shared_data_fails_under_ci(checkout):
    done = run_pytest(checkout, "true")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "1 skipped, 1 error" in done.stdout, done.stdout[-3000:]  # the optional package: still a skip
    assert "shared HDTF samples not found" in done.stdout and "CI needs the sample data" in done.stdout
