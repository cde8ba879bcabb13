"""Segmentation recovers planted shopper types, keeps ids stable, and names segments readably.

The planted data has the structure of marts.person_behaviour and marts.person_interests on
generated data: each type has its own category mix (persons scatter around it), price tier
taste, visit rate and depth, app use and appetite for discounts; one type shops everything a
little and rarely, another hunts budget brands across broad categories (the pair that is hard
to tell apart). Some persons are known only from orders (no sessions), a few from nothing.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from ml.frames import ModelFitError
from ml.segmentation import (
    BEHAVIOUR_COLUMNS,
    MIN_SEGMENT_PROBABILITY,
    NO_ACTIVITY_ID,
    NO_ORDERS_NAME,
    STABILITY_RESAMPLES,
    segment_persons,
)

CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "books", "toys", "grocery")


@dataclass(frozen=True)
class Planted:
    categories: dict[str, float]  # the other categories share what is left evenly
    tiers: tuple[float, float, float]  # budget, mid, premium
    sessions: float  # mean over the period
    depth: float  # events per session
    app: tuple[float, float]  # chance of using the app, share of sessions in it
    discount: float  # share of order lines on discount
    price: float  # mean order line value


TYPES = {
    "tech": Planted(
        {"electronics": 0.6, "books": 0.15}, (0.1, 0.35, 0.55), 10, 7, (0.8, 0.6), 0.1, 180
    ),
    "fashion": Planted(
        {"fashion": 0.5, "beauty": 0.3}, (0.15, 0.45, 0.4), 9, 7.5, (0.6, 0.5), 0.25, 70
    ),
    "home": Planted(
        {"home": 0.45, "grocery": 0.25}, (0.3, 0.55, 0.15), 7, 5.5, (0.5, 0.35), 0.3, 60
    ),
    "bargain": Planted(
        {"grocery": 0.26, "home": 0.16, "toys": 0.16, "fashion": 0.12, "beauty": 0.1},
        (0.75, 0.22, 0.03),
        11,
        6.5,
        (0.5, 0.35),
        0.55,
        35,
    ),
    "casual": Planted({}, (0.35, 0.5, 0.15), 3.5, 3, (0.3, 0.3), 0.15, 40),
}


def _mix(planted: Planted) -> np.ndarray:
    weights = np.array([planted.categories.get(c, 0.0) for c in CATEGORIES])
    weights = np.where(weights > 0, weights, max(1.0 - weights.sum(), 0.0) / (weights == 0).sum())
    return weights / weights.sum()


def _planted(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """behaviour, interests and the planted type of each person."""
    rng = np.random.default_rng(seed)
    names = list(TYPES)
    kind = rng.choice(len(names), n)
    p = {
        field: np.array([getattr(TYPES[t], field) for t in names])[kind]
        for field in ("sessions", "depth", "discount", "price")
    }
    orders_only = rng.random(n) < 0.06
    nothing = rng.random(n) < 0.02
    sessions = np.maximum(rng.poisson(p["sessions"] * rng.lognormal(-0.1, 0.45, n)), 1)
    sessions[orders_only | nothing] = 0
    events = sessions + rng.poisson(sessions * (p["depth"] - 1))
    app = np.array([TYPES[t].app for t in names])[kind]
    uses_app = rng.random(n) < app[:, 0]
    app_sessions = np.where(uses_app, rng.binomial(sessions, app[:, 1]), 0)
    orders = rng.binomial(sessions, 0.1) + np.where(orders_only, 1 + rng.poisson(1.5, n), 0)
    order_lines = orders + rng.poisson(orders * 1.2)
    discounted = rng.binomial(order_lines, p["discount"])
    tiers = np.array([TYPES[t].tiers for t in names])[kind]
    interactions = rng.binomial(events, 0.45) + order_lines
    tier_counts = np.array([rng.multinomial(m, t) for m, t in zip(interactions, tiers)])
    # Each person has their own mix around the type's (Dirichlet, concentration 25).
    mixes = np.array([rng.dirichlet(25 * _mix(TYPES[names[k]])) for k in kind])
    category_counts = np.array([rng.multinomial(m, mix) for m, mix in zip(interactions, mixes)])

    person_ids = np.array([f"p{i:05d}" for i in range(n)])
    behaviour = pd.DataFrame(
        {
            "person_id": person_ids,
            "sessions": sessions,
            "app_sessions": app_sessions,
            "events": events,
            "budget_tier_interactions": tier_counts[:, 0],
            "mid_tier_interactions": tier_counts[:, 1],
            "premium_tier_interactions": tier_counts[:, 2],
            "social_engagements": rng.poisson(2, n) * (~nothing),
            "orders": orders,
            "store_orders": rng.binomial(orders, 0.3),
            "order_lines": order_lines,
            "discounted_order_lines": discounted,
            "revenue": order_lines * p["price"] * rng.lognormal(0, 0.3, n),
        }
    )
    person, category = np.nonzero(category_counts)
    interests = pd.DataFrame(
        {
            "person_id": person_ids[person],
            "category": np.array(CATEGORIES)[category],
            "weighted_activities": category_counts[person, category],
        }
    )
    return behaviour, interests, np.array(names)[kind]


def _orders_of(behaviour: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Completed orders as the asset reads them: each of a person's orders on a random day."""
    rng = np.random.default_rng(seed)
    person = np.repeat(behaviour["person_id"].to_numpy(), behaviour["orders"].to_numpy())
    return pd.DataFrame(
        {
            "person_id": person,
            "ordered_at": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.random(len(person)) * 60, "D"),
            "revenue": rng.gamma(2.0, 30.0, len(person)),
        }
    )


