"""Read a channel's landing files into typed records, quarantined rejects and a file ledger.

Every line or row of every file read ends up accounted for: loaded as a typed record,
rejected to quarantine with a reason (malformed, missing a required field, oversized,
control characters), or both (loaded, with a quarantine note for a value that does not
cast or is implausible). Parsing and checking run vectorised in an in-memory DuckDB,
never row by row in Python.

Damage is contained by file and by line: a file that cannot be read at all is one ledger row
(`unreadable`, retried next run); a gzip stream damaged part-way loads its readable lines and
quarantines the rest as one span (`damaged`); a file with no data is `empty`. A channel's
schema is a contract: columns it does not declare are named in the ledger and a quarantine
note, never loaded (docs/landing.md).
"""

import csv
import hashlib
import io
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion.channels import TEXT, UPSERT, Channel
from ingestion.suppression import Suppression

MAX_FIELD_CHARS = 65_536

# Ledger statuses. Only an unreadable file is read again next run; the others are remembered
# by fingerprint (a damaged file's readable part is loaded once; a re-delivered, repaired
# copy has another fingerprint and is read again, its records merging on their natural key).
LOADED = "loaded"  # read to the end (its rejected lines, if any, are in quarantine)
EMPTY = "empty"  # no data: 0 bytes, no lines, a header only or no rows
DAMAGED = "damaged"  # read up to a point of damage; the rest is one quarantine span
UNREADABLE = "unreadable"  # nothing could be read

_BOM = "\ufeff"
_GZIP_CHUNK = 1 << 20  # compressed bytes per inflate step on the clean path

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
        ("status", pa.string()),  # LOADED, EMPTY, DAMAGED or UNREADABLE
        ("reason", pa.string()),
        ("lines", pa.int64()),
        ("loaded_lines", pa.int64()),
        ("duplicate_lines", pa.int64()),  # a key seen earlier in the same read
        ("rejected_lines", pa.int64()),
        ("suppressed_lines", pa.int64()),  # an erased person's, never loaded (suppression.py)
        ("unexpected_columns", pa.string()),  # found in the file, not declared: not loaded
        ("read_at", pa.timestamp("us", tz="UTC")),  # when this read happened
    ]
)


@dataclass(frozen=True)
class LandingFile:
    name: str  # relative to the landing dir, e.g. "web_events/web_events_20260901.jsonl.gz"
    path: Path
    fingerprint: str  # sha256 of the bytes: a changed or re-delivered file is read again


@dataclass
class FileText:
    """One file as a text table (`_text_schema`), plus what the reader could not take in."""

    table: pa.Table
    undeclared: list[str] = field(default_factory=list)  # columns/keys the channel lacks
    damage: str | None = None  # why reading stopped before the end (None: read to the end)
    damaged_from: int | None = None  # with damage: the first line (or row) not read
    damaged_line: str | None = None  # with damage: what is left of that line, if anything
    empty: str | None = None  # why the file holds no data (None: it has some)


