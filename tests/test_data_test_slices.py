"""Incremental builds test the event-heavy models' recent days only (DMP_TEST_RECENT_SLICE,
macro get_where_subquery); every other build tests every row. Shown on a
copy of the small warehouse with planted duplicates in int_events_deduplicated."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
from conftest import copy_of_small_warehouse

from dagster_dmp.settings import DBT_PROJECT_DIR

DBT = Path(sys.executable).with_name("dbt")
EVENTS = "intermediate.int_events_deduplicated"


@dataclass
class EventsWarehouse:
    database: Path
    work: Path

    def unique_test(self, recent_slice: bool) -> str:
        """The status of the unique test on int_events_deduplicated.event_id."""
        command = [str(DBT), "test", "--select", "int_events_deduplicated,test_name:unique"]
        command += ["--target-path", str(self.work / "target")]
        command += ["--log-path", str(self.work / "logs")]
        slice_env = {"DMP_TEST_RECENT_SLICE": str(recent_slice).lower()}
        subprocess.run(
            command,
            cwd=DBT_PROJECT_DIR,
            env={**os.environ, "DMP_DUCKDB_PATH": str(self.database), **slice_env},
            capture_output=True,
            check=False,
        )
        results = json.loads((self.work / "target" / "run_results.json").read_text())["results"]
        results = [result for result in results if result["unique_id"].startswith("test.")]
        assert len(results) == 1, [result["unique_id"] for result in results]
        return results[0]["status"]

    def duplicate(self, oldest: bool) -> None:
        """Stores a second copy of the oldest (or the newest) event."""
        order = "asc" if oldest else "desc"
        with duckdb.connect(str(self.database)) as con:
            con.execute(
                f"insert into {EVENTS} select * from {EVENTS} order by event_at {order} limit 1"
            )


def test_an_incremental_build_tests_the_new_days_and_a_full_one_every_row(
    small_warehouse_template, tmp_path
):
    paths = copy_of_small_warehouse(small_warehouse_template, tmp_path)
    warehouse = EventsWarehouse(paths["DMP_DUCKDB_PATH"], tmp_path / "dbt")
    warehouse.duplicate(oldest=True)
    assert warehouse.unique_test(recent_slice=False) == "fail", "a plain build tests every row"
    assert warehouse.unique_test(recent_slice=True) == "pass", "the old copy is not in the slice"
    warehouse.duplicate(oldest=False)
    assert warehouse.unique_test(recent_slice=True) == "fail", "the slice holds the newest days"
