"""Customer value: BG/NBD repeat-purchase forecasts and a supervised model of future spend."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

from ml.frames import ModelFitError, numeric_matrix, utc_naive, utc_naive_timestamp

ORDER_COLUMNS = ("person_id", "ordered_at", "revenue")
BTYD_COLUMNS = ("frequency", "recency", "T", "monetary_value")
SPEND_MODELS = ("linear_regression", "gradient_boosting", "bgnbd_x_value")

_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class BgNbdParams:
    r: float  # shape of the gamma spread of purchase rates
    alpha: float  # scale of that spread, in the periods the data was measured in
    a: float  # beta spread of the drop-out probability after each purchase
    b: float
    log_likelihood: float
    customers: int


@dataclass
class SpendModel:
    models: dict[str, object]  # fitted on the training split; each has predict(features)
    feature_names: list[str]
    metrics: pd.DataFrame  # model, metric, value: holdout mae, rmse, r2, total_ratio, ...
    best_model: str  # lowest holdout RMSE; the one `predict` uses
    left_out: dict[str, str]  # contender -> why it could not be fitted or scored

    def predict(self, features: pd.DataFrame) -> pd.Series:
        """Expected spend per row over the horizon the model was trained on, never negative."""
        matrix = features.reindex(columns=self.feature_names, fill_value=0.0).astype(float)
        spend = np.clip(self.models[self.best_model].predict(matrix), 0.0, None)
        return pd.Series(spend, index=features.index, name="predicted_spend")


def fit_bgnbd(
    frequency: Sequence[float] | np.ndarray,
    recency: Sequence[float] | np.ndarray,
    T: Sequence[float] | np.ndarray,
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD (Fader, Hardie & Lee 2005).

    `frequency` counts repeat purchases, `recency` is the time of the last one and `T` the time
    observed, both from the first purchase and in one unit (weeks in the paper). Customers with
    the same (x, t_x, T) share one likelihood term, so millions of rows cost little.
    """
    x, t_x, big_t = _btyd_arrays(frequency, recency, T)
    if len(x) < 4:
        raise ModelFitError(f"need at least 4 customers to fit BG/NBD's 4 parameters, got {len(x)}")
    unique, weights = np.unique(np.column_stack([x, t_x, big_t]), axis=0, return_counts=True)
    x, t_x, big_t = unique.T

    def negative_log_likelihood(log_params: np.ndarray) -> float:
        # Log space keeps all four parameters positive without bounds.
        r, alpha, a, b = np.exp(np.clip(log_params, -30.0, 30.0))
        value = -np.sum(weights * _bgnbd_log_likelihood(r, alpha, a, b, x, t_x, big_t))
        return float(value) if np.isfinite(value) else np.inf

    result = minimize(
        negative_log_likelihood,
        x0=np.zeros(4),
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 20_000, "maxfev": 20_000},
    )
    if not result.success or not np.isfinite(result.fun):
        raise ModelFitError(f"BG/NBD fit did not converge: {result.message}")
    r, alpha, a, b = np.exp(result.x)
    return BgNbdParams(
        r=float(r),
        alpha=float(alpha),
        a=float(a),
        b=float(b),
        log_likelihood=float(-result.fun),
        customers=int(weights.sum()),
    )


def expected_purchases(
    params: BgNbdParams,
    t: float,
    frequency: Sequence[float] | np.ndarray,
    recency: Sequence[float] | np.ndarray,
    T: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Expected purchases in the next `t` periods given each customer's history."""
    if t < 0:
        raise ValueError(f"forecast horizon t must not be negative, got {t}")
    x, t_x, big_t = _btyd_arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + big_t + t)
    still_buying = 1.0 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1.0, z
    )
    numerator = (a + b + x - 1.0) / (a - 1.0) * still_buying
    expected = numerator / (1.0 + _dropped_out_odds(params, x, t_x, big_t))
    broken = ~np.isfinite(expected)
    if broken.any():
        raise ModelFitError(
            f"BG/NBD parameters {params} give no finite expected purchases for "
            f"{int(broken.sum())} customer(s)"
        )
    return expected