@dataclass
class ChannelBatch:
    """What one read of a channel's landing folder produced."""

    records: pa.Table
    quarantine: pa.Table
    files: pa.Table  # one FILES_SCHEMA row per file read

    @property
    def unreadable_files(self) -> dict[str, str]:
        return self._files_with(UNREADABLE)

    @property
    def problem_files(self) -> dict[str, str]:
        """Files not read cleanly to the end, or with columns the channel does not declare."""
        problems = pc.or_(
            pc.not_equal(self.files["status"], LOADED),
            pc.is_valid(self.files["unexpected_columns"]),
        )
        rows = self.files.filter(problems)
        return dict(
            zip(
                rows["source_file"].to_pylist(),
                [
                    reason or f"undeclared columns not loaded: {columns}"
                    for reason, columns in zip(
                        rows["reason"].to_pylist(), rows["unexpected_columns"].to_pylist()
                    )
                ],
            )
        )

    def _files_with(self, status: str) -> dict[str, str]:
        rows = self.files.filter(pc.equal(self.files["status"], status))
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
    con: duckdb.DuckDBPyConnection | None = None,
) -> ChannelBatch:
    """Read the channel's files, skipping those whose fingerprint is in `already_loaded`,
    plus any pages pulled from its API (named source, JSON objects as text). Records holding
    an identifier on the `suppression` list are dropped before anything else sees them (not
    even the quarantine) and counted per file. `con`: an in-memory DuckDB connection to work
    in (a caller checking many small batches, the collector, saves opening one per call);
    by default a new one."""
    already_loaded = already_loaded or {}
    files = [
        file
        for file in landing_files(channel, landing_dir)
        if already_loaded.get(file.name) != file.fingerprint
    ]
    own_connection = con is None
    con = duckdb.connect() if own_connection else con
    read_at = datetime.now(UTC)
    text_tables: list[pa.Table] = []
    ledger: list[dict] = []
    file_notes: list[dict] = []  # quarantine rows about a whole file or its damaged tail
    for file in files:
        try:
            read = _read_file(con, channel, file)
        except _READ_ERRORS as error:
            reason = f"unreadable file: {_describe(error)}"
            ledger.append(_ledger_row(channel, file, UNREADABLE, reason, 0, [], read_at))
            file_notes.append(_file_note(channel, file, None, reason, None, loaded=False))
            continue
        text_tables.append(read.table)
        status, reason = LOADED, None
        lines = read.table.num_rows
        if read.damage and not lines:
            status, reason = UNREADABLE, f"unreadable file: {read.damage}"
            file_notes.append(_file_note(channel, file, None, reason, None, loaded=False))
        elif read.damage:
            status = DAMAGED
            first_unread = read.damaged_from or lines + 1
            reason = f"file damaged after line {first_unread - 1}: {read.damage}"
            file_notes.append(
                _file_note(channel, file, first_unread, reason, read.damaged_line, loaded=False)
            )
        elif read.empty:
            status, reason = EMPTY, f"empty file: {read.empty}"
        if read.undeclared:
            note = f"undeclared columns not loaded: {', '.join(read.undeclared)}"
            file_notes.append(_file_note(channel, file, None, note, None, loaded=True))
        ledger.append(_ledger_row(channel, file, status, reason, lines, read.undeclared, read_at))
    for source, objects in api_pages:
        # An API page's keys beyond the channel's fields are not loaded (its contract lists them).
        text_tables.append(_json_lines(con, channel, objects, source).table)
    text = pa.concat_tables(text_tables) if text_tables else _text_schema(channel).empty_table()
    del text_tables  # the concatenated table is the only copy kept from here
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
        con.execute(
            f"create or replace temp view text_rows as select * from landing_rows where not {match}"
        )
    else:
        con.execute("create or replace temp view text_rows as select * from landing_rows")
    records, quarantine, counts = _validate(con, channel)
    for row in ledger:
        row.update(counts.get(row["source_file"], {}))
        row["suppressed_lines"] = suppressed.get(row["source_file"], 0)
    quarantine = pa.concat_tables([quarantine, pa.Table.from_pylist(file_notes, QUARANTINE_SCHEMA)])
    if match:
        con.unregister("suppressed_keys")
    if own_connection:
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
    read_at: datetime,
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
        "read_at": read_at,
    }


def _file_note(
    channel: Channel,
    file: LandingFile,
    line_number: int | None,
    reason: str,
    record: str | None,
    loaded: bool,
) -> dict:
    """A quarantine row about a whole file (line_number None) or its damaged tail (the first
    line not read): one per file and kind, keyed by the file's bytes so a re-read of the same
    file adds nothing."""
    kind = "undeclared" if loaded else "unread"
    return {
        "channel": channel.folder,
        "source_file": file.name,
        "line_number": line_number,
        "reason": reason,
        "record": record[:MAX_FIELD_CHARS] if record is not None else None,
        "loaded": loaded,
        "_record_key": hashlib.md5(f"{file.name}|{file.fingerprint}|{kind}".encode()).hexdigest(),
    }


