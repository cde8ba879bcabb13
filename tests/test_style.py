"""The code stays lint-clean and formatted (ruff, configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

from dagster_dmp.settings import REPO_ROOT

RUFF = Path(sys.executable).with_name("ruff")


def test_ruff_check():
    completed = subprocess.run(
        [str(RUFF), "check", "--output-format", "concise", "."],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout


def test_ruff_format():
    completed = subprocess.run(
        [str(RUFF), "format", "--check", "."],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout
