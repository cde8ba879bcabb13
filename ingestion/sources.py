"""One dlt source per landing channel: its raw table and its quarantine table."""

from collections.abc import Callable
from pathlib import Path

import dlt
from dlt.sources import DltResource

from ingestion.channels import Channel
from ingestion.landing import ChannelBatch, read_channel


def channel_source(channel: Channel, landing_dir: Path) -> dlt.sources.DltSource:
    """Both resources share one lazy read, so the files are parsed once per run."""
    batch: list[ChannelBatch] = []

    def read_once() -> ChannelBatch:
        if not batch:
            batch.append(read_channel(channel, Path(landing_dir)))
        return batch[0]

    @dlt.source(name=channel.folder, max_table_nesting=0)
    def source() -> list[DltResource]:
        return [
            _resource(channel.table, lambda: read_once().records),
            _resource(channel.quarantine_table, lambda: read_once().quarantine),
        ]

    return source()


def _resource(table: str, rows: Callable) -> DltResource:
    # Replace keeps a re-run over the same landing zone idempotent; an empty table still
    # yields its schema so downstream models always find the relation.
    def arrow_rows():
        yield rows()

    return dlt.resource(arrow_rows, name=table, write_disposition="replace")
