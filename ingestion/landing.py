"""Read a channel's landing files into typed records plus quarantined rejects.

Every line or row of every file ends up in exactly one of the two tables: valid records
(typed as the channel declares) or quarantine (channel, file, line, reason, original text).
Parsing and casting run vectorised in an in-memory DuckDB, never row by row in Python.
"""

import csv
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.channels import TEXT, Channel

QUARANTINE_SCHEMA = pa.schema(
    [
        ("channel", pa.string()),
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        ("reason", pa.string()),
        ("record", pa.string()),
    ]
)


@dataclass
class ChannelBatch:
    """What one read of a channel's landing folder produced."""

    records: pa.Table
    quarantine: pa.Table
    files: list[str] = field(default_factory=list)
    unreadable_files: list[str] = field(default_factory=list)


def read_channel(channel: Channel, landing_dir: Path) -> ChannelBatch:
    """Read every file of `channel` under `landing_dir`; nothing is dropped silently."""
    folder = Path(landing_dir) / channel.folder
    paths = sorted(folder.glob(channel.pattern)) if folder.is_dir() else []
    con = duckdb.connect()
    text_tables: list[pa.Table] = []
    unreadable: list[pa.Table] = []
    for path in paths:
        name = path.relative_to(landing_dir).as_posix()
        try:
            text_tables.append(_READERS[channel.file_format](con, channel, path, name))
        except (OSError, EOFError, ValueError, pa.ArrowException, duckdb.Error) as error:
            unreadable.append(_unreadable_file(channel, name, error))
    text = pa.concat_tables(text_tables) if text_tables else _empty_text_table(channel)
    records, rejects = _validate(con, channel, text)
    quarantine = pa.concat_tables([rejects, *unreadable])
    return ChannelBatch(
        records=records,
        quarantine=quarantine,
        files=[path.relative_to(landing_dir).as_posix() for path in paths],
        unreadable_files=[row["source_file"] for table in unreadable for row in table.to_pylist()],
    )


def _text_schema(channel: Channel) -> pa.Schema:
    """Every reader yields this shape: lineage, original text, a parse error, fields as text."""
    return pa.schema(
        [
            ("_source_file", pa.string()),
            ("_line_number", pa.int64()),
            ("record", pa.string()),
            ("parse_error", pa.string()),
            *[(name, pa.string()) for name in channel.fields],
        ]
    )


def _empty_text_table(channel: Channel) -> pa.Table:
    return _text_schema(channel).empty_table()


def _read_jsonl_gz(
    con: duckdb.DuckDBPyConnection, channel: Channel, path: Path, name: str
) -> pa.Table:
    with gzip.open(path, "rb") as handle:
        text = handle.read().decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    raw_lines = pa.table(  # noqa: F841 - read by DuckDB's replacement scan below
        {"_line_number": pa.array(range(1, len(lines) + 1), pa.int64()), "record": lines}
    )
    extracted = ",\n".join(
        f'case when is_object then record ->> \'$."{name}"\' end as "{name}"'
        for name in channel.fields
    )
    return (
        con.sql(
            f"""
        with parsed as (
            select
                _line_number,
                record,
                -- CASE evaluates lazily, so json_type never sees invalid text
                case when json_valid(record) then json_type(record) = 'OBJECT' else false end
                    as is_object,
                case
                    when trim(record) = '' then 'empty line'
                    when not json_valid(record) then 'malformed JSON'
                    when json_type(record) <> 'OBJECT' then 'JSON value is not an object'
                end as parse_error
            from raw_lines
        )
        select
            $name as _source_file,
            _line_number,
            record,
            parse_error,
            {extracted}
        from parsed
        """,
            params={"name": name},
        )
        .to_arrow_table()
        .cast(_text_schema(channel))
    )


def _read_csv(con: duckdb.DuckDBPyConnection, channel: Channel, path: Path, name: str) -> pa.Table:
    del con  # CSV rows are split by the csv module, which keeps exact line numbers
    text = path.read_text(encoding="utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return _empty_text_table(channel)
    header = [column.strip() for column in header]
    positions = {name_: header.index(name_) for name_ in channel.fields if name_ in header}
    columns: dict[str, list] = {
        key: []
        for key in ("_source_file", "_line_number", "record", "parse_error", *channel.fields)
    }
    for row in reader:
        columns["_source_file"].append(name)
        columns["_line_number"].append(reader.line_num)
        columns["record"].append(",".join(row))
        bad_width = len(row) != len(header)
        columns["parse_error"].append(
            f"expected {len(header)} columns, got {len(row)}" if bad_width else None
        )
        for field_name in channel.fields:
            position = positions.get(field_name)
            value = row[position] if position is not None and not bad_width else None
            columns[field_name].append(value if value != "" else None)
    return pa.table(columns, schema=_text_schema(channel))


def _read_parquet(
    con: duckdb.DuckDBPyConnection, channel: Channel, path: Path, name: str
) -> pa.Table:
    rows = pq.read_table(path)
    present = set(rows.column_names)
    fields = ",\n".join(
        f'cast("{field_name}" as varchar) as "{field_name}"'
        if field_name in present
        else f'cast(null as varchar) as "{field_name}"'
        for field_name in channel.fields
    )
    return (
        con.sql(
            f"""
        select
            $name as _source_file,
            cast(row_number() over () as bigint) as _line_number,
            cast(to_json(rows) as varchar) as record,
            cast(null as varchar) as parse_error,
            {fields}
        from rows
        """,
            params={"name": name},
        )
        .to_arrow_table()
        .cast(_text_schema(channel))
    )


_READERS = {"jsonl.gz": _read_jsonl_gz, "csv": _read_csv, "parquet": _read_parquet}


def _unreadable_file(channel: Channel, name: str, error: Exception) -> pa.Table:
    reason = f"unreadable file: {type(error).__name__}: {error}".splitlines()[0]
    return pa.table(
        {
            "channel": [channel.folder],
            "source_file": [name],
            "line_number": pa.array([None], pa.int64()),
            "reason": [reason],
            "record": pa.array([None], pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def _validate(
    con: duckdb.DuckDBPyConnection, channel: Channel, text: pa.Table
) -> tuple[pa.Table, pa.Table]:
    """Split text rows into typed records and rejects with a reason each."""
    missing = ", ".join(
        f"case when \"{name}\" is null or trim(\"{name}\") = '' then 'missing required field {name}' end"
        for name in channel.required
    )
    bad_casts = (
        ", ".join(
            f'case when "{name}" is not null and try_cast("{name}" as {kind}) is null '
            f"then '{name}: not a {kind}: ' || \"{name}\" end"
            for name, kind in channel.fields.items()
            if kind != TEXT
        )
        or "null"
    )
    typed = ",\n".join(
        f'try_cast("{name}" as {kind}) as "{name}"' for name, kind in channel.fields.items()
    )
    con.register("text_rows", text)
    con.execute(
        f"""
        create or replace temp table checked as
        select
            *,
            coalesce(parse_error, concat_ws('; ', {missing})) as rejection,
            concat_ws('; ', {bad_casts}) as cast_problem
        from text_rows
        """
    )
    records = con.sql(
        f"""
        select {typed}, _source_file, _line_number
        from checked
        where rejection = ''
        order by _source_file, _line_number
        """
    ).to_arrow_table()
    rejects = (
        con.sql(
            """
        select
            $channel as channel,
            _source_file as source_file,
            _line_number as line_number,
            concat_ws('; ', nullif(rejection, ''), nullif(cast_problem, '')) as reason,
            record
        from checked
        where rejection <> '' or cast_problem <> ''
        order by _source_file, _line_number
        """,
            params={"channel": channel.folder},
        )
        .to_arrow_table()
        .cast(QUARANTINE_SCHEMA)
    )
    con.unregister("text_rows")
    return records, rejects