def probability_alive(
    params: BgNbdParams,
    frequency: Sequence[float] | np.ndarray,
    recency: Sequence[float] | np.ndarray,
    T: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Chance each customer has not silently dropped out; 1 for anyone with no repeat yet."""
    x, t_x, big_t = _btyd_arrays(frequency, recency, T)
    return 1.0 / (1.0 + _dropped_out_odds(params, x, t_x, big_t))


def rfm_from_orders(
    orders: pd.DataFrame, cutoff: pd.Timestamp | str, period_days: float = 7.0
) -> pd.DataFrame:
    """BG/NBD inputs per person from orders strictly before `cutoff`.

    Purchases are counted per calendar day (two orders on one day are one purchase occasion)
    and times are whole days divided by `period_days`: the paper's convention, so a purchase on
    the last day before the cutoff has recency equal to T. Columns: person_id, frequency (repeat
    purchase days), recency, T, monetary_value (mean revenue of the repeat days, 0 without any,
    as the Gamma-Gamma spend model wants), orders and revenue (all days, for other models).
    """
    missing = [column for column in ORDER_COLUMNS if column not in orders.columns]
    if missing:
        raise ValueError(f"orders lack the column(s) customer value needs: {', '.join(missing)}")
    if period_days <= 0:
        raise ValueError(f"period_days must be positive, got {period_days}")
    cutoff = utc_naive_timestamp(cutoff)
    at = utc_naive(orders["ordered_at"], "orders.ordered_at")
    before = (at < cutoff) & orders["person_id"].notna()
    last_day = (cutoff - pd.Timedelta(1, "ns")).floor("D")

    days = (
        pd.DataFrame(
            {
                "person_id": orders.loc[before, "person_id"].to_numpy(),
                "day": at[before].dt.floor("D").to_numpy(),
                "revenue": pd.to_numeric(orders.loc[before, "revenue"], errors="coerce")
                .fillna(0.0)
                .to_numpy(),
            }
        )
        .groupby(["person_id", "day"], as_index=False)
        .agg(revenue=("revenue", "sum"), orders=("revenue", "size"))
        .sort_values(["person_id", "day"], kind="stable")
    )
    first = days.groupby("person_id")["day"].transform("min")
    days["repeat_revenue"] = days["revenue"].where(days["day"] > first)
    per_person = days.groupby("person_id").agg(
        first_day=("day", "min"),
        last_day=("day", "max"),
        purchase_days=("day", "size"),
        monetary_value=("repeat_revenue", "mean"),
        orders=("orders", "sum"),
        revenue=("revenue", "sum"),
    )
    return pd.DataFrame(
        {
            "person_id": per_person.index.to_numpy(),
            "frequency": (per_person["purchase_days"] - 1).to_numpy().astype("int64"),
            "recency": ((per_person["last_day"] - per_person["first_day"]) / _DAY / period_days)
            .to_numpy()
            .astype(float),
            "T": ((last_day - per_person["first_day"]) / _DAY / period_days)
            .to_numpy()
            .astype(float),
            "monetary_value": per_person["monetary_value"].fillna(0.0).to_numpy(),
            "orders": per_person["orders"].to_numpy().astype("int64"),
            "revenue": per_person["revenue"].to_numpy(),
        }
    )


def future_spend(
    orders: pd.DataFrame,
    cutoff: pd.Timestamp | str,
    horizon_days: int = 90,
    persons: Sequence[object] | pd.Index | None = None,
) -> pd.Series:
    """Revenue per person in [cutoff, cutoff + horizon): the target `fit_spend_model` learns.

    Pass `persons` (e.g. `rfm_from_orders(...).person_id`) to get 0 for those who spent nothing.
    """
    missing = [column for column in ORDER_COLUMNS if column not in orders.columns]
    if missing:
        raise ValueError(f"orders lack the column(s) customer value needs: {', '.join(missing)}")
    cutoff = utc_naive_timestamp(cutoff)
    at = utc_naive(orders["ordered_at"], "orders.ordered_at")
    inside = (at >= cutoff) & (at < cutoff + pd.Timedelta(days=horizon_days))
    revenue = pd.to_numeric(orders.loc[inside, "revenue"], errors="coerce").fillna(0.0)
    spend = revenue.groupby(orders.loc[inside, "person_id"]).sum().rename("future_spend")
    if persons is not None:
        spend = spend.reindex(pd.Index(persons, name="person_id"), fill_value=0.0)
    return spend.astype(float)


def fit_spend_model(
    features: pd.DataFrame,
    future_spend: pd.Series | np.ndarray,
    seed: int = 42,
    holdout: float = 0.25,
    horizon_periods: float | None = None,
) -> SpendModel:
    """Linear regression as the baseline, gradient boosting as the contender, one shared split.

    When `features` carry the BG/NBD inputs (frequency, recency, T, monetary_value) and
    `horizon_periods` says how long the target spend window is in their unit, a third model is
    scored too: BG/NBD expected purchases times the customer's average order value. The split
    is stratified on spending anything at all, since most customers spend nothing.
    """
    matrix = numeric_matrix(features)
    target = np.asarray(future_spend, dtype=float)
    if len(target) != len(matrix):
        raise ValueError(f"got {len(target)} spend values for {len(matrix)} feature rows")
    if np.isnan(target).any() or (target < 0).any():
        raise ValueError("future_spend must be non-negative numbers (0 for no spend)")
    if len(matrix) < 40:
        raise ModelFitError(f"need at least 40 customers to fit and evaluate, got {len(matrix)}")
    spent = target > 0
    x_train, x_test, y_train, y_test = train_test_split(
        matrix,
        target,
        test_size=holdout,
        random_state=seed,
        stratify=spent if min(spent.sum(), (~spent).sum()) >= 2 else None,
    )
    models: dict[str, object] = {
        "linear_regression": LinearRegression(),
        # Early stopping on an inner split: spend is heavy-tailed and a few whales overfit fast.
        "gradient_boosting": HistGradientBoostingRegressor(early_stopping=True, random_state=seed),
    }
    if horizon_periods is not None and all(column in matrix for column in BTYD_COLUMNS):
        models["bgnbd_x_value"] = _BgNbdSpend(horizon_periods)
    metric_rows, left_out = [], {}
    for name, model in models.items():
        # BG/NBD on a short history may not converge, or converge to parameters whose
        # closed form overflows: that contender drops out, the baselines still compete.
        try:
            model.fit(x_train, y_train)
            predicted = np.clip(model.predict(x_test), 0.0, None)
        except ModelFitError as error:
            left_out[name] = str(error)
            continue
        for metric, value in _regression_metrics(y_test, predicted).items():
            metric_rows.append({"model": name, "metric": metric, "value": value})
    metrics = pd.DataFrame(metric_rows)
    rmse = metrics.loc[metrics["metric"] == "rmse"].set_index("model")["value"]
    return SpendModel(
        models=models,
        feature_names=list(matrix.columns),
        metrics=metrics,
        best_model=str(rmse.idxmin()),
        left_out=left_out,
    )


class _BgNbdSpend:
    """BG/NBD purchases x average order value, with the fit/predict shape of the other models.

    Customers with no repeat purchase yet get the training customers' mean repeat value.
    """

    def __init__(self, horizon_periods: float) -> None:
        self.horizon_periods = horizon_periods

    def fit(self, features: pd.DataFrame, _spend: np.ndarray) -> "_BgNbdSpend":
        self.params = fit_bgnbd(features["frequency"], features["recency"], features["T"])
        repeaters = features["frequency"] > 0
        self.fallback_value = (
            float(features.loc[repeaters, "monetary_value"].mean()) if repeaters.any() else 0.0
        )
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        purchases = expected_purchases(
            self.params,
            self.horizon_periods,
            features["frequency"],
            features["recency"],
            features["T"],
        )
        value = np.where(features["frequency"] > 0, features["monetary_value"], self.fallback_value)
        return purchases * value


def _bgnbd_log_likelihood(
    r: float,
    alpha: float,
    a: float,
    b: float,
    x: np.ndarray,
    t_x: np.ndarray,
    big_t: np.ndarray,
) -> np.ndarray:
    """Per-customer log-likelihood (Fader, Hardie & Lee 2005), in logs so large x does not overflow."""
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    alive = -(r + x) * np.log(alpha + big_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = np.where(
            x > 0,
            np.log(a) - np.log(b + x - 1.0) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return common + np.logaddexp(alive, dropped)


def _dropped_out_odds(
    params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray
) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = (
            params.a
            / (params.b + x - 1.0)
            * ((params.alpha + big_t) / (params.alpha + t_x)) ** (params.r + x)
        )
    return np.where(x > 0, odds, 0.0)


def _btyd_arrays(
    frequency: Sequence[float] | np.ndarray,
    recency: Sequence[float] | np.ndarray,
    T: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, big_t = (np.asarray(values, dtype=float) for values in (frequency, recency, T))
    if not (x.shape == t_x.shape == big_t.shape):
        raise ValueError(
            f"frequency, recency and T differ in length: {x.shape}, {t_x.shape}, {big_t.shape}"
        )
    problems = {
        "frequency is negative or not whole": (x < 0) | (x != np.round(x)),
        "recency is negative": t_x < 0,
        "recency exceeds T": t_x > big_t + 1e-9,
        "T is not positive": big_t <= 0,
        "a value is missing": np.isnan(x) | np.isnan(t_x) | np.isnan(big_t),
    }
    for problem, rows in problems.items():
        if rows.any():
            first = int(np.flatnonzero(rows)[0])
            raise ValueError(f"{problem} for {int(rows.sum())} customer(s), first at row {first}")
    return x, t_x, big_t


def _regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE alone misleads on spend: most spend nothing, so predicting 0 for all has a low MAE."""
    top = np.argsort(-predicted, kind="stable")[: max(1, len(predicted) // 10)]
    return {
        "mae": float(mean_absolute_error(truth, predicted)),
        "rmse": float(np.sqrt(mean_squared_error(truth, predicted))),
        "r2": float(r2_score(truth, predicted)),
        # Predicted over actual total: a budget cares whether the sum is right.
        "total_ratio": float(predicted.sum() / truth.sum()) if truth.sum() > 0 else np.nan,
        # Share of the real spend made by the top-predicted tenth: who to court first.
        "top_decile_spend_share": float(truth[top].sum() / truth.sum())
        if truth.sum() > 0
        else np.nan,
    }
