"""Budget optimisation: CBC's optimum equals brute-force enumeration on small random
instances, every rule holds, curves are recovered from history, and bad input fails clearly."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from ml.optimise import (
    ALLOCATION_COLUMNS,
    BudgetRules,
    InfeasibleBudgetError,
    expected_conversions,
    fit_response_curves,
    optimise_budget,
)

EXACT = 100  # more pieces than any pair has units: the chords are exact at whole units


def _instance(seed: int, segments: int = 2, channels: int = 2) -> tuple[pd.DataFrame, BudgetRules]:
    """Random curves and rules that bind: caps, minimums, set-up costs, contact limits."""
    rng = np.random.default_rng(seed)
    names = [f"ch{c}" for c in range(channels)]
    pairs = pd.DataFrame(
        list(itertools.product(range(1, segments + 1), names)), columns=["segment_id", "channel"]
    )
    curves = pairs.assign(
        max_conversions=rng.uniform(2, 12, len(pairs)),
        saturation_spend=rng.uniform(10, 60, len(pairs)),
        revenue_per_conversion=rng.uniform(5, 20, len(pairs)),
    )
    unit = 10.0
    budget = unit * rng.integers(4, 8)
    rules = BudgetRules(
        budget=budget + rng.uniform(0, unit - 1),  # not a whole number of units
        unit=unit,
        channel_min={names[0]: unit * rng.integers(1, 4)},
        channel_max={names[-1]: unit * rng.integers(2, 6)},
        segment_max_contacts={1: float(rng.integers(10, 40))},
        cost_per_contact={name: float(rng.choice([0.5, 1.0, 2.0])) for name in names},
        setup_cost={name: float(rng.uniform(0, 30)) for name in names},
        min_pair_spend={names[-1]: unit * rng.integers(2, 4)},
    )
    return curves, rules


def _brute_force(curves: pd.DataFrame, rules: BudgetRules, budget: float) -> float:
    """Best profit over every whole-unit allocation that meets every rule."""
    unit = rules.unit
    most = math.floor(budget / unit + 1e-9)
    grid = np.array(list(itertools.product(range(most + 1), repeat=len(curves))), dtype=float)
    spend = grid * unit
    channel, segment = curves["channel"].to_numpy(), curves["segment_id"].to_numpy()
    ok = spend.sum(axis=1) <= budget + 1e-9
    for name, low in rules.channel_min.items():
        ok &= spend[:, channel == name].sum(axis=1) >= low - 1e-9
    for name, high in rules.channel_max.items():
        ok &= spend[:, channel == name].sum(axis=1) <= high + 1e-9
    cost = np.array([rules.cost_per_contact[name] for name in channel])
    for name, contacts in rules.segment_max_contacts.items():
        ok &= (spend[:, segment == name] / cost[segment == name]).sum(axis=1) <= contacts + 1e-9
    minimum = np.array([rules.min_pair_spend.get(name, 0.0) for name in channel])
    ok &= ((spend == 0) | (spend >= minimum - 1e-9)).all(axis=1)
    value = (curves["max_conversions"] * curves["revenue_per_conversion"]).to_numpy()
    revenue = value * -np.expm1(-spend / curves["saturation_spend"].to_numpy())
    setup = np.array([rules.setup_cost.get(name, 0.0) for name in channel]) * (spend > 0)
    profit = (revenue - spend - setup).sum(axis=1)
    assert ok.any(), "the instance generator made an infeasible instance"
    return float(profit[ok].max())


@pytest.mark.parametrize("seed", range(8))
def test_optimum_equals_brute_force(seed):
    curves, rules = _instance(seed)
    result = optimise_budget(curves, rules, pieces=EXACT)
    assert result.proven_optimal and result.status == "optimal"
    assert result.objective == pytest.approx(_brute_force(curves, rules, rules.budget), abs=1e-6)
    assert result.expected_profit == pytest.approx(result.objective, abs=1e-6)
    more = _brute_force(curves, rules, rules.budget + rules.unit)
    assert result.marginal_value == pytest.approx(more - result.objective, abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_optimum_equals_brute_force_on_three_segments(seed):
    curves, rules = _instance(100 + seed, segments=3)
    result = optimise_budget(curves, rules, pieces=EXACT, marginal=False)
    assert result.objective == pytest.approx(_brute_force(curves, rules, rules.budget), abs=1e-6)
    assert math.isnan(result.marginal_value)


@pytest.mark.parametrize("seed", range(4))
def test_coarse_pieces_undervalue_but_stay_close(seed):
    curves, rules = _instance(seed)
    best = _brute_force(curves, rules, rules.budget)
    result = optimise_budget(curves, rules, pieces=2, marginal=False)
    # Chords lie under a concave curve: the model's profit is a lower bound of the real one.
    assert result.objective <= result.expected_profit + 1e-6
    assert result.expected_profit <= best + 1e-6
    assert result.expected_profit >= best - 0.1 * abs(best) - 10


def test_every_rule_holds_on_a_larger_instance():
    rng = np.random.default_rng(5)
    segments, channels = range(1, 21), ["email", "search", "social", "display"]
    curves = pd.DataFrame(
        list(itertools.product(segments, channels)), columns=["segment_id", "channel"]
    ).assign(
        max_conversions=rng.uniform(20, 200, 80),
        saturation_spend=rng.uniform(500, 5000, 80),
        revenue_per_conversion=rng.uniform(20, 80, 80),
    )
    rules = BudgetRules(
        budget=60_000,
        unit=250,
        channel_min={"email": 8_000, "display": 3_000},
        channel_max={"search": 20_000, "social": 9_000},
        segment_max_spend={s: 4_000 for s in segments[::2]},
        segment_max_contacts={s: 3_000 for s in segments[1::2]},
        cost_per_contact={"email": 0.5, "search": 2.0, "social": 1.0, "display": 0.8},
        setup_cost={"display": 400.0, "social": 150.0},
        min_pair_spend={"display": 1_000, "search": 500},
    )
    result = optimise_budget(curves, rules, pieces=6)
    assert result.proven_optimal
    out = result.allocation
    assert list(out.columns) == list(ALLOCATION_COLUMNS)
    assert len(out) == 80 and out[["segment_id", "channel"]].value_counts().max() == 1
    assert np.allclose(out["spend"] / rules.unit, np.round(out["spend"] / rules.unit))
    assert out["spend"].sum() <= rules.budget
    by_channel = out.groupby("channel")["spend"].sum()
    assert by_channel["email"] >= 8_000 and by_channel["display"] >= 3_000
    assert by_channel["search"] <= 20_000 and by_channel["social"] <= 9_000
    by_segment = out.groupby("segment_id")["spend"].sum()
    assert (by_segment[list(segments[::2])] <= 4_000).all()
    contacts = (
        (out["spend"] / out["channel"].map(rules.cost_per_contact)).groupby(out["segment_id"]).sum()
    )
    assert (contacts[list(segments[1::2])] <= 3_000 + 1e-6).all()
    used = out[out["spend"] > 0]
    assert (used["spend"] >= used["channel"].map(rules.min_pair_spend).fillna(0)).all()
    assert result.expected_profit >= result.objective - 1e-6
    # Rows come sorted by segment and channel; value the spend on the matching curves.
    matched = out.merge(curves, on=["segment_id", "channel"], validate="one_to_one")
    assert out["expected_conversions"].to_numpy() == pytest.approx(
        expected_conversions(matched, matched["spend"].to_numpy())
    )
    assert result.marginal_value >= -1e-6  # a larger budget never hurts
    # An on/off switch only where a pair has a set-up cost or a minimum (display, social,
    # search) and can pay back at all.
    assert 0 < result.problem_size["binary_variables"] <= 60


def test_fit_recovers_planted_curves():
    rng = np.random.default_rng(3)
    planted = pd.DataFrame(
        {
            "segment_id": [1, 1, 2, 2],
            "channel": ["email", "search", "email", "search"],
            "height": [120.0, 300.0, 80.0, 50.0],
            "scale": [400.0, 2500.0, 900.0, 150.0],
            "value": [30.0, 55.0, 42.0, 18.0],
        }
    )
    history = planted.loc[planted.index.repeat(40)].reset_index(drop=True)
    history["spend"] = rng.uniform(0, 3, len(history)) * history["scale"]
    mean = history["height"] * -np.expm1(-history["spend"] / history["scale"])
    history["conversions"] = mean * rng.normal(1, 0.03, len(history))
    history["revenue"] = history["conversions"] * history["value"]
    curves = fit_response_curves(history.drop(columns=["height", "scale", "value"]))
    assert curves[["segment_id", "channel"]].equals(planted[["segment_id", "channel"]])
    assert curves["max_conversions"].to_numpy() == pytest.approx(planted["height"], rel=0.1)
    assert curves["saturation_spend"].to_numpy() == pytest.approx(planted["scale"], rel=0.15)
    assert curves["revenue_per_conversion"].to_numpy() == pytest.approx(planted["value"])
    assert (curves["r_squared"] > 0.95).all() and (curves["observations"] == 40).all()


def _valid() -> tuple[pd.DataFrame, BudgetRules]:
    return _instance(0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budget": -5.0}, "budget must be a non-negative number"),
        ({"budget": float("nan")}, "budget must be a non-negative number"),
        ({"unit": 0.0}, "unit must be a positive number"),
        ({"channel_min": {"ch0": 50.0}, "channel_max": {"ch0": 20.0}}, r"channel_min\['ch0'\]"),
        ({"channel_min": {"ch0": 30.0, "ch1": 40.0}, "budget": 60.0}, "channel_min adds up to 70"),
        ({"channel_max": {"tv": 10.0}}, "channel_max names an unknown channel 'tv'"),
        ({"segment_max_spend": {9: 10.0}}, "segment_max_spend names an unknown segment 9"),
        ({"setup_cost": -1.0}, "setup_cost must be a non-negative number"),
        ({"cost_per_contact": {"ch0": 1.0}}, "needs cost_per_contact .* 'ch1'"),
    ],
)
def test_inconsistent_rules_are_a_clear_error(change, message):
    curves, rules = _valid()
    settings = {**rules.__dict__, **change}
    with pytest.raises(ValueError, match=message):
        optimise_budget(curves, BudgetRules(**settings))


def test_bad_curves_are_a_clear_error():
    curves, rules = _valid()
    broken = curves.assign(saturation_spend=curves["saturation_spend"].where(curves.index != 2))
    with pytest.raises(ValueError, match="'saturation_spend' .* segment 2 x channel 'ch0' has nan"):
        optimise_budget(broken, rules)
    with pytest.raises(ValueError, match="lack the column.*revenue_per_conversion"):
        optimise_budget(curves.drop(columns="revenue_per_conversion"), rules)
    with pytest.raises(ValueError, match="segment 1 x channel 'ch0' twice"):
        optimise_budget(pd.concat([curves, curves.iloc[:1]]), rules)


def test_rules_no_allocation_can_meet_are_a_clear_error():
    curves, _ = _valid()
    too_much = BudgetRules(
        budget=100.0, unit=10.0, channel_min={"ch1": 30.0}, segment_max_spend={1: 10.0, 2: 10.0}
    )
    with pytest.raises(InfeasibleBudgetError, match=r"channel_min\['ch1'\] needs 3 units"):
        optimise_budget(curves, too_much)
    # Each channel minimum fits on its own, both together do not: only the solver can tell.
    together = BudgetRules(
        budget=100.0,
        unit=10.0,
        channel_min={"ch0": 30.0, "ch1": 30.0},
        segment_max_spend={1: 20.0, 2: 20.0},
    )
    with pytest.raises(InfeasibleBudgetError, match="no allocation meets all the rules"):
        optimise_budget(curves, together)


def test_nothing_is_spent_when_nothing_pays_back():
    curves, _ = _valid()
    result = optimise_budget(curves.assign(revenue_per_conversion=0.01), BudgetRules(budget=500))
    assert result.proven_optimal and result.objective == 0.0
    assert result.allocation["spend"].eq(0).all() and len(result.allocation) == len(curves)
    assert result.marginal_value == 0.0 and result.problem_size["pairs_in_model"] == 0


def test_thin_or_bad_history_is_a_clear_error():
    history = pd.DataFrame(
        {
            "segment_id": [1, 1, 1, 2, 2],
            "channel": ["email"] * 5,
            "spend": [100.0, 200.0, 300.0, 100.0, 100.0],
            "conversions": [3.0, 5.0, 6.0, 2.0, 2.0],
            "revenue": [30.0, 50.0, 60.0, 20.0, 20.0],
        }
    )
    with pytest.raises(ValueError, match=r"fewer than two distinct positive spend.*\(2, 'email'\)"):
        fit_response_curves(history)
    with pytest.raises(ValueError, match="'spend' must be a non-negative number; row 1"):
        fit_response_curves(history.assign(spend=[1.0, -2.0, 3.0, 4.0, 5.0]))
