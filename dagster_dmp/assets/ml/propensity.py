"""Purchase propensity: who buys in the next days, trained on the past, scored on today."""

import dagster as dg
import pandas as pd
from threadpoolctl import threadpool_limits

from dagster_dmp.assets.ml.inputs import (
    DATA_AS_OF,
    PERSON_EVENTS,
    PERSON_ORDERS,
    data_as_of,
    person_events,
    person_orders,
)
from dagster_dmp.assets.ml.quality import (
    EVAL_COLUMNS,
    Floor,
    fits_what_it_can,
    metric_floor_check,
)
from dagster_dmp.resources import WarehouseResource, markdown_preview
from ml.frames import ModelFitError, bulk_start
from ml.propensity import (
    HORIZON_DAYS,
    MIN_HISTORY_DAYS,
    build_features,
    fit_propensity,
    training_windows,
)

PROPENSITY_SCORES = dg.AssetKey(["ml", "propensity_scores"])
AUC_FLOOR = Floor(
    table="ml.propensity_eval",
    model="best",
    metric="auc",
    minimum=0.6,
    why="a ranking barely better than chance (0.5) is not worth targeting on",
    evidence_metric="holdout_positives",
    min_evidence=30,
)
HOLDOUT_SHARE = 0.25
MIN_CLASS_SIZE = 10  # buyers and non-buyers each, to fit and evaluate at all
EMPTY = {
    "ml.propensity_scores": {
        "person_id": "string",
        "probability": "float64",
        "model": "string",
        "horizon_days": "int64",
    },
    "ml.propensity_eval": EVAL_COLUMNS,
    "ml.propensity_calibration": {
        "model": "string",
        "bin": "int64",
        "persons": "int64",
        "mean_predicted": "float64",
        "observed_rate": "float64",
    },
}


@dg.asset(
    key=PROPENSITY_SCORES,
    deps=[PERSON_EVENTS, PERSON_ORDERS, DATA_AS_OF],
    group_name="ml",
    kinds={"scikit-learn", "duckdb"},
    description=(
        f"Calibrated probability that each person completes an order in the next "
        f"{HORIZON_DAYS} days (a third of the history when that is shorter). Trained on "
        "features computed strictly before as-of minus the horizon with the orders of the "
        "horizon as labels (gradient boosting, logistic regression, a depth-3 tree whose rules "
        "are shown), each calibrated on 5 folds of the training split (isotonic, Platt below "
        "1,000 persons), evaluated on a stratified holdout; the best model scores everyone on "
        "features up to the as-of date. Needs at least "
        f"{MIN_HISTORY_DAYS} days of history, else writes nothing and says 'not enough "
        "history'. Also writes `ml.propensity_eval` (AUC, PR-AUC, Brier, ECE, top-decile lift, "
        "and Brier/ECE before calibration) and `ml.propensity_calibration` (the reliability "
        "bins)."
    ),
)
@fits_what_it_can(PROPENSITY_SCORES, EMPTY)
def propensity_scores(warehouse: WarehouseResource) -> dg.MaterializeResult:
    events = person_events(warehouse)
    orders = person_orders(warehouse)
    as_of = data_as_of(warehouse)
    # The bulk of the history: stray early events must not stretch the label window.
    first_seen = bulk_start(
        pd.to_datetime(pd.concat([events["occurred_at"], orders["ordered_at"]]))
    )
    if pd.isna(as_of) or pd.isna(first_seen):
        raise ModelFitError("no activity or orders of known persons to learn from")
    # Short histories train on a shorter horizon (two thirds of the days stay features); below
    # MIN_HISTORY_DAYS this raises "not enough history".
    training_cutoff, horizon_days = training_windows(first_seen, as_of)
    training = build_features(events, orders, training_cutoff, horizon_days)
    buyers = int(training.labels.sum())
    if min(buyers, len(training.labels) - buyers) < MIN_CLASS_SIZE:
        raise ModelFitError(
            f"{buyers} of {len(training.labels)} persons bought in the {horizon_days} days "
            f"after {training_cutoff:%Y-%m-%d}: too few of one class to train on"
        )
    # One thread: the run shares two cores with DuckDB; OpenMP oversubscription is 20x slower.
    with threadpool_limits(limits=1, user_api="openmp"):
        model = fit_propensity(training.features, training.labels, seed=42, holdout=HOLDOUT_SHARE)
        today = build_features(events, orders, as_of + pd.Timedelta(seconds=1), horizon_days)
        scores = model.score(today.features).reset_index()
    scores["model"] = model.best_model
    scores["horizon_days"] = horizon_days
    best = model.metrics[model.metrics["model"] == model.best_model].assign(model="best")
    holdout_positives = round(training.labels.sum() * HOLDOUT_SHARE)  # stratified split
    evidence = pd.DataFrame(
        {"model": ["best"], "metric": ["holdout_positives"], "value": [float(holdout_positives)]}
    )
    warehouse.replace_tables(
        {
            "ml.propensity_scores": scores,
            "ml.propensity_eval": pd.concat([model.metrics, best, evidence], ignore_index=True),
            "ml.propensity_calibration": model.calibration,
        }
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scores),
            "preview": markdown_preview(scores.nlargest(10, "probability")),
            "best_model": model.best_model,
            "training_cutoff": str(training_cutoff),
            "horizon_days": horizon_days,
            "training_base_rate": dg.MetadataValue.float(float(training.labels.mean())),
            "calibration": model.calibration_method,
            "metrics": dg.MetadataValue.md(
                model.metrics.pivot(index="model", columns="metric", values="value")
                .round(4)
                .to_markdown()
            ),
            "tree_rules": dg.MetadataValue.md(f"```\n{model.tree_rules}\n```"),
        }
    )


propensity_auc_floor = metric_floor_check(PROPENSITY_SCORES, AUC_FLOOR)
