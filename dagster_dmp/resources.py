"""Resources: configuration chosen by environment, never hard-coded in assets."""

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from dagster_dbt import DbtCliResource
from dagster_dlt import DagsterDltResource
from pydantic import Field

from dagster_dmp import settings
from dagster_dmp.project import dbt_project
from ingestion.channels import CHANNELS


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse, the landing zone it is fed from, and where reports go."""

    duckdb_path: str
    landing_dir: str
    reports_dir: str
    # channel folder -> API URL for channels that also pull from an HTTP API
    api_urls: dict[str, str] = Field(default_factory=dict)
    api_lookback_hours: float = 72

    @property
    def database(self) -> Path:
        return Path(self.duckdb_path)

    @property
    def landing(self) -> Path:
        return Path(self.landing_dir)

    @property
    def reports(self) -> Path:
        return Path(self.reports_dir)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection: DuckDB allows one writer, so never hold it across steps."""
        con = duckdb.connect(self.duckdb_path, read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def read_frame(self, query: str) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            return con.execute(query).df()

    def replace_tables(self, tables: Mapping[str, pd.DataFrame]) -> None:
        """Write each frame as `schema.table` in one transaction: readers see all or none."""
        with self.connect() as con:
            con.execute("begin")
            for name, frame in tables.items():
                schema = name.split(".")[0]
                con.execute(f"create schema if not exists {schema}")
                con.register("frame_to_write", frame)
                con.execute(f"create or replace table {name} as select * from frame_to_write")
                con.unregister("frame_to_write")
            con.execute("commit")


def build_resources() -> dict[str, dg.ConfigurableResource]:
    settings.export_duckdb_path()
    return {
        "warehouse": WarehouseResource(
            duckdb_path=str(settings.duckdb_path()),
            landing_dir=str(settings.landing_dir()),
            reports_dir=str(settings.reports_dir()),
            api_urls=settings.api_urls([c.folder for c in CHANNELS.values() if c.api_cursor]),
            api_lookback_hours=settings.api_lookback_hours(),
        ),
        "dlt": DagsterDltResource(),
        "dbt": DbtCliResource(
            project_dir=dbt_project,
            dbt_executable=str(Path(sys.executable).with_name("dbt")),
        ),
    }
