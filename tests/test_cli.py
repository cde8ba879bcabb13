"""The `dmp` command: help everywhere, one-line errors, non-zero exits."""

import subprocess
import sys
from pathlib import Path

import pytest

DMP = Path(sys.executable).with_name("dmp")


@pytest.mark.parametrize("command", [[], ["generate"], ["run"], ["demo"]])
def test_every_command_has_help(command):
    completed = subprocess.run(
        [str(DMP), *command, "--help"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0
    assert "usage: dmp" in completed.stdout


def test_bad_arguments_exit_non_zero_with_one_line_reason(tmp_path):
    completed = subprocess.run(
        [str(DMP), "generate", "--persons", "0", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode != 0
    lines = [line for line in completed.stderr.splitlines() if not line.startswith("[dmp]")]
    assert len(lines) == 1 and "error" in lines[0] and "persons" in lines[0]