@pytest.fixture(scope="module")
def planted():
    behaviour, interests, kind = _planted()
    # With orders at hand, data with browsing still gets the behavioural latent classes.
    orders = _orders_of(behaviour)
    return behaviour, interests, kind, segment_persons(behaviour, interests, orders)


def _segment_of(result, kind: np.ndarray, planted_type: str) -> int:
    segments = result.assignments["segment_id"].to_numpy()
    return int(pd.Series(segments[kind == planted_type]).mode()[0])


def test_recovers_the_planted_types_with_k_chosen_by_icl(planted):
    _, _, kind, result = planted
    assert result.method == "latent classes"
    assert result.k == len(TYPES)
    assert result.selection.loc[result.selection["icl"].idxmin(), "k"] == len(TYPES)
    active = result.assignments["segment_id"] != NO_ACTIVITY_ID
    assert adjusted_rand_score(kind[active], result.assignments.loc[active, "segment_id"]) > 0.9
    # The hard pair: broad budget hunters vs. rare browsers of everything.
    assert _segment_of(result, kind, "bargain") != _segment_of(result, kind, "casual")


def test_persons_known_only_from_orders_are_placed_by_what_they_bought(planted):
    # Their missing sessions must not read as "never visits", which would make them casual.
    behaviour, _, kind, result = planted
    orders_only = (behaviour["sessions"] == 0) & (behaviour["orders"] > 0)
    placed = result.assignments.loc[orders_only, "segment_id"].to_numpy()
    expected = [_segment_of(result, kind, planted_type) for planted_type in kind[orders_only]]
    assert orders_only.sum() > 50
    given = placed != NO_ACTIVITY_ID  # the rest: too few orders to tell (segment zero)
    assert given.mean() > 0.6
    assert (placed[given] == np.array(expected)[given]).mean() > 0.75


def test_persons_without_activity_or_a_likely_segment_form_segment_zero(planted):
    behaviour, _, _, result = planted
    nothing = (behaviour[["sessions", "orders", "social_engagements"]].sum(axis=1) == 0).to_numpy()
    segments = result.assignments["segment_id"].to_numpy()
    probability = result.assignments["probability"].to_numpy()
    unsure = ~nothing & (segments == NO_ACTIVITY_ID)
    assert nothing.sum() > 0 and unsure.sum() > 0
    assert (segments[nothing] == NO_ACTIVITY_ID).all()
    assert (probability[unsure] < MIN_SEGMENT_PROBABILITY).all()
    assert (probability[segments != NO_ACTIVITY_ID] >= MIN_SEGMENT_PROBABILITY).all()
    # The unsure are the ones with little to go on, not a random share.
    sessions = behaviour["sessions"].to_numpy()
    assert sessions[unsure].mean() < 0.7 * sessions[segments != NO_ACTIVITY_ID].mean()
    zero = result.summary.set_index("segment_id").loc[NO_ACTIVITY_ID]
    assert zero["persons"] == nothing.sum() + unsure.sum()
    assert zero["segment_name"] == "Not enough activity yet"


def test_every_active_person_gets_a_segment_without_a_probability_floor(planted):
    behaviour, interests, _, _ = planted
    result = segment_persons(behaviour, interests, resamples=0, min_probability=0.0)
    nothing = (behaviour[["sessions", "orders", "social_engagements"]].sum(axis=1) == 0).to_numpy()
    assert (result.assignments["segment_id"].to_numpy()[~nothing] != NO_ACTIVITY_ID).all()


