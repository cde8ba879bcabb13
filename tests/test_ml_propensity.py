"""Propensity: features see nothing from the cutoff on, models rank buyers, real data sets the bar."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from ml.frames import ModelFitError
from ml.propensity import (
    MODELS,
    PropensityFeatures,
    build_features,
    encode_table,
    expected_calibration_error,
    fit_propensity,
    fit_propensity_table,
    training_windows,
)

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
START = pd.Timestamp("2026-01-01")
CUTOFF = START + pd.Timedelta(days=150)
DAY = pd.Timedelta(days=1)


@pytest.fixture(autouse=True)
def one_openmp_thread():
    """Gradient boosting's OpenMP threads spin-wait: on a busy 2-core machine one 0.3 s fit
    took 7 s with two threads. One thread keeps these tests fast; the models are the same."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _planted_activity(persons: int = 2000, days: int = 180, seed: int = 0):
    """Persons with a hidden intent that drives browsing, carting and buying, and who churn."""
    rng = np.random.default_rng(seed)
    intent = rng.lognormal(0.0, 0.8, persons)
    joined = rng.uniform(0, days - 40, persons)
    left = joined + rng.exponential(90, persons)
    active = np.clip(np.minimum(left, days) - joined, 0, None)
    ids = np.array([f"p{i:05d}" for i in range(persons)])

    who = np.repeat(np.arange(persons), rng.poisson(0.4 * intent * active))
    at = joined[who] + rng.uniform(size=len(who)) * active[who]
    cart = rng.uniform(size=len(who)) < 0.04 * np.minimum(intent[who], 3)
    browse = rng.choice(["page_view", "product_view", "search"], len(who))
    events = pd.DataFrame(
        {
            "person_id": ids[who],
            "event_type": np.where(cart, "add_to_cart", browse),
            "occurred_at": START + pd.to_timedelta(at, unit="D"),
            "product_id": rng.integers(0, 50, len(who)).astype(str),
            "category": rng.integers(0, 8, len(who)).astype(str),
        }
    )
    who = np.repeat(np.arange(persons), rng.poisson(0.01 * intent**1.5 * active))
    at = joined[who] + rng.uniform(size=len(who)) * active[who]
    orders = pd.DataFrame(
        {
            "person_id": ids[who],
            "order_id": [f"o{i:06d}" for i in range(len(who))],
            "ordered_at": START + pd.to_timedelta(at, unit="D"),
            "revenue": np.round(rng.lognormal(3.5, 0.6, len(who)), 2),
        }
    )
    return events, orders


def test_features_ignore_every_row_at_or_after_the_cutoff():
    events, orders = _planted_activity(persons=600)
    before = build_features(events, orders, CUTOFF, horizon_days=30)

    late_events = events["occurred_at"] >= CUTOFF
    late_orders = orders["ordered_at"] >= CUTOFF
    assert late_events.sum() > 1000 and late_orders.sum() > 50, "the test needs late rows"
    changed_events = events.copy()
    changed_events.loc[late_events, "event_type"] = "refund_request"  # a type never seen before
    changed_events.loc[late_events, "product_id"] = "unseen"
    changed_orders = orders.copy()
    changed_orders.loc[late_orders, "revenue"] *= 100
    non_buyer = before.labels.index[before.labels == 0][0]
    extra_events = pd.DataFrame(
        {
            "person_id": [non_buyer, "newcomer"],
            "event_type": ["add_to_cart", "page_view"],
            "occurred_at": [CUTOFF, CUTOFF + DAY],  # exactly at the cutoff is already "after"
            "product_id": ["x", "y"],
            "category": ["c", "c"],
        }
    )
    extra_orders = pd.DataFrame(
        {
            "person_id": [non_buyer, "newcomer"],
            "order_id": ["late1", "late2"],
            "ordered_at": [CUTOFF, CUTOFF + 2 * DAY],
            "revenue": [10_000.0, 50.0],
        }
    )
    after = build_features(
        pd.concat([changed_events, extra_events], ignore_index=True),
        pd.concat([changed_orders, extra_orders], ignore_index=True),
        CUTOFF,
        horizon_days=30,
    )
    pd.testing.assert_frame_equal(after.features, before.features, check_exact=True)
    assert after.labels[non_buyer] == 1, "an order exactly at the cutoff is inside the horizon"
    assert "newcomer" not in after.labels.index

    dropped = build_features(events[~late_events], orders[~late_orders], CUTOFF, horizon_days=30)
    pd.testing.assert_frame_equal(dropped.features, before.features, check_exact=True)
    assert dropped.labels.sum() == 0 < before.labels.sum()

    # The same change one second before the cutoff must show, or the checks above prove nothing.
    early = extra_events.assign(occurred_at=CUTOFF - pd.Timedelta(seconds=1))
    seen = build_features(pd.concat([events, early], ignore_index=True), orders, CUTOFF, 30)
    assert seen.features.loc[non_buyer, "add_to_cart_7d"] == (
        before.features.loc[non_buyer, "add_to_cart_7d"] + 1
    )
    assert "newcomer" in seen.features.index


