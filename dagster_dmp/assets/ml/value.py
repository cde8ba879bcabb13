"""Customer value: BG/NBD repeat purchases and predicted spend over the next 90 days."""

import dagster as dg
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from dagster_dmp.assets.ml.inputs import DATA_AS_OF, PERSON_ORDERS, data_as_of, person_orders
from dagster_dmp.assets.ml.quality import (
    EVAL_COLUMNS,
    Floor,
    attempt,
    fits_what_it_can,
    metric_floor_check,
)
from dagster_dmp.resources import WarehouseResource, markdown_preview
from ml.frames import seeded_sample
from ml.value import (
    GammaGammaParams,
    ModelFitError,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    fit_spend_model,
    future_spend,
    probability_alive,
    spend_features,
)

CUSTOMER_VALUE = dg.AssetKey(["ml", "customer_value"])
PERIOD_DAYS = 7.0  # BG/NBD time unit: weeks, as in the published fits
VALUE_HORIZON_DAYS = 90
# Below two weeks the spend window would be under five days after under ten days of
# purchases: too little to tell a forecast from luck.
MIN_HISTORY_DAYS = 14
# Customers the spend models are evaluated and fitted on, and BG/NBD and Gamma-Gamma fitted on:
# a seeded sample of this many when there are more (everyone is still scored). Their few
# parameters are pinned down long before; 5-fold cross-fitting of every contender is not.
FIT_SAMPLE = 50_000
R2_FLOOR = Floor(
    table="ml.customer_value_eval",
    model="best",
    metric="r2",
    minimum=0.0,
    why=(
        "a spend forecast no better than predicting the average for everyone (a contender, "
        "R² 0 by construction) adds nothing"
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
    deps=[PERSON_ORDERS, DATA_AS_OF],
    group_name="ml",
    kinds={"scipy", "scikit-learn", "duckdb"},
    description=(
        "Per buyer: BG/NBD (maximum likelihood) probability of still being active and expected "
        f"purchases in the next {VALUE_HORIZON_DAYS} days, and predicted spend over them. Spend "
        "contenders: the naive forecasts (everyone spends the average; everyone repeats their "
        "last period), BG/NBD x Gamma-Gamma, gradient boosting on RFM and those outputs, and a "
        "non-negative stack of the closed form and the recent spend; scored on a temporal "
        "holdout (purchases before as-of minus the evaluation window, spend during it, "
        "5-fold cross-fitted over persons); the best (lowest RMSE) predicts from today's "
        f"purchases. Under {MIN_HISTORY_DAYS} days of orders: 'not enough history', empty "
        "tables. Writes `ml.customer_value` and `ml.customer_value_eval`."
    ),
)
@fits_what_it_can(CUSTOMER_VALUE, EMPTY)
def customer_value(warehouse: WarehouseResource) -> dg.MaterializeResult:
    orders = person_orders(warehouse)
    if orders.empty:
        raise ModelFitError("no completed orders of known persons")
    as_of = data_as_of(warehouse)
    today = as_of.normalize() + pd.Timedelta(days=1)  # every order of the as-of day counts
    history_days = (today - pd.Timestamp(orders["ordered_at"].min())).days
    if history_days < MIN_HISTORY_DAYS:
        raise ModelFitError(
            f"not enough history: {history_days} days of orders, customer value needs at least "
            f"{MIN_HISTORY_DAYS} (a spend window of a third of the history after twice as "
            "many days of purchases)"
        )
    # Evaluate on the last third of the history when it is shorter than three horizons.
    evaluation_days = min(VALUE_HORIZON_DAYS, history_days // 3)
    calibration_end = today - pd.Timedelta(days=evaluation_days)

    # A first purchase on the last day gives T = 0: nothing to learn about repeat behaviour yet.
    calibration = spend_features(orders, calibration_end, evaluation_days, PERIOD_DAYS)
    calibration = seeded_sample(calibration[calibration["T"] > 0], FIT_SAMPLE)
    target = future_spend(orders, calibration_end, evaluation_days, persons=calibration.index)
    with threadpool_limits(limits=1, user_api="openmp"):
        spend_model = fit_spend_model(
            calibration, target, horizon_periods=evaluation_days / PERIOD_DAYS, seed=42
        )

    current = spend_features(orders, today, evaluation_days, PERIOD_DAYS)
    fitted = seeded_sample(current[current["T"] > 0], FIT_SAMPLE)
    # Score first-day buyers as observed for one day.
    current["T"] = current["T"].clip(lower=1 / PERIOD_DAYS)
    bgnbd, why = attempt(_bgnbd_columns, fitted, current)
    if bgnbd is None:
        # A history too short to identify BG/NBD: the spend model stands on its own, the
        # purchase-count columns stay empty and the metadata says why.
        expected, alive, params, bgnbd_rows = np.nan, np.nan, {"not fitted": why}, None
    else:
        expected, alive, params, bgnbd_rows = bgnbd
    order_value, order_value_why = attempt(
        fit_gamma_gamma, fitted["frequency"], fitted["monetary_value"]
    )
    value = current.assign(
        probability_alive=alive,
        expected_purchases_90d=expected,
        predicted_spend_90d=spend_model.predict(current, VALUE_HORIZON_DAYS / PERIOD_DAYS),
    ).reset_index()[list(EMPTY["ml.customer_value"])]
    best = spend_model.metrics[spend_model.metrics["model"] == spend_model.best_model]
    evaluation = pd.concat(
        [
            spend_model.metrics,
            best.assign(model="best"),
            pd.DataFrame(
                {
                    "model": "best",
                    "metric": ["customers", "evaluation_days"],
                    "value": [float(len(calibration)), float(evaluation_days)],
                }
            ),
            bgnbd_rows,
            None if order_value is None else _gamma_gamma_rows(order_value),
        ],
        ignore_index=True,
    )
    warehouse.replace_tables({"ml.customer_value": value, "ml.customer_value_eval": evaluation})
    metrics = spend_model.metrics.pivot(index="model", columns="metric", values="value")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(value),
            "preview": markdown_preview(value.nlargest(10, "predicted_spend_90d")),
            "best_spend_model": spend_model.best_model,
            "spend_models_left_out": dg.MetadataValue.json(spend_model.left_out),
            "evaluation_days": evaluation_days,
            "fitted_on_customers": dg.MetadataValue.md(
                f"{len(calibration):,} evaluated, {len(fitted):,} for BG/NBD and Gamma-Gamma "
                f"(seeded samples of at most {FIT_SAMPLE:,}); {len(value):,} scored"
            ),
            "bgnbd": dg.MetadataValue.json(params),
            "gamma_gamma": dg.MetadataValue.json(
                {"not fitted": order_value_why}
                if order_value is None
                else {"p": order_value.p, "q": order_value.q, "v": order_value.v}
            ),
            "spend_metrics": dg.MetadataValue.md(metrics.round(3).to_markdown()),
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


def _gamma_gamma_rows(params: GammaGammaParams) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": "gamma_gamma",
            "metric": ["p", "q", "v", "log_likelihood"],
            "value": [params.p, params.q, params.v, params.log_likelihood],
        }
    )


customer_value_r2_floor = metric_floor_check(CUSTOMER_VALUE, R2_FLOOR)
