"""Ingestion through real dlt pipelines into a real DuckDB file: nothing valid is lost."""

import gzip
import shutil

import duckdb
import pytest

from ingestion.channels import CHANNELS
from ingestion.landing import read_channel
from ingestion.pipeline import load_channel

WEB = CHANNELS["web_events"]


def _lines_in(landing, channel) -> int:
    return sum(
        len(
            gzip.open(path, "rt", encoding="utf-8", errors="replace")
            .read()
            .rstrip("\n")
            .split("\n")
        )
        for path in sorted((landing / channel.folder).glob(channel.pattern))
    )


def _count(db, table) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f"select count(*) from raw.{table}").fetchone()[0]


def test_every_line_is_loaded_or_quarantined(small_landing):
    batch = read_channel(WEB, small_landing)
    rejected = {(row["source_file"], row["line_number"]) for row in batch.quarantine.to_pylist()}
    loaded = set(
        zip(batch.records["_source_file"].to_pylist(), batch.records["_line_number"].to_pylist())
    )
    assert rejected, "the generator plants malformed lines"
    assert not loaded & rejected  # web events have only text fields: no partial (cast) rejects
    assert len(loaded) + len(rejected) == _lines_in(small_landing, WEB)


def test_rerun_is_idempotent(tmp_path, small_landing):
    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, small_landing, db)
    first = (_count(db, WEB.table), _count(db, WEB.quarantine_table))
    load_channel(WEB, small_landing, db)
    assert (_count(db, WEB.table), _count(db, WEB.quarantine_table)) == first
    assert first[0] > 0


def test_unreadable_file_is_named_and_the_rest_still_loads(tmp_path, small_landing):
    landing = tmp_path / "landing"
    shutil.copytree(small_landing / WEB.folder, landing / WEB.folder)
    (landing / WEB.folder / "zz-corrupt.jsonl.gz").write_bytes(b"\x1f\x8b not really gzip")
    expected_good = read_channel(WEB, small_landing).records.num_rows

    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, landing, db)
    assert _count(db, WEB.table) == expected_good
    with duckdb.connect(str(db), read_only=True) as con:
        reasons = con.execute(
            f"select reason from raw.{WEB.quarantine_table} where source_file = 'web_events/zz-corrupt.jsonl.gz'"
        ).fetchall()
    assert len(reasons) == 1 and reasons[0][0].startswith("unreadable file")


@pytest.mark.parametrize("channel", list(CHANNELS.values()), ids=lambda channel: channel.folder)
def test_every_channel_has_records_from_the_generator(small_landing, channel):
    batch = read_channel(channel, small_landing)
    assert batch.records.num_rows > 0
    assert set(channel.fields) <= set(batch.records.column_names)