def test_features_match_a_hand_computed_case():
    events = pd.DataFrame(
        {
            "person_id": ["p1", "p1", "p1", "p2", "p3"],
            "event_type": ["Page View", "add_to_cart", "Page View", "search", "search"],
            "occurred_at": [CUTOFF - d * DAY for d in (1, 10, 40, 3, -1)],
            "product_id": ["a", "b", "a", None, "c"],
        }
    )
    orders = pd.DataFrame(
        {
            "person_id": ["p1", "p1", "p2", "p1"],
            "order_id": ["o1", "o2", "o3", "o4"],
            "ordered_at": [CUTOFF - d * DAY for d in (5, 50, -2, -40)],
            "revenue": [30.0, 10.0, 99.0, 5.0],
        }
    )
    result = build_features(events, orders, CUTOFF, horizon_days=30)
    features = result.features
    assert list(features.index) == ["p1", "p2"], "p3 is only seen after the cutoff"
    p1, p2 = features.loc["p1"], features.loc["p2"]
    assert p1["days_since_first_seen"] == 50
    assert p1["days_since_last_event"] == 1
    assert p1["days_since_last_order"] == 5
    assert (p1["orders_total"], p1["revenue_total"], p1["revenue_per_order"]) == (2, 40, 20)
    assert (p1["orders_30d"], p1["revenue_30d"], p1["orders_90d"]) == (1, 30, 2)
    assert (p1["page_view_7d"], p1["page_view_30d"], p1["page_view_90d"]) == (1, 1, 2)
    assert (p1["add_to_cart_7d"], p1["add_to_cart_30d"]) == (0, 1)
    assert (p1["events_30d"], p1["active_days_30d"], p1["distinct_products"]) == (2, 2, 2)
    assert p2["orders_total"] == 0 and p2["search_7d"] == 1
    assert p2["days_since_last_order"] == p2["days_since_first_seen"] == 3
    # p1's next order is 40 days out: outside a 30-day horizon, inside a 60-day one.
    assert result.labels.to_dict() == {"p1": 0, "p2": 1}
    assert build_features(events, orders, CUTOFF, horizon_days=60).labels["p1"] == 1
    assert not features.isna().any().any()


def test_row_order_and_time_zones_do_not_change_features():
    events, orders = _planted_activity(persons=300)
    plain = build_features(events, orders, CUTOFF, horizon_days=30)
    berlin = build_features(
        events.sample(frac=1.0, random_state=1).assign(
            occurred_at=events["occurred_at"].dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin")
        ),
        orders.sample(frac=1.0, random_state=2),
        CUTOFF.tz_localize("UTC"),
        horizon_days=30,
    )
    pd.testing.assert_frame_equal(berlin.features, plain.features)
    pd.testing.assert_series_equal(berlin.labels, plain.labels)


