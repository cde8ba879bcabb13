"""One dlt source per landing channel: its raw table, its quarantine and its file ledger.

Files stream through in batches: memory does not grow with the channel. Incremental by file:
the source state remembers the fingerprint of every file it loaded, so a re-run reads only new
or changed files. Records are one per natural key (`_record_key`), so a file delivered twice,
or an event re-sent in a later file, never makes a second row: facts (insert-only channels)
are appended without the keys the warehouse already holds (found while reading, so the load
writes each row once); state-like records (upsert channels) merge.
"""

from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from ingestion.api import DEFAULT_LOOKBACK, newest, pull_pages, since
from ingestion.channels import INSERT_ONLY, Channel
from ingestion.landing import UNREADABLE, ChannelRead, landing_files, stage_channel
from ingestion.suppression import Suppression

_STATE_KEY = "loaded_files"
_CURSOR_KEY = "api_cursor"
_HASHED_KEY = "hashed_files"  # name -> [size, mtime_ns, sha256]: no file hashed twice


def channel_source(
    channel: Channel,
    landing_dir: Path,
    api_url: str | None = None,
    api_lookback: timedelta = DEFAULT_LOOKBACK,
    suppression: Suppression | None = None,
    duckdb_config: Mapping[str, object] | None = None,
) -> dlt.sources.DltSource:
    """All three resources share one lazy read, so the input is parsed once per run; it is
    staged in a DuckDB work connection (`duckdb_config`: memory_limit, threads,
    temp_directory) and streamed on in batches. Records of erased persons (`suppression`) are
    never read in.

    With `api_url` (channels that declare an `api_cursor` only), records are also pulled
    from the channel's HTTP API, forward from the cursor kept in the source state.
    """
    if api_url and not channel.api_cursor:
        raise ValueError(f"channel {channel.folder} has no API cursor; it loads from files only")
    staged: list[ChannelRead] = []
    open_streams: set[str] = set()

    def read_once() -> ChannelRead:
        if not staged:
            state = dlt.current.source_state()
            loaded: dict[str, str] = state.setdefault(_STATE_KEY, {})
            pages = (
                pull_pages(api_url, since(state.get(_CURSOR_KEY), api_lookback)) if api_url else ()
            )
            read = stage_channel(
                channel,
                Path(landing_dir),
                already_loaded=loaded,
                api_pages=pages,
                suppression=suppression,
                duckdb_config=duckdb_config,
                hashed=state.setdefault(_HASHED_KEY, {}),
            )
            staged.append(read)
            open_streams.update(_STREAMS)
            if channel.merge_strategy == INSERT_ONLY:
                pipeline = dlt.current.pipeline()
                read.skip_loaded(
                    Path(pipeline.destination_client().config.credentials.database),
                    f"{pipeline.dataset_name}.{channel.table}",
                )
            if api_url:
                state[_CURSOR_KEY] = newest(read.newest(channel.api_cursor), state.get(_CURSOR_KEY))
            for name, fingerprint, status in zip(
                read.files["source_file"].to_pylist(),
                read.files["fingerprint"].to_pylist(),
                read.files["status"].to_pylist(),
            ):
                # Only a file nothing could be read of is tried again next run: a damaged
                # file's readable part loads once (a repaired copy has new bytes).
                if status != UNREADABLE:
                    loaded[name] = fingerprint
        return staged[0]

    def stream(name: str) -> Iterator[pa.RecordBatch | pa.Table]:
        try:
            read = read_once()
            if name == "records":
                yield from read.records()
            elif name == "quarantine":
                yield from read.quarantine()
            else:
                yield read.files
        finally:
            # The work connection goes once the last of the three streams is done.
            open_streams.discard(name)
            if staged and not open_streams:
                staged.pop().close()

    @dlt.source(name=channel.folder, max_table_nesting=0)
    def source() -> list[DltResource]:
        return [
            _resource(
                channel.table,
                "_record_key",
                # insert-only: the keys already loaded are left out while reading
                "append" if channel.merge_strategy == INSERT_ONLY else channel.merge_strategy,
                lambda: stream("records"),
            ),
            _resource(
                channel.quarantine_table, "_record_key", INSERT_ONLY, lambda: stream("quarantine")
            ),
            _resource(channel.files_table, "source_file", "upsert", lambda: stream("files")),
        ]

    return source()


_STREAMS = ("records", "quarantine", "files")


def has_new_files(channel: Channel, landing_dir: Path, pipeline: dlt.Pipeline) -> bool:
    """Whether `channel_source` would read a landing file on `pipeline`: one that is new or
    changed since the channel last loaded (its source state), or could not be read then. A
    channel never loaded counts as new: its first run creates its tables."""
    state = pipeline.state.get("sources", {}).get(channel.folder, {})
    loaded = state.get(_STATE_KEY, {})
    # A copy: files hashed here are hashed again by the run that loads them.
    hashed = dict(state.get(_HASHED_KEY, {}))
    return not loaded or any(
        loaded.get(file.name) != file.fingerprint
        for file in landing_files(channel, Path(landing_dir), hashed)
    )


def _resource(
    table: str,
    key: str,
    strategy: str,
    batches: Callable[[], Iterator[pa.RecordBatch | pa.Table]],
) -> DltResource:
    """`strategy`: "append", or a merge strategy on `key`."""

    def arrow_rows():
        for batch in batches():
            position = batch.schema.get_field_index(key)
            # dlt makes a primary key NOT NULL; say so in the Arrow schema too.
            yield batch.cast(
                batch.schema.set(position, batch.schema.field(position).with_nullable(False))
            )

    return dlt.resource(
        arrow_rows,
        name=table,
        primary_key=key,
        write_disposition=(
            "append" if strategy == "append" else {"disposition": "merge", "strategy": strategy}
        ),
    )