# What a reader may raise for a file it cannot read: caught per file, never for the channel.
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    zlib.error,
    csv.Error,
    pa.ArrowException,
    duckdb.Error,
)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]


def _read_file(con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile) -> FileText:
    if file.path.stat().st_size == 0:
        return FileText(_text_schema(channel).empty_table(), empty="0 bytes")
    read = _READERS[channel.file_format](con, channel, file)
    if read.table.num_rows == 0 and read.damage is None and read.empty is None:
        read.empty = "no lines" if channel.file_format == "jsonl.gz" else "no rows"
    return read


_LINEAGE = ("_source_file", "_line_number", "record", "parse_error")


def _loaded_fields(channel: Channel) -> list[str]:
    """The fields the channel declares: typed ones, then its optional extra (text) ones."""
    return [*channel.fields, *channel.extra_fields]


def _text_schema(channel: Channel) -> pa.Schema:
    """Every reader yields this shape: lineage, original text, a parse error, fields as text."""
    return pa.schema(
        [
            ("_source_file", pa.string()),
            ("_line_number", pa.int64()),
            ("record", pa.string()),
            ("parse_error", pa.string()),
            *[(name, pa.string()) for name in _loaded_fields(channel)],
        ]
    )


def _undeclared(channel: Channel, names: Iterable[str]) -> list[str]:
    declared = set(_loaded_fields(channel))
    return list(dict.fromkeys(name for name in names if name and name not in declared))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _gunzip(data: bytes) -> tuple[bytes, str | None]:
    """The decompressed bytes up to the first damage, and what the damage is (None: whole).

    Inflates member by member in large steps; only the step where the stream breaks is
    inflated again in ever smaller pieces, so every byte before the damage is kept.
    """
    out = bytearray()
    rest = memoryview(data)
    while rest.nbytes:
        inflater = zlib.decompressobj(wbits=31)  # gzip header and trailer (CRC) checked
        consumed = 0
        while consumed < rest.nbytes and not inflater.eof:
            chunk = rest[consumed : consumed + _GZIP_CHUNK]
            before = inflater.copy()
            try:
                out += inflater.decompress(chunk)
            except zlib.error as error:
                out += _inflate_until_error(before, chunk)
                return bytes(out), f"zlib.error: {error}"
            consumed += chunk.nbytes
        if not inflater.eof:
            return bytes(out), "truncated: the gzip stream ends before its end marker"
        rest = rest[consumed - len(inflater.unused_data) :]
    return bytes(out), None


