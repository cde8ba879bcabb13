"""Read a channel's landing files into typed records, quarantined rejects and a file ledger.

Files stream through in bounded batches (`BATCH_ROWS` lines or rows, a parquet file row group
by row group; JSON lines of several files share a batch): each batch is checked and appended
to a work table in a DuckDB connection whose memory is capped and which spills to disk, so
memory does not grow with the channel. Only the lines that go to quarantine keep their raw
text; a loaded record's lineage is its file and line.

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

import contextlib
import csv
import hashlib
import json
import shutil
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Self

import duckdb
import numpy as np
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
_UTF8_BOM = _BOM.encode()
_GZIP_CHUNK = 1 << 20  # compressed bytes per inflate step on the clean path
_CSV_BLOCK = 1 << 23  # bytes of a CSV file read at a time
# Lines (or rows) checked at a time: two of DuckDB's row groups (122,880 rows), so a batch's
# check runs on both threads (at 100,000, one row group, it ran on one: web events at 10M
# took 80 s instead of 53 s).
BATCH_ROWS = 245_760
STREAM_ROWS = 122_880  # records and quarantine rows handed on at a time
_PREFETCH_PIECES = 8  # inflated pieces (~1 MB compressed each) read ahead of the check

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
class FileRead:
    """What a reader learnt about one file beyond its rows, filled in as it streams."""

    lines: int = 0  # lines (or rows) read
    undeclared: list[str] = field(default_factory=list)  # columns/keys the channel lacks
    damage: str | None = None  # why reading stopped before the end (None: read to the end)
    damaged_from: int | None = None  # with damage: the first line (or row) not read
    damaged_line: str | None = None  # with damage: what is left of that line, if anything
    empty: str | None = None  # why the file holds no data (None: it has some)


@dataclass
class ChannelBatch:
    """What one read of a channel's landing folder produced, held whole in memory (tests,
    the collector's small groups); `stage_channel` streams the same."""

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


# The work tables of one read, in the work connection's database (not temp tables: the
# streams read them through cursors of their own, which see no other cursor's temp tables).
_CHECKED = "landing_checked"  # every line read: typed fields, key, rejection, note
_REPEATS = "landing_repeats"  # lines whose key arrived before (or after, for upserts)
_LOADED_DB = "landing_warehouse"  # the warehouse, attached read-only by `skip_loaded`


