"""No dataset, size or shape stops a run: an ML asset that cannot fit or evaluate its model on
the data at hand writes what it can, says why (metadata, ml.model_notes, the report), and its
quality check abstains; a metric below its floor warns unless DMP_BLOCKING_CHECKS names it.

Each test copies the session's small warehouse, takes away what a model needs with SQL and
materialises only the assets under test, with Dagster, on the copy."""

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from dagster_dmp.assets.ml import (
    budget_allocation,
    budget_optimal_within_budget,
    customer_value,
    customer_value_r2_floor,
    lookalikes,
    propensity_auc_floor,
    propensity_scores,
    recommendation_lift_floor,
    recommendations,
)
from dagster_dmp.assets.ml.propensity import AUC_FLOOR, PROPENSITY_SCORES
from dagster_dmp.assets.ml.quality import MODEL_NOTES
from dagster_dmp.assets.reports import marketing_report
from dagster_dmp.resources import WarehouseResource
from ml.frames import ModelFitError
from ml.segmentation import BEHAVIOUR_COLUMNS, one_segment, segment_persons


def _copy(pipeline_run, tmp_path: Path, *statements: str) -> WarehouseResource:
    copy = tmp_path / "dmp.duckdb"
    copy.write_bytes(pipeline_run.duckdb_path.read_bytes())
    with duckdb.connect(str(copy)) as con:
        for statement in statements:
            con.execute(statement)
    return WarehouseResource(
        duckdb_path=str(copy),
        landing_dir=str(pipeline_run.landing),
        reports_dir=str(tmp_path / "reports"),
        privacy_dir=str(tmp_path / "privacy"),
    )


def _materialise(warehouse: WarehouseResource, *definitions) -> dg.ExecuteInProcessResult:
    result = dg.materialize(list(definitions), resources={"warehouse": warehouse})
    assert result.success
    return result


def _metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    (materialisation,) = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == key
    ]
    return {
        name: getattr(value, "value", value) for name, value in materialisation.metadata.items()
    }


