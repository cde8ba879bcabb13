"""The lake: a channel's raw table as Parquet files, where Spark reads it (DMP_ENGINE=spark).

Ingestion loads DuckDB as on every engine (the ledger, the quarantine and the merge on the
natural key happen there, once); a dlt pipeline with the filesystem destination then copies
the merged raw table to `<lake>/raw/<table>/`, replacing the previous copy. dbt on Spark
declares `raw.<table>` over that folder (dbt_project/macros/raw_lake.sql).
"""

from collections.abc import Iterator
from pathlib import Path

import dlt
import duckdb
import pyarrow as pa

from ingestion.channels import Channel
from ingestion.pipeline import RAW_DATASET, pipelines_dir

# Rows per Parquet batch: a big raw table streams through in bounded memory.
BATCH_ROWS = 200_000


def lake_pipeline(channel: Channel, lake_dir: Path, duckdb_path: Path) -> dlt.Pipeline:
    """dlt's working state sits beside the warehouse's, under a name of its own."""
    lake_dir = Path(lake_dir).resolve()
    lake_dir.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=f"dmp_lake_{channel.folder}",
        destination=dlt.destinations.filesystem(bucket_url=lake_dir.as_uri()),
        dataset_name=RAW_DATASET,
        pipelines_dir=str(pipelines_dir(duckdb_path)),
    )


def raw_table(channel: Channel, duckdb_path: Path) -> dlt.sources.DltResource:
    """The channel's raw table in the warehouse, read in Arrow batches."""

    @dlt.resource(name=channel.table, write_disposition="replace", file_format="parquet")
    def rows() -> Iterator[pa.Table]:
        with duckdb.connect(str(duckdb_path), read_only=True) as con:
            reader = con.sql(f"select * from {RAW_DATASET}.{channel.table}").to_arrow_reader(
                BATCH_ROWS
            )
            empty = True
            for batch in reader:
                empty = False
                yield pa.Table.from_batches([batch])
            if empty:
                # an empty table still goes out as one file: Spark takes the columns from it
                yield reader.schema.empty_table()

    return rows


def copy_to_lake(channel: Channel, duckdb_path: Path, lake_dir: Path) -> Path:
    """Replace the channel's table in the lake with the warehouse's; returns its folder."""
    info = lake_pipeline(channel, lake_dir, duckdb_path).run(raw_table(channel, duckdb_path))
    info.raise_on_failed_jobs()
    return Path(lake_dir).resolve() / RAW_DATASET / channel.table
