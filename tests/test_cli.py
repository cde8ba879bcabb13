"""The `dmp` command: help everywhere, one-line errors, non-zero exits."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.long_running

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


def test_run_names_a_corrupt_landing_file_loads_the_rest_and_prints_a_line_per_step(
    tmp_path, small_landing
):
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
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert all(line.startswith("[dmp] ") for line in lines), lines
    steps = [line for line in lines if line.startswith("[dmp] ingest_")]
    assert len(steps) == 8 and "web_events" in steps[-1] and "quarantined" in steps[-1]
    (named,) = [line for line in lines if "landing file web_events/zz-corrupt" in line]
    assert "unreadable file: zlib.error" in named
    assert len(lines) <= 25  # one line per step and per problem, not Dagster's event log
    log_path = Path(lines[-1].rsplit("full log: ", 1)[1])
    assert "STEP_SUCCESS" in log_path.read_text()  # Dagster's own log is in the file
    with duckdb.connect(str(tmp_path / "dmp.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.web_events").fetchone()[0] > 0


def test_an_unexpected_error_is_one_line_and_a_traceback_only_with_debug(tmp_path):
    env = {**os.environ, "DMP_DUCKDB_PATH": str(tmp_path / "dmp.duckdb")}
    command = [str(DMP), "run", "--select", "key:no/such_asset"]
    plain = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert plain.returncode == 1
    errors = [line for line in plain.stderr.splitlines() if not line.startswith("[dmp]")]
    assert len(errors) == 1 and errors[0].startswith("dmp run: error:"), plain.stderr
    debug = subprocess.run(
        [*command, "--debug"], capture_output=True, text=True, check=False, env=env
    )
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr


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


def test_a_run_on_an_empty_landing_zone_builds_every_asset_and_exits_0(tmp_path):
    """No data at all is a shape of data too: every asset materialises (empty, with notes)."""
    (tmp_path / "landing").mkdir()
    env = {
        **os.environ,
        "DMP_LANDING_DIR": str(tmp_path / "landing"),
        "DMP_DUCKDB_PATH": str(tmp_path / "dmp.duckdb"),
        "DMP_REPORTS_DIR": str(tmp_path / "reports"),
        "DMP_EXPORTS_DIR": str(tmp_path / "exports"),
        "DMP_PRIVACY_DIR": str(tmp_path / "privacy"),
    }
    env.pop("DAGSTER_HOME", None)
    completed = subprocess.run(
        [str(DMP), "run"], capture_output=True, text=True, check=False, env=env
    )
    assert completed.returncode == 0, completed.stderr
    assert "FAILED" not in completed.stderr and "skipped" not in completed.stderr
    assert (tmp_path / "reports" / "index.html").exists()
    with duckdb.connect(str(tmp_path / "dmp.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from marts.person_profiles").fetchone() == (0,)
