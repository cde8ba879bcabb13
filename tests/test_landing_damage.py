"""Damaged landing input is contained by file and by line: real files in a tmp landing dir,
the real reader, and the real dlt pipeline into a real DuckDB file."""

import gzip
import zlib
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from test_ingestion import _event

from dagster_dmp.assets.reports import marketing_report
from dagster_dmp.resources import WarehouseResource
from ingestion.channels import CHANNELS
from ingestion.landing import read_channel
from ingestion.ledger import landing_problems
from ingestion.pipeline import load_channel
from ingestion.suppression import Suppression, suppression_key

WEB = CHANNELS["web_events"]
CRM = CHANNELS["crm_customers"]
TOUCHES = CHANNELS["campaign_touches"]
ORDERS = CHANNELS["orders"]


def _events(prefix: str, count: int) -> list[str]:
    # varied text, so the deflate stream is long enough to damage in the middle
    return [_event(f"{prefix}-{n}", page_url=f"/p/{n * 7919 % 10007}") for n in range(count)]


def _gz(lines: list[str]) -> bytes:
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)


def _write(landing: Path, name: str, data: bytes) -> Path:
    path = landing / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _ledger(batch) -> dict[str, dict]:
    return {row["source_file"]: row for row in batch.files.to_pylist()}


def _query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def _damaged_deflate(lines: list[str]) -> tuple[bytes, int]:
    """A valid gzip header and a deflate stream broken in the middle, and how many lines
    inflate from the bytes before the damage (those after it may inflate to garbage before
    the stream is found broken)."""
    data = bytearray(_gz(lines))
    middle = len(data) // 2
    intact = zlib.decompressobj(wbits=31).decompress(bytes(data[:middle]))
    data[middle : middle + 16] = b"\xff" * 16
    return bytes(data), intact.count(b"\n")


def test_damaged_deflate_stream_loads_the_good_files_and_the_readable_part(tmp_path):
    landing = tmp_path / "landing"
    _write(landing, "web_events/a_good.jsonl.gz", _gz(_events("good", 50)))
    lines = _events("broken", 2000)
    data, intact = _damaged_deflate(lines)
    _write(landing, "web_events/b_broken.jsonl.gz", data)

    batch = read_channel(WEB, landing)  # no exception escapes
    ledger = _ledger(batch)
    broken = ledger["web_events/b_broken.jsonl.gz"]
    assert ledger["web_events/a_good.jsonl.gz"]["status"] == "loaded"
    assert broken["status"] == "damaged"
    assert broken["reason"].startswith(f"file damaged after line {broken['lines']}: zlib.error")
    assert 0 < intact <= broken["lines"] < len(lines)
    loaded = set(batch.records["event_id"].to_pylist())
    assert {f"good-{n}" for n in range(50)} <= loaded
    assert {f"broken-{n}" for n in range(intact)} <= loaded
    span = batch.quarantine.filter(
        pa.compute.equal(batch.quarantine["source_file"], "web_events/b_broken.jsonl.gz")
    ).to_pylist()
    # garbage inflated after the damage is quarantined line by line; the unread rest is a span
    assert [
        (row["line_number"], row["loaded"]) for row in span if row["reason"] == broken["reason"]
    ] == [(broken["lines"] + 1, False)]
    assert all(row["line_number"] > intact for row in span if row["line_number"] is not None)

    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, landing, db)
    assert _query(db, f"select count(*) from raw.{WEB.table} where event_id like 'good-%'") == [
        (50,)
    ]
    # the damaged file is remembered: a second run reads nothing again, loads nothing twice
    before = _query(db, f"select count(*) from raw.{WEB.table}")
    load_channel(WEB, landing, db)
    assert _query(db, f"select count(*) from raw.{WEB.table}") == before


def test_truncated_gzip_keeps_the_lines_before_the_cut(tmp_path):
    landing = tmp_path / "landing"
    lines = _events("cut", 200)
    data = _gz(lines)
    _write(landing, "web_events/cut.jsonl.gz", data[: int(len(data) * 0.7)])

    batch = read_channel(WEB, landing)
    row = _ledger(batch)["web_events/cut.jsonl.gz"]
    assert row["status"] == "damaged"
    read = row["lines"]
    assert 0 < read < 200 and row["loaded_lines"] == read
    assert row["reason"] == (
        f"file damaged after line {read}: truncated: the gzip stream ends before its end marker"
    )
    assert batch.records["event_id"].to_pylist() == [f"cut-{n}" for n in range(read)]
    span = batch.quarantine.to_pylist()
    assert [(entry["line_number"], entry["loaded"]) for entry in span] == [(read + 1, False)]
    # the cut-off line's remaining text is kept as the record
    assert lines[read].startswith(span[0]["record"] or "")


