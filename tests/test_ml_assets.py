"""The ML assets on the real stack: they write their ml.* tables with metrics, and their
quality checks judge what was stored (tests/test_ml_robustness.py: what a metric below its floor
and data a model cannot fit do)."""

import json

import dagster as dg
import duckdb
import pytest

from dagster_dmp.assets.ml import ml_checks

ML_TABLES = {
    "ml.person_segments": {"person_id", "segment_id", "segment_name"},
    "ml.segmentation_eval": {"model", "metric", "value"},
    "ml.recommendations": {"person_id", "rank", "product_id", "score"},
    "ml.recommendation_eval": {"model", "metric", "k", "value"},
    "ml.propensity_scores": {"person_id", "probability", "model"},
    "ml.propensity_eval": {"model", "metric", "value"},
    "ml.customer_value": {
        "person_id",
        "probability_alive",
        "expected_purchases_90d",
        "predicted_spend_90d",
    },
    "ml.customer_value_eval": {"model", "metric", "value"},
    "ml.lookalikes": {"person_id", "rank", "score", "seed_audience"},
    "ml.budget_allocation": {
        "segment_id",
        "channel",
        "spend",
        "expected_conversions",
        "expected_revenue",
    },
    "ml.ab_test_results": {
        "campaign_id",
        "variant",
        "users",
        "conversions",
        "conversion_rate",
        "lift",
        "p_value",
        "ci_low",
        "ci_high",
    },
}


@pytest.fixture(scope="module")
def con(pipeline_run):
    connection = duckdb.connect(str(pipeline_run.duckdb_path), read_only=True)
    yield connection
    connection.close()


@pytest.mark.parametrize("table", sorted(ML_TABLES))
def test_ml_tables_have_rows_and_their_columns(con, table):
    columns = {row[0] for row in con.execute(f"describe {table}").fetchall()}
    assert ML_TABLES[table] <= columns
    assert con.execute(f"select count(*) from {table}").fetchone()[0] > 0


def test_every_ml_check_ran_and_none_failed_as_an_error(pipeline_run):
    """The test data is small: a check may abstain (WARN) for lack of evidence, never fail."""
    evaluations = {
        evaluation.check_name: evaluation
        for evaluation in pipeline_run.result.get_asset_check_evaluations()
    }
    names = {spec.name for check in ml_checks for spec in check.check_specs}
    assert names <= set(evaluations), names - set(evaluations)
    failed = sorted(
        name
        for name in names
        if not evaluations[name].passed
        and evaluations[name].severity == dg.AssetCheckSeverity.ERROR
    )
    assert not failed, failed


def test_probabilities_and_values_are_sane(con):
    low, high = con.execute(
        "select min(probability), max(probability) from ml.propensity_scores"
    ).fetchone()
    assert 0 <= low < high <= 1
    negative = con.execute(
        "select count(*) from ml.customer_value"
        " where predicted_spend_90d < 0 or probability_alive not between 0 and 1"
    ).fetchone()[0]
    assert negative == 0


def test_ab_results_count_exactly_the_planted_recipients_and_conversions(con, pipeline_run):
    manifest = json.loads((pipeline_run.landing / "_truth" / "manifest.json").read_text())
    planted = {
        (campaign["campaign_id"], variant): (numbers["recipients"], numbers["converted"])
        for campaign in manifest["campaigns"]
        for variant, numbers in campaign.get("variants", {}).items()
    }
    rows = con.execute(
        "select campaign_id, variant, users, conversions, conversion_rate, ci_low, ci_high"
        " from ml.ab_test_results"
    ).fetchall()
    measured = {
        (campaign, variant): (users, conversions)
        for campaign, variant, users, conversions, *_ in rows
    }
    assert measured == planted
    for *_, rate, low, high in rows:
        assert low <= rate <= high
