"""Real public datasets -> landing files -> ingestion: counts reconcile with the published figures.

The datasets live outside the repository (../shared/data/real, research-use licences); each
test skips, naming the missing folder, where they are absent.
"""

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingestion.channels import CHANNELS
from ingestion.importers import IMPORTERS, import_dataset
from ingestion.landing import ChannelBatch, read_channel

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@dataclass
class Imported:
    out_dir: Path
    summary: dict
    batches: dict[str, ChannelBatch]  # every written channel, read back by ingestion

    def records(self, folder: str) -> pa.Table:
        return self.batches[folder].records


def _dataset_folder(name: str) -> Path:
    folder = REAL_DATA / IMPORTERS[name].folder
    if not folder.is_dir():
        pytest.skip(f"real dataset {name!r} not found: {folder}")
    return folder


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Callable[[str], Imported]:
    """Import each dataset once per module and read every written channel back."""
    cache: dict[str, Imported] = {}

    def load(name: str) -> Imported:
        if name not in cache:
            out_dir = tmp_path_factory.mktemp(name)
            summary = import_dataset(name, _dataset_folder(name), out_dir)
            batches = {
                folder: read_channel(CHANNELS[folder], out_dir) for folder in summary["files"]
            }
            cache[name] = Imported(out_dir, summary, batches)
        return cache[name]

    return load


def _assert_reconciles(result: Imported, allowed_notes: str | None = None) -> None:
    """source rows = written + set aside; ingestion loads every written row.

    Quarantine may only hold notes on loaded rows matching `allowed_notes` (a regex per
    '; '-separated reason), never a rejected row.
    """
    summary = result.summary
    for folder in summary["one_row_per_source_row"]:
        assert (
            summary["rows_written"][folder] + sum(summary["set_aside"].values())
            == summary["source_rows"]
        ), folder
    for folder, written in summary["rows_written"].items():
        batch = result.batches[folder]
        assert batch.records.num_rows == written, f"{folder}: rows lost in ingestion"
        assert not batch.unreadable_files, folder
        for reason in batch.quarantine["reason"].to_pylist():
            for part in reason.split("; "):
                assert allowed_notes and re.match(allowed_notes, part), f"{folder}: {reason}"


def _column_counts(table: pa.Table, column: str) -> dict:
    return dict(Counter(table[column].to_pylist()))