def test_a_file_nothing_can_be_read_of_is_unreadable_and_retried(tmp_path):
    landing = tmp_path / "landing"
    _write(landing, "web_events/a.jsonl.gz", _gz(_events("ok", 3)))
    _write(landing, "web_events/z.jsonl.gz", _gz(_events("lost", 3))[:15])  # header only
    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, landing, db)
    assert _query(db, f"select status from raw.{WEB.files_table} order by source_file") == [
        ("loaded",),
        ("unreadable",),
    ]
    _write(landing, "web_events/z.jsonl.gz", _gz(_events("lost", 3)))  # fixed in place
    load_channel(WEB, landing, db)
    assert _query(db, f"select count(*) from raw.{WEB.table}") == [(6,)]


def test_byte_order_marks_and_crlf_are_read(tmp_path):
    landing = tmp_path / "landing"
    csv_text = "touch_id,campaign_id,touch_time\r\nt1,c1,2026-09-01\r\nt2,c1,2026-09-02\r\n"
    _write(landing, "campaign_touches/bom.csv", b"\xef\xbb\xbf" + csv_text.encode())
    jsonl = "\r\n".join(_events("bom", 3)) + "\r\n"
    _write(landing, "web_events/bom.jsonl.gz", gzip.compress(b"\xef\xbb\xbf" + jsonl.encode()))

    touches = read_channel(TOUCHES, landing)
    assert touches.records["touch_id"].to_pylist() == ["t1", "t2"]
    assert touches.quarantine.num_rows == 0
    web = read_channel(WEB, landing)
    assert web.records["event_id"].to_pylist() == ["bom-0", "bom-1", "bom-2"]
    assert web.quarantine.num_rows == 0
    assert web.files["status"].to_pylist() == ["loaded"]


def test_a_required_field_of_blanks_is_missing_and_one_with_text_is_not(tmp_path):
    landing = tmp_path / "landing"
    values = {"t1": "", "t2": "   ", "t3": " c1", "t4": "c1 ", "t5": "\tc1"}
    rows = "".join(f"{key},{value},2026-09-01\n" for key, value in values.items())
    _write(landing, "campaign_touches/a.csv", f"touch_id,campaign_id,touch_time\n{rows}".encode())

    touches = read_channel(TOUCHES, landing)
    assert touches.records["touch_id"].to_pylist() == ["t3", "t4", "t5"]
    assert touches.quarantine.to_pylist()[0]["reason"] == "missing required field campaign_id"
    assert touches.quarantine["line_number"].to_pylist() == [2, 3]


def test_an_erased_persons_lines_are_counted_per_file_when_files_are_checked_together(tmp_path):
    """Small files share one check batch; each file's ledger still counts its own lines."""
    landing = tmp_path / "landing"
    erased = "anon-erased"
    for name, count, theirs in (("a", 5, 2), ("b", 7, 0), ("c", 4, 3)):
        lines = _events(name, count)
        lines[:theirs] = [_event(f"{name}-gone-{n}", anonymous_id=erased) for n in range(theirs)]
        _write(landing, f"web_events/{name}.jsonl.gz", _gz(lines))
    salt = "a-test-salt-of-some-length"
    suppression = Suppression(salt, frozenset({suppression_key(salt, "anonymous_id", erased)}))

    batch = read_channel(WEB, landing, suppression=suppression)
    ledger = _ledger(batch)
    counts = {name: (row["suppressed_lines"], row["loaded_lines"]) for name, row in ledger.items()}
    assert counts == {
        "web_events/a.jsonl.gz": (2, 3),
        "web_events/b.jsonl.gz": (0, 7),
        "web_events/c.jsonl.gz": (3, 1),
    }
    assert batch.records.num_rows == 11 and batch.quarantine.num_rows == 0


