"""Resources: configuration chosen by environment, never hard-coded in assets; and the
helpers that turn what the assets wrote into metadata for the UI."""

import base64
import html
import importlib.metadata
import io
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from dagster_dbt import DbtCliResource
from dagster_dlt import DagsterDltResource
from packaging.version import Version
from PIL import Image
from pydantic import Field

from dagster_dmp import settings
from dagster_dmp.project import dbt_project
from dagster_dmp.warehouse_lock import acquire, release
from ingestion.channels import CHANNELS
from marts import Mart, attach_parquet_marts, read_mart


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse, the landing zone it is fed from, where reports go, and the
    privacy folder (the suppression list of erased persons). With engine `spark`, dbt builds
    on Spark from the lake (raw Parquet) and Python reads the marts Spark wrote through views
    in the DuckDB warehouse, which keeps everything else (raw, quarantine, ml.*)."""

    duckdb_path: str
    landing_dir: str
    reports_dir: str
    privacy_dir: str
    # the published snapshots serving reads; default: settings.serving_dir beside the warehouse
    serving_dir: str = ""
    # channel folder -> API URL for channels that also pull from an HTTP API
    api_urls: dict[str, str] = Field(default_factory=dict)
    api_lookback_hours: float = 72
    engine: str = "duckdb"
    # DMP_ENGINE=spark: where ingestion copies the raw tables, where Spark keeps what dbt built
    lake_dir: str = ""
    spark_warehouse_dir: str = ""

    @property
    def database(self) -> Path:
        return Path(self.duckdb_path)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A run holds the warehouse's lock from start to end: one writer at a time (runs
        the UI or the daemon launch wait here; `dmp run` already holds it)."""
        run = context.run
        holder = f"Dagster run {run.run_id[:8]} ({run.job_name})" if run else "a Dagster run"
        acquire(self.database, holder, on_wait=context.log.info if context.log else None)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        release(self.database)

    @property
    def landing(self) -> Path:
        return Path(self.landing_dir)

    @property
    def reports(self) -> Path:
        return Path(self.reports_dir)

    @property
    def privacy(self) -> Path:
        return Path(self.privacy_dir)

    @property
    def serving(self) -> Path:
        return Path(self.serving_dir) if self.serving_dir else settings.serving_dir(self.database)

    @property
    def lake(self) -> Path:
        return Path(self.lake_dir)

    @property
    def on_spark(self) -> bool:
        return self.engine == "spark"

    def attach_spark_marts(self) -> list[str]:
        """After a dbt build on Spark: `marts.<name>` in the DuckDB warehouse reads Spark's."""
        with self.connect() as con:
            return attach_parquet_marts(con, Path(self.spark_warehouse_dir))

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

    def read_mart(
        self,
        mart: Mart,
        columns: Sequence[str] | None = None,
        order_by: Sequence[str] = (),
        where: str = "",
    ) -> pd.DataFrame:
        """A dbt mart, or its `columns`, or its rows that satisfy `where`, as a data frame: how
        Python reads the warehouse."""
        with self.connect(read_only=True) as con:
            return read_mart(con, mart, columns, order_by, where)

    def row_counts(self, tables: Iterable[str]) -> dict[str, int]:
        """Rows in each `schema.table` the warehouse holds (tables, and the views over Spark's
        marts), for `dagster/row_count`; one it does not hold is left out."""
        with self.connect(read_only=True) as con:
            existing = {
                f"{schema}.{table}"
                for schema, table in con.execute(
                    "select schema_name, table_name from duckdb_tables() union all "
                    "select schema_name, view_name from duckdb_views() where not internal"
                ).fetchall()
            }
            return {
                table: con.execute(f"select count(*) from {table}").fetchone()[0]
                for table in tables
                if table in existing
            }

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


def markdown_preview(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    """The first rows as a table on the asset's page: what the output looks like at a glance.
    Without person ids: Dagster keeps metadata in its event log for good, where an erasure
    (`dmp forget`) could not reach them."""
    shown = frame.drop(columns=[c for c in frame.columns if c == "person_id"]).head(rows)
    return dg.MetadataValue.md(shown.to_markdown(index=False, floatfmt=".4g"))


def markdown_figures(figures: Iterable[tuple[str, Path]], width: int = 400) -> dg.MetadataValue:
    """Each (title, PNG file) as a heading, its file and a thumbnail `width` px wide inlined as
    a data URI (Dagster's UI renders them; 64 colours keep one at ~5-10 kB of event log)."""
    parts = []
    for title, path in figures:
        with Image.open(path) as image:
            image.thumbnail((width, width * 4))
            thumbnail = io.BytesIO()
            image.convert("RGB").quantize(colors=64).save(thumbnail, format="PNG", optimize=True)
        data = base64.b64encode(thumbnail.getvalue()).decode("ascii")
        parts += [
            f"**{html.escape(title)}** (`{path}`)",
            f"![{html.escape(title)}](data:image/png;base64,{data})",
        ]
    return dg.MetadataValue.md("\n\n".join(parts))


class DbtResource(DbtCliResource):
    """dagster-dbt's dbt CLI resource without two fixed costs it adds to every build (~4 s of
    every micro-batch): it asks the dbt executable for its version in a subprocess (2.4 s), and
    sets up a dbt adapter in this process (1.7 s) that only its fetch_row_counts and
    fetch_column_metadata use; the warehouse assets count rows once dbt is done instead
    (assets/warehouse.py, with_row_counts)."""

    @cached_property
    def _cli_version(self) -> Version:
        # the dbt executable is this environment's own (build_resources)
        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources of the engine DMP_ENGINE names; the asset graph is the same on each."""
    settings.export_duckdb_path()
    return {
        "warehouse": WarehouseResource(
            duckdb_path=str(settings.duckdb_path()),
            landing_dir=str(settings.landing_dir()),
            reports_dir=str(settings.reports_dir()),
            privacy_dir=str(settings.privacy_dir()),
            serving_dir=str(settings.serving_dir()),
            api_urls=settings.api_urls([c.folder for c in CHANNELS.values() if c.api_cursor]),
            api_lookback_hours=settings.api_lookback_hours(),
            engine=settings.engine(),
            lake_dir=str(settings.lake_dir()),
            spark_warehouse_dir=str(settings.spark_warehouse_dir()),
        ),
        "dlt": DagsterDltResource(),
        "dbt": DbtResource(
            project_dir=dbt_project,
            dbt_executable=str(Path(sys.executable).with_name("dbt")),
            target=settings.dbt_target(),
        ),
    }
