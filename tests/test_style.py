"""The house style: ruff's linter and formatter, with pyproject.toml's settings, clean on
the whole tree (the test extra installs the pinned ruff)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import in_ci

REPO = Path(__file__).resolve().parents[1]


def ruff() -> list[str]:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        if in_ci():
            pytest.fail("ruff is not installed (pip install -e '.[test]' installs it)")
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return [found]


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff_is_clean(command):
    done = subprocess.run(ruff() + command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"ruff {' '.join(command)} (fix with: ruff check --fix . / ruff format .):\n"
        + (done.stdout + done.stderr)[-4000:]
    )
