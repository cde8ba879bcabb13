"""Purchase propensity: who buys in the next days, trained on the past, scored on today."""

import dagster as dg
import pandas as pd
from threadpoolctl import threadpool_limits

from dagster_dmp.assets.ml.inputs import (
    DATA_AS_OF,
    PERSON_EVENTS,
    PERSON_ORDERS,
    activity_times,
    data_as_of,
    event_types_before,
    person_events,
    person_groups,
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
    PropensityFeatures,
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
# Persons the models are fitted and evaluated on: a seeded sample of this many when there are
# more (everyone is still scored). Fitting three models with 5 calibration folds each takes ~1 s
# of CPU per 1,000 persons (bench/results/ml_scale.md): 500k persons would take 8 minutes, and
# 12,500 holdout persons already measure the AUC to about +-0.01.
TRAINING_SAMPLE = 50_000
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
    as_of = data_as_of(warehouse)
    # The bulk of the history: stray early events must not stretch the label window.
    first_seen = bulk_start(pd.to_datetime(activity_times(warehouse)))
    if pd.isna(as_of) or pd.isna(first_seen):
        raise ModelFitError("no activity or orders of known persons to learn from")
    # Short histories train on a shorter horizon (two thirds of the days stay features); below
    # MIN_HISTORY_DAYS this raises "not enough history".
    training_cutoff, horizon_days = training_windows(first_seen, as_of)
    scoring_cutoff = as_of + pd.Timedelta(seconds=1)
    # Features per group of persons (bounded memory), with every group counting the same types.
    training_types = event_types_before(warehouse, training_cutoff)
    scoring_types = event_types_before(warehouse, scoring_cutoff)
    training_parts, scoring_parts = [], []
    for persons in person_groups(warehouse):
        events, orders = person_events(warehouse, persons), person_orders(warehouse, persons)
        training_parts.append(
            build_features(
                events, orders, training_cutoff, horizon_days, event_types=training_types
            )
        )
        scoring_parts.append(
            build_features(events, orders, scoring_cutoff, horizon_days, event_types=scoring_types)
        )
        del events, orders
    training = PropensityFeatures.concat(training_parts)
    buyers = int(training.labels.sum())
    if min(buyers, len(training.labels) - buyers) < MIN_CLASS_SIZE:
        raise ModelFitError(
            f"{buyers} of {len(training.labels)} persons bought in the {horizon_days} days "
            f"after {training_cutoff:%Y-%m-%d}: too few of one class to train on"
        )
    fitted_on = training.sample(TRAINING_SAMPLE, seed=42)
    # One thread: the run shares two cores with DuckDB; OpenMP oversubscription is 20x slower.
    with threadpool_limits(limits=1, user_api="openmp"):
        model = fit_propensity(fitted_on.features, fitted_on.labels, seed=42, holdout=HOLDOUT_SHARE)
        scores = (
            pd.concat([model.score(part.features) for part in scoring_parts])
            .sort_index()
            .reset_index()
        )
    scores["model"] = model.best_model
    scores["horizon_days"] = horizon_days
    best = model.metrics[model.metrics["model"] == model.best_model].assign(model="best")
    holdout_positives = round(fitted_on.labels.sum() * HOLDOUT_SHARE)  # stratified split
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
            "training_persons": len(training.labels),
            "fitted_on_persons": dg.MetadataValue.md(
                f"{len(fitted_on.labels):,} (a seeded sample of at most {TRAINING_SAMPLE:,})"
            ),
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
