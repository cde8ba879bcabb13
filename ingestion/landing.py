"""Read a channel's landing files into typed records, quarantined rejects and a file ledger.

Every line or row of every file read ends up accounted for: loaded as a typed record,
rejected to quarantine with a reason (malformed, missing a required field, oversized,
control characters), or both (loaded, with a quarantine note for a value that does not
cast or is implausible). Parsing and checking run vectorised in an in-memory DuckDB,
never row by row in Python.
"""

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion.channels import TEXT, UPSERT, Channel
from ingestion.suppression import Suppression

MAX_FIELD_CHARS = 65_536

QUARANTINE_SCHEMA = pa.schema(
    [
        ("channel", pa.string()),
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        ("reason", pa.string()),
        ("record", pa.string()),
        ("loaded", pa.bool_()),  # true: loaded with this note; false: rejected
        ("_record_key", pa.string()),
    ]
)

FILES_SCHEMA = pa.schema(
    [
        ("channel", pa.string()),
        ("source_file", pa.string()),
        ("fingerprint", pa.string()),
        ("status", pa.string()),  # "loaded" or "unreadable"
        ("reason", pa.string()),
        ("lines", pa.int64()),
        ("loaded_lines", pa.int64()),
        ("duplicate_lines", pa.int64()),  # a key seen earlier in the same read
        ("rejected_lines", pa.int64()),
        ("suppressed_lines", pa.int64()),  # an erased person's, never loaded (suppression.py)
        ("unexpected_columns", pa.string()),
    ]
)


@dataclass(frozen=True)
class LandingFile:
    name: str  # relative to the landing dir, e.g. "web_events/web_events_20260901.jsonl.gz"
    path: Path
    fingerprint: str  # sha256 of the bytes: a changed or re-delivered file is read again


@dataclass
class ChannelBatch:
    """What one read of a channel's landing folder produced."""

    records: pa.Table
    quarantine: pa.Table
    files: pa.Table  # one FILES_SCHEMA row per file read

    @property
    def unreadable_files(self) -> dict[str, str]:
        rows = self.files.filter(pc.equal(self.files["status"], "unreadable"))
        return dict(zip(rows["source_file"].to_pylist(), rows["reason"].to_pylist()))


def landing_files(channel: Channel, landing_dir: Path) -> list[LandingFile]:
    folder = Path(landing_dir) / channel.folder
    if not folder.is_dir():
        return []
    return [
        LandingFile(
            name=path.relative_to(landing_dir).as_posix(),
            path=path,
            fingerprint=hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(folder.glob(channel.pattern))
    ]


def read_channel(
    channel: Channel,
    landing_dir: Path,
    already_loaded: Mapping[str, str] | None = None,
    api_pages: Iterable[tuple[str, list[str]]] = (),
    suppression: Suppression | None = None,
) -> ChannelBatch:
    """Read the channel's files, skipping those whose fingerprint is in `already_loaded`,
    plus any pages pulled from its API (named source, JSON objects as text). Records holding
    an identifier on the `suppression` list are dropped before anything else sees them (not
    even the quarantine) and counted per file."""
    already_loaded = already_loaded or {}
    files = [
        file
        for file in landing_files(channel, landing_dir)
        if already_loaded.get(file.name) != file.fingerprint
    ]
    con = duckdb.connect()
    text_tables: list[pa.Table] = []
    ledger: list[dict] = []
    for file in files:
        try:
            table, unexpected = _READERS[channel.file_format](con, channel, file)
        except (OSError, EOFError, ValueError, pa.ArrowException, duckdb.Error) as error:
            reason = f"unreadable file: {type(error).__name__}: {error}".splitlines()[0]
            ledger.append(_ledger_row(channel, file, "unreadable", reason, 0, []))
            continue
        text_tables.append(table)
        ledger.append(_ledger_row(channel, file, "loaded", None, table.num_rows, unexpected))
    for source, objects in api_pages:
        text_tables.append(_json_lines(con, channel, objects, source)[0])
    text = (
        pa.concat_tables(text_tables, promote_options="default")
        if text_tables
        else _text_schema(channel, []).empty_table()
    )
    del text_tables  # the concatenated table is the only copy kept from here
    unexpected_columns = [name for name in text.column_names if name not in _text_columns(channel)]
    con.register("landing_rows", text)
    match = (
        suppression.match_sql(channel.folder, "suppressed_keys", text.column_names)
        if suppression
        else None
    )
    del text  # DuckDB holds it until _validate has checked every row
    suppressed: dict[str, int] = {}
    if match:
        con.register("suppressed_keys", pa.table({"key": sorted(suppression.keys)}))
        suppressed = dict(
            con.execute(
                f"select _source_file, count(*) from landing_rows where {match} group by 1"
            ).fetchall()
        )
        con.execute(f"create temp view text_rows as select * from landing_rows where not {match}")
    else:
        con.execute("create temp view text_rows as select * from landing_rows")
    records, quarantine, counts = _validate(con, channel, unexpected_columns)
    for row in ledger:
        row.update(counts.get(row["source_file"], {}))
        row["suppressed_lines"] = suppressed.get(row["source_file"], 0)
    unreadable = [row for row in ledger if row["status"] == "unreadable"]
    quarantine = pa.concat_tables(
        [
            quarantine,
            pa.Table.from_pylist(
                [_unreadable_reject(row) for row in unreadable], QUARANTINE_SCHEMA
            ),
        ]
    )
    con.close()
    return ChannelBatch(
        records=records,
        quarantine=quarantine,
        files=pa.Table.from_pylist(ledger, FILES_SCHEMA),
    )


def _ledger_row(
    channel: Channel,
    file: LandingFile,
    status: str,
    reason: str | None,
    lines: int,
    unexpected: list[str],
) -> dict:
    return {
        "channel": channel.folder,
        "source_file": file.name,
        "fingerprint": file.fingerprint,
        "status": status,
        "reason": reason,
        "lines": lines,
        "loaded_lines": 0,
        "duplicate_lines": 0,
        "rejected_lines": 0,
        "suppressed_lines": 0,
        "unexpected_columns": ", ".join(unexpected) or None,
    }


def _unreadable_reject(row: dict) -> dict:
    return {
        "channel": row["channel"],
        "source_file": row["source_file"],
        "line_number": None,
        "reason": row["reason"],
        "record": None,
        "loaded": False,
        "_record_key": hashlib.md5(
            f"{row['source_file']}|{row['fingerprint']}".encode()
        ).hexdigest(),
    }


_LINEAGE = ("_source_file", "_line_number", "record", "parse_error")


def _text_columns(channel: Channel) -> list[str]:
    return [*_LINEAGE, *channel.fields]


def _text_schema(channel: Channel, unexpected: list[str]) -> pa.Schema:
    """Every reader yields this shape: lineage, original text, a parse error, fields as text."""
    return pa.schema(
        [
            ("_source_file", pa.string()),
            ("_line_number", pa.int64()),
            ("record", pa.string()),
            ("parse_error", pa.string()),
            *[(name, pa.string()) for name in (*channel.fields, *unexpected)],
        ]
    )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read_jsonl_gz(
    con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile
) -> tuple[pa.Table, list[str]]:
    with gzip.open(file.path, "rb") as handle:
        text = handle.read().decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return _json_lines(con, channel, lines, file.name)


def _json_lines(
    con: duckdb.DuckDBPyConnection, channel: Channel, lines: list[str], source: str
) -> tuple[pa.Table, list[str]]:
    """JSON objects, one per line, as a text table; keys the channel does not declare are kept."""
    lines_table = pa.table(
        {"_line_number": pa.array(range(1, len(lines) + 1), pa.int64()), "record": lines}
    )
    con.register("raw_lines", lines_table)
    con.execute(
        """
        create or replace temp table parsed as
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
        """
    )
    con.unregister("raw_lines")
    keys = con.execute(
        "select distinct unnest(json_keys(record)) as key from parsed where is_object order by key"
    ).fetchall()
    unexpected = [key for (key,) in keys if key not in channel.fields and key not in _LINEAGE]
    # One parse per line into a struct of text fields (nested values stay JSON text).
    structure = json.dumps({name: "VARCHAR" for name in (*channel.fields, *unexpected)})
    table = con.sql(
        f"""
        select
            $name as _source_file,
            _line_number,
            record,
            parse_error,
            unnest(json_transform(case when is_object then record end, {_literal(structure)}))
        from parsed
        """,
        params={"name": source},
    ).to_arrow_table()
    con.execute("drop table parsed")
    return table.cast(_text_schema(channel, unexpected)), unexpected


def _read_csv(
    con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile
) -> tuple[pa.Table, list[str]]:
    del con  # CSV rows are split by the csv module, which keeps exact line numbers
    text = file.path.read_bytes().decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return _text_schema(channel, []).empty_table(), []
    header = [column.strip() for column in header]
    unexpected = [
        name for name in header if name and name not in channel.fields and name not in _LINEAGE
    ]
    names = [*channel.fields, *unexpected]
    positions = {name: header.index(name) for name in names if name in header}
    columns: dict[str, list] = {key: [] for key in (*_LINEAGE, *names)}
    for row in reader:
        columns["_source_file"].append(file.name)
        columns["_line_number"].append(reader.line_num)
        columns["record"].append(",".join(row))
        bad_width = len(row) != len(header)
        columns["parse_error"].append(
            f"expected {len(header)} columns, got {len(row)}" if bad_width else None
        )
        for name in names:
            position = positions.get(name)
            value = row[position] if position is not None and not bad_width else None
            columns[name].append(value if value != "" else None)
    return pa.table(columns, schema=_text_schema(channel, unexpected)), unexpected


def _read_parquet(
    con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile
) -> tuple[pa.Table, list[str]]:
    rows = pq.read_table(file.path)
    con.register("parquet_rows", rows)
    present = set(rows.column_names)
    unexpected = [
        name for name in rows.column_names if name not in channel.fields and name not in _LINEAGE
    ]
    fields = ",\n".join(
        f"cast({_quoted(name)} as varchar) as {_quoted(name)}"
        if name in present
        else f"cast(null as varchar) as {_quoted(name)}"
        for name in (*channel.fields, *unexpected)
    )
    table = con.sql(
        f"""
        select
            $name as _source_file,
            cast(row_number() over () as bigint) as _line_number,
            cast(to_json(parquet_rows) as varchar) as record,
            cast(null as varchar) as parse_error,
            {fields}
        from parquet_rows
        """,
        params={"name": file.name},
    ).to_arrow_table()
    con.unregister("parquet_rows")
    return table.cast(_text_schema(channel, unexpected)), unexpected


_READERS = {"jsonl.gz": _read_jsonl_gz, "csv": _read_csv, "parquet": _read_parquet}


def _validate(
    con: duckdb.DuckDBPyConnection, channel: Channel, unexpected: list[str]
) -> tuple[pa.Table, pa.Table, dict[str, dict[str, int]]]:
    """Split the `text_rows` view (over the registered `landing_rows`) into typed records and quarantine rows, each with
    its reasons, and count per file what was loaded, dropped as a repeat of a key, or
    rejected."""
    every_field = [*channel.fields, *unexpected]
    rejections = [
        *(
            f"case when {_quoted(name)} is null or trim({_quoted(name)}) = '' "
            f"then 'missing required field {name}' end"
            for name in channel.required
        ),
        *(
            f"case when length({_quoted(name)}) > {MAX_FIELD_CHARS} then "
            f"'{name}: ' || length({_quoted(name)}) || ' characters (limit {MAX_FIELD_CHARS})' end"
            for name in every_field
        ),
        *(
            f"case when regexp_matches({_quoted(name)}, '[\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F]') "
            f"then '{name}: control characters' end"
            for name in every_field
        ),
    ]
    notes = [
        *(
            f"case when {_quoted(name)} is not null and try_cast({_quoted(name)} as {kind}) is null "
            f"then '{name}: not a {kind}: ' || left({_quoted(name)}, 200) end"
            for name, kind in channel.fields.items()
            if kind != TEXT
        ),
        *(
            f"case when not ({predicate.format(v=_typed(channel, name))}) "
            f"then '{name}: implausible value ' || left({_quoted(name)}, 200) end"
            for name, predicate in channel.plausible.items()
        ),
    ]
    typed = ",\n".join(
        [
            *(
                f"try_cast({_quoted(name)} as {kind}) as {_quoted(name)}"
                for name, kind in channel.fields.items()
            ),
            *(_quoted(name) for name in unexpected),
        ]
    )
    record_key = (
        "md5(concat_ws('|', "
        + ", ".join(
            f"coalesce(cast({_typed(channel, name)} as varchar), '\\N')"
            for name in channel.natural_key
        )
        + "))"
    )
    # Within one read the first arrival of a key wins for facts, the last for upserts
    # (files are read in name order, which landing exports keep chronological).
    newest_first = "desc" if channel.merge_strategy == UPSERT else "asc"
    # One materialisation only: the checks are a CTE, not a second copy of every row.
    con.execute(
        f"""
        create or replace temp table ranked as
        with checked as (
            select
                *,
                coalesce(parse_error, concat_ws('; ', {", ".join(rejections)})) as rejection,
                concat_ws('; ', {", ".join(notes) or "null"}) as note
            from text_rows
        )
        select
            *,
            {record_key} as _record_key,
            case when rejection = '' then row_number() over (
                partition by rejection = '', {record_key}
                order by _source_file {newest_first}, _line_number {newest_first}
            ) end as arrival
        from checked
        """
    )
    con.execute("drop view text_rows")
    con.unregister("landing_rows")  # the input as read: freed before the records are built
    records = con.sql(
        f"""
        select {typed}, _source_file, _line_number, _record_key
        from ranked
        where arrival = 1
        order by _source_file, _line_number
        """
    ).to_arrow_table()
    quarantine = (
        con.sql(
            """
            select
                $channel as channel,
                _source_file as source_file,
                _line_number as line_number,
                concat_ws('; ', nullif(rejection, ''), nullif(note, '')) as reason,
                record,
                rejection = '' as loaded,
                md5(concat_ws('|', _source_file, _line_number)) as _record_key
            from ranked
            where rejection <> '' or note <> ''
            order by _source_file, _line_number
            """,
            params={"channel": channel.folder},
        )
        .to_arrow_table()
        .cast(QUARANTINE_SCHEMA)
    )
    counts = {
        source_file: {
            "loaded_lines": loaded,
            "duplicate_lines": duplicates,
            "rejected_lines": rejected,
        }
        for source_file, loaded, duplicates, rejected in con.execute(
            """
            select
                _source_file,
                count(*) filter (where arrival = 1),
                count(*) filter (where arrival > 1),
                count(*) filter (where arrival is null)
            from ranked
            group by _source_file
            """
        ).fetchall()
    }
    return records, quarantine, counts


def _typed(channel: Channel, name: str) -> str:
    kind = channel.fields[name]
    return _quoted(name) if kind == TEXT else f"try_cast({_quoted(name)} as {kind})"