def test_a_model_refined_on_a_sample_still_assigns_and_recovers_everyone(planted):
    behaviour, interests, kind, whole = planted
    active = (whole.assignments["segment_id"] != NO_ACTIVITY_ID).to_numpy()
    sampled = segment_persons(
        behaviour, interests, resamples=0, min_probability=0.0, fit_size=active.sum() // 3
    )
    assert sampled.k == whole.k and len(sampled.assignments) == len(whole.assignments)
    segments = sampled.assignments["segment_id"].to_numpy()
    assert adjusted_rand_score(kind[active], segments[active]) > 0.9


def test_ids_run_from_the_most_valuable_segment(planted):
    _, _, kind, result = planted
    assert _segment_of(result, kind, "tech") == 1
    behavioural = result.summary[result.summary["segment_id"] != NO_ACTIVITY_ID]
    assert behavioural["segment_id"].tolist() == list(range(1, result.k + 1))
    assert behavioural["revenue_per_person"].is_monotonic_decreasing


def test_names_say_what_sets_each_segment_apart(planted):
    _, _, kind, result = planted
    names = result.summary.set_index("segment_id")["segment_name"]
    name_of = {t: names[_segment_of(result, kind, t)] for t in TYPES}
    assert "electronics" in name_of["tech"].lower() and "premium" in name_of["tech"].lower()
    assert "fashion & beauty" in name_of["fashion"].lower()
    assert "home" in name_of["home"].lower()
    assert "budget" in name_of["bargain"].lower()
    assert name_of["casual"] == "Occasional browsers"
    assert names.is_unique
    assert all(name[0].isupper() for name in names)


def test_summary_describes_each_segment(planted):
    _, _, _, result = planted
    summary = result.summary
    assert summary["persons"].sum() == len(result.assignments)
    assert summary["person_share"].sum() == pytest.approx(1.0)
    tech = summary.iloc[0]
    assert tech["premium_share"] > 0.45 and tech["top_categories"].startswith("electronics")
    assert tech[["budget_share", "mid_share", "premium_share"]].sum() == pytest.approx(1.0)


def test_same_input_in_any_row_order_gives_the_same_segments(planted):
    behaviour, interests, _, result = planted
    again = segment_persons(
        behaviour.sample(frac=1.0, random_state=3), interests.sample(frac=1.0, random_state=4)
    )
    pd.testing.assert_frame_equal(result.assignments, again.assignments)
    pd.testing.assert_frame_equal(result.summary, again.summary)


def test_missing_column_is_a_clear_error():
    behaviour, interests, _ = _planted(n=50)
    with pytest.raises(ValueError, match="behaviour lacks .*discounted_order_lines"):
        segment_persons(behaviour.drop(columns="discounted_order_lines"), interests)
    with pytest.raises(ValueError, match="interests lacks .*weighted_activities"):
        segment_persons(behaviour, interests.drop(columns="weighted_activities"))
    with pytest.raises(ValueError, match="more than one row for person_id 'p00000'"):
        segment_persons(pd.concat([behaviour, behaviour.head(1)]), interests)
    assert set(BEHAVIOUR_COLUMNS) <= set(behaviour.columns)


def test_bootstrap_stability_is_measured_and_recorded(planted):
    _, _, _, result = planted
    assert len(result.stability) == STABILITY_RESAMPLES
    assert min(result.stability) > 0.85  # well-separated planted types: refits agree
    figures = result.evaluation().set_index("metric")["value"]
    assert (result.evaluation()["model"] == "latent classes").all()
    assert figures["bootstrap_stability_ari"] == pytest.approx(np.mean(result.stability))
    assert figures["k"] == result.k


def test_categories_known_only_by_id_never_name_a_segment(planted):
    behaviour, interests, _, _ = planted
    ids = {category: str(4_756_105 + 17 * i) for i, category in enumerate(CATEGORIES)}
    result = segment_persons(behaviour, interests.assign(category=interests["category"].map(ids)))
    names = result.summary["segment_name"]
    assert not any(category_id in name for name in names for category_id in ids.values())
    # Traits name them instead: the premium tech fans, the budget hunters.
    tech_segment = result.summary.set_index("segment_id").loc[1, "segment_name"]
    assert "premium" in tech_segment.lower()
    assert any("budget" in name.lower() for name in names)


# Order-only customers over a year, as planted RFM groups: (count, first order days before
# the last day of data, last order days before it, orders, revenue per order).
RFM_PLANTED = {
    "New customers": (60, (0, 60), None, (1, 2), 40),
    "Lapsed customers": (120, (250, 365), (200, 365), (1, 3), 40),
    "At risk": (90, (200, 365), (100, 170), (2, 4), 40),
    "Loyal big spenders": (60, (200, 365), (0, 60), (8, 15), 120),
    "Loyal customers": (110, (200, 365), (0, 60), (2, 5), 25),
}