def _inflate_until_error(inflater, chunk: memoryview, piece: int = 4096) -> bytes:
    """Everything `chunk` inflates to before the byte where inflating fails."""
    out = bytearray()
    for start in range(0, chunk.nbytes, piece):
        before = inflater.copy()
        try:
            out += inflater.decompress(chunk[start : start + piece])
        except zlib.error:
            if piece > 1:
                out += _inflate_until_error(before, chunk[start : start + piece], piece // 16 or 1)
            break
    return bytes(out)


def _decode(data: bytes) -> str:
    """UTF-8 text with a leading byte-order mark removed and CRLF line ends made LF."""
    text = data.decode("utf-8", errors="replace")
    if text.startswith(_BOM):
        text = text[1:]
    return text.replace("\r\n", "\n")


def _read_jsonl_gz(con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile) -> FileText:
    data, damage = _gunzip(file.path.read_bytes())
    text = _decode(data)
    del data
    lines = text.split("\n")
    del text
    damaged_line = None
    if damage is not None:
        damaged_line = lines.pop()  # cut off (or "" after a final newline): not a record
    elif lines and lines[-1] == "":
        lines.pop()
    read = _json_lines(con, channel, lines, file.name)
    if damage is not None:
        read.damage, read.damaged_from = damage, len(lines) + 1
        read.damaged_line = damaged_line or None
    return read


def _json_lines(
    con: duckdb.DuckDBPyConnection, channel: Channel, lines: list[str], source: str
) -> FileText:
    """JSON objects, one per line, as a text table; keys the channel does not declare are
    named, not loaded."""
    if not lines:
        return FileText(_text_schema(channel).empty_table())
    lines_table = pa.table(
        {
            "_line_number": pa.array(range(1, len(lines) + 1), pa.int64()),
            "record": pa.array(lines, pa.string()),
        }
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
    undeclared = _undeclared(channel, (key for (key,) in keys))
    # One parse per line into a struct of text fields (nested values stay JSON text).
    names = _loaded_fields(channel)
    structure = json.dumps(dict.fromkeys(names, "VARCHAR"))
    fields = ", ".join(f"fields.{_quoted(name)} as {_quoted(name)}" for name in names)
    table = con.sql(
        f"""
        select
            $name as _source_file,
            _line_number,
            record,
            parse_error,
            {fields}
        from (
            select
                *,
                json_transform(case when is_object then record end, {_literal(structure)})
                    as fields
            from parsed
        )
        """,
        params={"name": source},
    ).to_arrow_table()
    con.execute("drop table parsed")
    return FileText(table.cast(_text_schema(channel)), undeclared)


def _read_csv(con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile) -> FileText:
    del con  # CSV rows are split by the csv module, which keeps exact line numbers
    text = _decode(file.path.read_bytes())
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return FileText(_text_schema(channel).empty_table(), empty="no header, no rows")
    header = [column.strip() for column in header]
    undeclared = _undeclared(channel, header)
    names = _loaded_fields(channel)
    positions = {name: header.index(name) for name in names if name in header}
    columns: dict[str, list] = {key: [] for key in (*_LINEAGE, *names)}
    damage = damaged_from = None
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:  # e.g. a field over the csv module's size limit
            damage, damaged_from = f"csv.Error: {error}", line
            break
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
    read = FileText(pa.table(columns, schema=_text_schema(channel)), undeclared, damage)
    read.damaged_from = damaged_from
    if not read.table.num_rows and damage is None:
        read.empty = "header only, no rows"
    return read


def _read_parquet(con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile) -> FileText:
    damage = None
    try:
        rows = pq.read_table(file.path)
    except (OSError, pa.ArrowException):
        rows, damage = _read_row_groups(file.path)  # keep the row groups that still read
    con.register("parquet_rows", rows)
    present = set(rows.column_names)
    undeclared = _undeclared(channel, rows.column_names)
    fields = ",\n".join(
        f"cast({_quoted(name)} as varchar) as {_quoted(name)}"
        if name in present
        else f"cast(null as varchar) as {_quoted(name)}"
        for name in _loaded_fields(channel)
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
    return FileText(table.cast(_text_schema(channel)), undeclared, damage)


def _read_row_groups(path: Path) -> tuple[pa.Table, str]:
    """The row groups before the first one that fails to read; raises if the footer (the
    schema) cannot be read, so nothing at all is readable."""
    parquet = pq.ParquetFile(path)
    groups: list[pa.Table] = []
    for index in range(parquet.num_row_groups):
        try:
            groups.append(parquet.read_row_group(index))
        except (OSError, pa.ArrowException) as error:
            damage = f"row group {index + 1} of {parquet.num_row_groups}: {_describe(error)}"
            break
    else:
        raise ValueError("row groups read one by one, yet the whole file did not")
    table = pa.concat_tables(groups) if groups else parquet.schema_arrow.empty_table()
    return table, damage


_READERS = {"jsonl.gz": _read_jsonl_gz, "csv": _read_csv, "parquet": _read_parquet}


def _validate(
    con: duckdb.DuckDBPyConnection, channel: Channel
) -> tuple[pa.Table, pa.Table, dict[str, dict[str, int]]]:
    """Split the `text_rows` view (over the registered `landing_rows`) into typed records and quarantine rows, each with
    its reasons, and count per file what was loaded, dropped as a repeat of a key, or
    rejected."""
    every_field = _loaded_fields(channel)
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
            *(_quoted(name) for name in channel.extra_fields),
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
