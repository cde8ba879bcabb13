"""The batch boundary changes nothing: a channel read in batches of a few lines loads exactly
what it loads in one batch (records, quarantine, ledger, the warehouse's raw tables), with
repeats and bad lines on both sides of every boundary. Real files, reader, dlt and DuckDB."""

import gzip

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_ingestion import _event

from ingestion import landing
from ingestion.channels import CHANNELS
from ingestion.landing import read_channel
from ingestion.pipeline import load_channel

WEB = CHANNELS["web_events"]
ORDERS = CHANNELS["orders"]
PRODUCTS = CHANNELS["products"]
SMALL_BATCH = 3


def _web_lines(prefix: str) -> list[str]:
    """Every third line is bad, and events repeat within and across files."""
    lines = []
    for n in range(20):
        lines.append(_event(f"{prefix}-{n}", page_url=f"/p/{n}"))
        if n % 3 == 0:
            lines.append("{not json")
        if n % 4 == 0:
            lines.append(_event(f"{prefix}-{n // 2}", page_url="/repeat"))  # a repeat
        if n % 5 == 0:
            lines.append(_event("shared-1", page_url=f"/{prefix}"))  # in every file
    return lines


@pytest.fixture
def mixed_landing(tmp_path):
    root = tmp_path / "landing"
    (root / "web_events").mkdir(parents=True)
    for prefix in ("a", "b"):
        data = ("\n".join(_web_lines(prefix)) + "\n").encode()
        (root / "web_events" / f"{prefix}.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))
    (root / "orders").mkdir()
    orders = pa.table(
        {
            "order_id": [f"o{n % 9}" for n in range(25)],  # upserts: the last version wins
            "line_number": [1] * 25,
            "order_time": ["2026-09-01T10:00:00Z"] * 25,
            "quantity": [str(n - 3) for n in range(25)],  # the first three are implausible
        }
    )
    pq.write_table(orders, root / "orders" / "a.parquet", row_group_size=4)
    (root / "products").mkdir()
    rows = ["product_id,price", *(f"P{n % 6},{n - 2}.5" for n in range(17)), ",9.5", "P1,x,y"]
    (root / "products" / "a.csv").write_text("\n".join(rows) + "\n")
    return root


def _read(channel, root, batch_rows, monkeypatch):
    monkeypatch.setattr(landing, "BATCH_ROWS", batch_rows)
    batch = read_channel(channel, root)
    return batch.records, batch.quarantine, batch.files.drop_columns(["read_at"])


@pytest.mark.parametrize("channel", [WEB, ORDERS, PRODUCTS], ids=lambda c: c.folder)
def test_a_read_in_small_batches_equals_one_in_a_single_batch(channel, mixed_landing, monkeypatch):
    whole = _read(channel, mixed_landing, 1_000_000, monkeypatch)
    batched = _read(channel, mixed_landing, SMALL_BATCH, monkeypatch)
    assert whole[0].num_rows > SMALL_BATCH and whole[1].num_rows > SMALL_BATCH
    assert sum(whole[2]["duplicate_lines"].to_pylist()) > 0
    for one, many in zip(whole, batched):
        assert many.equals(one)


def test_records_of_the_first_arrival_win_across_batches(mixed_landing, monkeypatch):
    records, _, files = _read(WEB, mixed_landing, SMALL_BATCH, monkeypatch)
    pages = dict(zip(records["event_id"].to_pylist(), records["page_url"].to_pylist()))
    assert pages["a-2"] == "/p/2"  # its repeat (after a-4) came in a later batch
    assert pages["shared-1"] == "/a"  # file a is read before file b
    assert len(pages) == records.num_rows
    ledger = {row["source_file"]: row for row in files.to_pylist()}
    assert ledger["web_events/b.jsonl.gz"]["rejected_lines"] == 7


def test_a_load_in_small_batches_fills_the_warehouse_as_one_batch(
    mixed_landing, tmp_path, monkeypatch
):
    tables = {}
    for batch_rows in (1_000_000, SMALL_BATCH):
        monkeypatch.setattr(landing, "BATCH_ROWS", batch_rows)
        db = tmp_path / f"batch_{batch_rows}.duckdb"
        config = {"memory_limit": "256MB", "threads": 1, "temp_directory": tmp_path / "spill"}
        for channel in (WEB, ORDERS):
            load_channel(channel, mixed_landing, db, duckdb_config=config)
        with duckdb.connect(str(db), read_only=True) as con:
            tables[batch_rows] = [
                con.execute(f"select * from {name} order by all").fetchall()
                for name in (
                    "raw.web_events",
                    "raw.quarantine_web_events",
                    "raw.orders",
                    "raw.quarantine_orders",
                )
            ]
    assert tables[SMALL_BATCH] == tables[1_000_000]
    assert all(tables[SMALL_BATCH])
    assert not list((tmp_path / "spill").iterdir())  # the work connection's folder is gone