class ChannelRead:
    """One read of a channel, staged in a DuckDB work connection: its ledger at hand, its
    records and quarantine rows streamed in batches. Close it to free the work tables."""

    def __init__(
        self,
        channel: Channel,
        con: duckdb.DuckDBPyConnection,
        files: pa.Table,
        notes: pa.Table,
        own_connection: bool,
        spill_dir: Path | None,
    ):
        self.channel = channel
        self.files = files
        self._con = con
        self._notes = notes  # quarantine rows about whole files or their damaged tails
        self._own_connection = own_connection
        self._spill_dir = spill_dir  # where its own connection spills to disk, if anywhere
        self._loaded: str | None = None  # a table of the keys already loaded, if any

    def skip_loaded(self, database: Path, table: str) -> None:
        """Leave out of `records` every key already in `table` ("schema.name") of the DuckDB
        file `database`, attached read-only: a fact re-sent in a later run then loads once by
        a plain append, with no merge (a second write of every row) in the warehouse."""
        schema, name = table.split(".")
        if not Path(database).exists():
            return  # nothing loaded yet
        self._con.execute(f"attach {_literal(str(database))} as {_LOADED_DB} (read_only)")
        (present,) = self._con.execute(
            "select count(*) from duckdb_tables() "
            "where database_name = ? and schema_name = ? and table_name = ?",
            [_LOADED_DB, schema, name],
        ).fetchone()
        if present:
            self._loaded = f"{_LOADED_DB}.{_quoted(schema)}.{_quoted(name)}"

    def records(self, batch_rows: int = STREAM_ROWS) -> Iterator[pa.RecordBatch]:
        """The typed records, one per natural key, in the order they were read (without the
        keys already loaded, after `skip_loaded`)."""
        yield from self._stream(self._records_sql(), batch_rows)

    def _records_sql(self) -> str:
        columns = [*_loaded_fields(self.channel), "_source_file", "_line_number", "_record_key"]
        not_loaded = (
            f"and not exists (select 1 from {self._loaded} as loaded "
            "where loaded._record_key = checked._record_key)"
            if self._loaded
            else ""
        )
        return (
            f"select {', '.join(_quoted(name) for name in columns)} from {_CHECKED} as checked "
            f"where rejection = '' and rowid not in (select row_id from {_REPEATS}) {not_loaded}"
        )

    def quarantine(self, batch_rows: int = STREAM_ROWS) -> Iterator[pa.RecordBatch]:
        """Rejected lines and loaded lines with a note, then the notes on whole files."""
        for batch in self._stream(
            f"""
            select
                {_literal(self.channel.folder)} as channel,
                _source_file as source_file,
                _line_number as line_number,
                concat_ws('; ', nullif(rejection, ''), nullif(note, '')) as reason,
                record,
                rejection = '' as loaded,
                md5(concat_ws('|', _source_file, _line_number)) as _record_key
            from {_CHECKED}
            where rejection <> '' or note <> ''
            """,
            batch_rows,
        ):
            yield batch.cast(QUARANTINE_SCHEMA)
        yield from self._notes.to_batches()

    def newest(self, name: str) -> str | None:
        """The largest value of field `name` among the records that came from an API."""
        (value,) = self._con.execute(
            f"select max({_quoted(name)}) from {_CHECKED} where rejection = '' "
            f"and starts_with(_source_file, 'api:') "
            f"and rowid not in (select row_id from {_REPEATS})"
        ).fetchone()
        return value

    def _stream(self, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        # The next batch is fetched while dlt writes this one.
        yield from _read_ahead(self._batches(sql, batch_rows), depth=1)

    def _batches(self, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        # A cursor per stream: dlt takes items from the resources in turn, and a connection
        # holds only one open result.
        cursor = self._con.cursor()
        try:
            reader = cursor.sql(sql).to_arrow_reader(batch_rows)
            yielded = False
            for batch in reader:
                yielded = True
                yield batch
            if not yielded:  # the schema still goes on, so the table is always created
                yield pa.RecordBatch.from_pylist([], schema=reader.schema)
        finally:
            cursor.close()

    def close(self) -> None:
        if not self._own_connection:
            self._con.execute(f"drop table if exists {_CHECKED}")
            self._con.execute(f"drop table if exists {_REPEATS}")
            self._con.execute(f"detach database if exists {_LOADED_DB}")
            return
        self._con.close()
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def work_connection(
    duckdb_config: Mapping[str, object] | None = None,
) -> tuple[duckdb.DuckDBPyConnection, Path | None]:
    """An in-memory DuckDB with the given settings (`memory_limit`, `threads`,
    `temp_directory`); its spill files go to a folder of its own under `temp_directory`,
    so parallel reads never share one. Returns the connection and that folder."""
    config = dict(duckdb_config or {})
    spill_dir = None
    if config.get("temp_directory"):
        parent = Path(str(config["temp_directory"]))
        parent.mkdir(parents=True, exist_ok=True)
        spill_dir = Path(tempfile.mkdtemp(prefix="landing_", dir=parent))
        config["temp_directory"] = str(spill_dir)
    return duckdb.connect(config={key: str(value) for key, value in config.items()}), spill_dir


def landing_files(
    channel: Channel, landing_dir: Path, hashed: dict[str, list] | None = None
) -> list[LandingFile]:
    """The channel's files with their SHA-256. `hashed` (name -> [size, mtime_ns, sha256],
    updated in place) spares hashing a file again while its size and modification time stay
    the same: hashing every landing file each run took ~3 s at 10M events."""
    folder = Path(landing_dir) / channel.folder
    if not folder.is_dir():
        return []
    hashed = {} if hashed is None else hashed
    files = []
    for path in sorted(folder.glob(channel.pattern)):
        name, stat = path.relative_to(landing_dir).as_posix(), path.stat()
        size, mtime, fingerprint = hashed.get(name) or (None, None, None)
        if (size, mtime) != (stat.st_size, stat.st_mtime_ns):
            fingerprint = _sha256(path)
            hashed[name] = [stat.st_size, stat.st_mtime_ns, fingerprint]
        files.append(LandingFile(name=name, path=path, fingerprint=fingerprint))
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_GZIP_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_channel(
    channel: Channel,
    landing_dir: Path,
    already_loaded: Mapping[str, str] | None = None,
    api_pages: Iterable[tuple[str, list[str]]] = (),
    suppression: Suppression | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> ChannelBatch:
    """`stage_channel`, its records and quarantine gathered whole, in file and line order."""
    with stage_channel(channel, landing_dir, already_loaded, api_pages, suppression, con) as read:
        order = [("source_file", "ascending"), ("line_number", "ascending")]
        records = pa.Table.from_batches(list(read.records()))
        return ChannelBatch(
            records=records.sort_by([("_source_file", "ascending"), ("_line_number", "ascending")]),
            quarantine=pa.Table.from_batches(list(read.quarantine()), QUARANTINE_SCHEMA).sort_by(
                order
            ),
            files=read.files,
        )


def stage_channel(
    channel: Channel,
    landing_dir: Path,
    already_loaded: Mapping[str, str] | None = None,
    api_pages: Iterable[tuple[str, list[str]]] = (),
    suppression: Suppression | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    duckdb_config: Mapping[str, object] | None = None,
    hashed: dict[str, list] | None = None,
) -> ChannelRead:
    """Read the channel's files, skipping those whose fingerprint is in `already_loaded`,
    plus any pages pulled from its API (named source, JSON objects as text). Records holding
    an identifier on the `suppression` list are dropped before anything else sees them (not
    even the quarantine) and counted per file. `con`: an in-memory DuckDB connection to work
    in (a caller checking many small batches, the collector, saves opening one per call);
    by default a new one with `duckdb_config` (see `work_connection`). `hashed`: see
    `landing_files`."""
    already_loaded = already_loaded or {}
    files = [
        file
        for file in landing_files(channel, landing_dir, hashed)
        if already_loaded.get(file.name) != file.fingerprint
    ]
    own_connection, spill_dir = con is None, None
    if own_connection:
        con, spill_dir = work_connection(duckdb_config)
    read_at = datetime.now(UTC)
    checker = _Checker(con, channel, suppression)
    json_lines = _JsonLines(con, channel, checker)
    reads: list[tuple[LandingFile, FileRead | None, str | None]] = []
    for file in files:
        read = FileRead()
        try:
            if file.path.stat().st_size == 0:
                read.empty = "0 bytes"
            elif channel.file_format == "jsonl.gz":
                for lines in _read_ahead(_gz_lines(file.path, read), depth=_PREFETCH_PIECES):
                    json_lines.add(file.name, lines, read)
                if read.damage is not None:
                    read.damaged_from = read.lines + 1
            else:
                for text_sql, rows in _READERS[channel.file_format](con, channel, file, read):
                    checker.append(text_sql, {file.name: rows})
        except _READ_ERRORS as error:
            json_lines.forget(file.name)
            checker.forget(file.name)
            reads.append((file, None, f"unreadable file: {_describe(error)}"))
            continue
        reads.append((file, read, None))
    for source, objects in api_pages:
        # An API page's keys beyond the channel's fields are not loaded (its contract lists them).
        json_lines.add(source, pa.array(objects, pa.large_string()), FileRead())
    json_lines.flush()
    ledger: list[dict] = []
    file_notes: list[dict] = []  # quarantine rows about a whole file or its damaged tail
    for file, read, unreadable in reads:
        if read is None:
            ledger.append(_ledger_row(channel, file, UNREADABLE, unreadable, 0, [], read_at))
            file_notes.append(_file_note(channel, file, None, unreadable, None, loaded=False))
            continue
        if channel.file_format == "jsonl.gz":
            read.undeclared = _undeclared(channel, sorted(json_lines.keys.get(file.name, ())))
        if read.lines == 0 and read.damage is None and read.empty is None:
            read.empty = "no lines" if channel.file_format == "jsonl.gz" else "no rows"
        status, reason = LOADED, None
        if read.damage and not read.lines:
            status, reason = UNREADABLE, f"unreadable file: {read.damage}"
            file_notes.append(_file_note(channel, file, None, reason, None, loaded=False))
        elif read.damage:
            status = DAMAGED
            first_unread = read.damaged_from or read.lines + 1
            reason = f"file damaged after line {first_unread - 1}: {read.damage}"
            file_notes.append(
                _file_note(channel, file, first_unread, reason, read.damaged_line, loaded=False)
            )
        elif read.empty:
            status, reason = EMPTY, f"empty file: {read.empty}"
        if read.undeclared:
            note = f"undeclared columns not loaded: {', '.join(read.undeclared)}"
            file_notes.append(_file_note(channel, file, None, note, None, loaded=True))
        ledger.append(
            _ledger_row(channel, file, status, reason, read.lines, read.undeclared, read_at)
        )
    counts = checker.settle()
    for row in ledger:
        row.update(counts.get(row["source_file"], {}))
        row["suppressed_lines"] = checker.suppressed.get(row["source_file"], 0)
    return ChannelRead(
        channel,
        con,
        files=pa.Table.from_pylist(ledger, FILES_SCHEMA),
        notes=pa.Table.from_pylist(file_notes, QUARANTINE_SCHEMA),
        own_connection=own_connection,
        spill_dir=spill_dir,
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


def _loaded_fields(channel: Channel) -> list[str]:
    """The fields the channel declares: typed ones, then its optional extra (text) ones."""
    return [*channel.fields, *channel.extra_fields]


def _text_schema(channel: Channel) -> pa.Schema:
    """Every reader's batches have this shape: lineage, original text, a parse error, fields
    as text."""
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


def _gunzip(path: Path, read: FileRead) -> Iterator[bytes]:
    """The decompressed bytes, piece by piece, up to the first damage (then `read.damage`
    says what it is).

    Inflates member by member in large steps; only the step where the stream breaks is
    inflated again in ever smaller pieces, so every byte before the damage is kept.
    """
    with path.open("rb") as handle:
        inflater, fed = zlib.decompressobj(wbits=31), False  # gzip header and CRC checked
        chunk = handle.read(_GZIP_CHUNK)
        while chunk:
            before = inflater.copy()
            try:
                out = inflater.decompress(chunk)
            except zlib.error as error:
                yield _inflate_until_error(before, memoryview(chunk))
                read.damage = f"zlib.error: {error}"
                return
            fed = True
            yield out
            if inflater.eof:  # the next member, if any, starts in what this one left
                chunk = inflater.unused_data or handle.read(_GZIP_CHUNK)
                inflater, fed = zlib.decompressobj(wbits=31), False
            else:
                chunk = handle.read(_GZIP_CHUNK)
        if fed and not inflater.eof:
            read.damage = "truncated: the gzip stream ends before its end marker"


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


def _decode(data: bytes, first: bool) -> bytes:
    """UTF-8 with CRLF line ends made LF, (`first`: the file's start) a leading byte-order mark
    removed, and each byte that is not UTF-8 replaced as decoding with errors="replace" does.
    Stays bytes: a Python string of the whole piece cost more than reading it."""
    # On the bytes: a CR or LF byte is never part of a sequence the decoder replaces.
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if first and data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    if data.isascii():
        return data
    try:
        _text_array(data).validate(full=True)
        return data
    except pa.ArrowInvalid:
        return _replace_invalid_utf8(data)


def _replace_invalid_utf8(data: bytes) -> bytes:
    """`data` with each line holding a byte that is not UTF-8 decoded with errors="replace":
    what decoding the whole gives (an invalid sequence never spans a line feed), at the cost
    of the lines that are not ASCII only."""
    not_ascii = np.flatnonzero(np.frombuffer(data, np.uint8) >= 0x80)
    parts, done, index = [], 0, 0
    while index < len(not_ascii):
        start = data.rfind(b"\n", 0, not_ascii[index]) + 1
        end = data.find(b"\n", not_ascii[index])
        end = len(data) if end < 0 else end
        parts += [data[done:start], data[start:end].decode("utf-8", "replace").encode()]
        done, index = end, int(np.searchsorted(not_ascii, end))
    parts.append(data[done:])
    return b"".join(parts)


def _text_array(data: bytes) -> pa.Array:
    """`data` as a one-string Arrow array, without a copy."""
    offsets = pa.py_buffer(np.array([0, len(data)], np.int64))
    return pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])


def _read_ahead(items: Iterator, depth: int) -> Iterator:
    """`items`, produced by a thread of their own up to `depth` ahead: inflating and splitting
    (zlib and Arrow let go of the GIL) overlap DuckDB's check of the batch before. The
    producer's exception is raised here; stopping early stops the producer."""
    queue: Queue = Queue(maxsize=depth)
    stop, done = threading.Event(), object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put((item, None), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put((done, None))
        except Exception as error:  # noqa: BLE001 - handed to the consumer, raised there
            queue.put((done, error))

    producer = threading.Thread(target=produce, name="landing-read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, error = queue.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get_nowait()
            producer.join(timeout=0.1)


def _gz_lines(path: Path, read: FileRead) -> Iterator[pa.Array]:
    """The file's lines in pieces of whole lines; a line cut off by damage is not a line
    (it goes to `read.damaged_line`)."""
    return _lines(_gunzip(path, read), read)


def _lines(chunks: Iterable[bytes], read: FileRead) -> Iterator[pa.Array]:
    """The lines of the bytes `chunks` make up, in pieces of whole lines: UTF-8 (an invalid
    byte replaced), CRLF made LF, a leading byte-order mark removed. After damage
    (`read.damage`), the line it cut off is `read.damaged_line`, not a line."""
    pending, first = b"", True
    for data in chunks:
        data = pending + data if pending else data
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        pending = data[cut + 1 :]
        # a carriage return before the last line feed is that CRLF's
        end = cut - 1 if cut and data[cut - 1] == 13 else cut
        yield _split_lines(_decode(data[:end], first))
        first = False
    rest = _decode(pending, first) if pending else b""
    if read.damage is not None:
        read.damaged_line = rest.decode() or None
    elif rest:
        yield _split_lines(rest)


def _split_lines(data: bytes) -> pa.Array:
    """Split UTF-8 `data` on line feeds in Arrow: no Python string per line."""
    return pc.split_pattern(_text_array(data), "\n").flatten()


class _JsonLines:
    """JSON objects, one per line, from every file of a read (and API pages), checked in
    batches of about BATCH_ROWS lines whatever file they come from: a file's remainder is no
    batch of its own (a batch under two of DuckDB's row groups runs on one thread; social
    engagements at 10M, 9 files of ~83k lines, took 5.2 s instead of 1.4 s). Keys the channel
    does not declare are gathered per source in `keys`, not loaded."""

    def __init__(self, con: duckdb.DuckDBPyConnection, channel: Channel, checker: "_Checker"):
        self.con = con
        self.channel = channel
        self.checker = checker
        self.keys: dict[str, set[str]] = {}
        self._pending: list[tuple[str, np.ndarray, pa.Array]] = []  # source, line numbers, lines
        names = _loaded_fields(channel)
        structure = json.dumps(dict.fromkeys(names, "VARCHAR"))
        fields = ", ".join(f"fields.{_quoted(name)} as {_quoted(name)}" for name in names)
        # One parse per line into a struct of text fields (nested values stay JSON text).
        self._text_sql = f"""
            select
                _source_file,
                _line_number,
                record,
                parse_error,
                -- Valid JSON holds no raw control character but DEL (yyjson rejects them in
                -- strings); an escaped one starts with \\u00, \\b or \\f.
                parse_error is null and (
                    contains(record, '\\u00') or contains(record, '\\b')
                    or contains(record, '\\f') or contains(record, chr(127))
                ) as control_possible,
                {fields}
            from (
                select
                    *,
                    json_transform(
                        case when parse_error is null then record end, {_literal(structure)}
                    ) as fields
                from landing_parsed
            )
        """

    def add(self, source: str, lines: pa.Array, read: FileRead) -> None:
        """`lines` of `source`, numbered on from `read.lines`."""
        numbers = np.arange(read.lines + 1, read.lines + len(lines) + 1)
        read.lines += len(lines)
        self._pending.append((source, numbers, lines))
        if sum(len(lines) for _, _, lines in self._pending) >= BATCH_ROWS:
            self.flush()

    def forget(self, source: str) -> None:
        self._pending = [piece for piece in self._pending if piece[0] != source]
        self.keys.pop(source, None)

    def flush(self) -> None:
        if not self._pending:
            return
        rows: dict[str, int] = {}
        for source, _, lines in self._pending:
            rows[source] = rows.get(source, 0) + len(lines)
        self.con.register(
            "landing_lines",
            pa.table(
                {
                    "_source_file": pa.chunked_array(
                        [pa.repeat(source, len(lines)) for source, _, lines in self._pending],
                        pa.string(),
                    ),
                    "_line_number": np.concatenate([numbers for _, numbers, _ in self._pending]),
                    "record": pa.chunked_array(
                        [lines for _, _, lines in self._pending], pa.large_string()
                    ),
                }
            ),
        )
        self._pending = []
        # CASE evaluates lazily: trim copies only lines that open with a blank, json_type sees
        # only valid text, and only text that does not open with a brace (valid JSON that does
        # is an object).
        self.con.execute(
            """
            create or replace table landing_parsed as
            select
                _source_file,
                _line_number,
                record,
                case
                    when case when trim(left(record, 1)) = '' then trim(record) = '' end
                        then 'empty line'
                    when not json_valid(record) then 'malformed JSON'
                    when starts_with(record, '{') then null
                    when json_type(record) <> 'OBJECT' then 'JSON value is not an object'
                end as parse_error
            from landing_lines
            """
        )
        self.con.unregister("landing_lines")
        for source, key in self.con.execute(
            "select distinct _source_file, unnest(json_keys(record)) from landing_parsed "
            "where parse_error is null"
        ).fetchall():
            self.keys.setdefault(source, set()).add(key)
        self.checker.append(self._text_sql, rows)
        self.con.execute("drop table landing_parsed")


def _read_csv(
    con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile, read: FileRead
) -> Iterator[tuple[str, int]]:
    """A file where every line is a row (see `_lines_are_rows`) is split in DuckDB, batch by
    batch; any other goes through the csv module, which keeps exact line numbers across
    quoted line breaks. Both give the same rows, line numbers and errors."""
    if _lines_are_rows(file.path):
        yield from _read_csv_lines(con, channel, file, read)
    else:
        yield from _read_csv_module(con, channel, file, read)


def _lines_are_rows(path: Path) -> bool:
    """True when the csv module would read the file a line a row, each field what lies
    between commas: no quote character, no NUL or lone carriage return (a line end to the
    csv module), no line longer than the csv module's field limit (an error to it). Generated
    and most exported files are so; splitting them in DuckDB is ~4x faster."""
    limit = csv.field_size_limit()
    with path.open("rb") as handle:
        previous, line_start = b"", 0  # the last byte of the block before; where its line began
        while block := handle.read(_CSV_BLOCK):
            if b'"' in block or b"\0" in block:
                return False
            joined = previous + block
            if joined.count(b"\r") != joined.count(b"\r\n") + joined.endswith(b"\r"):
                return False
            breaks = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n"))
            starts = np.concatenate(([line_start], breaks + 1))
            ends = np.concatenate((breaks, [len(block)]))
            if (ends - starts).max() > limit:
                return False
            line_start = starts[-1] - len(block)  # negative: the line began in an earlier block
            previous = block[-1:]
        return not previous.endswith(b"\r")


def _read_csv_lines(
    con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile, read: FileRead
) -> Iterator[tuple[str, int]]:
    pieces = _lines(_file_chunks(file.path), read)
    first = next(pieces, None)
    if first is None:
        read.empty = "no header, no rows"
        return
    header = [column.strip() for column in next(csv.reader([first[0].as_py()]))]
    read.undeclared = _undeclared(channel, header)
    positions = {name: header.index(name) for name in _loaded_fields(channel) if name in header}
    fields = ",\n".join(
        f"case when width = {len(header)} then nullif(fields[{positions[name] + 1}], '') end"
        f" as {_quoted(name)}"
        if name in positions
        else f"cast(null as varchar) as {_quoted(name)}"
        for name in _loaded_fields(channel)
    )
    text_sql = f"""
        select
            {_literal(file.name)} as _source_file,
            _line_number,
            record,
            case when width <> {len(header)}
                then 'expected {len(header)} columns, got ' || width end as parse_error,
            true as control_possible,
            {fields}
        from (
            select *, case when record = '' then 0 else len(fields) end as width
            from (select *, string_split(record, ',') as fields from landing_lines)
        )
    """
    rows = [first[1:], *pieces]
    for batch in _batched(rows, BATCH_ROWS):
        # line 1 is the header
        numbers = np.arange(read.lines + 2, read.lines + len(batch) + 2)
        con.register("landing_lines", pa.table({"_line_number": numbers, "record": batch}))
        read.lines += len(batch)
        yield text_sql, len(batch)
        con.unregister("landing_lines")
    if not read.lines:
        read.empty = "header only, no rows"


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(_CSV_BLOCK):
            yield chunk


def _batched(pieces: Iterable[pa.Array], rows: int) -> Iterator[pa.ChunkedArray]:
    """The pieces' lines in batches of about `rows` (a piece is never split)."""
    batch: list[pa.Array] = []
    for piece in pieces:
        if len(piece):
            batch.append(piece)
        if sum(len(lines) for lines in batch) >= rows:
            yield pa.chunked_array(batch, pa.large_string())
            batch = []
    if batch:
        yield pa.chunked_array(batch, pa.large_string())


def _read_csv_module(
    con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile, read: FileRead
) -> Iterator[tuple[str, int]]:
    """CSV rows are split by the csv module, which keeps exact line numbers."""
    with file.path.open(encoding="utf-8", errors="replace", newline="") as handle:
        lines = (line.replace("\r\n", "\n") for line in handle)
        reader = csv.reader(_without_bom(lines))
        header = next(reader, None)
        if header is None:
            read.empty = "no header, no rows"
            return
        header = [column.strip() for column in header]
        read.undeclared = _undeclared(channel, header)
        names = _loaded_fields(channel)
        positions = {name: header.index(name) for name in names if name in header}
        schema = _text_schema(channel)
        columns: dict[str, list] = {name: [] for name in schema.names}
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:  # e.g. a field over the csv module's size limit
                read.damage, read.damaged_from = f"csv.Error: {error}", line
                break
            read.lines += 1
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
            if len(columns["record"]) >= BATCH_ROWS:
                yield from _arrow_batch(con, pa.table(columns, schema=schema))
                columns = {name: [] for name in schema.names}
        if columns["record"]:
            yield from _arrow_batch(con, pa.table(columns, schema=schema))
    if not read.lines and read.damage is None:
        read.empty = "header only, no rows"


def _without_bom(lines: Iterator[str]) -> Iterator[str]:
    first = next(lines, None)
    if first is not None:
        yield first.removeprefix(_BOM)
        yield from lines


def _arrow_batch(con: duckdb.DuckDBPyConnection, table: pa.Table) -> Iterator[tuple[str, int]]:
    con.register("landing_batch", table)
    yield "select *, true as control_possible from landing_batch", table.num_rows
    con.unregister("landing_batch")


def _read_parquet(
    con: duckdb.DuckDBPyConnection, channel: Channel, file: LandingFile, read: FileRead
) -> Iterator[tuple[str, int]]:
    """Row group by row group, in batches; a row group that fails to read ends the file
    (damaged); a footer that cannot be read (no schema) makes it unreadable."""
    parquet = pq.ParquetFile(file.path)
    present = set(parquet.schema_arrow.names)
    read.undeclared = _undeclared(channel, parquet.schema_arrow.names)
    fields = ",\n".join(
        f"cast({_quoted(name)} as varchar) as {_quoted(name)}"
        if name in present
        else f"cast(null as varchar) as {_quoted(name)}"
        for name in _loaded_fields(channel)
    )
    for index in range(parquet.num_row_groups):
        try:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[index]):
                con.register("landing_rows", pa.Table.from_batches([batch]))
                yield (
                    f"""
                    select
                        {_literal(file.name)} as _source_file,
                        cast({read.lines} + row_number() over () as bigint) as _line_number,
                        cast(to_json(landing_rows) as varchar) as record,
                        cast(null as varchar) as parse_error,
                        true as control_possible,
                        {fields}
                    from landing_rows
                """,
                    batch.num_rows,
                )
                con.unregister("landing_rows")
                read.lines += batch.num_rows
        except (OSError, pa.ArrowException) as error:
            read.damage = f"row group {index + 1} of {parquet.num_row_groups}: {_describe(error)}"
            return


# Readers of a file into batches of text rows; JSON lines go through _JsonLines instead.
_READERS = {"csv": _read_csv, "parquet": _read_parquet}


class _Checker:
    """Checks batches of text rows and appends them, typed, to the work table `_CHECKED`:
    each row with its natural key, why it is rejected ('' when it is not), a note on a value
    that does not cast or is implausible, and its original text only when one of those two
    is set (quarantine needs it; a loaded record's lineage is its file and line)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, channel: Channel, suppression: Suppression | None
    ):
        self.con = con
        self.channel = channel
        self.suppressed: dict[str, int] = {}  # source -> lines dropped as an erased person's
        self._match = (
            suppression.match_sql(channel.folder, "suppressed_keys", _loaded_fields(channel))
            if suppression
            else None
        )
        if self._match:
            con.register("suppressed_keys", pa.table({"key": sorted(suppression.keys)}))
        columns = [
            *(f"{_quoted(name)} {kind}" for name, kind in channel.fields.items()),
            *(f"{_quoted(name)} varchar" for name in channel.extra_fields),
            "_source_file varchar",
            "_line_number bigint",
            "_record_key varchar",
            "rejection varchar",
            "note varchar",
            "record varchar",
        ]
        con.execute(f"create or replace table {_CHECKED} ({', '.join(columns)})")
        self._select = self._check_sql()

    def append(self, text_sql: str, rows: Mapping[str, int]) -> None:
        """Check the text rows `text_sql` selects (`rows`: how many of each source) and keep
        those of no erased person."""
        keep = f"not {self._match}" if self._match else "true"
        checked = self._select.replace(_TEXT, text_sql).replace(_KEEP, keep)
        if not self._match:
            self.con.execute(f"insert into {_CHECKED} {checked}")
            return
        kept = self.con.execute(f"insert into {_CHECKED} {checked} returning _source_file")
        counts = pc.value_counts(kept.to_arrow_table()["_source_file"])
        inserted = dict(
            zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
        )
        for source, count in rows.items():
            dropped = count - inserted.get(source, 0)
            self.suppressed[source] = self.suppressed.get(source, 0) + dropped

    def forget(self, source: str) -> None:
        """Take back what was appended from a file that turned out unreadable."""
        self.con.execute(f"delete from {_CHECKED} where _source_file = ?", [source])
        self.suppressed.pop(source, None)

    def settle(self) -> dict[str, dict[str, int]]:
        """Mark repeats of a key within this read (the first arrival wins for facts, the
        last for upserts: files are read in name order, which landing exports keep
        chronological), and count per file what loads, repeats, or is rejected."""
        if self._match:
            self.con.unregister("suppressed_keys")
        newest_first = "desc" if self.channel.merge_strategy == UPSERT else "asc"
        # Only keys seen more than once are ranked: a cheap count, then a small sort. The
        # count groups the keys' 64-bit hashes (a third faster than the text); a hash shared
        # by two keys only makes both candidates, which the ranking by key then tells apart.
        self.con.execute(
            f"""
            create or replace table {_REPEATS} as
            with repeated as (
                select hash(_record_key) as key_hash from {_CHECKED} where rejection = ''
                group by key_hash having count(*) > 1
            ),
            ranked as (
                select
                    rowid as row_id,
                    _source_file,
                    row_number() over (
                        partition by _record_key
                        order by _source_file {newest_first}, _line_number {newest_first}
                    ) as arrival
                from {_CHECKED}
                where rejection = '' and hash(_record_key) in (select key_hash from repeated)
            )
            select row_id, _source_file from ranked where arrival > 1
            """
        )
        repeats = dict(
            self.con.execute(
                f"select _source_file, count(*) from {_REPEATS} group by _source_file"
            ).fetchall()
        )
        return {
            source_file: {
                "loaded_lines": valid - repeats.get(source_file, 0),
                "duplicate_lines": repeats.get(source_file, 0),
                "rejected_lines": rejected,
            }
            for source_file, valid, rejected in self.con.execute(
                f"""
                select
                    _source_file,
                    count(*) filter (where rejection = ''),
                    count(*) filter (where rejection <> '')
                from {_CHECKED}
                group by _source_file
                """
            ).fetchall()
        }

    def _check_sql(self) -> str:
        """A select over `_TEXT` (a batch's text rows) keeping rows where `_KEEP`, in
        `_CHECKED`'s columns."""
        channel = self.channel
        every_field = _loaded_fields(channel)
        # One scan of all values for a control character, only where the text row says one
        # is possible (control_possible: a JSON line with an escape or DEL, every CSV and
        # parquet row); each value is looked at only in the rare row that has one (a regex
        # per value and row cost more than the parse).
        any_control = (
            f"case when control_possible then regexp_matches(concat("
            f"{', '.join(_quoted(name) for name in every_field)}), '{_CONTROL}') end"
        )
        # Only a value that opens with a blank can trim to nothing (trim copies the value).
        missing = "{v} is null or {v} = '' or (starts_with({v}, ' ') and trim({v}) = '')"
        # strlen (bytes, no decoding) is never below length (characters). A value is looked at
        # only in a row whose original text is over half the limit: JSON escapes and CSV
        # quoting only add to a value; a parquet value as text (a list's "[1, 2]") is under
        # twice its JSON ("[1,2]").
        oversized = ", ".join(
            f"case when strlen({_quoted(name)}) > {MAX_FIELD_CHARS} "
            f"and length({_quoted(name)}) > {MAX_FIELD_CHARS} then "
            f"'{name}: ' || length({_quoted(name)}) || ' characters (limit {MAX_FIELD_CHARS})' end"
            for name in every_field
        )
        rejections = [
            *(
                f"case when {missing.format(v=_quoted(name))} "
                f"then 'missing required field {name}' end"
                for name in channel.required
            ),
            f"case when strlen(record) <= {MAX_FIELD_CHARS // 2} then null "
            + f"else concat_ws('; ', {oversized}) end",
            f"case when {any_control} then concat_ws('; ', "
            + ", ".join(
                f"case when regexp_matches({_quoted(name)}, '{_CONTROL}') "
                f"then '{name}: control characters' end"
                for name in every_field
            )
            + ") end",
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
        typed = [
            *(
                f"try_cast({_quoted(name)} as {kind}) as {_quoted(name)}"
                for name, kind in channel.fields.items()
            ),
            *(_quoted(name) for name in channel.extra_fields),
        ]
        record_key = (
            "md5(concat_ws('|', "
            + ", ".join(
                f"coalesce(cast({_typed(channel, name)} as varchar), '\\N')"
                for name in channel.natural_key
            )
            + "))"
        )
        return f"""
            with checked as (
                select
                    *,
                    coalesce(parse_error, concat_ws('; ', {", ".join(rejections)})) as rejection,
                    concat_ws('; ', {", ".join(notes) or "null"}) as note
                from ({_TEXT}) as landing_rows
                where {_KEEP}
            )
            select
                {", ".join(typed)},
                _source_file,
                _line_number,
                {record_key} as _record_key,
                rejection,
                note,
                case when rejection <> '' or note <> '' then record end as record
            from checked
            """


# Where _Checker's select takes a batch's text rows, and which of them it keeps.
_TEXT, _KEEP = "/*text*/", "/*keep*/"
# A control character (but tab, line feed and carriage return) anywhere in a value.
_CONTROL = "[\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F]"


def _typed(channel: Channel, name: str) -> str:
    kind = channel.fields[name]
    return _quoted(name) if kind == TEXT else f"try_cast({_quoted(name)} as {kind})"
