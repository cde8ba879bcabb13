"""Ingestion through real dlt pipelines into a real DuckDB file: incremental, idempotent,
nothing valid lost, every bad record quarantined with a reason."""

import csv
import gzip
import json
import os
import shutil

import dagster as dg
import duckdb
import pytest
from conftest import materialise_everything

from ingestion.channels import CHANNELS
from ingestion.landing import MAX_FIELD_CHARS, read_channel
from ingestion.pipeline import channel_pipeline, load_channel
from ingestion.sources import has_new_files

WEB = CHANNELS["web_events"]
CRM = CHANNELS["crm_customers"]


def _query(db, sql):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def _count(db, table) -> int:
    return _query(db, f"select count(*) from raw.{table}")[0][0]


def _snapshot(db, channel) -> dict:
    return {
        table: _query(db, f"select * from raw.{table} order by all")
        for table in (channel.table, channel.quarantine_table, channel.files_table)
    }


def _write_jsonl_gz(path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _event(event_id: str, **fields) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": "page_view",
            "event_time": "2026-09-03T10:00:00Z",
            "anonymous_id": "anon-test",
            **fields,
        }
    )


@pytest.fixture
def web_landing(tmp_path, small_landing):
    landing = tmp_path / "landing"
    shutil.copytree(small_landing / WEB.folder, landing / WEB.folder)
    return landing


def test_every_line_is_loaded_or_quarantined(small_landing):
    """Count good records in and out: each valid event id arrives exactly once."""
    batch = read_channel(WEB, small_landing)
    valid_ids, bad_lines = set(), set()
    for path in sorted((small_landing / WEB.folder).glob(WEB.pattern)):
        name = path.relative_to(small_landing).as_posix()
        with gzip.open(path, "rb") as handle:
            text = handle.read().decode("utf-8", errors="replace")
        for number, line in enumerate(text.rstrip("\n").split("\n"), start=1):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                bad_lines.add((name, number))
                continue
            valid_ids.add(event["event_id"])
    assert bad_lines, "the generator plants malformed lines"
    assert sorted(batch.records["event_id"].to_pylist()) == sorted(valid_ids)
    quarantined = set(
        zip(
            batch.quarantine["source_file"].to_pylist(), batch.quarantine["line_number"].to_pylist()
        )
    )
    assert bad_lines <= quarantined
    for file in batch.files.to_pylist():
        assert (
            file["lines"] == file["loaded_lines"] + file["duplicate_lines"] + file["rejected_lines"]
        )
    assert sum(batch.files["loaded_lines"].to_pylist()) == batch.records.num_rows


def test_second_run_changes_no_table(tmp_path, web_landing):
    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, web_landing, db)
    before = _snapshot(db, WEB)
    load_channel(WEB, web_landing, db)
    assert _snapshot(db, WEB) == before
    assert len(before[WEB.table]) > 0


def test_only_new_files_are_read_and_resends_late_events_and_copies_add_nothing(
    tmp_path, web_landing
):
    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, web_landing, db)
    before = _count(db, WEB.table)
    first_file = min((web_landing / WEB.folder).glob(WEB.pattern))
    with gzip.open(first_file, "rt", errors="replace") as handle:
        lines = handle.read().split("\n")
    known = [line for line in lines if line.startswith("{") and line.endswith("}")][:5]
    # a late file: five events re-sent from last week, two new late events
    _write_jsonl_gz(
        web_landing / WEB.folder / "web_events_late.jsonl.gz",
        [*known, _event("late-1", event_time="2026-09-02T23:59:00Z"), _event("late-2")],
    )
    # the same export delivered twice under another name
    shutil.copy(first_file, web_landing / WEB.folder / "web_events_copy.jsonl.gz")
    load_channel(WEB, web_landing, db)

    assert _count(db, WEB.table) == before + 2
    files = dict(_query(db, f"select source_file, lines from raw.{WEB.files_table}"))
    assert "web_events/web_events_late.jsonl.gz" in files
    loaded_from_late = _query(
        db,
        f"select event_id from raw.{WEB.table} where _source_file = 'web_events/web_events_late.jsonl.gz'",
    )
    assert sorted(row[0] for row in loaded_from_late) == ["late-1", "late-2"]


