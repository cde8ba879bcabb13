"""End to end on generated data: every layer ran for real and produced the right things."""

import json
from html.parser import HTMLParser

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import hash_email, truth_identities
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

CONTRACT_TABLES = [
    "marts.person_identifiers",
    "marts.person_profiles",
    "marts.campaign_performance",
    "marts.daily_activity",
    "ml.person_segments",
]

# Pairwise identity precision/recall floors on the planted persons (issue 4). Overall recall
# is bounded by what the data never links (a guest's checkout e-mail, a store customer's
# browser): measured 0.985 at 5,000 persons.
MIN_IDENTITY_PRECISION = 0.99
MIN_LINKABLE_RECALL = 0.99
MIN_IDENTITY_RECALL = 0.98


@pytest.fixture(scope="module")
def con(pipeline_run):
    connection = duckdb.connect(str(pipeline_run.duckdb_path), read_only=True)
    yield connection
    connection.close()


def test_every_step_and_check_succeeds(pipeline_run):
    result = pipeline_run.result
    failures = [event.step_key for event in result.all_events if event.is_step_failure]
    assert result.success, f"failed steps: {failures}"
    failed_checks = [
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed and evaluation.severity.value == "ERROR"
    ]
    assert failed_checks == []
    assert len(result.get_asset_check_evaluations()) > 20  # dbt tests arrived as checks


@pytest.mark.parametrize("table", CONTRACT_TABLES)
def test_contract_tables_have_rows(con, table):
    assert con.execute(f"select count(*) from {table}").fetchone()[0] > 0


def test_no_duplicate_event_ids_past_staging(con):
    models = con.execute(
        """
        select table_schema || '.' || table_name
        from information_schema.columns
        where column_name = 'event_id' and table_schema in ('intermediate', 'marts')
        """
    ).fetchall()
    assert models, "no event-level model past staging"
    for (model,) in models:
        total, distinct = con.execute(
            f"select count(*), count(distinct event_id) from {model}"
        ).fetchone()
        assert total == distinct, f"{model}: {total - distinct} duplicate event ids"


def test_each_event_sent_once_or_resent_is_one_row(con, pipeline_run):
    manifest = json.loads((pipeline_run.landing / "_truth" / "manifest.json").read_text())
    for channel in ("web_events", "app_events"):
        rows, distinct = con.execute(
            f"select count(*), count(distinct event_id) from raw.{channel}"
        ).fetchone()
        planted = manifest["channels"][channel]
        assert planted["duplicates_injected"] > 0
        assert rows == distinct == planted["unique_records"]


def _pairs(sizes: pd.Series) -> int:
    return int((sizes * (sizes - 1) // 2).sum())


def _observed_links(con) -> pd.DataFrame:
    """Every pair of identifiers the raw data shows together: an oracle written apart from dbt."""
    links = con.execute(
        """
        select 'anonymous_id' as a_type, anonymous_id as a, 'user_id' as b_type, user_id as b
        from raw.web_events where user_id is not null
        union all
        select 'device_id', device_id, 'user_id', user_id from raw.app_events where user_id is not null
        union all
        select 'customer_id', customer_id, 'user_id', user_id from raw.crm_customers where user_id is not null
        union all
        select 'customer_id', customer_id, 'email', email from raw.crm_customers where email is not null
        union all
        select 'customer_id', customer_id, 'social_handle', social_handle
        from raw.crm_customers where social_handle is not null
        union all
        select 'customer_id', customer_id, 'email', email from raw.orders
        where customer_id is not null and email is not null
        union all
        select 'customer_id', customer_id, 'user_id', user_id from raw.orders
        where customer_id is not null and user_id is not null
        union all
        select 'user_id', user_id, 'email', email from raw.orders where user_id is not null and email is not null
        """
    ).df()
    for side in ("a", "b"):
        is_email = links[f"{side}_type"] == "email"
        links.loc[is_email, side] = links.loc[is_email, side].map(hash_email)
        links.loc[is_email, f"{side}_type"] = "email_sha256"
        is_handle = links[f"{side}_type"] == "social_handle"
        handles = links.loc[is_handle, side].str.strip().str.lower()
        links.loc[is_handle, side] = handles.where(handles.str.startswith("@"), "@" + handles)
    return links


def _linkable_components(truth: pd.DataFrame, links: pd.DataFrame) -> pd.Series:
    """Connected components of the observed links over the planted identifiers."""
    keys = truth["identifier_type"] + ":" + truth["identifier_value"]
    index = pd.Series(range(len(keys)), index=keys.to_numpy())
    a = (links["a_type"] + ":" + links["a"]).map(index)
    b = (links["b_type"] + ":" + links["b"]).map(index)
    known = a.notna() & b.notna()
    graph = coo_matrix(
        (np.ones(known.sum()), (a[known].astype(int), b[known].astype(int))), shape=(len(keys),) * 2
    )
    return pd.Series(connected_components(graph, directed=False)[1], index=truth.index)


def test_identity_stitching_precision_and_recall(con, pipeline_run):
    truth = truth_identities(pipeline_run.landing)
    truth["linkable_group"] = _linkable_components(truth, _observed_links(con))
    predicted = con.execute(
        "select identifier_type, identifier_value, person_id from marts.person_identifiers"
    ).df()
    joined = truth.merge(predicted, on=["identifier_type", "identifier_value"], how="inner")
    assert len(joined) == len(truth), "every planted identifier must reach the identity graph"

    together = _pairs(joined.groupby(["true_person_id", "person_id"]).size())
    precision = together / _pairs(joined.groupby("person_id").size())
    recall = together / _pairs(joined.groupby("true_person_id").size())
    # Some identifiers never appear beside another of their person's (a guest's checkout
    # e-mail): no method can join them, so recall is also measured against the pairs the
    # data does link.
    linkable = joined.groupby(["true_person_id", "linkable_group"])
    linkable_pairs = _pairs(linkable.size())
    linked = _pairs(joined.groupby(["true_person_id", "linkable_group", "person_id"]).size())
    linkable_recall = linked / linkable_pairs
    print(
        f"identity stitching on {len(joined)} identifiers: precision={precision:.4f} "
        f"recall={recall:.4f} recall_of_linkable_pairs={linkable_recall:.4f}"
    )
    assert precision >= MIN_IDENTITY_PRECISION
    assert linkable_recall >= MIN_LINKABLE_RECALL
    assert recall >= MIN_IDENTITY_RECALL


def test_malformed_lines_are_quarantined_not_dropped(con, pipeline_run):
    manifest = json.loads((pipeline_run.landing / "_truth" / "manifest.json").read_text())
    quarantined = con.execute(
        "select count(*) from raw.quarantine_web_events where reason in ('malformed JSON', 'empty line')"
    ).fetchone()[0]
    assert quarantined == manifest["channels"]["web_events"]["malformed_lines"]
    assert quarantined > 0


class _ReportParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes["src"])
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])


def test_report_is_valid_html_with_figures_and_tables(pipeline_run):
    index = pipeline_run.reports / "index.html"
    text = index.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    parser = _ReportParser()
    parser.feed(text)
    assert parser.images, "the report shows no figure"
    for image in parser.images:
        assert (pipeline_run.reports / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for link in parser.links:
        table = pd.read_csv(pipeline_run.reports / link)
        assert len(table) > 0, f"{link} is empty"
