"""Customer value: BG/NBD repeat purchases and predicted spend over the next 90 days."""

import dagster as dg
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from dagster_dmp.assets.ml.inputs import AS_OF_SQL, ORDERS, PERSON_ORDERS_SQL
from dagster_dmp.assets.ml.quality import (
    EVAL_COLUMNS,
    Floor,
    attempt,
    fits_what_it_can,
    metric_floor_check,
)
from dagster_dmp.resources import WarehouseResource, markdown_preview
from ml.value import (
    ModelFitError,
    expected_purchases,
    fit_bgnbd,
    fit_spend_model,
    future_spend,
    probability_alive,
    rfm_from_orders,
)

CUSTOMER_VALUE = dg.AssetKey(["ml", "customer_value"])
PERIOD_DAYS = 7.0  # BG/NBD time unit: weeks, as in the published fits
VALUE_HORIZON_DAYS = 90
R2_FLOOR = Floor(
    table="ml.customer_value_eval",
    model="best",
    metric="r2",
    minimum=-0.1,
    why=(
        "a spend forecast clearly worse than predicting the average for everyone is broken "
        "(short synthetic histories leave little to learn, so the floor sits just below 0)"
    ),
    evidence_metric="customers",
    min_evidence=200,
)
EMPTY = {
    "ml.customer_value": {
        "person_id": "string",
        "probability_alive": "float64",
        "expected_purchases_90d": "float64",
        "predicted_spend_90d": "float64",
    },
    "ml.customer_value_eval": EVAL_COLUMNS,
}


@dg.asset(
    key=CUSTOMER_VALUE,
    deps=[ORDERS],
    group_name="ml",
    kinds={"scipy", "scikit-learn", "duckdb"},
    description=(
        "Per buyer: BG/NBD (maximum likelihood) probability of still being active and expected "
        f"purchases in the next {VALUE_HORIZON_DAYS} days, and predicted spend over them. The "
        "spend models (linear regression baseline, gradient boosting, BG/NBD x average value) "
        "are compared on a temporal holdout: features before as-of minus the evaluation "
        "horizon, spend during it; the best predicts from today's features. A history too "
        "short to identify BG/NBD leaves its two columns empty (the metadata says why). Writes "
        "`ml.customer_value` and `ml.customer_value_eval`."
    ),
)
@fits_what_it_can(CUSTOMER_VALUE, EMPTY)
def customer_value(warehouse: WarehouseResource) -> dg.MaterializeResult:
    orders = warehouse.read_frame(PERSON_ORDERS_SQL)
    if orders.empty:
        raise ModelFitError("no completed orders of known persons")
    as_of = pd.Timestamp(warehouse.read_frame(AS_OF_SQL)["as_of_at"].iloc[0])
    today = as_of.normalize() + pd.Timedelta(days=1)  # every order of the as-of day counts
    history_days = (today - pd.Timestamp(orders["ordered_at"].min())).days
    # Evaluate on the last third of the history when it is shorter than three horizons.
    evaluation_days = min(VALUE_HORIZON_DAYS, max(history_days // 3, 1))
    calibration_end = today - pd.Timedelta(days=evaluation_days)

    # A first purchase on the last day gives T = 0: nothing to learn about repeat behaviour yet.
    calibration = rfm_from_orders(orders, calibration_end, PERIOD_DAYS).set_index("person_id")
    calibration = calibration[calibration["T"] > 0]
    target = future_spend(orders, calibration_end, evaluation_days, persons=calibration.index)
    with threadpool_limits(limits=1, user_api="openmp"):
        spend_model = fit_spend_model(
            calibration, target, seed=42, horizon_periods=evaluation_days / PERIOD_DAYS
        )

    current = rfm_from_orders(orders, today, PERIOD_DAYS).set_index("person_id")
    fitted = current[current["T"] > 0]
    # Score first-day buyers as observed for one day.
    current["T"] = current["T"].clip(lower=1 / PERIOD_DAYS)
    bgnbd, why = attempt(_bgnbd_columns, fitted, current)
    if bgnbd is None:
        # A history too short to identify BG/NBD: the spend model stands on its own, the
        # purchase-count columns stay empty and the metadata says why.
        expected, alive, params, bgnbd_rows = np.nan, np.nan, {"not fitted": why}, None
    else:
        expected, alive, params, bgnbd_rows = bgnbd
    value = current.assign(
        probability_alive=alive,
        expected_purchases_90d=expected,
        # The spend models learned an evaluation_days window; scale to 90 days.
        predicted_spend_90d=spend_model.predict(current) * (VALUE_HORIZON_DAYS / evaluation_days),
    ).reset_index()
    best = spend_model.metrics[spend_model.metrics["model"] == spend_model.best_model]
    evaluation = pd.concat(
        [
            spend_model.metrics,
            best.assign(model="best"),
            pd.DataFrame(
                {"model": ["best"], "metric": ["customers"], "value": [float(len(calibration))]}
            ),
            bgnbd_rows,
        ],
        ignore_index=True,
    )
    warehouse.replace_tables({"ml.customer_value": value, "ml.customer_value_eval": evaluation})
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(value),
            "preview": markdown_preview(
                value.nlargest(10, "predicted_spend_90d")[
                    ["person_id", "probability_alive", "expected_purchases_90d"]
                    + ["predicted_spend_90d"]
                ]
            ),
            "best_spend_model": spend_model.best_model,
            "spend_models_left_out": dg.MetadataValue.json(spend_model.left_out),
            "evaluation_days": evaluation_days,
            "bgnbd": dg.MetadataValue.json(params),
            "spend_metrics": dg.MetadataValue.md(
                spend_model.metrics.pivot(index="model", columns="metric", values="value")
                .round(3)
                .to_markdown()
            ),
            "predicted_spend_90d_total": dg.MetadataValue.float(
                float(value["predicted_spend_90d"].sum())
            ),
            **({"note": f"BG/NBD left out, its two columns are empty: {why}"} if why else {}),
        }
    )


def _bgnbd_columns(
    fitted: pd.DataFrame, current: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, dict[str, float], pd.DataFrame]:
    """BG/NBD fitted on the buyers observed for a while, applied to everyone: expected
    purchases, probability alive, the parameters and their eval rows."""
    params = fit_bgnbd(fitted["frequency"], fitted["recency"], fitted["T"])
    history = current["frequency"], current["recency"], current["T"]
    expected = expected_purchases(params, VALUE_HORIZON_DAYS / PERIOD_DAYS, *history)
    alive = probability_alive(params, *history)
    rows = pd.DataFrame(
        {
            "model": "bgnbd",
            "metric": ["r", "alpha", "a", "b", "log_likelihood"],
            "value": [params.r, params.alpha, params.a, params.b, params.log_likelihood],
        }
    )
    shown = {"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b}
    return expected, alive, shown, rows


customer_value_r2_floor = metric_floor_check(CUSTOMER_VALUE, R2_FLOOR)