def test_unreadable_file_is_named_and_the_rest_still_loads(tmp_path, web_landing, small_landing):
    (web_landing / WEB.folder / "zz-corrupt.jsonl.gz").write_bytes(b"\x1f\x8b not really gzip")
    expected_good = read_channel(WEB, small_landing).records.num_rows

    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, web_landing, db)
    assert _count(db, WEB.table) == expected_good
    ledger = _query(
        db,
        f"select status, reason from raw.{WEB.files_table} where source_file like '%zz-corrupt%'",
    )
    assert ledger[0][0] == "unreadable" and "unknown compression method" in ledger[0][1]
    assert _query(
        db,
        f"select count(*) from raw.{WEB.quarantine_table} "
        "where source_file = 'web_events/zz-corrupt.jsonl.gz' and reason like 'unreadable file%'",
    ) == [(1,)]


def test_nasty_records_are_quarantined_with_reasons_and_good_ones_load(tmp_path):
    landing = tmp_path / "landing"
    sql_text = "'; drop table raw.web_events; --"
    _write_jsonl_gz(
        landing / WEB.folder / "nasty.jsonl.gz",
        [
            _event("good-1", page_url=sql_text),
            _event("good-2", brand_new_field="not in the contract"),
            _event("huge", user_agent="x" * (MAX_FIELD_CHARS + 1)),
            _event("control", page_url="/home\x00\x07"),
            json.dumps(
                {"event_id": "no-type", "event_time": "2026-09-03T10:00:00Z", "anonymous_id": "a"}
            ),
            _event("future", event_time="2099-01-01T00:00:00Z"),
            '{"event_id": "cut',
            "",
            # written raw (DEL is valid in JSON text; json.dumps would escape it) and escaped
            # as \b: both are control characters in the value
            _event("delete", user_id="u").replace('"u"', '"u\x7f"'),
            _event("backspace", search_query="a\bb"),
        ],
    )
    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, landing, db)

    loaded = dict(_query(db, f"select event_id, page_url from raw.{WEB.table}"))
    assert set(loaded) == {"good-1", "good-2", "future"}
    assert loaded["good-1"] == sql_text  # data, never SQL
    # The schema is a contract: an undeclared key is named, never loaded.
    assert "brand_new_field" not in [row[0] for row in _query(db, f"describe raw.{WEB.table}")]
    reasons = dict(
        _query(
            db,
            f"select line_number, reason from raw.{WEB.quarantine_table} "
            "where line_number is not null",
        )
    )
    assert reasons[3].startswith(f"user_agent: {MAX_FIELD_CHARS + 1} characters")
    assert reasons[4] == "page_url: control characters"
    assert reasons[5] == "missing required field event_type"
    assert reasons[6].startswith("event_time: implausible value 2099")
    assert reasons[7] == "malformed JSON"
    assert reasons[8] == "empty line"
    assert reasons[9] == "user_id: control characters"
    assert reasons[10] == "search_query: control characters"
    assert _query(db, f"select unexpected_columns from raw.{WEB.files_table}") == [
        ("brand_new_field",)
    ]
    assert _query(
        db, f"select reason, loaded from raw.{WEB.quarantine_table} where line_number is null"
    ) == [("undeclared columns not loaded: brand_new_field", True)]


