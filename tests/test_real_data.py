"""The whole pipeline on real public datasets: data nobody here invented."""

from pathlib import Path

import duckdb
import pytest
from conftest import materialise_everything

from ingestion.channels import CHANNELS
from ingestion.importers import IMPORTERS, import_dataset

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.mark.parametrize("dataset", ["online-retail", "taobao"])
def test_real_dataset_runs_end_to_end_and_reconciles(dataset, tmp_path):
    source = REAL_DATA / IMPORTERS[dataset].folder
    if not source.is_dir():
        pytest.skip(f"real dataset not found: {source}")
    landing = tmp_path / "landing"
    summary = import_dataset(dataset, source, landing)
    run = materialise_everything(landing, tmp_path)

    failures = [event.step_key for event in run.result.all_events if event.is_step_failure]
    assert run.result.success, failures
    failed_checks = [
        f"{check.asset_key.to_user_string()}:{check.check_name}"
        for check in run.result.get_asset_check_evaluations()
        if not check.passed and check.severity.value == "ERROR"
    ]
    assert failed_checks == []

    with duckdb.connect(str(run.duckdb_path), read_only=True) as con:
        for folder, written in summary["rows_written"].items():
            channel = CHANNELS[folder]
            lines, loaded, duplicates, rejected = con.execute(
                f"select sum(lines), sum(loaded_lines), sum(duplicate_lines), sum(rejected_lines) "
                f"from raw.{channel.files_table}"
            ).fetchone()
            raw_rows = con.execute(f"select count(*) from raw.{channel.table}").fetchone()[0]
            quarantined = con.execute(
                f"select count(*) from raw.{channel.quarantine_table} where not loaded"
            ).fetchone()[0]
            assert lines == written, f"{folder}: every landed row is read"
            assert raw_rows == loaded == lines - duplicates - rejected, folder
            assert quarantined == rejected, folder
        assert con.execute("select count(*) from marts.person_profiles").fetchone()[0] > 100
        assert con.execute("select count(*) from ml.person_segments").fetchone()[0] > 100
    assert (run.reports / "index.html").stat().st_size > 1000