def _order_only(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """behaviour (orders, lines and revenue only, no sessions), no interests, the orders and
    the planted group of each person; 20 persons more have activity but no order."""
    rng = np.random.default_rng(seed)
    last_day = pd.Timestamp("2011-12-09")
    rows, groups = [], []
    for group, (count, first, last, orders, value) in RFM_PLANTED.items():
        for _ in range(count):
            person = f"c{len(groups):05d}"
            n = int(rng.integers(orders[0], orders[1] + 1))
            first_day = rng.uniform(*first)
            last_ago = rng.uniform(0, first_day) if last is None else rng.uniform(*last)
            last_ago = min(last_ago, first_day)
            days = np.concatenate(
                [[first_day, last_ago], rng.uniform(last_ago, first_day, max(n - 2, 0))]
            )
            for ago in days[:n]:
                rows.append((person, last_day - pd.Timedelta(days=ago), rng.gamma(4, value / 4)))
            groups.append(group)
    orders = pd.DataFrame(rows, columns=["person_id", "ordered_at", "revenue"])
    per_person = orders.groupby("person_id").agg(
        orders=("revenue", "size"), revenue=("revenue", "sum")
    )
    no_orders = [f"x{i:03d}" for i in range(20)]
    behaviour = pd.DataFrame(0, index=[*per_person.index, *no_orders], columns=BEHAVIOUR_COLUMNS)
    behaviour["revenue"] = 0.0
    behaviour.loc[per_person.index, ["orders", "revenue"]] = per_person[["orders", "revenue"]]
    behaviour["order_lines"] = behaviour["orders"] * 3
    behaviour.loc[no_orders, "social_engagements"] = 1
    behaviour = behaviour.rename_axis("person_id").reset_index()
    interests = pd.DataFrame(columns=["person_id", "category", "weighted_activities"])
    return behaviour, interests, orders, np.array(groups + [NO_ORDERS_NAME] * len(no_orders))


def test_order_only_data_gets_recency_frequency_value_groups():
    behaviour, interests, orders, planted_group = _order_only()
    result = segment_persons(behaviour, interests, orders)
    assert result.method == "recency, frequency, monetary"
    named = result.assignments["segment_name"].to_numpy()
    # Each planted group is found, under its marketer's name, for nearly all its persons.
    for group in [*RFM_PLANTED, NO_ORDERS_NAME]:
        assert (named[planted_group == group] == group).mean() > 0.85, group
    summary = result.summary.set_index("segment_name")
    assert summary.loc["Loyal big spenders", "segment_id"] == 1  # most revenue per person
    assert summary.loc[NO_ORDERS_NAME, "segment_id"] == NO_ACTIVITY_ID
    assert summary.loc["Lapsed customers", "days_since_last_order"] > 200
    assert summary.loc["New customers", "days_since_first_order"] < 90
    assert result.k == len(RFM_PLANTED)
    assert min(result.stability) > 0.8


def test_browsing_without_any_taste_gets_value_groups_and_window_shoppers():
    # Taobao's log: everyone has sessions, but categories are bare ids and there are no prices.
    behaviour, _, orders, planted_group = _order_only()
    behaviour = behaviour.assign(sessions=4, events=30)
    interests = pd.DataFrame(
        {"person_id": behaviour["person_id"], "category": "4756105", "weighted_activities": 30}
    )
    result = segment_persons(behaviour, interests, orders.assign(revenue=0.0))
    assert result.method == "recency, frequency, monetary"
    named = result.assignments["segment_name"].to_numpy()
    assert (named[planted_group == NO_ORDERS_NAME] == "Window shoppers").all()
    assert (named[planted_group == "Loyal big spenders"] == "Loyal frequent buyers").mean() > 0.85
    # Without revenue, the most orders per person come first.
    assert result.summary.set_index("segment_id").loc[1, "segment_name"] == "Loyal frequent buyers"
    assert NO_ACTIVITY_ID not in set(result.assignments["segment_id"])


def test_order_only_data_with_too_few_customers_is_a_model_fit_error():
    behaviour, interests, orders, _ = _order_only()
    few = orders[orders["person_id"].isin(orders["person_id"].unique()[:10])]
    with pytest.raises(ModelFitError, match="at least 20 persons with a completed order"):
        segment_persons(behaviour, interests, few)