def test_empty_files_are_ledgered_and_the_rest_of_the_channel_loads(tmp_path):
    landing = tmp_path / "landing"
    _write(landing, "web_events/a.jsonl.gz", _gz(_events("ok", 3)))
    _write(landing, "web_events/b_zero.jsonl.gz", b"")
    _write(landing, "web_events/c_no_lines.jsonl.gz", gzip.compress(b""))
    _write(landing, "campaign_touches/a.csv", b"touch_id,campaign_id\nt1,c1\n")
    _write(landing, "campaign_touches/b_zero.csv", b"")
    _write(landing, "campaign_touches/c_header.csv", b"touch_id,campaign_id\n")
    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, landing, db)
    load_channel(TOUCHES, landing, db)

    assert _query(db, f"select count(*) from raw.{WEB.table}") == [(3,)]
    assert _query(db, f"select count(*) from raw.{TOUCHES.table}") == [(1,)]
    assert _query(
        db, f"select source_file, status, reason, lines from raw.{WEB.files_table} order by all"
    ) == [
        ("web_events/a.jsonl.gz", "loaded", None, 3),
        ("web_events/b_zero.jsonl.gz", "empty", "empty file: 0 bytes", 0),
        ("web_events/c_no_lines.jsonl.gz", "empty", "empty file: no lines", 0),
    ]
    assert _query(
        db, f"select source_file, status, reason from raw.{TOUCHES.files_table} order by all"
    ) == [
        ("campaign_touches/a.csv", "loaded", None),
        ("campaign_touches/b_zero.csv", "empty", "empty file: 0 bytes"),
        ("campaign_touches/c_header.csv", "empty", "empty file: header only, no rows"),
    ]
    assert _query(db, f"select count(*) from raw.{WEB.quarantine_table}") == [(0,)]


def test_undeclared_columns_are_reported_not_loaded(tmp_path):
    landing = tmp_path / "landing"
    _write(
        landing,
        "crm_customers/wrong_header.csv",
        b"customer_id,e_mail,updated_at,stray\nC1,a@example.test,2026-09-01,x\n",
    )
    db = tmp_path / "dmp.duckdb"
    load_channel(CRM, landing, db)
    columns = {row[0] for row in _query(db, f"describe raw.{CRM.table}")}
    assert {"e_mail", "stray"}.isdisjoint(columns)
    assert set(CRM.fields) <= columns
    assert _query(db, f"select customer_id, email from raw.{CRM.table}") == [("C1", None)]
    assert _query(db, f"select status, unexpected_columns from raw.{CRM.files_table}") == [
        ("loaded", "e_mail, stray")
    ]
    assert _query(db, f"select reason, loaded from raw.{CRM.quarantine_table}") == [
        ("undeclared columns not loaded: e_mail, stray", True)
    ]


def test_declared_extra_fields_are_loaded_as_text(tmp_path):
    landing = tmp_path / "landing"
    _write(
        landing,
        "crm_customers/bank.csv",
        b"customer_id,updated_at,job,balance\nbank-1,2026-09-01,admin.,1234\n",
    )
    batch = read_channel(CRM, landing)
    assert batch.records.select(["job", "balance"]).to_pylist() == [
        {"job": "admin.", "balance": "1234"}
    ]
    assert batch.quarantine.num_rows == 0 and batch.problem_files == {}


def test_importer_columns_read_by_staging_are_declared():
    """Every column an importer writes beyond a channel's fields is declared as an extra."""
    assert {"job", "marital", "balance", "zip_code", "purchase_channel"} <= set(CRM.extra_fields)
    assert {"duration", "pdays", "poutcome"} <= set(TOUCHES.extra_fields)


def test_implausibly_old_times_get_a_note(tmp_path):
    landing = tmp_path / "landing"
    lines = [
        _event("epoch-iso", event_time="1970-01-01T00:00:00Z"),
        _event("epoch-0", event_time="0"),
        _event("epoch-s", event_time="86400"),
        _event("1999", event_time="1999-12-31T23:59:59Z"),
        _event("2000", event_time="2000-01-01T00:00:00Z"),
        _event("ms", event_time="1772368496000"),
    ]
    _write(landing, "web_events/old.jsonl.gz", _gz(lines))
    batch = read_channel(WEB, landing)
    assert batch.records.num_rows == 6  # loaded, and noted
    notes = dict(
        zip(batch.quarantine["line_number"].to_pylist(), batch.quarantine["reason"].to_pylist())
    )
    assert sorted(notes) == [1, 2, 3, 4]
    assert all(reason.startswith("event_time: implausible value") for reason in notes.values())