def test_type_violations_keep_the_record_and_note_the_field(tmp_path):
    landing = tmp_path / "landing"
    (landing / CRM.folder).mkdir(parents=True)
    with open(landing / CRM.folder / "crm.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "email", "birth_year", "updated_at", "loyalty_points"])
        writer.writerow(["C1", "a@example.test", "1980", "2026-09-01", "10"])
        writer.writerow(["C2", "b@example.test", "nineteen", "2026-09-01", "20"])
        writer.writerow(["", "orphan@example.test", "1990", "2026-09-01", "30"])
        writer.writerow(["C3", "short row"])
        writer.writerow(["C1", "a@example.test", "1980", "2026-09-05", "15"])  # a newer version
    db = tmp_path / "dmp.duckdb"
    load_channel(CRM, landing, db)

    rows = _query(db, f"select customer_id, birth_year from raw.{CRM.table} order by all")
    assert rows == [("C1", 1980), ("C1", 1980), ("C2", None)]  # history kept
    assert "loyalty_points" not in [row[0] for row in _query(db, f"describe raw.{CRM.table}")]
    reasons = dict(_query(db, f"select line_number, reason from raw.{CRM.quarantine_table}"))
    assert reasons == {
        None: "undeclared columns not loaded: loyalty_points",
        3: "birth_year: not a BIGINT: nineteen",
        4: "missing required field customer_id",
        5: "expected 5 columns, got 2",
    }


@pytest.mark.parametrize("channel", list(CHANNELS.values()), ids=lambda channel: channel.folder)
def test_every_channel_has_records_from_the_generator(small_landing, channel):
    batch = read_channel(channel, small_landing)
    assert batch.records.num_rows > 0
    assert set(channel.fields) <= set(batch.records.column_names)
    assert batch.unreadable_files == {}


def test_new_files_are_told_from_the_pipelines_state(tmp_path, web_landing):
    db = tmp_path / "dmp.duckdb"
    assert has_new_files(WEB, web_landing, channel_pipeline(WEB, db)), "never loaded"
    load_channel(WEB, web_landing, db)
    assert not has_new_files(WEB, web_landing, channel_pipeline(WEB, db))

    first_file = min((web_landing / WEB.folder).glob(WEB.pattern))
    os.utime(first_file, ns=(0, 10**18))  # touched, the same bytes
    assert not has_new_files(WEB, web_landing, channel_pipeline(WEB, db))
    _write_jsonl_gz(web_landing / WEB.folder / "web_events_new.jsonl.gz", [_event("new-1")])
    assert has_new_files(WEB, web_landing, channel_pipeline(WEB, db))
    load_channel(WEB, web_landing, db)
    assert not has_new_files(WEB, web_landing, channel_pipeline(WEB, db))

    (web_landing / WEB.folder / "zz-corrupt.jsonl.gz").write_bytes(b"\x1f\x8b not gzip")
    load_channel(WEB, web_landing, db)
    assert has_new_files(WEB, web_landing, channel_pipeline(WEB, db)), "retried every run"


def test_a_channel_with_nothing_new_is_not_loaded_again(tmp_path, web_landing):
    web_only = dg.AssetSelection.assets(
        *(
            dg.AssetKey(["raw", table])
            for table in (WEB.table, WEB.quarantine_table, WEB.files_table)
        )
    )
    first = materialise_everything(web_landing, tmp_path, selection=web_only)
    loads = _count(first.duckdb_path, "_dlt_loads")
    before = _snapshot(first.duckdb_path, WEB)

    again = materialise_everything(web_landing, tmp_path, selection=web_only)
    assert again.result.success
    assert _count(again.duckdb_path, "_dlt_loads") == loads, "no dlt load"
    assert _snapshot(again.duckdb_path, WEB) == before
    notes = {
        event.asset_key.path[-1]: (
            event.metadata["note"].value,
            event.metadata["dagster/row_count"].value,
        )
        for event in again.result.get_asset_materialization_events()
        for event in [event.materialization]
    }
    assert notes[WEB.table] == (
        "no new or changed landing file: nothing loaded",
        len(before[WEB.table]),
    )

    # A raw table dropped by hand comes back from the landing zone (the ledger read anew).
    with duckdb.connect(str(again.duckdb_path)) as con:
        con.execute(f"drop table raw.{WEB.table}")
    restored = materialise_everything(web_landing, tmp_path, selection=web_only)
    assert restored.result.success
    after = _snapshot(restored.duckdb_path, WEB)
    assert after[WEB.table] == before[WEB.table]
    assert after[WEB.quarantine_table] == before[WEB.quarantine_table]
    assert len(after[WEB.files_table]) == len(before[WEB.files_table])
