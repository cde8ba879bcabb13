"""`dmp run` stops early when nothing changed since the last successful run of the same
selection, and rebuilds when a landing file, the code or a setting changed, when the last run
failed, or with --full (the real CLI on a small real warehouse)."""

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dmp_cli import build_state

DMP = Path(sys.executable).with_name("dmp")
INGESTION = "group:ingestion"  # a real run that stays small: every channel into raw.*


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, small_landing) -> dict[str, str]:
    root = tmp_path_factory.mktemp("build_state")
    landing = root / "landing"
    shutil.copytree(small_landing, landing)
    env = {
        **os.environ,
        "DMP_LANDING_DIR": str(landing),
        "DMP_DUCKDB_PATH": str(root / "warehouse" / "dmp.duckdb"),
        "DMP_REPORTS_DIR": str(root / "reports"),
        "DMP_PRIVACY_DIR": str(root / "privacy"),
    }
    env.pop("DAGSTER_HOME", None)
    return env


def dmp_run(env: dict[str, str], *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DMP), "run", "--select", INGESTION, *options],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def runs(env: dict[str, str]) -> list[tuple]:
    with duckdb.connect(env["DMP_DUCKDB_PATH"], read_only=True) as con:
        return con.execute(
            f"select run_id, selection, full_rebuild, succeeded from {build_state.TABLE} "
            "order by started_at"
        ).fetchall()


def test_nothing_new_stops_early_and_full_rebuilds(warehouse):
    first = dmp_run(warehouse)
    assert first.returncode == 0, first.stderr
    (run_id, selection, full, succeeded), *_ = runs(warehouse)
    assert (selection, full, succeeded) == (INGESTION, False, True)

    again = dmp_run(warehouse)
    assert again.returncode == 0, again.stderr
    (said,) = [line for line in again.stderr.splitlines() if line.startswith("[dmp]")]
    assert f"nothing new since run {run_id}" in said and "use --full to rebuild" in said
    assert len(runs(warehouse)) == 1  # nothing ran, nothing recorded

    forced = dmp_run(warehouse, "--full")
    assert forced.returncode == 0, forced.stderr
    assert "nothing new" not in forced.stderr and "ingest_web_events" in forced.stderr
    assert runs(warehouse)[-1][2:] == (True, True)


def test_a_new_file_changed_code_or_settings_are_not_up_to_date(warehouse, monkeypatch):
    """The decision `dmp run` takes, on the warehouse the runs above recorded."""
    database = Path(warehouse["DMP_DUCKDB_PATH"])
    for name, value in warehouse.items():  # the settings the runs saw
        if name.startswith("DMP_"):
            monkeypatch.setenv(name, value)
    if not database.exists():
        assert dmp_run(warehouse).returncode == 0
    inputs = build_state.current_inputs()
    assert build_state.up_to_date_run(database, INGESTION, inputs) is not None
    other_code = dataclasses.replace(inputs, code="another version of the code")
    assert build_state.up_to_date_run(database, INGESTION, other_code) is None
    assert build_state.up_to_date_run(database, "group:ml", inputs) is None  # never ran
    monkeypatch.setenv("DMP_BLOCKING_CHECKS", "all")
    assert build_state.up_to_date_run(database, INGESTION, build_state.current_inputs()) is None
    monkeypatch.setenv("DMP_LOGS_DIR", str(database.parent / "other_logs"))
    monkeypatch.delenv("DMP_BLOCKING_CHECKS")
    assert build_state.up_to_date_run(database, INGESTION, build_state.current_inputs())
    landing = Path(warehouse["DMP_LANDING_DIR"]) / "web_events"
    shutil.copyfile(max(landing.glob("*.jsonl.gz")), landing / "web_events_late.jsonl.gz")
    assert build_state.up_to_date_run(database, INGESTION, build_state.current_inputs()) is None


def test_a_failed_run_is_recorded_and_not_up_to_date(tmp_path, small_landing, monkeypatch):
    landing = tmp_path / "landing"
    shutil.copytree(small_landing, landing)
    (landing / "web_events" / "zz-corrupt.jsonl.gz").write_bytes(b"\x1f\x8b not gzip at all")
    env = {
        **os.environ,
        "DMP_LANDING_DIR": str(landing),
        "DMP_DUCKDB_PATH": str(tmp_path / "dmp.duckdb"),
        "DMP_PRIVACY_DIR": str(tmp_path / "privacy"),
        # The unreadable file's check is an error: the run fails.
        "DMP_BLOCKING_CHECKS": "landing_files_readable",
    }
    env.pop("DAGSTER_HOME", None)
    failed = dmp_run(env)
    assert failed.returncode == 1, failed.stderr
    assert "landing_files_readable" in failed.stderr
    assert [row[3] for row in runs(env)] == [False]
    for name, value in env.items():
        if name.startswith("DMP_"):
            monkeypatch.setenv(name, value)
    inputs = build_state.current_inputs()
    assert build_state.up_to_date_run(tmp_path / "dmp.duckdb", INGESTION, inputs) is None