def test_damaged_parquet_keeps_the_row_groups_before_the_damage(tmp_path):
    landing = tmp_path / "landing"
    rows = pa.table(
        {
            "order_id": [f"o{n}" for n in range(300)],
            "line_number": [1] * 300,
            "order_time": ["2026-09-01T10:00:00Z"] * 300,
        }
    )
    path = landing / "orders" / "a.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(rows, path, row_group_size=100, compression="none")
    metadata = pq.ParquetFile(path).metadata
    start = metadata.row_group(2).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + 64] = b"\xff" * 64  # the last row group's first column chunk
    path.write_bytes(bytes(data))

    batch = read_channel(ORDERS, landing)
    row = _ledger(batch)["orders/a.parquet"]
    assert (row["status"], row["lines"]) == ("damaged", 200)
    assert row["reason"].startswith("file damaged after line 200: row group 3 of 3")
    assert batch.records.num_rows == 200


def test_landing_problems_lists_every_problem_file(tmp_path):
    landing = tmp_path / "landing"
    _write(landing, "web_events/a_good.jsonl.gz", _gz(_events("good", 3)))
    _write(landing, "web_events/b_empty.jsonl.gz", b"")
    _write(landing, "web_events/c_cut.jsonl.gz", _gz(_events("cut", 200))[:900])
    _write(landing, "web_events/d_bad.jsonl.gz", _gz([_event("x", stray="1"), "{oops"]))
    _write(landing, "crm_customers/a.csv", b"customer_id,updated_at\nC1,2026-09-01\n")
    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, landing, db)
    load_channel(CRM, landing, db)
    with duckdb.connect(str(db), read_only=True) as con:
        problems = landing_problems(con)
    assert [(p.channel, p.source_file, p.status) for p in problems] == [
        ("web_events", "web_events/b_empty.jsonl.gz", "empty"),
        ("web_events", "web_events/c_cut.jsonl.gz", "damaged"),
        ("web_events", "web_events/d_bad.jsonl.gz", "loaded"),
    ]
    bad = problems[-1]
    assert (bad.rejected_lines, bad.unexpected_columns) == (1, "stray")
    assert "1 rejected line" in bad.reason and "undeclared columns not loaded: stray" in bad.reason


def test_the_report_lists_the_landing_files_with_problems(pipeline_run, tmp_path):
    """A damaged and an empty file in the ledger: the report names both, with the reason."""
    copy = tmp_path / "dmp.duckdb"
    copy.write_bytes(pipeline_run.duckdb_path.read_bytes())
    with duckdb.connect(str(copy)) as con:
        con.execute(
            "insert into raw.landing_files_web_events by name "
            "select * replace ('web_events/late.jsonl.gz' as source_file, 'damaged' as status, "
            "'file damaged after line 41: zlib.error: invalid stored block lengths' as reason) "
            "from raw.landing_files_web_events limit 1"
        )
        con.execute(
            "insert into raw.landing_files_orders by name "
            "select * replace ('orders/none.parquet' as source_file, 'empty' as status, "
            "'empty file: 0 bytes' as reason) from raw.landing_files_orders limit 1"
        )
    warehouse = WarehouseResource(
        duckdb_path=str(copy),
        landing_dir=str(pipeline_run.landing),
        reports_dir=str(tmp_path / "reports"),
        privacy_dir=str(tmp_path / "privacy"),
    )
    assert dg.materialize([marketing_report], resources={"warehouse": warehouse}).success
    listed = pd.read_csv(tmp_path / "reports" / "landing_problems.csv")
    assert set(listed["file"]) == {"web_events/late.jsonl.gz", "orders/none.parquet"}
    damaged = listed.set_index("file").loc["web_events/late.jsonl.gz"]
    assert damaged["status"] == "damaged" and "after line 41" in damaged["reason"]
    assert 'id="landing_problems"' in (tmp_path / "reports" / "index.html").read_text()
