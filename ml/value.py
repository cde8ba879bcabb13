"""Customer value: BG/NBD repeat purchases, Gamma-Gamma order values and next-period spend,
against the naive forecasts (the average, the last period again) on a temporal holdout."""

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.frames import ModelFitError, numeric_matrix, utc_naive, utc_naive_timestamp

ORDER_COLUMNS = ("person_id", "ordered_at", "revenue")
BTYD_COLUMNS = ("frequency", "recency", "T", "monetary_value")
# Spend contenders; the first two are the naive baselines every forecast must beat.
SPEND_MODELS = ("mean", "last_period_spend", "bgnbd_gamma_gamma", "gradient_boosting", "stacked")
NAIVE_SPEND_MODELS = SPEND_MODELS[:2]
SPEND_FEATURES = (*BTYD_COLUMNS, "orders", "revenue", "last_period_spend")
MIN_SPEND_CUSTOMERS = 40
MIN_SPENDERS = 5  # customers who spent in the holdout window, for a forecast to be judged
NO_DROP_OUT = 1e-6  # a drop-out chance per purchase below this is no drop-out at all
NO_DROP_OUT_DRIFT = 1e-4  # a fit that stopped below this was heading for no drop-out

_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class BgNbdParams:
    r: float  # shape of the gamma spread of purchase rates
    alpha: float  # scale of that spread, in the periods the data was measured in
    a: float  # beta spread of the drop-out probability after each purchase
    b: float
    log_likelihood: float
    customers: int

    @property
    def drops_out(self) -> bool:
        """False when the fit says nobody leaves (a/(a+b), the chance of dropping out after a
        purchase, is nil: a -> 0, b -> infinity). BG/NBD is then the NBD model, whose closed
        form is exact where BG/NBD's loses every digit."""
        return self.a / (self.a + self.b) > NO_DROP_OUT


@dataclass(frozen=True)
class GammaGammaParams:
    p: float  # shape of each person's order values around their own mean
    q: float  # shape and scale of the spread of those means across persons
    v: float
    log_likelihood: float
    customers: int


@dataclass
class SpendModel:
    models: dict[str, "_SpendForecast"]  # fitted on the training split
    metrics: pd.DataFrame  # model, metric, value: holdout r2, mae, rmse, spearman, ...
    best_model: str  # lowest holdout RMSE; the one `predict` uses
    left_out: dict[str, str]  # contender -> why it could not be fitted or scored

    def predict(self, features: pd.DataFrame, horizon_periods: float) -> pd.Series:
        """Expected spend per row over `horizon_periods`, never negative."""
        matrix = numeric_matrix(features[list(SPEND_FEATURES)])
        spend = np.clip(self.models[self.best_model].predict(matrix, horizon_periods), 0.0, None)
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
    from scipy.optimize import minimize

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
    r, alpha, a, b = np.exp(result.x)
    if not result.success or not np.isfinite(result.fun):
        if np.isfinite(result.fun) and a / (a + b) < NO_DROP_OUT_DRIFT:
            # The likelihood rises towards "nobody drops out", a limit Nelder-Mead walks to
            # without end (a -> 0, b -> infinity): that limit, the NBD model, is the answer.
            return _fit_nbd(x, big_t, weights)
        raise ModelFitError(f"BG/NBD fit did not converge: {result.message}")
    return BgNbdParams(
        r=float(r),
        alpha=float(alpha),
        a=float(a),
        b=float(b),
        log_likelihood=float(-result.fun),
        customers=int(weights.sum()),
    )


