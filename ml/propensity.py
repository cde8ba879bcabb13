"""Purchase propensity: who buys in the next N days, learned from behaviour before a cutoff."""

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.frames import (
    ModelFitError,
    numeric_matrix,
    seeded_sample,
    utc_naive,
    utc_naive_timestamp,
)

EVENT_COLUMNS = ("person_id", "event_type", "occurred_at")
ORDER_COLUMNS = ("person_id", "order_id", "ordered_at", "revenue")
# Optional event columns: each one present adds a breadth feature (how many distinct values).
BREADTH_COLUMNS = {
    "product_id": "distinct_products",
    "category": "distinct_categories",
    "channel": "distinct_channels",
}
WINDOWS_DAYS = (7, 30, 90)
MODELS = ("gradient_boosting", "logistic_regression", "decision_tree")
TREE_DEPTH = 3
# The label window: up to 14 days, a third of the history when that is shorter, so the
# features before the training cutoff always span at least twice the label window.
HORIZON_DAYS = 14
# Two weeks: a label window of 4 days after 10 days of features, so the 7-day windows are full
# and every weekday is seen. Measured on 10 days (3,000 persons, labels over 3 days after 7):
# best holdout AUC 0.53, chance; that data cannot tell a buyer from a browser.
MIN_HISTORY_DAYS = 14
CALIBRATION_FOLDS = 5
# Isotonic calibration overfits below ~1,000 rows (sklearn's advice); Platt scaling then.
ISOTONIC_MIN_ROWS = 1000

_DAY = pd.Timedelta(days=1)


@dataclass
class PropensityFeatures:
    features: pd.DataFrame  # index person_id; float columns, all from rows before the cutoff
    labels: pd.Series  # index person_id; 1 if the person ordered in [cutoff, cutoff + horizon)
    cutoff: pd.Timestamp
    horizon_days: int

    def sample(self, size: int, seed: int = 42) -> "PropensityFeatures":
        """A seeded random `size` of the persons (all of them when there are fewer), in person
        order (ml.frames.seeded_sample)."""
        if len(self.labels) <= size:
            return self
        persons = seeded_sample(self.labels, size, seed).index
        return PropensityFeatures(
            features=self.features.loc[persons],
            labels=self.labels.loc[persons],
            cutoff=self.cutoff,
            horizon_days=self.horizon_days,
        )

    @classmethod
    def concat(cls, parts: Sequence["PropensityFeatures"]) -> "PropensityFeatures":
        """The features of disjoint groups of persons built at one cutoff with the same
        `event_types`, as if built at once (persons in order)."""
        first = parts[0]
        return cls(
            features=pd.concat([part.features for part in parts]).sort_index(),
            labels=pd.concat([part.labels for part in parts]).sort_index(),
            cutoff=first.cutoff,
            horizon_days=first.horizon_days,
        )


