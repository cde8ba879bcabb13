"""dlt pipelines that load landing channels into the DuckDB `raw` dataset."""

from datetime import timedelta
from pathlib import Path

import dlt

from ingestion.api import DEFAULT_LOOKBACK
from ingestion.channels import Channel
from ingestion.sources import channel_source

RAW_DATASET = "raw"


def pipelines_dir(duckdb_path: Path) -> Path:
    """dlt's working state lives beside its warehouse, so two warehouses never share it."""
    duckdb_path = Path(duckdb_path)
    return duckdb_path.parent / f".{duckdb_path.stem}_dlt"


def channel_pipeline(channel: Channel, duckdb_path: Path) -> dlt.Pipeline:
    duckdb_path = Path(duckdb_path).resolve()
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=f"dmp_{channel.folder}",
        destination=dlt.destinations.duckdb(credentials=str(duckdb_path)),
        dataset_name=RAW_DATASET,
        pipelines_dir=str(pipelines_dir(duckdb_path)),
    )


def load_channel(
    channel: Channel,
    landing_dir: Path,
    duckdb_path: Path,
    api_url: str | None = None,
    api_lookback: timedelta = DEFAULT_LOOKBACK,
) -> dlt.common.pipeline.LoadInfo:
    """Load one channel outside Dagster (benchmarks, scripts, tests)."""
    pipeline = channel_pipeline(channel, duckdb_path)
    info = pipeline.run(
        channel_source(channel, landing_dir, api_url=api_url, api_lookback=api_lookback)
    )
    info.raise_on_failed_jobs()
    return info