def _fit_nbd(x: np.ndarray, big_t: np.ndarray, weights: np.ndarray) -> BgNbdParams:
    """BG/NBD's no-drop-out limit: purchases at a gamma-spread Poisson rate, nobody leaves
    (a = 0). Takes the distinct (x, T) histories and how many customers share each."""
    from scipy.optimize import minimize
    from scipy.special import gammaln

    def negative_log_likelihood(log_params: np.ndarray) -> float:
        r, alpha = np.exp(np.clip(log_params, -30.0, 30.0))
        per_history = (
            gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + big_t)
        )
        value = -np.sum(weights * per_history)
        return float(value) if np.isfinite(value) else np.inf

    result = minimize(negative_log_likelihood, x0=np.zeros(2), method="Nelder-Mead")
    if not result.success or not np.isfinite(result.fun):
        raise ModelFitError(f"NBD fit (BG/NBD without drop-out) did not converge: {result.message}")
    r, alpha = np.exp(result.x)
    return BgNbdParams(
        r=float(r),
        alpha=float(alpha),
        a=0.0,
        b=1.0,
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
    from scipy.special import hyp2f1

    if t < 0:
        raise ValueError(f"forecast horizon t must not be negative, got {t}")
    x, t_x, big_t = _btyd_arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if not params.drops_out:
        return (r + x) / (alpha + big_t) * t
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
    if not params.drops_out:
        return np.ones_like(x)
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
    horizon_days: float = 90,
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


def spend_features(
    orders: pd.DataFrame, cutoff: pd.Timestamp | str, horizon_days: float, period_days: float = 7.0
) -> pd.DataFrame:
    """What the spend models see at `cutoff`, one row per buyer (index person_id): the BG/NBD
    inputs and totals of `rfm_from_orders`, and `last_period_spend`, the revenue of the
    `horizon_days` before the cutoff (the naive forecast "next period repeats the last")."""
    cutoff = utc_naive_timestamp(cutoff)
    features = rfm_from_orders(orders, cutoff, period_days).set_index("person_id")
    last_period = future_spend(
        orders, cutoff - pd.Timedelta(days=horizon_days), horizon_days, persons=features.index
    )
    return features.assign(last_period_spend=last_period)


def fit_spend_model(
    features: pd.DataFrame,
    future_spend: pd.Series | np.ndarray,
    horizon_periods: float,
    seed: int = 42,
    n_folds: int = 5,
) -> SpendModel:
    """Fit every spend model on one split of the persons and score them on the rest.

    `features` are `spend_features` at a cutoff, `future_spend` the revenue over the
    `horizon_periods` after it (in the BG/NBD time unit). Contenders: the two naive baselines
    (everyone spends the training mean; everyone repeats their last period), BG/NBD expected
    purchases x Gamma-Gamma expected order value, and gradient boosting on the RFM features
    plus those BG/NBD and Gamma-Gamma outputs. Each is scored on the persons it was not fitted
    on (`n_folds`-fold cross-fitting, so every person is scored once and a few big spenders
    in one small test split do not decide), the lowest RMSE (the highest R²) wins, and every
    model is then refitted on everyone. Folds are stratified on spending anything at all,
    since most spend nothing.
    """
    from sklearn.model_selection import StratifiedKFold

    missing = [column for column in SPEND_FEATURES if column not in features.columns]
    if missing:
        raise ValueError(
            f"spend features lack {', '.join(missing)}: build them with ml.value.spend_features"
        )
    matrix = numeric_matrix(features[list(SPEND_FEATURES)])
    target = np.asarray(future_spend, dtype=float)
    if len(target) != len(matrix):
        raise ValueError(f"got {len(target)} spend values for {len(matrix)} feature rows")
    if np.isnan(target).any() or (target < 0).any():
        raise ValueError("future_spend must be non-negative numbers (0 for no spend)")
    if horizon_periods <= 0:
        raise ValueError(f"horizon_periods must be positive, got {horizon_periods}")
    if len(matrix) < MIN_SPEND_CUSTOMERS:
        raise ModelFitError(
            f"need at least {MIN_SPEND_CUSTOMERS} customers to fit and evaluate spend, "
            f"got {len(matrix)}"
        )
    spent = target > 0
    if spent.sum() < MIN_SPENDERS:
        # Nobody (or a handful) spending makes "predict 0" perfect: R² 1 that means nothing.
        raise ModelFitError(
            f"only {int(spent.sum())} of {len(target)} customers spent in the holdout window "
            f"({horizon_periods:.3g} periods): too few to judge a spend forecast (at least "
            f"{MIN_SPENDERS})"
        )
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(
        matrix, spent if min(spent.sum(), (~spent).sum()) >= n_folds else np.zeros(len(spent))
    )
    out_of_fold = {name: np.zeros(len(target)) for name in SPEND_MODELS}
    left_out: dict[str, str] = {}
    for train, test in folds:
        for name in SPEND_MODELS:
            if name in left_out:
                continue
            # BG/NBD or Gamma-Gamma on a short history may not converge, or converge to
            # parameters whose closed form overflows: that contender drops out, the rest compete.
            try:
                model = _spend_forecast(name, horizon_periods, seed)
                model.fit(matrix.iloc[train], target[train])
                out_of_fold[name][test] = model.predict(matrix.iloc[test], horizon_periods)
            except ModelFitError as error:
                left_out[name] = str(error)
    models: dict[str, _SpendForecast] = {}
    metric_rows = []
    for name in SPEND_MODELS:
        if name in left_out:
            continue
        # Today's forecasts come from a fit on everyone.
        models[name] = _spend_forecast(name, horizon_periods, seed).fit(matrix, target)
        predicted = np.clip(out_of_fold[name], 0.0, None)
        for metric, value in _regression_metrics(target, predicted).items():
            metric_rows.append({"model": name, "metric": metric, "value": value})
    metrics = pd.DataFrame(metric_rows)
    rmse = metrics.loc[metrics["metric"] == "rmse"].set_index("model")["value"]
    return SpendModel(
        models=models,
        metrics=metrics,
        best_model=str(rmse.idxmin()),
        left_out=left_out,
    )


def fit_gamma_gamma(
    frequency: Sequence[float] | np.ndarray, monetary_value: Sequence[float] | np.ndarray
) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV").

    Fitted on the repeat buyers (frequency > 0) with a positive mean repeat value; the model
    assumes a person's order values vary around their own mean, independent of how often
    they buy.
    """
    from scipy.optimize import minimize
    from scipy.special import gammaln

    x, value = (np.asarray(values, dtype=float) for values in (frequency, monetary_value))
    used = (x > 0) & (value > 0) & np.isfinite(value)
    if used.sum() < 4:
        raise ModelFitError(
            f"need at least 4 repeat buyers with a positive order value to fit Gamma-Gamma, "
            f"got {int(used.sum())}"
        )
    x, value = x[used], value[used]

    def negative_log_likelihood(log_params: np.ndarray) -> float:
        p, q, v = np.exp(np.clip(log_params, -30.0, 30.0))
        per_person = (
            gammaln(p * x + q)
            - gammaln(p * x)
            - gammaln(q)
            + q * np.log(v)
            + (p * x - 1.0) * np.log(value)
            + p * x * np.log(x)
            - (p * x + q) * np.log(x * value + v)
        )
        total = -np.sum(per_person)
        return float(total) if np.isfinite(total) else np.inf

    # Bounded: when every person's orders cost the same, the likelihood keeps rising as
    # p -> infinity; the bound stops there, at a model that trusts each person's own mean.
    result = minimize(
        negative_log_likelihood,
        x0=np.log([1.0, 2.0, float(np.mean(value))]),
        method="L-BFGS-B",
        bounds=[(-10.0, 10.0), (-10.0, 10.0), (-10.0, 25.0)],
    )
    p, q, v = np.exp(result.x)
    if not result.success or not np.isfinite(result.fun):
        raise ModelFitError(f"Gamma-Gamma fit did not converge: {result.message}")
    if q <= 1.0:
        raise ModelFitError(
            f"Gamma-Gamma fit gives q = {q:.3f} <= 1: order values too spread for a finite mean"
        )
    return GammaGammaParams(
        p=float(p), q=float(q), v=float(v), log_likelihood=float(-result.fun), customers=len(x)
    )


def expected_order_value(
    params: GammaGammaParams,
    frequency: Sequence[float] | np.ndarray,
    monetary_value: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Each person's expected order value: their own mean shrunk towards the population's,
    the less so the more repeat orders it rests on (the population mean without any)."""
    x = np.asarray(frequency, dtype=float)
    value = np.where(x > 0, np.asarray(monetary_value, dtype=float), 0.0)
    p, q, v = params.p, params.q, params.v
    weight = p * x / (p * x + q - 1.0)
    return (1.0 - weight) * (v * p / (q - 1.0)) + weight * value


def _spend_forecast(name: str, horizon_periods: float, seed: int) -> "_SpendForecast":
    return {
        "mean": _MeanSpend,
        "last_period_spend": _LastPeriodSpend,
        "bgnbd_gamma_gamma": _BtydSpend,
        "gradient_boosting": functools.partial(_BoostedSpend, seed=seed),
        "stacked": _StackedSpend,
    }[name](horizon_periods)


class _SpendForecast:
    """A spend model: fit on features and spend over `horizon_periods`, predict for any horizon."""

    def __init__(self, horizon_periods: float) -> None:
        self.horizon_periods = horizon_periods

    def fit(self, features: pd.DataFrame, spend: np.ndarray) -> "_SpendForecast":
        raise NotImplementedError

    def predict(self, features: pd.DataFrame, horizon_periods: float) -> np.ndarray:
        raise NotImplementedError


class _MeanSpend(_SpendForecast):
    """Naive baseline: everyone spends what the average person spent."""

    def fit(self, features: pd.DataFrame, spend: np.ndarray) -> "_MeanSpend":
        self.per_period = float(np.mean(spend)) / self.horizon_periods
        return self

    def predict(self, features: pd.DataFrame, horizon_periods: float) -> np.ndarray:
        return np.full(len(features), self.per_period * horizon_periods)


class _LastPeriodSpend(_SpendForecast):
    """Naive baseline: everyone spends what they spent in the period before."""

    def fit(self, features: pd.DataFrame, spend: np.ndarray) -> "_LastPeriodSpend":
        return self

    def predict(self, features: pd.DataFrame, horizon_periods: float) -> np.ndarray:
        return features["last_period_spend"].to_numpy() * (horizon_periods / self.horizon_periods)


class _BtydSpend(_SpendForecast):
    """BG/NBD expected purchases x Gamma-Gamma expected order value: the classic CLV forecast,
    which needs no spend target, so it also extrapolates to a longer horizon."""

    def fit(self, features: pd.DataFrame, spend: np.ndarray) -> "_BtydSpend":
        self.purchases = fit_bgnbd(features["frequency"], features["recency"], features["T"])
        self.order_value = fit_gamma_gamma(features["frequency"], features["monetary_value"])
        return self

    def columns(self, features: pd.DataFrame, horizon_periods: float) -> pd.DataFrame:
        """Expected purchases, chance of being active and expected order value per person."""
        history = features["frequency"], features["recency"], features["T"]
        return pd.DataFrame(
            {
                "expected_purchases": expected_purchases(self.purchases, horizon_periods, *history),
                "probability_alive": probability_alive(self.purchases, *history),
                "expected_order_value": expected_order_value(
                    self.order_value, features["frequency"], features["monetary_value"]
                ),
            },
            index=features.index,
        )

    def predict(self, features: pd.DataFrame, horizon_periods: float) -> np.ndarray:
        columns = self.columns(features, horizon_periods)
        return (columns["expected_purchases"] * columns["expected_order_value"]).to_numpy()


class _StackedSpend(_SpendForecast):
    """A non-negative mix of the BG/NBD x Gamma-Gamma forecast, the last period's spend and
    the spend rate so far, fitted by least squares: real shops sit between "buying is a steady
    habit" (the closed forms) and "recent spend continues" (wholesale, seasonal buyers)."""

    def fit(self, features: pd.DataFrame, spend: np.ndarray) -> "_StackedSpend":
        from scipy.optimize import nnls

        self.btyd = _BtydSpend(self.horizon_periods).fit(features, spend)
        self.weights, _ = nnls(self._inputs(features, self.horizon_periods), spend)
        return self

    def _inputs(self, features: pd.DataFrame, horizon_periods: float) -> np.ndarray:
        observed = features["T"].to_numpy() + 1.0  # the first purchase's period counts too
        return np.column_stack(
            [
                np.ones(len(features)) * horizon_periods / self.horizon_periods,
                self.btyd.predict(features, horizon_periods),
                features["last_period_spend"].to_numpy() * horizon_periods / self.horizon_periods,
                features["revenue"].to_numpy() / observed * horizon_periods,
            ]
        )

    def predict(self, features: pd.DataFrame, horizon_periods: float) -> np.ndarray:
        return self._inputs(features, horizon_periods) @ self.weights


class _BoostedSpend(_SpendForecast):
    """Gradient boosting on the RFM features and, when they fit, the BG/NBD and Gamma-Gamma
    outputs: learns what the closed forms miss (seasonality, the last period's momentum)."""

    def __init__(self, horizon_periods: float, seed: int) -> None:
        super().__init__(horizon_periods)
        self.seed = seed

    def fit(self, features: pd.DataFrame, spend: np.ndarray) -> "_BoostedSpend":
        from sklearn.ensemble import HistGradientBoostingRegressor

        self.btyd: _BtydSpend | None = _BtydSpend(self.horizon_periods)
        try:
            self.btyd.fit(features, spend).columns(features, self.horizon_periods)
        except ModelFitError:
            self.btyd = None
        # Early stopping on an inner split: spend is heavy-tailed and a few whales overfit fast.
        self.model = HistGradientBoostingRegressor(early_stopping=True, random_state=self.seed)
        self.model.fit(self._inputs(features), spend)
        return self

    def _inputs(self, features: pd.DataFrame) -> pd.DataFrame:
        if self.btyd is None:
            return features
        return pd.concat([features, self.btyd.columns(features, self.horizon_periods)], axis=1)

    def predict(self, features: pd.DataFrame, horizon_periods: float) -> np.ndarray:
        spend = np.clip(self.model.predict(self._inputs(features)), 0.0, None)
        return spend * (horizon_periods / self.horizon_periods)


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
    from scipy.special import betaln, gammaln

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
    """R² (the share of the spread in spend a forecast explains; the mean scores ~0) judges;
    MAE alone misleads, since most spend nothing and predicting 0 for all has a low MAE."""
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    top = np.argsort(-predicted, kind="stable")[: max(1, len(predicted) // 10)]
    constant = np.ptp(predicted) == 0 or np.ptp(truth) == 0
    return {
        "r2": float(r2_score(truth, predicted)),
        "mae": float(mean_absolute_error(truth, predicted)),
        "rmse": float(np.sqrt(mean_squared_error(truth, predicted))),
        # Who spends more than whom: a constant forecast ranks nobody.
        "spearman": 0.0 if constant else float(spearmanr(truth, predicted).statistic),
        # Predicted over actual total: a budget cares whether the sum is right.
        "total_ratio": float(predicted.sum() / truth.sum()) if truth.sum() > 0 else np.nan,
        # Share of the real spend made by the top-predicted tenth: who to court first.
        "top_decile_spend_share": float(truth[top].sum() / truth.sum())
        if truth.sum() > 0
        else np.nan,
    }