def _assert_deterministic(name: str, first: Imported, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert import_dataset(name, _dataset_folder(name), again)["files"] == first.summary["files"]
    for relative in first.summary["files"].values():
        assert (again / relative).read_bytes() == (first.out_dir / relative).read_bytes(), relative


def test_online_retail_lands_every_invoice_line(imported):
    result = imported("online-retail")
    summary = result.summary
    assert summary["source_rows"] == 541_909
    assert summary["rows_written"] == {"orders": 541_909, "crm_customers": 4_372, "products": 4_070}
    assert summary["set_aside"] == {}
    # negative quantities and non-positive prices load and are noted in quarantine
    _assert_reconciles(result, r"(quantity|unit_price): implausible value")
    orders = result.records("orders")
    revenue = pc.sum(pc.multiply(pc.cast(orders["quantity"], pa.float64()), orders["unit_price"]))
    assert revenue.as_py() == pytest.approx(9_747_747.93, abs=0.01)
    assert pc.count_distinct(orders["order_id"]).as_py() == 25_900
    assert _column_counts(orders, "status") == {"completed": 532_621, "cancelled": 9_288}
    assert orders["customer_id"].null_count == 135_080
    dirty = pc.or_(pc.less_equal(orders["quantity"], 0), pc.less_equal(orders["unit_price"], 0))
    assert result.batches["orders"].quarantine.num_rows == pc.sum(dirty).as_py()
    products = result.records("products")
    assert "other" in _column_counts(products, "category")
    assert products["product_name"].null_count == 112  # codes only ever sold without a name


def test_online_retail_is_deterministic(imported, tmp_path):
    _assert_deterministic("online-retail", imported("online-retail"), tmp_path)


def test_taobao_lands_every_event(imported):
    result = imported("taobao")
    summary = result.summary
    assert summary["source_rows"] == 84_287
    assert summary["rows_written"] == {"web_events": 84_287, "products": 55_233, "orders": 1_749}
    assert summary["set_aside"] == {}
    _assert_reconciles(result)  # null unit prices on orders load without a note
    events = result.records("web_events")
    assert _column_counts(events, "event_type") == {
        "product_view": 75_693,
        "add_to_cart": 4_494,
        "add_to_wishlist": 2_351,
        "purchase": 1_749,
    }
    assert pc.count_distinct(events["event_id"]).as_py() == 84_287
    assert pc.count_distinct(events["user_id"]).as_py() == 814
    assert pc.all(pc.equal(events["user_id"], events["anonymous_id"])).as_py()
    assert pc.count_distinct(events["category"]).as_py() == 2_911
    products = result.records("products")
    assert pc.all(pc.starts_with(products["product_id"], "tb-")).as_py()  # no clash with others
    orders = result.records("orders")
    assert pc.count_distinct(orders["user_id"]).as_py() == 558
    assert pc.all(pc.is_in(orders["product_id"], products["product_id"])).as_py()
    assert orders["unit_price"].null_count == orders.num_rows


def test_taobao_is_deterministic(imported, tmp_path):
    _assert_deterministic("taobao", imported("taobao"), tmp_path)


def test_taobao_sets_aside_unknown_behaviours(tmp_path):
    source = tmp_path / "behaviour.csv"
    source.write_text(
        "1,10,100,pv,1511544070\n1,10,100,share,1511544071\n1,10,100,buy,1511544072\n"
    )
    summary = import_dataset("taobao", source, tmp_path / "landing")
    assert summary["source_rows"] == 3
    assert summary["rows_written"]["web_events"] == 2
    assert summary["set_aside"] == {"behavior_type is not one of pv, cart, fav, buy": 1}


def test_hillstrom_keeps_all_three_arms(imported):
    result = imported("hillstrom")
    summary = result.summary
    assert summary["source_rows"] == 64_000
    assert summary["rows_written"] == {
        "crm_customers": 64_000,
        "campaign_touches": 64_000,
        "orders": 578,
        "web_events": 9_394,
    }
    _assert_reconciles(result)
    touches = result.records("campaign_touches").to_pandas()
    arms = touches.set_index("customer_id")["variant"]
    assert arms.value_counts().to_dict() == {
        "Womens E-Mail": 21_387,
        "Mens E-Mail": 21_307,
        "No E-Mail": 21_306,
    }
    assert touches.groupby("variant")["touch_type"].unique().map(list).to_dict() == {
        "Mens E-Mail": ["sent"],
        "Womens E-Mail": ["sent"],
        "No E-Mail": ["holdout"],
    }
    orders = result.records("orders").to_pandas()
    orders["variant"] = orders["customer_id"].map(arms)
    per_arm = orders.groupby("variant")["unit_price"].agg(["count", "sum"])
    size = arms.value_counts()
    # SOURCE.md: conversion 1.253% / 0.884% / 0.573%, spend per customer $1.423 / $1.077 / $0.653
    conversion = (per_arm["count"] / size * 100).round(3).to_dict()
    assert conversion == {"Mens E-Mail": 1.253, "Womens E-Mail": 0.884, "No E-Mail": 0.573}
    spend = (per_arm["sum"] / size).round(3).to_dict()
    assert spend == {"Mens E-Mail": 1.423, "Womens E-Mail": 1.077, "No E-Mail": 0.653}
    visits = result.records("web_events").to_pandas()
    visit_arm = visits["user_id"].str.replace("hs-user-", "hs-").map(arms)
    visit_rate = (visit_arm.value_counts() / size * 100).round(2).to_dict()
    assert visit_rate == {"Mens E-Mail": 18.28, "Womens E-Mail": 15.14, "No E-Mail": 10.62}
    window = (orders["order_time"] >= "2008-03-03T09:00:00Z") & (
        orders["order_time"] < "2008-03-17T09:00:00Z"
    )
    assert window.all()


def test_hillstrom_is_deterministic(imported, tmp_path):
    _assert_deterministic("hillstrom", imported("hillstrom"), tmp_path)


def test_bank_marketing_lands_every_contact(imported):
    result = imported("bank-marketing")
    summary = result.summary
    assert summary["source_rows"] == 45_211
    assert summary["rows_written"] == {
        "crm_customers": 45_211,
        "campaign_touches": 45_211,
        "orders": 5_289,  # SOURCE.md: y = yes 5,289 (11.7%)
        "products": 1,
    }
    _assert_reconciles(result)
    touches = result.records("campaign_touches")
    assert touches["touch_time"][0].as_py().startswith("2008-05")  # May 2008 ...
    assert touches["touch_time"][-1].as_py().startswith("2010-11")  # ... to Nov 2010
    assert _column_counts(touches, "channel") == {
        "cellular": 29_285,
        "telephone": 2_906,
        None: 13_020,
    }
    customers = result.records("crm_customers")
    assert pc.min(customers["birth_year"]).as_py() >= 1900
    assert customers["job"].null_count == 0  # 'unknown' is kept as sent


def test_bank_marketing_is_deterministic(imported, tmp_path):
    _assert_deterministic("bank-marketing", imported("bank-marketing"), tmp_path)


def test_unknown_dataset_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="bank-marketing, hillstrom, online-retail, taobao"):
        import_dataset("no-such-data", tmp_path, tmp_path / "landing")


def test_missing_source_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        import_dataset("online-retail", missing, tmp_path / "landing")


def test_unparseable_value_names_the_file_and_column(tmp_path):
    source = tmp_path / "online_retail.csv"
    source.write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,HOLDER,six,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
    )
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(source))}: data row 1, column Quantity: 'six'"
    ):
        import_dataset("online-retail", source, tmp_path / "landing")