def test_features_built_per_group_of_persons_equal_those_built_at_once():
    events, orders = _planted_activity(persons=300)
    # Add an event type only one person has before the cutoff: the other groups lack it.
    rare = events.iloc[:1].assign(event_type="Add To Wishlist", occurred_at=START)
    events = pd.concat([events, rare], ignore_index=True)
    whole = build_features(events, orders, CUTOFF, horizon_days=30)
    types = events.loc[events["occurred_at"] < CUTOFF, "event_type"].unique()
    persons = pd.concat([events["person_id"], orders["person_id"]]).unique()
    group_of = {person: number % 3 for number, person in enumerate(persons)}
    parts = [
        build_features(
            events[events["person_id"].map(group_of) == group],
            orders[orders["person_id"].map(group_of).eq(group)],
            CUTOFF,
            horizon_days=30,
            event_types=types,
        )
        for group in range(3)
    ]
    assert "add_to_wishlist_90d" in whole.features.columns
    grouped = PropensityFeatures.concat(parts)
    pd.testing.assert_frame_equal(grouped.features, whole.features)
    pd.testing.assert_series_equal(grouped.labels, whole.labels)
    sample = whole.sample(100, seed=1)
    assert len(sample.labels) == 100 and sample.labels.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(sample.features, whole.features.loc[sample.labels.index])
    assert whole.sample(1000) is whole


def test_models_rank_planted_buyers_and_explain_themselves():
    events, orders = _planted_activity()
    data = build_features(events, orders, CUTOFF, horizon_days=30)
    result = fit_propensity(data.features, data.labels, seed=0)

    table = result.metrics.pivot(index="model", columns="metric", values="value")
    assert set(table.index) == set(MODELS)
    # Measured with seed 0: AUC 0.87 (boosting), 0.89 (logistic), 0.89 (tree); lift ~4x.
    assert (table["auc"] > 0.8).all(), table
    assert (table["lift_top_decile"] > 2.5).all(), table
    assert table.loc[result.best_model, "auc"] == table["auc"].max()

    holdout = round(len(data.labels) * 0.25)
    for model, bins in result.calibration.groupby("model"):
        assert len(bins) == 10 and bins["persons"].sum() == holdout, model
        assert bins["observed_rate"].iloc[-1] > 3 * bins["observed_rate"].iloc[:5].mean(), model

    assert result.models["decision_tree"].get_depth() <= 3
    assert "|--- " in result.tree_rules
    assert any(name in result.tree_rules for name in result.feature_names)

    scores = result.score(data.features)
    assert scores.index.equals(data.features.index)
    assert scores.between(0, 1).all()
    top = scores >= scores.quantile(0.9)
    assert data.labels[top].mean() > 3 * data.labels.mean()

    again = fit_propensity(data.features, data.labels, seed=0)
    pd.testing.assert_frame_equal(again.metrics, result.metrics)


def test_expected_calibration_error_of_a_hand_built_example():
    predicted = [0.05, 0.05, 0.15, 0.15, 0.95, 0.95, 0.95, 1.0]
    truth = [0, 0, 1, 0, 1, 1, 1, 0]
    # Bins [0, 0.1): says 5%, 0 of 2 buy; [0.1, 0.2): 15%, 1 of 2; [0.9, 1]: 96.25%, 3 of 4.
    expected = 2 / 8 * 0.05 + 2 / 8 * 0.35 + 4 / 8 * (0.9625 - 0.75)
    assert expected_calibration_error(truth, predicted) == pytest.approx(expected)
    assert expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0
    assert expected_calibration_error([1, 1], [0.5, 0.5]) == pytest.approx(0.5)
    # Two bins instead of ten: [0, 0.5) and [0.5, 1].
    two = 4 / 8 * abs(0.1 - 0.25) + 4 / 8 * (0.9625 - 0.75)
    assert expected_calibration_error(truth, predicted, bins=2) == pytest.approx(two)


