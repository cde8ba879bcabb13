"""One writer at a time: concurrent `dmp run`s on one warehouse wait for each other, and
`--no-wait` refuses at once with exit 75 and who holds the warehouse."""

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from dagster_dmp.warehouse_lock import EXIT_BUSY, warehouse_lock

DMP = Path(sys.executable).with_name("dmp")
INGESTION = "group:ingestion"


def _env(root: Path, landing: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DMP_DUCKDB_PATH": str(root / "dmp.duckdb"),
        "DMP_LANDING_DIR": str(landing),
        "DMP_REPORTS_DIR": str(root / "reports"),
        "DMP_EXPORTS_DIR": str(root / "exports"),
        "DMP_PRIVACY_DIR": str(root / "privacy"),
    }


def _raw_counts(database: Path) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as con:
        tables = [
            name
            for (name,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'raw'"
                " and not starts_with(table_name, '_dlt') order by 1"
            ).fetchall()
        ]
        return {
            name: con.execute(f"select count(*) from raw.{name}").fetchone()[0] for name in tables
        }


def test_two_runs_started_together_wait_for_each_other_and_equal_one_run(tmp_path, small_landing):
    env = _env(tmp_path / "shared", small_landing)
    runs = [
        subprocess.Popen(
            [str(DMP), "run", "--select", INGESTION],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    waited = [output for output in outputs if "waiting for the warehouse" in output]
    assert len(waited) == 1, outputs
    assert "in use by dmp run (pid" in waited[0]
    assert "warehouse free after" in waited[0]

    single = _env(tmp_path / "single", small_landing)
    subprocess.run(
        [str(DMP), "run", "--select", INGESTION], env=single, check=True, capture_output=True
    )
    together = _raw_counts(tmp_path / "shared" / "dmp.duckdb")
    assert together == _raw_counts(tmp_path / "single" / "dmp.duckdb")
    assert together["web_events"] > 0


def test_no_wait_exits_75_at_once_naming_the_holder_and_writes_nothing(tmp_path, small_landing):
    env = _env(tmp_path, small_landing)
    database = tmp_path / "dmp.duckdb"
    with warehouse_lock(database, "a nightly rebuild"):
        started = time.monotonic()
        refused = subprocess.run(
            [str(DMP), "run", "--no-wait", "--select", INGESTION],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert time.monotonic() - started < 60
    assert refused.returncode == EXIT_BUSY
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "in use by a nightly rebuild (pid" in lines[0]
    assert "--no-wait" in lines[0]
    assert not database.exists()  # nothing was written
