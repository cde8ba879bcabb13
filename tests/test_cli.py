"""The `dmp` command: help everywhere, one-line errors, non-zero exits."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

DMP = Path(sys.executable).with_name("dmp")


@pytest.mark.parametrize("command", [[], ["generate"], ["run"], ["demo"], ["collect"]])
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


def test_run_with_a_corrupt_landing_file_loads_the_rest_and_exits_non_zero(tmp_path, small_landing):
    landing = tmp_path / "landing"
    shutil.copytree(small_landing, landing)
    (landing / "web_events" / "zz-corrupt.jsonl.gz").write_bytes(b"\x1f\x8b not gzip at all")
    env = {
        **os.environ,
        "DMP_LANDING_DIR": str(landing),
        "DMP_DUCKDB_PATH": str(tmp_path / "dmp.duckdb"),
        "DMP_REPORTS_DIR": str(tmp_path / "reports"),
    }
    env.pop("DAGSTER_HOME", None)
    completed = subprocess.run(
        [str(DMP), "run", "--select", "group:ingestion"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert completed.returncode == 1
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("dmp run: error:") and "web_events/zz-corrupt.jsonl.gz" in last_line
    with duckdb.connect(str(tmp_path / "dmp.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.web_events").fetchone()[0] > 0


def test_collect_without_write_keys_refuses_to_start(tmp_path):
    environment = {**os.environ, "DMP_WRITE_KEYS": "", "DMP_LANDING_DIR": str(tmp_path)}
    completed = subprocess.run(
        [str(DMP), "collect", "--port", "0"],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        timeout=60,
    )
    assert completed.returncode == 1
    assert "DMP_WRITE_KEYS" in completed.stderr
    assert completed.stderr.count("error") == 1