def _stepped(persons: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A buying chance that jumps (2% -> 42% -> 62%) with one feature: a logistic regression,
    whose logit is a straight line, promises too much at the top and too little past the step."""
    rng = np.random.default_rng(seed)
    features = pd.DataFrame(rng.normal(size=(persons, 3)), columns=["signal", "noise1", "noise2"])
    chance = 0.02 + 0.4 * (features["signal"] > 0) + 0.2 * (features["signal"] > 1.5)
    labels = (rng.uniform(size=persons) < chance).to_numpy().astype(int)
    return features, labels, chance.to_numpy()


def test_calibrated_probabilities_mean_what_they_say():
    features, labels, _ = _stepped(6000, seed=0)
    calibrated = fit_propensity(features, labels, seed=0)
    raw = fit_propensity(features, labels, seed=0, calibrate="none")
    assert calibrated.calibration_method == "isotonic" and raw.calibration_method == "none"
    table = calibrated.metrics.pivot(index="model", columns="metric", values="value")
    # Measured (seed 0): ECE 0.055 -> 0.033 (logistic), 0.058 -> 0.023 (boosting), tree 0.012.
    assert table.loc["logistic_regression", "ece_uncalibrated"] > 0.05, "planted miscalibration"
    assert (table["ece"] < 0.04).all(), table
    miscalibrated = table["ece_uncalibrated"] > 0.04
    assert miscalibrated.sum() >= 1
    assert (table.loc[miscalibrated, "ece"] < table.loc[miscalibrated, "ece_uncalibrated"]).all()
    assert (table["brier"] <= table["brier_uncalibrated"] + 0.002).all(), table
    # The uncalibrated fit reports the raw models' own numbers.
    plain = raw.metrics.pivot(index="model", columns="metric", values="value")
    pd.testing.assert_series_equal(plain["ece"], plain["ece_uncalibrated"], check_names=False)
    pd.testing.assert_series_equal(
        plain["ece_uncalibrated"], table["ece_uncalibrated"], check_names=False
    )

    # On 20,000 new persons (little sampling noise): measured ECE 0.064 -> 0.026 (logistic).
    fresh, fresh_labels, chance = _stepped(20_000, seed=1)
    for model in MODELS:
        after = expected_calibration_error(fresh_labels, calibrated.predict(model, fresh))
        before = expected_calibration_error(fresh_labels, raw.predict(model, fresh))
        assert after < 0.03 and after <= before + 0.005, (model, after, before)
    before, after = (
        expected_calibration_error(fresh_labels, fit.predict("logistic_regression", fresh))
        for fit in (raw, calibrated)
    )
    assert after < before - 0.02, (before, after)
    scores = calibrated.score(fresh).to_numpy()
    assert abs(scores.mean() - chance.mean()) < 0.01
    assert scores[chance > 0.6].mean() == pytest.approx(0.62, abs=0.05)
    assert scores[chance < 0.1].mean() == pytest.approx(0.02, abs=0.03)


def test_small_training_sets_are_calibrated_with_platt_scaling():
    features, labels, _ = _stepped(600, seed=2)
    result = fit_propensity(features, labels, seed=0)
    assert result.calibration_method == "sigmoid"
    assert result.score(features).between(0, 1).all()
    with pytest.raises(ValueError, match="calibrate"):
        fit_propensity(features, labels, calibrate="beta")


def test_training_windows_need_a_stated_history():
    start = pd.Timestamp("2026-03-01")
    cutoff, horizon = training_windows(start, start + 60 * DAY)
    assert (cutoff, horizon) == (start + 46 * DAY, 14)
    # A third of a short history labels, two thirds stay features.
    assert training_windows(start, start + 21 * DAY) == (start + 14 * DAY, 7)
    assert training_windows(start, start + 14 * DAY)[1] == 4
    with pytest.raises(ModelFitError, match=r"^not enough history: 10\.0 days .* at least 14"):
        training_windows(start, start + 10 * DAY)
    with pytest.raises(ModelFitError, match="not enough history"):
        training_windows(start, start + 60 * DAY, min_history_days=90)


def test_shuffled_labels_score_near_chance():
    events, orders = _planted_activity(persons=1500)
    data = build_features(events, orders, CUTOFF, horizon_days=30)
    shuffled = np.random.default_rng(5).permutation(data.labels.to_numpy())
    result = fit_propensity(data.features, shuffled, seed=0)
    auc = result.metrics.loc[result.metrics["metric"] == "auc", "value"]
    assert auc.between(0.35, 0.65).all(), result.metrics


def test_scoring_treats_absent_count_columns_as_zero():
    events, orders = _planted_activity(persons=800)
    data = build_features(events, orders, CUTOFF, horizon_days=30)
    result = fit_propensity(data.features, data.labels, seed=0)
    carts = [column for column in data.features if column.startswith("add_to_cart_")]
    pd.testing.assert_series_equal(
        result.score(data.features.drop(columns=carts)),
        result.score(data.features.assign(**{column: 0.0 for column in carts})),
    )


def test_missing_or_wrong_inputs_are_clear_errors():
    events, orders = _planted_activity(persons=200)
    with pytest.raises(ValueError, match="occurred_at"):
        build_features(events.drop(columns="occurred_at"), orders, CUTOFF, 30)
    with pytest.raises(ValueError, match="revenue"):
        build_features(events, orders.drop(columns="revenue"), CUTOFF, 30)
    data = build_features(events, orders, CUTOFF, 30)
    with pytest.raises(ValueError, match="positive and 10 negative"):
        fit_propensity(data.features, np.zeros(len(data.features)), seed=0)
    frame = pd.DataFrame({"age": range(100), "y": ["yes", "no"] * 50})
    with pytest.raises(ValueError, match="duration"):
        fit_propensity_table(frame, "y", drop=["duration"])
    with pytest.raises(ValueError, match="maybe"):
        fit_propensity_table(frame.assign(y=["yes", "maybe"] * 50), "y")


def test_encoding_one_hots_text_and_keeps_numbers():
    frame = pd.DataFrame({"age": [30, 40], "job": ["admin.", "retired"], "vip": [True, False]})
    encoded = encode_table(frame)
    assert list(encoded.columns) == ["age", "vip", "job=admin.", "job=retired"]
    assert encoded.loc[1].tolist() == [40.0, 0.0, 0.0, 1.0]


def _bank_marketing() -> pd.DataFrame:
    path = REAL_DATA / "bank_marketing_uci" / "bank-additional-full.csv.gz"
    if not path.exists():
        pytest.skip(f"real dataset not found: {path}")
    return pd.read_csv(path, sep=";")


def test_bank_marketing_duration_leaks_and_the_honest_auc_matches_the_paper():
    bank = _bank_marketing()
    leaky = fit_propensity_table(bank, "y", seed=42)
    honest = fit_propensity_table(bank, "y", drop=["duration"], seed=42)
    leaky_auc = leaky.metrics.query("metric == 'auc'").set_index("model")["value"]
    honest_auc = honest.metrics.query("metric == 'auc'").set_index("model")["value"]
    print(f"bank-additional AUC with duration:\n{leaky_auc}\nwithout duration:\n{honest_auc}")
    # Measured (seed 42): with duration 0.953 boosting / 0.942 logistic; without 0.814 / 0.805;
    # seeds 0, 1, 7 give 0.800-0.804 without. Moro et al. (2014) report ~0.80 leak-free.
    assert leaky_auc.max() > 0.92
    assert leaky_auc.max() - honest_auc.max() > 0.10, "duration should look far too good"
    assert 0.77 < honest_auc.max() < 0.85
    assert honest.best_model == "gradient_boosting"
    assert "duration" not in honest.feature_names and "duration" in leaky.feature_names


def test_online_shoppers_purchase_intent_despite_class_imbalance():
    path = REAL_DATA / "online_shoppers_intention" / "online_shoppers_intention.csv.gz"
    if not path.exists():
        pytest.skip(f"real dataset not found: {path}")
    sessions = pd.read_csv(path)
    result = fit_propensity_table(sessions, "Revenue", seed=42)
    table = result.metrics.pivot(index="model", columns="metric", values="value")
    print(f"online shoppers (15.5% buy):\n{table.to_string()}")
    # Measured (seed 42): boosting AUC 0.928, PR-AUC 0.72, lift 5.0; logistic AUC 0.886.
    # Seeds 0, 1, 7: boosting AUC 0.925-0.937.
    assert table.loc[result.best_model, "auc"] > 0.90
    assert table.loc[result.best_model, "pr_auc"] > 0.6, "PR-AUC should far exceed the 0.155 base"
    assert abs(result.base_rate - 0.155) < 0.01, "the holdout must keep the imbalance (stratified)"
