"""Property-based fuzz tests of the landing reader, one per format: files mixing good records
and bad ones, damaged or empty files. Whatever arrives, no exception escapes `read_channel`,
every bad record is quarantined (or its file ledgered) with a reason, and no good record is
lost (except lines after a point of gzip damage, which a quarantine span then covers). A CSV
file read a line a row in DuckDB gives what the csv module gives."""

import csv
import gzip
import io
import json
import tempfile
import zlib
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.channels import CHANNELS, FLOAT, INT, Channel
from ingestion.landing import (
    FileRead,
    LandingFile,
    _lines_are_rows,
    _read_csv_lines,
    _read_csv_module,
    read_channel,
)

FUZZ = settings(max_examples=50, deadline=None, derandomize=True, database=None)

WEB = CHANNELS["web_events"]
TOUCHES = CHANNELS["campaign_touches"]
ORDERS = CHANNELS["orders"]

GOOD, STRAY = "good", "stray"  # record kinds that must load (a stray column is not loaded)
BAD_JSON = ["malformed", "missing", "control", "not_object", "empty_line", "oversized"]
BAD_ROW = ["missing", "control", "short_row"]
BAD_PARQUET = ["missing", "control"]


def _good(channel: Channel, key: str) -> dict[str, object]:
    """A valid record: every declared field with a plausible value, its natural key unique."""
    values: dict[str, object] = {}
    for name, kind in channel.fields.items():
        if kind == INT:
            values[name] = 1
        elif kind == FLOAT:
            values[name] = 2.5
        elif "time" in name or "date" in name:
            values[name] = "2026-09-03T10:00:00Z"
        else:
            values[name] = f"{name}-{key}"
    return values


def _record(channel: Channel, kind: str, key: str) -> dict[str, object]:
    record = _good(channel, key)
    if kind == "missing":
        record[channel.required[-1]] = None
    elif kind == "control":
        text_field = next(name for name in channel.fields if name not in channel.natural_key)
        record[text_field] = "bad\x07value"
    elif kind == "oversized":
        record[channel.required[-1]] = "x" * 70_000
    elif kind == STRAY:
        record["stray_column"] = "not declared"
    return record


def _key(channel: Channel, record: dict) -> tuple:
    return tuple(str(record[name]) for name in channel.natural_key)


def _records_keys(channel: Channel, batch) -> set[tuple]:
    columns = [batch.records[name].to_pylist() for name in channel.natural_key]
    return {tuple(str(value) for value in values) for values in zip(*columns)}


def _quarantined(batch, source_file: str) -> dict[int | None, str]:
    rows = batch.quarantine.to_pylist()
    return {row["line_number"]: row["reason"] for row in rows if row["source_file"] == source_file}


kinds_json = st.lists(st.sampled_from([GOOD, GOOD, STRAY, *BAD_JSON]), min_size=0, max_size=30)
kinds_row = st.lists(st.sampled_from([GOOD, GOOD, STRAY, *BAD_ROW]), min_size=0, max_size=30)


