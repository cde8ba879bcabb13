"""dlt pipelines that load landing channels into the DuckDB `raw` dataset."""

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from ingestion.api import DEFAULT_LOOKBACK
from ingestion.channels import Channel
from ingestion.sources import channel_source

RAW_DATASET = "raw"


def pipelines_dir(duckdb_path: Path) -> Path:
    """dlt's working state lives beside its warehouse, so two warehouses never share it."""
    duckdb_path = Path(duckdb_path)
    return duckdb_path.parent / f".{duckdb_path.stem}_dlt"


def channel_pipeline(
    channel: Channel, duckdb_path: Path, duckdb_config: Mapping[str, object] | None = None
) -> dlt.Pipeline:
    """`duckdb_config` (memory_limit, threads, temp_directory) is set on the warehouse
    connections dlt opens to load and merge."""
    duckdb_path = Path(duckdb_path).resolve()
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    credentials = DuckDbCredentials(
        str(duckdb_path),
        global_config={key: str(value) for key, value in (duckdb_config or {}).items()} or None,
    )
    return dlt.pipeline(
        pipeline_name=f"dmp_{channel.folder}",
        destination=dlt.destinations.duckdb(credentials=credentials),
        dataset_name=RAW_DATASET,
        pipelines_dir=str(pipelines_dir(duckdb_path)),
    )


def load_channel(
    channel: Channel,
    landing_dir: Path,
    duckdb_path: Path,
    api_url: str | None = None,
    api_lookback: timedelta = DEFAULT_LOOKBACK,
    duckdb_config: Mapping[str, object] | None = None,
) -> dlt.common.pipeline.LoadInfo:
    """Load one channel outside Dagster (benchmarks, scripts, tests)."""
    pipeline = channel_pipeline(channel, duckdb_path, duckdb_config)
    info = pipeline.run(
        channel_source(
            channel,
            landing_dir,
            api_url=api_url,
            api_lookback=api_lookback,
            duckdb_config=duckdb_config,
        )
    )
    info.raise_on_failed_jobs()
    return info
