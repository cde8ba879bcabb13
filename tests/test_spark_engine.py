"""DMP_ENGINE=spark: the whole asset graph on local Spark, and every mart equal to DuckDB's.

One Spark run of every asset (ingestion -> lake -> dbt build with its data tests on Spark ->
ML -> audiences -> snapshot -> report) from the landing zone of the session's small DuckDB
warehouse, whose marts are the reference; of the data tests, all but dbt's own column tests.
"""

import math
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from conftest import materialise_everything

from dmp_cli.commands import main
from marts import SCHEMA

pytestmark = pytest.mark.long_running

# relative tolerance of float values: the engines may sum in another order
REL_TOL = 1e-9


# dbt's own column tests, the same SQL on every adapter: the DuckDB builds run all ~280, and
# each costs the Spark build ~0.3 s of query overhead. Our generic tests (dmp_*), unique,
# relationships and the singular tests still run on Spark.
ADAPTER_COLUMN_TESTS = ("not_null_", "accepted_values_")


def spark_selection() -> dg.AssetSelection:
    """Every asset and check but dbt's own column tests."""
    from dagster_dmp.assets.warehouse import warehouse_models

    column_tests = [
        key for key in warehouse_models.check_keys if key.name.startswith(ADAPTER_COLUMN_TESTS)
    ]
    assert len(column_tests) > 200, "the dbt tests are no longer named as dbt names them"
    return dg.AssetSelection.all() - dg.AssetSelection.checks(*column_tests)


@pytest.fixture(scope="module")
def spark_root(small_warehouse_template: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spark_engine")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DMP_ENGINE", "spark")
        env.setenv("DMP_SPARK_DIR", str(root / "spark"))
        run = materialise_everything(small_warehouse_template / "landing", root, spark_selection())
    failed = [event.step_key for event in run.result.get_step_failure_events()]
    assert run.result.success, f"the Spark run failed in {failed}"
    return root


def mart_names(con: duckdb.DuckDBPyConnection, database: str) -> list[str]:
    return [
        name
        for (name,) in con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = ? and table_schema = ? order by table_name",
            [database, SCHEMA],
        ).fetchall()
    ]


def column_types(con: duckdb.DuckDBPyConnection, database: str, name: str) -> list[tuple]:
    return con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema = ? and table_name = ? order by ordinal_position",
        [database, SCHEMA, name],
    ).fetchall()


def differences(duck: pd.DataFrame, spark: pd.DataFrame) -> list[str]:
    """Where two marts (rows in the same order) differ: floats to a relative REL_TOL, every
    other value exactly."""
    if list(duck.columns) != list(spark.columns):
        return [f"columns {list(duck.columns)} != {list(spark.columns)}"]
    if len(duck) != len(spark):
        return [f"{len(duck)} rows != {len(spark)} rows"]
    found = []
    for column in duck.columns:
        for row, (a, b) in enumerate(zip(duck[column], spark[column], strict=True)):
            if pd.isna(a) and pd.isna(b):
                continue
            if isinstance(a, float) or isinstance(b, float):
                same = not (pd.isna(a) or pd.isna(b)) and math.isclose(
                    float(a), float(b), rel_tol=REL_TOL, abs_tol=1e-12
                )
            else:
                same = a == b
            if not same:
                found.append(f"{column} row {row}: duckdb {a!r}, spark {b!r}")
                break
    return found


@pytest.mark.spark
def test_every_mart_equals_duckdbs(spark_root: Path, small_warehouse_template: Path):
    """The Spark run's marts (views over Spark's Parquet in its DuckDB file) against the
    DuckDB build of the same landing data: names, row counts, keys and values."""
    con = duckdb.connect()
    con.execute(
        f"attach '{small_warehouse_template / 'warehouse' / 'dmp.duckdb'}' as duck (read_only)"
    )
    con.execute(f"attach '{spark_root / 'warehouse' / 'dmp.duckdb'}' as spark (read_only)")
    names = mart_names(con, "duck")
    assert names and mart_names(con, "spark") == names
    unequal = {}
    for name in names:
        types = [column_types(con, db, name) for db in ("duck", "spark")]
        # every column sorted on, ids first: the same rows line up
        frames = [
            con.execute(f"select * from {db}.{SCHEMA}.{name} order by all").df()
            for db in ("duck", "spark")
        ]
        found = differences(*frames) if types[0] == types[1] else [f"types {types}"]
        if found:
            unequal[name] = found[:3]
    assert not unequal, f"marts differ between DuckDB and Spark: {unequal}"


@pytest.mark.spark
def test_consumers_ran_on_the_spark_marts(spark_root: Path):
    """ML, audiences, the snapshot and the report read Spark's marts and wrote their outputs
    to the DuckDB file, and the lake holds what ingestion merged."""
    with duckdb.connect(str(spark_root / "warehouse" / "dmp.duckdb"), read_only=True) as con:
        kinds = dict(
            con.execute(
                "select table_name, table_type from information_schema.tables "
                f"where table_schema = '{SCHEMA}'"
            ).fetchall()
        )
        assert set(kinds.values()) == {"VIEW"}, kinds
        segments, recommended = con.execute(
            "select (select count(*) from ml.person_segments),"
            " (select count(*) from ml.recommendations)"
        ).fetchone()
        raw, lake = con.execute(
            "select (select count(*) from raw.web_events), (select count(*) from read_parquet(?))",
            [str(spark_root / "spark" / "lake" / "raw" / "web_events" / "*.parquet")],
        ).fetchone()
    assert segments > 0 and recommended > 0
    assert raw == lake > 0
    assert (spark_root / "reports" / "index.html").is_file()


def test_an_unknown_engine_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DMP_ENGINE", "nonsense")
    monkeypatch.setenv("DMP_DUCKDB_PATH", str(tmp_path / "dmp.duckdb"))
    assert main(["run"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        "dmp run: error: DMP_ENGINE='nonsense' is not an engine: use one of duckdb, spark"
    )