@FUZZ
@given(
    kinds=kinds_json,
    bom=st.booleans(),
    crlf=st.booleans(),
    damage=st.one_of(
        st.none(),
        st.tuples(st.just("cut"), st.floats(0.0, 1.0)),
        st.tuples(st.just("flip"), st.floats(0.1, 0.95)),
    ),
)
def test_jsonl_gz_fuzz(kinds, bom, crlf, damage):
    channel = WEB
    lines: list[str] = []
    expected: dict[int, tuple | None] = {}  # line number -> natural key (None: a bad line)
    for number, kind in enumerate(kinds, start=1):
        if kind == "malformed":
            line = '{"event_id": "cut'
        elif kind == "not_object":
            line = "[1, 2]"
        elif kind == "empty_line":
            line = ""
        else:
            record = _record(channel, kind, f"k{number}")
            line = json.dumps(record)
            expected[number] = _key(channel, record) if kind in (GOOD, STRAY) else None
            lines.append(line)
            continue
        expected[number] = None
        lines.append(line)
    text = (("\ufeff" if bom else "") + "".join(line + "\n" for line in lines)).encode()
    if crlf:
        text = text.replace(b"\n", b"\r\n")
    data = gzip.compress(text, mtime=0)
    intact_lines = len(lines)
    if damage is not None:
        how, where = damage
        # after a flipped byte inside the deflate data (not the 10-byte header or the
        # 8-byte trailer), or a cut: only what the bytes before it inflate to is sure
        position = 10 + int((len(data) - 18) * where) if how == "flip" else int(len(data) * where)
        intact_lines = zlib.decompressobj(wbits=31).decompress(data[:position]).count(b"\n")
        if how == "flip":
            data = data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]
        else:
            data = data[:position]
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder)
        (landing / channel.folder).mkdir()
        (landing / channel.folder / "fuzz.jsonl.gz").write_bytes(data)
        batch = read_channel(channel, landing)
    name = f"{channel.folder}/fuzz.jsonl.gz"
    ledger = batch.files.to_pylist()[0]
    quarantine = _quarantined(batch, name)
    loaded = _records_keys(channel, batch)
    if not data:
        assert (ledger["status"], ledger["reason"]) == ("empty", "empty file: 0 bytes")
        return
    if ledger["status"] == "unreadable":
        assert ledger["reason"] and None in quarantine, ledger
        assert damage is not None and intact_lines == 0
        return
    span = [
        number
        for number, reason in quarantine.items()
        if number is not None and reason.startswith("file damaged")
    ]
    for number, key in expected.items():
        covered_by_span = bool(span) and number >= span[0]
        if number <= intact_lines:
            if key is None:
                assert quarantine.get(number), (number, quarantine)
            else:
                assert key in loaded, (number, key)
        elif key is not None and key not in loaded:
            # after the damage: cut off (span), or inflated to garbage (quarantined)
            assert covered_by_span or number in quarantine or ledger["status"] == "damaged"
    if damage is None:
        assert ledger["status"] == ("loaded" if lines else "empty"), ledger
    if ledger["status"] == "damaged":
        assert len(span) == 1 and ledger["reason"] == quarantine[span[0]]
    if STRAY in kinds[:intact_lines] and ledger["status"] != "unreadable":
        assert "stray_column" in (ledger["unexpected_columns"] or "")
    assert "stray_column" not in batch.records.column_names


@FUZZ
@given(
    kinds=kinds_row,
    bom=st.booleans(),
    crlf=st.booleans(),
    shuffle_header=st.randoms(use_true_random=False),
    empty=st.booleans(),
)
def test_csv_fuzz(kinds, bom, crlf, shuffle_header, empty):
    channel = TOUCHES
    header = [*channel.fields, *([STRAY + "_column"] if STRAY in kinds else [])]
    shuffle_header.shuffle(header)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(header)
    expected: dict[int, tuple | None] = {}
    for number, kind in enumerate(kinds, start=2):  # line 1 is the header
        record = _record(channel, kind, f"k{number}")
        record.setdefault("stray_column", "")
        if kind == "short_row":
            writer.writerow(["only", "two"])
            expected[number] = None
            continue
        writer.writerow(["" if record[name] is None else record[name] for name in header])
        expected[number] = _key(channel, record) if kind in (GOOD, STRAY) else None
    data = b"" if empty else (("\ufeff" if bom else "") + buffer.getvalue()).encode()
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder)
        (landing / channel.folder).mkdir()
        (landing / channel.folder / "fuzz.csv").write_bytes(data)
        batch = read_channel(channel, landing)
    name = f"{channel.folder}/fuzz.csv"
    ledger = batch.files.to_pylist()[0]
    if empty or not kinds:
        assert (ledger["status"], ledger["lines"]) == ("empty", 0) and ledger["reason"]
        return
    assert ledger["status"] == "loaded", ledger
    quarantine = _quarantined(batch, name)
    loaded = _records_keys(channel, batch)
    for number, key in expected.items():
        if key is None:
            assert quarantine.get(number), (number, quarantine)
        else:
            assert key in loaded and number not in quarantine, (number, quarantine.get(number))
    assert ledger["loaded_lines"] == sum(key is not None for key in expected.values())
    if STRAY in kinds:
        assert ledger["unexpected_columns"] == "stray_column"
        assert quarantine[None] == "undeclared columns not loaded: stray_column"
    assert "stray_column" not in batch.records.column_names


_ARROW = {INT: pa.int64(), FLOAT: pa.float64()}