@dataclass
class PropensityModel:
    models: dict[str, object]  # fitted on the training split, keyed by MODELS (uncalibrated)
    # per model, what scores: CalibratedClassifierCV over 5 folds of the training split (the
    # raw model itself when calibrate="none")
    calibrated: dict[str, object]
    calibration_method: str  # "isotonic", "sigmoid" or "none"
    feature_names: list[str]
    # model, metric, value: holdout auc, pr_auc, brier, ece, lift_top_decile of the calibrated
    # probabilities, and brier_uncalibrated, ece_uncalibrated of the raw ones
    metrics: pd.DataFrame
    calibration: pd.DataFrame  # model, bin, persons, mean_predicted, observed_rate (calibrated)
    tree_rules: str  # the shallow tree as readable if/else rules
    best_model: str  # highest holdout AUC; the one `score` uses
    base_rate: float  # share of positives in the holdout

    def predict(self, model: str, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of one model for rows with this model's feature columns."""
        matrix = features.reindex(columns=self.feature_names, fill_value=0.0).astype(float)
        return self.calibrated[model].predict_proba(matrix)[:, 1]

    def score(self, features: pd.DataFrame) -> pd.Series:
        """Calibrated probability per row from the best model.

        A column the model knows but `features` lacks is a count of something that did not
        happen (an event type, a category level), so it is scored as 0.
        """
        probability = self.predict(self.best_model, features)
        return pd.Series(probability, index=features.index, name="probability")


def training_windows(
    first_seen: pd.Timestamp | str,
    as_of: pd.Timestamp | str,
    horizon_days: int = HORIZON_DAYS,
    min_history_days: int = MIN_HISTORY_DAYS,
) -> tuple[pd.Timestamp, int]:
    """(training cutoff, label window in days) for data from `first_seen` to `as_of`.

    The label window is `horizon_days`, or a third of the history when that is shorter, so the
    features before the cutoff always cover at least twice the label window. A history shorter
    than `min_history_days` raises ModelFitError("not enough history: ..."): the window left
    would be too short to label and the features too short to tell a buyer from a browser.
    """
    first_seen, as_of = utc_naive_timestamp(first_seen), utc_naive_timestamp(as_of)
    history_days = (as_of - first_seen) / _DAY
    if history_days < min_history_days:
        raise ModelFitError(
            # Rounded down: 13.96 days is not "14.0 days" when 14 are needed.
            f"not enough history: {int(history_days * 10) / 10:.1f} days from "
            f"{first_seen:%Y-%m-%d} to {as_of:%Y-%m-%d}, propensity needs at least {min_history_days} (a label window "
            f"of at least {min_history_days // 3} days after twice as many days of features)"
        )
    horizon = max(1, min(horizon_days, int(history_days // 3)))
    return as_of - pd.Timedelta(days=horizon), horizon


def expected_calibration_error(
    truth: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series, bins: int = 10
) -> float:
    """ECE = sum over bins b of (n_b / n) * |mean predicted_b - observed rate_b|.

    The bins are `bins` equal-width intervals of the predicted probability ([0, 0.1), ...,
    [0.9, 1] for 10), empty ones skipped: the usual definition (Naeini et al. 2015, Guo et al.
    2017). 0 is perfect; a model that says 0.30 to persons of whom 20% buy adds 0.10 times their
    share. Even a perfect model shows some ECE on a finite holdout (each bin's observed rate is
    a sample), roughly 0.01 on ~1,300 persons with a 20% base rate.
    """
    truth = np.asarray(truth, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if len(truth) != len(predicted) or len(truth) == 0:
        raise ValueError(
            f"need as many truths as predictions, got {len(truth)} and {len(predicted)}"
        )
    bin_of = np.minimum((predicted * bins).astype(int), bins - 1)
    error = 0.0
    for index in np.unique(bin_of):
        members = bin_of == index
        error += members.mean() * abs(predicted[members].mean() - truth[members].mean())
    return float(error)


def build_features(
    events: pd.DataFrame,
    orders: pd.DataFrame,
    cutoff: pd.Timestamp | str,
    horizon_days: int,
    windows_days: Sequence[int] = WINDOWS_DAYS,
    event_types: Collection[str | None] | None = None,
) -> PropensityFeatures:
    """Features from rows strictly before `cutoff`, label from orders in the horizon after it.

    Nothing at or after the cutoff can reach a feature, not even the list of event types or
    persons, so a model trained at one cutoff and scored at a later one sees what it would have
    seen in production. Timestamps with a zone are compared in UTC; naive ones are taken as UTC.
    `event_types`: the types counted (default: those of the events before the cutoff); give
    every type before the cutoff when `events` are one group of persons at a time, so every
    group gets the same columns.
    """
    _require(events, EVENT_COLUMNS, "events")
    _require(orders, ORDER_COLUMNS, "orders")
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    cutoff = utc_naive_timestamp(cutoff)

    events = events.loc[events["person_id"].notna()].reset_index(drop=True)
    orders = orders.loc[orders["person_id"].notna()].reset_index(drop=True)
    event_at = utc_naive(events["occurred_at"], "events.occurred_at")
    order_at = utc_naive(orders["ordered_at"], "orders.ordered_at")

    before = event_at < cutoff
    past_events = events.loc[before].assign(
        _age=(cutoff - event_at[before]) / _DAY, _day=event_at[before].dt.floor("D")
    )
    before = order_at < cutoff
    past_orders = orders.loc[before].assign(
        _age=(cutoff - order_at[before]) / _DAY,
        revenue=pd.to_numeric(orders.loc[before, "revenue"], errors="coerce").fillna(0.0),
    )

    persons = pd.Index(
        sorted(set(past_events["person_id"]) | set(past_orders["person_id"])), name="person_id"
    )
    columns: dict[str, pd.Series] = {}

    def per_person(values: pd.Series, fill: float = 0.0) -> pd.Series:
        return values.reindex(persons).astype(float).fillna(fill)

    event_age = past_events.groupby("person_id")["_age"]
    order_age = past_orders.groupby("person_id")["_age"]
    first_seen = pd.concat([event_age.max(), order_age.max()], axis=1).max(axis=1)
    columns["days_since_first_seen"] = per_person(first_seen)
    # Never active / never bought: inactive for as long as we have known the person.
    columns["days_since_last_event"] = per_person(event_age.min(), np.nan).fillna(
        columns["days_since_first_seen"]
    )
    columns["days_since_last_order"] = per_person(order_age.min(), np.nan).fillna(
        columns["days_since_first_seen"]
    )
    columns["orders_total"] = per_person(past_orders.groupby("person_id")["order_id"].nunique())
    columns["revenue_total"] = per_person(past_orders.groupby("person_id")["revenue"].sum())
    columns["revenue_per_order"] = (
        columns["revenue_total"] / columns["orders_total"].where(columns["orders_total"] > 0)
    ).fillna(0.0)
    columns["events_total"] = per_person(past_events.groupby("person_id").size())
    for source, feature in BREADTH_COLUMNS.items():
        if source in past_events.columns:
            columns[feature] = per_person(past_events.groupby("person_id")[source].nunique())

    past_events = past_events.assign(_type=_type_slugs(past_events["event_type"]))
    seen = past_events["_type"] if event_types is None else _type_slugs(pd.Series(event_types))
    types = sorted(set(seen))
    for days in sorted(windows_days):
        recent_events = past_events.loc[past_events["_age"] <= days]
        recent_orders = past_orders.loc[past_orders["_age"] <= days]
        by_person = recent_events.groupby("person_id")
        columns[f"events_{days}d"] = per_person(by_person.size())
        columns[f"active_days_{days}d"] = per_person(by_person["_day"].nunique())
        columns[f"orders_{days}d"] = per_person(
            recent_orders.groupby("person_id")["order_id"].nunique()
        )
        columns[f"revenue_{days}d"] = per_person(
            recent_orders.groupby("person_id")["revenue"].sum()
        )
        counts = recent_events.groupby(["person_id", "_type"]).size().unstack(fill_value=0)
        for name in types:
            # An event type called e.g. "orders" must not overwrite the order count.
            column = (
                f"{name}_{days}d" if f"{name}_{days}d" not in columns else f"event_{name}_{days}d"
            )
            columns[column] = per_person(counts.get(name, pd.Series(dtype=float)))

    features = pd.DataFrame(columns, index=persons)
    future = order_at.ge(cutoff) & order_at.lt(cutoff + pd.Timedelta(days=horizon_days))
    buyers = set(orders.loc[future, "person_id"])
    labels = pd.Series(persons.isin(list(buyers)).astype("int64"), index=persons, name="label")
    return PropensityFeatures(
        features=features, labels=labels, cutoff=cutoff, horizon_days=horizon_days
    )


def fit_propensity(
    features: pd.DataFrame,
    labels: pd.Series | np.ndarray,
    seed: int = 42,
    holdout: float = 0.25,
    calibration_bins: int = 10,
    calibrate: str = "auto",
) -> PropensityModel:
    """Gradient boosting, scaled logistic regression and a depth-3 tree on one stratified split.

    The boosted model usually ranks best; the logistic regression is the sanity baseline; the
    tree is there to be read, so a marketer can see which behaviour drives the score. Models
    stay fitted on the training split so the holdout metrics describe exactly what scores.

    What scores is each model calibrated with sklearn's CalibratedClassifierCV on the training
    split only (5 stratified folds: fit on four, calibrate on the fifth, average the five), so
    the holdout metrics see no calibration leakage. `calibrate`: "isotonic", "sigmoid" (Platt),
    "none", or "auto" = isotonic from 1,000 training rows (below, it overfits), else sigmoid.
    The raw models (`models`, fitted on the whole training split) give the tree rules and the
    *_uncalibrated metrics.
    """
    from sklearn.base import clone
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, export_text

    matrix = numeric_matrix(features, " (one-hot them with encode_table)")
    target = _binary_labels(labels, len(matrix))
    minority = int(min(target.sum(), len(target) - target.sum()))
    if minority < 10:
        raise ModelFitError(
            f"need at least 10 positive and 10 negative labels to fit and evaluate, "
            f"the smaller class has {minority}"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        matrix, target, test_size=holdout, stratify=target, random_state=seed
    )
    method = calibrate
    if method == "auto":
        method = "isotonic" if len(x_train) >= ISOTONIC_MIN_ROWS else "sigmoid"
    if method not in ("isotonic", "sigmoid", "none"):
        raise ValueError(f"calibrate must be auto, isotonic, sigmoid or none, not {calibrate!r}")
    leaf = max(5, len(x_train) // 200)
    models: dict[str, object] = {
        # Early stopping on an inner split always (sklearn only does it above 10,000 rows):
        # on a few thousand persons 100 full rounds overfit and promise buyers 0.75 that buy 0.6.
        "gradient_boosting": HistGradientBoostingClassifier(early_stopping=True, random_state=seed),
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "decision_tree": DecisionTreeClassifier(
            max_depth=TREE_DEPTH, min_samples_leaf=leaf, random_state=seed
        ),
    }
    metric_rows, calibration, calibrated = [], [], {}
    # Every calibration fold needs both classes: fewer folds when a class has under 5 members.
    smaller = int(min(y_train.sum(), len(y_train) - y_train.sum()))
    folds = StratifiedKFold(
        max(2, min(CALIBRATION_FOLDS, smaller)), shuffle=True, random_state=seed
    )
    for name, model in models.items():
        model.fit(x_train, y_train)
        calibrated[name] = (
            model
            if method == "none"
            else CalibratedClassifierCV(clone(model), method=method, cv=folds).fit(x_train, y_train)
        )
        raw = model.predict_proba(x_test)[:, 1]
        predicted = calibrated[name].predict_proba(x_test)[:, 1]
        values = _classification_metrics(y_test, predicted)
        values["ece"] = expected_calibration_error(y_test, predicted, calibration_bins)
        values["brier_uncalibrated"] = float(brier_score_loss(y_test, raw))
        values["ece_uncalibrated"] = expected_calibration_error(y_test, raw, calibration_bins)
        for metric, value in values.items():
            metric_rows.append({"model": name, "metric": metric, "value": value})
        calibration.append(_calibration_table(name, y_test, predicted, calibration_bins))
    metrics = pd.DataFrame(metric_rows)
    auc = metrics.loc[metrics["metric"] == "auc"].set_index("model")["value"]
    tree_rules = export_text(
        models["decision_tree"], feature_names=list(matrix.columns), decimals=2, show_weights=True
    )
    return PropensityModel(
        models=models,
        calibrated=calibrated,
        calibration_method=method,
        feature_names=list(matrix.columns),
        metrics=metrics,
        calibration=pd.concat(calibration, ignore_index=True),
        tree_rules=tree_rules,
        best_model=str(auc.idxmax()),
        base_rate=float(y_test.mean()),
    )


def fit_propensity_table(
    frame: pd.DataFrame,
    target: str,
    drop: Sequence[str] = (),
    seed: int = 42,
    positive: object = None,
    holdout: float = 0.25,
) -> PropensityModel:
    """Propensity on any one-row-per-case table: one-hot the categoricals and fit as usual.

    `drop` is where known leaks go (e.g. a call's duration, known only after the outcome).
    """
    missing = [column for column in (target, *drop) if column not in frame.columns]
    if missing:
        raise ValueError(f"table lacks the column(s) named for the fit: {', '.join(missing)}")
    labels = _binary_target(frame[target], target, positive)
    encoded = encode_table(frame.drop(columns=[target, *drop]))
    return fit_propensity(encoded, labels, seed=seed, holdout=holdout)


def encode_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers and booleans as floats, everything else one-hot as `column=value`.

    Scoring new rows with `PropensityModel.score(encode_table(rows))` works even when a level
    is absent from them: the missing indicator columns count as 0.
    """
    numeric = [
        column
        for column in frame.columns
        if pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column])
    ]
    categorical = [column for column in frame.columns if column not in numeric]
    parts = [frame[numeric].astype(float)]
    if categorical:
        parts.append(
            pd.get_dummies(frame[categorical].astype("string"), prefix_sep="=", dtype=float)
        )
    return pd.concat(parts, axis=1)


def _classification_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    top = predicted >= np.quantile(predicted, 0.9)
    return {
        "auc": float(roc_auc_score(truth, predicted)),
        "pr_auc": float(average_precision_score(truth, predicted)),
        "brier": float(brier_score_loss(truth, predicted)),
        # How many times the base rate the top-scored tenth buys: what a campaign cares about.
        "lift_top_decile": float(truth[top].mean() / truth.mean()),
    }


def _calibration_table(
    model: str, truth: np.ndarray, predicted: np.ndarray, bins: int
) -> pd.DataFrame:
    """Equal-count bins of the prediction: with rare buyers, equal-width bins would be empty."""
    ranks = pd.Series(predicted).rank(method="first")
    bin_of = pd.qcut(ranks, q=min(bins, len(predicted)), labels=False) + 1
    table = (
        pd.DataFrame({"bin": bin_of, "predicted": predicted, "truth": truth})
        .groupby("bin")
        .agg(
            persons=("truth", "size"),
            mean_predicted=("predicted", "mean"),
            observed_rate=("truth", "mean"),
        )
        .reset_index()
    )
    table.insert(0, "model", model)
    return table


def _binary_labels(labels: pd.Series | np.ndarray, rows: int) -> np.ndarray:
    values = np.asarray(labels)
    if len(values) != rows:
        raise ValueError(f"got {len(values)} labels for {rows} feature rows")
    if not set(np.unique(values)).issubset({0, 1}):
        raise ValueError("labels must be 0/1 (or booleans)")
    return values.astype("int64")


def _binary_target(values: pd.Series, name: str, positive: object) -> np.ndarray:
    if positive is not None:
        return (values == positive).to_numpy().astype("int64")
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy().astype("int64")
    text = values.astype("string").str.strip().str.lower()
    known = {"yes": 1, "no": 0, "true": 1, "false": 0, "1": 1, "0": 0}
    unknown = sorted(set(text.dropna()) - set(known))
    if unknown or text.isna().any():
        raise ValueError(
            f"target {name!r} is not yes/no, true/false or 1/0 (saw {unknown[:3]}); "
            f"name the positive value with positive=..."
        )
    return text.map(known).to_numpy().astype("int64")


def _type_slugs(event_types: pd.Series) -> pd.Series:
    return event_types.astype("string").fillna("unknown").map(_slug)


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_") or "unknown"


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} lack the column(s) propensity needs: {', '.join(missing)}")