def _note(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> str:
    return _metadata(result, key)["note"]


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {check.check_name: check for check in result.get_asset_check_evaluations()}


def _read(warehouse: WarehouseResource, query: str) -> list[tuple]:
    with duckdb.connect(warehouse.duckdb_path, read_only=True) as con:
        return con.execute(query).fetchall()


def test_recommendations_without_a_holdout_still_write_lists_and_say_why(pipeline_run, tmp_path):
    """Every interaction at one moment (a one-day export): nobody was seen before a holdout."""
    warehouse = _copy(
        pipeline_run,
        tmp_path,
        # marts.person_product_interactions is a view over these two
        "update intermediate.int_activities_attributed set activity_at = timestamp '2026-01-05'",
        "update intermediate.int_order_lines_deduplicated set order_at = timestamp '2026-01-05'",
    )
    result = _materialise(warehouse, recommendations, recommendation_lift_floor)

    note = _note(result, recommendations.key)
    assert note.startswith("not evaluated: no test interactions in the last 2 days"), note
    persons, lists = _read(
        warehouse, "select count(distinct person_id), count(*) from ml.recommendations"
    )[0]
    assert persons == _read(warehouse, "select count(*) from marts.person_profiles")[0][0]
    assert lists >= persons
    assert _read(warehouse, "select model, metric, value from ml.recommendation_eval") == [
        ("hybrid", "test_pairs", 0.0)
    ]
    noted = f"select note from {MODEL_NOTES} where asset = 'ml/recommendations'"
    assert _read(warehouse, noted) == [(note,)]
    check = _checks(result)["hybrid_ndcg_lift_over_popularity_above_floor"]
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.startswith("not judged")


def test_a_warehouse_without_buyers_or_campaigns_materialises_and_the_report_says_why(
    pipeline_run, tmp_path
):
    """No completed orders (one class: nobody buys), no champions, no campaign cost: each
    model writes its tables empty with a note, the checks abstain, the report lists them."""
    warehouse = _copy(
        pipeline_run,
        tmp_path,
        "delete from marts.person_orders",
        "update marts.person_profiles set rfm_segment = 'others'",
        "update marts.campaign_performance set cost = 0",
    )
    assets = [propensity_scores, customer_value, lookalikes, budget_allocation]
    checks = [propensity_auc_floor, customer_value_r2_floor, budget_optimal_within_budget]
    result = _materialise(warehouse, *assets, *checks)

    notes = {asset.key: _note(result, asset.key) for asset in assets}
    assert "too few of one class" in notes[propensity_scores.key]
    assert "no completed orders" in notes[customer_value.key]
    assert "nobody is in 'champions'" in notes[lookalikes.key]
    assert "response curve" in notes[budget_allocation.key]
    assert all(note.startswith("not evaluated: ") for note in notes.values()), notes
    for table in ("ml.propensity_scores", "ml.customer_value", "ml.lookalikes"):
        assert _read(warehouse, f"select count(*) from {table}") == [(0,)], table
    stored = dict(_read(warehouse, f"select asset, note from {MODEL_NOTES}"))
    assert {key.to_user_string(): note for key, note in notes.items()}.items() <= stored.items()
    for name, check in _checks(result).items():
        assert check.severity == dg.AssetCheckSeverity.WARN, name
        assert check.description.startswith("not judged"), (name, check.description)

    # The report (on its own, from the tables just written) shows the notes.
    _materialise(warehouse, marketing_report)
    page = (Path(warehouse.reports_dir) / "index.html").read_text()
    assert 'id="model_notes"' in page
    assert "nobody is in &#x27;champions&#x27;" in page or "nobody is in 'champions'" in page


def test_a_model_fitted_again_on_enough_data_clears_its_note(pipeline_run, tmp_path):
    warehouse = _copy(
        pipeline_run,
        tmp_path,
        f"insert into {MODEL_NOTES} values ('ml/lookalikes', 'not evaluated: stale')",
    )
    result = _materialise(warehouse, lookalikes)
    assert "note" not in _metadata(result, lookalikes.key)
    assert _read(warehouse, f"select * from {MODEL_NOTES} where asset = 'ml/lookalikes'") == []


@pytest.mark.parametrize(
    "blocking, severity",
    [
        (None, dg.AssetCheckSeverity.WARN),
        ("some_other_check", dg.AssetCheckSeverity.WARN),
        ("best_auc_above_floor", dg.AssetCheckSeverity.ERROR),
        ("x, ml/propensity_scores:best_auc_above_floor", dg.AssetCheckSeverity.ERROR),
        ("all", dg.AssetCheckSeverity.ERROR),
    ],
)
def test_a_metric_below_its_floor_warns_unless_the_check_is_made_blocking(
    pipeline_run, tmp_path, monkeypatch, blocking, severity
):
    """Push the stored AUC under the floor (with enough evidence behind it) and run the real
    check on it: a warning by default, an error (failing `dmp run`) when named blocking."""
    if blocking is None:
        monkeypatch.delenv("DMP_BLOCKING_CHECKS", raising=False)
    else:
        monkeypatch.setenv("DMP_BLOCKING_CHECKS", blocking)
    table, model = AUC_FLOOR.table, AUC_FLOOR.model
    warehouse = _copy(
        pipeline_run,
        tmp_path,
        f"update {table} set value = {AUC_FLOOR.minimum - 0.01}"
        f" where model = '{model}' and metric = '{AUC_FLOOR.metric}'",
        f"update {table} set value = {AUC_FLOOR.min_evidence}"
        f" where model = '{model}' and metric = '{AUC_FLOOR.evidence_metric}'",
    )
    result = dg.materialize(
        [dg.AssetSpec(PROPENSITY_SCORES), propensity_auc_floor],
        resources={"warehouse": warehouse},
        selection=dg.AssetSelection.checks(propensity_auc_floor),
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity == severity
    assert evaluation.description.startswith(f"auc = {AUC_FLOOR.minimum - 0.01:.4f}")


def test_too_few_active_persons_for_segments_make_one_segment():
    """segment_persons refuses (a ModelFitError, which the asset falls back on); one_segment
    still gives every person a segment and the summary its columns."""
    behaviour = pd.DataFrame({column: [0] * 5 for column in BEHAVIOUR_COLUMNS})
    behaviour["person_id"] = ["a", "b", "c", "d", "e"]
    behaviour.loc[:2, "sessions"] = [1, 3, 2]
    behaviour.loc[1, ["orders", "revenue"]] = [1, 10.0]
    interests = pd.DataFrame(
        {"person_id": ["a", "b"], "category": ["shoes", "bags"], "weighted_activities": [2, 3]}
    )
    with pytest.raises(ModelFitError, match="persons with activity"):
        segment_persons(behaviour, interests)
    result = one_segment(behaviour, interests)
    assert result.assignments["segment_id"].tolist() == [1, 1, 1, 0, 0]
    assert result.summary.set_index("segment_id")["persons"].to_dict() == {1: 3, 0: 2}
    nobody = one_segment(behaviour.iloc[:0], interests.iloc[:0])
    assert nobody.assignments.empty and {"segment_id", "persons"} <= set(nobody.summary.columns)


def test_customer_value_on_ten_days_of_orders_says_not_enough_history(pipeline_run, tmp_path):
    """A shop that started selling ten days ago: no spend window worth judging a forecast on."""
    warehouse = _copy(
        pipeline_run,
        tmp_path,
        "delete from marts.person_orders where ordered_at < "
        "(select max(ordered_at) - interval 9 day from marts.person_orders)",
    )
    result = _materialise(warehouse, customer_value, customer_value_r2_floor)
    note = _note(result, customer_value.key)
    assert note.startswith("not evaluated: not enough history: "), note
    assert "days of orders, customer value needs at least 14" in note
    assert _read(warehouse, "select count(*) from ml.customer_value") == [(0,)]
    check = _checks(result)["best_r2_above_floor"]
    assert check.severity == dg.AssetCheckSeverity.WARN and check.description.startswith(
        "not judged"
    )