@FUZZ
@given(
    files=st.lists(
        st.tuples(
            st.lists(st.sampled_from([GOOD, GOOD, STRAY, *BAD_PARQUET]), max_size=20),
            st.sampled_from(["whole", "empty", "truncated", "no rows"]),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_parquet_fuzz(files):
    channel = ORDERS
    expected: dict[str, dict[int, tuple | None]] = {}
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder)
        (landing / channel.folder).mkdir()
        for index, (kinds, shape) in enumerate(files):
            name = f"{channel.folder}/fuzz_{index}.parquet"
            records = [_record(channel, kind, f"f{index}k{n}") for n, kind in enumerate(kinds)]
            if shape == "no rows":
                records, kinds = [], []
            columns = [*channel.fields, *(["stray_column"] if STRAY in kinds else [])]
            table = pa.table(
                {
                    column: pa.array(
                        [record.get(column) for record in records],
                        _ARROW.get(channel.fields.get(column), pa.string()),
                    )
                    for column in columns
                }
            )
            path = landing / name
            pq.write_table(table, path)
            if shape == "empty":
                path.write_bytes(b"")
            elif shape == "truncated":
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            expected[name] = {
                number: _key(channel, record) if kind in (GOOD, STRAY) else None
                for number, (kind, record) in enumerate(zip(kinds, records), start=1)
            }
        batch = read_channel(channel, landing)
    ledger = {row["source_file"]: row for row in batch.files.to_pylist()}
    loaded = _records_keys(channel, batch)
    assert set(ledger) == set(expected)
    for (kinds, shape), (name, lines) in zip(files, expected.items()):
        row = ledger[name]
        quarantine = _quarantined(batch, name)
        if shape == "empty" or (shape == "no rows"):
            assert (row["status"], row["lines"]) == ("empty", 0) and row["reason"]
            continue
        if shape == "truncated":
            assert row["status"] == "unreadable" and row["reason"] and None in quarantine
            continue
        assert row["status"] == ("loaded" if lines else "empty"), row
        for number, key in lines.items():
            if key is None:
                assert quarantine.get(number), (name, number)
            else:
                assert key in loaded, (name, number, key)
        if STRAY in kinds:
            assert row["unexpected_columns"] == "stray_column"
    assert "stray_column" not in batch.records.column_names


# Pieces of CSV lines without a quote, NUL or lone carriage return: what `_lines_are_rows`
# lets DuckDB split. Delimiters, empty fields, a control character, non-ASCII text and a byte
# that is not UTF-8 included.
csv_line = st.lists(
    st.sampled_from(
        [b"a", b"touch_id", b"campaign_id", b"", b",", b" ", b"\x07", "é".encode(), b"\xff"]
    ),
    max_size=12,
).map(b"".join)


@FUZZ
@given(
    lines=st.lists(csv_line, max_size=20),
    crlf=st.booleans(),
    bom=st.booleans(),
    final_break=st.booleans(),
)
def test_csv_read_a_line_a_row_equals_the_csv_module(lines, crlf, bom, final_break):
    header = b"touch_id,campaign_id,touch_time,stray"
    data = (b"\xef\xbb\xbf" if bom else b"") + (b"\r\n" if crlf else b"\n").join([header, *lines])
    data += (b"\r\n" if crlf else b"\n") if final_break else b""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        path.write_bytes(data)
        file = LandingFile(name="campaign_touches/fuzz.csv", path=path, fingerprint="")
        assert _lines_are_rows(path)
        read = [_text_rows(reader, file) for reader in (_read_csv_lines, _read_csv_module)]
    assert read[0] == read[1]


def _text_rows(reader, file: LandingFile) -> tuple[list[tuple], dict]:
    """The text rows a CSV reader hands the checks, and what it notes about the file."""
    read, rows = FileRead(), []
    with duckdb.connect() as con:
        for text_sql, count in reader(con, TOUCHES, file, read):
            batch = con.sql(
                "select _source_file, _line_number, record, parse_error, "
                + ", ".join(f'"{name}"' for name in [*TOUCHES.fields, *TOUCHES.extra_fields])
                + f" from ({text_sql}) order by _line_number"
            ).fetchall()
            assert len(batch) == count
            rows += batch
    return rows, vars(read)


@pytest.mark.parametrize(
    ("data", "plain"),
    [
        (b"a,b\n1,2\r\n3,4", True),
        (b'a,b\n"1",2\n', False),  # a quote: fields may hold commas and line breaks
        (b"a,b\n1,2\r3,4\n", False),  # a lone carriage return ends a line for the csv module
        (b"a,b\n1,\x002\n", False),  # the csv module stops at a NUL
        (b"a,b\n" + b"x" * (csv.field_size_limit() + 1) + b"\n", False),  # over its field limit
        (b"a,b\n1,2\r", False),
    ],
)
def test_only_files_read_a_line_a_row_are_split_in_duckdb(tmp_path, data, plain):
    path = tmp_path / "file.csv"
    path.write_bytes(data)
    assert _lines_are_rows(path) is plain
