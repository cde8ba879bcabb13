"""Budget allocation: split a budget across segment x channel to maximise expected profit.

Two steps. `fit_response_curves` turns campaign history into one diminishing-returns curve
per segment x channel, conversions(spend) = max_conversions * (1 - exp(-spend /
saturation_spend)), with revenue = revenue_per_conversion * conversions. `optimise_budget`
approximates each curve by chords (piecewise linear, slopes decreasing, so a maximiser fills
the pieces in order and needs no binaries for them) and solves a mixed-integer programme with
CBC: whole spend units, channel minimums and maximums, per-segment spend and contact caps,
and an on/off switch per pair that carries a set-up cost and a minimum spend.

What keeps 10,000 pairs tractable (bench/optimise.py): spend past a curve's break-even
point is cut before the model is built (exact: see `_build`), so pairs that never pay back
drop out; the pieces then cover only the spend an allocation can reach; and a pair's on/off
switch bounds each of its chords, which keeps the LP relaxation tight enough for CBC to
close the gap.

Profit is revenue - spend - set-up costs. A MILP has no meaningful dual prices, so the
value of one more unit of budget is measured: the same programme re-solved with the budget
one unit higher, difference of the two optima.
"""

import math
import numbers
import time
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pulp

HISTORY_COLUMNS = ("segment_id", "channel", "spend", "conversions", "revenue")
CURVE_COLUMNS = (
    "segment_id",
    "channel",
    "max_conversions",
    "saturation_spend",
    "revenue_per_conversion",
)
ALLOCATION_COLUMNS = (
    "segment_id",
    "channel",
    "spend",
    "expected_conversions",
    "expected_revenue",
)


class InfeasibleBudgetError(ValueError):
    """The rules are consistent one by one, but no allocation meets them all together."""


@dataclass(frozen=True)
class BudgetRules:
    """What the allocation must respect. Money in the budget's currency; mappings are keyed
    by channel (or segment_id) and may leave channels (segments) out: no limit for them."""

    budget: float
    unit: float = 1.0  # every spend is a whole number of units
    channel_min: Mapping[str, float] = field(default_factory=dict)
    channel_max: Mapping[str, float] = field(default_factory=dict)
    segment_max_spend: Mapping[Hashable, float] = field(default_factory=dict)
    segment_max_contacts: Mapping[Hashable, float] = field(default_factory=dict)
    cost_per_contact: Mapping[str, float] = field(default_factory=dict)  # needed for contacts
    setup_cost: float | Mapping[str, float] = 0.0  # paid once per segment x channel used
    min_pair_spend: float | Mapping[str, float] = 0.0  # a pair used gets at least this


@dataclass
class BudgetAllocation:
    allocation: pd.DataFrame  # ALLOCATION_COLUMNS (ml.budget_allocation), one row per pair
    objective: float  # proven-optimal expected profit on the piecewise-linear curves
    expected_profit: float  # the same allocation valued on the fitted curves (>= objective)
    status: str  # "optimal", or "feasible (time limit)" when CBC ran out of time
    proven_optimal: bool
    marginal_value: float  # objective(budget + 1 unit) - objective; NaN if not computed/proven
    solve_seconds: float  # CBC, both solves, model building excluded
    problem_size: dict[str, int] = field(default_factory=dict)


def fit_response_curves(history: pd.DataFrame, grid_size: int = 60) -> pd.DataFrame:
    """One saturating curve per segment x channel from rows of (spend, conversions, revenue).

    For each saturation scale on a log grid, the best height is a closed-form least-squares
    fit; the scale with the smallest error wins. A grid search cannot fail to converge, which
    matters when thousands of pairs are fitted unattended. Needs at least two distinct
    positive spend levels per pair: with one, any saturation fits equally well.
    Returns CURVE_COLUMNS plus observations, max_spend_seen (the curve is an extrapolation
    beyond it) and r_squared.
    """
    missing = [column for column in HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise ValueError(f"history lacks the column(s): {', '.join(missing)}")
    if history.empty:
        raise ValueError("history is empty")
    for column in ("segment_id", "channel"):
        if history[column].isna().any():
            raise ValueError(
                f"history has a missing {column} in row {_first(history[column].isna())}"
            )
    values = {}
    for column in ("spend", "conversions", "revenue"):
        parsed = pd.to_numeric(history[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(parsed) | (parsed < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"history column {column!r} must be a non-negative number; row {row} has "
                f"{_show(history[column].iloc[row])}"
            )
        values[column] = parsed

    keys = history[["segment_id", "channel"]].reset_index(drop=True)
    grouped = keys.groupby(["segment_id", "channel"], sort=True)
    codes = grouped.ngroup().to_numpy()
    pairs = grouped.size().reset_index()[["segment_id", "channel"]]
    spend, conversions = values["spend"], values["conversions"]
    count = len(pairs)

    levels = (
        pd.DataFrame({"pair": codes, "spend": spend})[spend > 0]
        .groupby("pair")["spend"]
        .nunique()
        .reindex(range(count), fill_value=0)
    )
    thin = levels.to_numpy() < 2
    if thin.any():
        shown = ", ".join(
            f"({_show(row.segment_id)}, {_show(row.channel)})"
            for row in pairs[thin].head(5).itertuples()
        )
        raise ValueError(
            f"{int(thin.sum())} segment x channel pair(s) have fewer than two distinct positive "
            f"spend levels in history, so their saturation cannot be estimated: {shown}"
        )

    max_spend = np.zeros(count)
    np.maximum.at(max_spend, codes, spend)
    ratios = np.geomspace(0.02, 50.0, grid_size)  # saturation scale / largest spend seen
    best_sse = np.full(count, np.inf)
    best_height = np.zeros(count)
    best_scale = np.zeros(count)
    for ratio in ratios:
        scale = ratio * max_spend
        shape = -np.expm1(-spend / scale[codes])
        fy = np.bincount(codes, weights=shape * conversions, minlength=count)
        ff = np.bincount(codes, weights=shape * shape, minlength=count)
        height = np.clip(fy / ff, 0.0, None)
        residual = conversions - height[codes] * shape
        sse = np.bincount(codes, weights=residual**2, minlength=count)
        better = sse < best_sse
        best_sse = np.where(better, sse, best_sse)
        best_height = np.where(better, height, best_height)
        best_scale = np.where(better, scale, best_scale)

    observations = np.bincount(codes, minlength=count)
    total_conversions = np.bincount(codes, weights=conversions, minlength=count)
    total_revenue = np.bincount(codes, weights=values["revenue"], minlength=count)
    mean = total_conversions / observations
    sst = np.bincount(codes, weights=(conversions - mean[codes]) ** 2, minlength=count)
    with np.errstate(divide="ignore", invalid="ignore"):
        revenue_per_conversion = np.where(
            total_conversions > 0, total_revenue / total_conversions, 0.0
        )
        r_squared = np.where(sst > 0, 1 - best_sse / sst, np.nan)
    curves = pairs.assign(
        max_conversions=best_height,
        saturation_spend=best_scale,
        revenue_per_conversion=revenue_per_conversion,
        observations=observations.astype("int64"),
        max_spend_seen=max_spend,
        r_squared=r_squared,
    )
    return curves


def expected_conversions(curves: pd.DataFrame, spend: np.ndarray) -> np.ndarray:
    """Each curve's conversions at the given spend (one spend per curve row)."""
    return curves["max_conversions"].to_numpy(float) * -np.expm1(
        -np.asarray(spend, float) / curves["saturation_spend"].to_numpy(float)
    )


def optimise_budget(
    curves: pd.DataFrame,
    rules: BudgetRules,
    pieces: int = 8,
    time_limit: float = 120.0,
    marginal: bool = True,
    threads: int | None = None,
) -> BudgetAllocation:
    """The profit-maximising allocation, proven optimal by CBC within `time_limit` seconds.

    `pieces` chords approximate each curve; their ends are whole units placed at equal
    steps of the curve's height, so they crowd where the curve bends. With at least as many
    pieces as a pair has units the approximation is exact at every whole unit.
    """
    curves = _checked_curves(curves)
    _check_rules(rules, curves)
    if pieces < 1:
        raise ValueError(f"pieces must be at least 1, got {pieces}")
    if time_limit <= 0:
        raise ValueError(f"time_limit must be positive, got {time_limit}")

    problem, units, size = _build(curves, rules, rules.budget, pieces)
    started = time.perf_counter()
    status, proven = _solve(problem, time_limit, threads, warm=False)
    solve_seconds = time.perf_counter() - started
    objective = float(pulp.value(problem.objective) or 0.0)
    chosen = np.zeros(len(curves))
    for p, var in units.items():
        chosen[p] = round(var.value() or 0.0)

    marginal_value = float("nan")
    if marginal:
        more, more_units, _ = _build(curves, rules, rules.budget + rules.unit, pieces)
        for p, var in more_units.items():
            var.setInitialValue(chosen[p])
        started = time.perf_counter()
        _, more_proven = _solve(more, time_limit, threads, warm=True)
        solve_seconds += time.perf_counter() - started
        if proven and more_proven:  # a difference of two unproven objectives means nothing
            marginal_value = float(pulp.value(more.objective) or 0.0) - objective

    spend = chosen * rules.unit
    conversions = expected_conversions(curves, spend)
    revenue = conversions * curves["revenue_per_conversion"].to_numpy(float)
    setup = _per_channel(rules.setup_cost, curves["channel"]) * (spend > 0)
    allocation = pd.DataFrame(
        {
            "segment_id": curves["segment_id"].to_numpy(),
            "channel": curves["channel"].to_numpy(),
            "spend": spend,
            "expected_conversions": conversions,
            "expected_revenue": revenue,
        }
    )
    return BudgetAllocation(
        allocation=allocation,
        objective=objective,
        expected_profit=float(revenue.sum() - spend.sum() - setup.sum()),
        status=status,
        proven_optimal=proven,
        marginal_value=marginal_value,
        solve_seconds=round(solve_seconds, 3),
        problem_size=size,
    )


def _checked_curves(curves: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in CURVE_COLUMNS if column not in curves.columns]
    if missing:
        raise ValueError(f"curves lack the column(s): {', '.join(missing)}")
    if curves.empty:
        raise ValueError("curves are empty: nothing to allocate to")
    for column in ("segment_id", "channel"):
        if curves[column].isna().any():
            raise ValueError(
                f"curves have a missing {column} in row {_first(curves[column].isna())}"
            )
    for column in CURVE_COLUMNS[2:]:
        values = pd.to_numeric(curves[column], errors="coerce").to_numpy(dtype=float)
        floor_ok = values > 0 if column == "saturation_spend" else values >= 0
        bad = ~np.isfinite(values) | ~floor_ok
        if bad.any():
            row = curves.iloc[int(np.flatnonzero(bad)[0])]
            rule = "positive" if column == "saturation_spend" else "non-negative"
            raise ValueError(
                f"curves column {column!r} must be a finite {rule} number; segment "
                f"{_show(row['segment_id'])} x channel {_show(row['channel'])} has "
                f"{_show(row[column])}"
            )
    duplicated = curves.duplicated(["segment_id", "channel"])
    if duplicated.any():
        row = curves[duplicated].iloc[0]
        raise ValueError(
            f"curves have segment {_show(row['segment_id'])} x channel "
            f"{_show(row['channel'])} twice"
        )
    return curves.sort_values(["segment_id", "channel"], ignore_index=True)


def _check_rules(rules: BudgetRules, curves: pd.DataFrame) -> None:
    if not _non_negative(rules.budget):
        raise ValueError(f"budget must be a non-negative number, got {rules.budget!r}")
    if not _non_negative(rules.unit) or rules.unit == 0:
        raise ValueError(f"unit must be a positive number, got {rules.unit!r}")
    channels = set(curves["channel"])
    segments = set(curves["segment_id"])
    by_channel = {
        "channel_min": rules.channel_min,
        "channel_max": rules.channel_max,
        "cost_per_contact": rules.cost_per_contact,
        "setup_cost": rules.setup_cost,
        "min_pair_spend": rules.min_pair_spend,
    }
    by_segment = {
        "segment_max_spend": rules.segment_max_spend,
        "segment_max_contacts": rules.segment_max_contacts,
    }
    for name, limits, known in [
        *((name, limits, channels) for name, limits in by_channel.items()),
        *((name, limits, segments) for name, limits in by_segment.items()),
    ]:
        if not isinstance(limits, Mapping):  # one figure for every channel
            if not _non_negative(limits):
                raise ValueError(f"{name} must be a non-negative number, got {limits!r}")
            continue
        for key, value in limits.items():
            if key not in known:
                kind = "channel" if known is channels else "segment"
                raise ValueError(f"{name} names an unknown {kind} {key!r}")
            if not _non_negative(value):
                raise ValueError(f"{name}[{key!r}] must be a non-negative number, got {value!r}")
    for channel, low in rules.channel_min.items():
        high = rules.channel_max.get(channel, math.inf)
        if low > high:
            raise ValueError(
                f"channel_min[{channel!r}] = {low} is above channel_max[{channel!r}] = {high}"
            )
    if sum(rules.channel_min.values()) > rules.budget:
        raise ValueError(
            f"channel_min adds up to {sum(rules.channel_min.values())}, above the budget "
            f"{rules.budget}"
        )
    for channel, cost in rules.cost_per_contact.items():
        if cost == 0:
            raise ValueError(f"cost_per_contact[{channel!r}] must be positive, got 0")
    if rules.segment_max_contacts:
        unpriced = sorted(channels - set(rules.cost_per_contact), key=str)
        if unpriced:
            raise ValueError(
                "segment_max_contacts needs cost_per_contact for every channel; missing: "
                + ", ".join(map(repr, unpriced))
            )


def _build(
    curves: pd.DataFrame, rules: BudgetRules, budget: float, pieces: int
) -> tuple[pulp.LpProblem, dict[int, pulp.LpVariable], dict[str, int]]:
    """The MILP in whole spend units: n[p] units for pair p, filled through its chords."""
    unit = rules.unit
    channel = curves["channel"].to_numpy()
    segment = curves["segment_id"].to_numpy()
    height = curves["max_conversions"].to_numpy(float)
    scale = curves["saturation_spend"].to_numpy(float) / unit  # in units
    value = height * curves["revenue_per_conversion"].to_numpy(float)
    setup = _per_channel(rules.setup_cost, curves["channel"])
    min_units = np.ceil(_per_channel(rules.min_pair_spend, curves["channel"]) / unit - 1e-9)

    budget_units = math.floor(budget / unit + 1e-9)
    cap = np.full(len(curves), float(budget_units))
    for limits, keys in [(rules.channel_max, channel), (rules.segment_max_spend, segment)]:
        cap = np.minimum(cap, _lookup(limits, keys, math.inf) / unit)
    if rules.segment_max_contacts:
        contacts = _lookup(rules.segment_max_contacts, segment, math.inf)
        cap = np.minimum(cap, contacts * _lookup(rules.cost_per_contact, channel, 1.0) / unit)
    cap = np.floor(cap + 1e-9).astype(int)
    cap[min_units > cap] = 0  # a pair that cannot reach its minimum stays off

    # Past the spend where one more unit returns less than it costs, more spend only loses,
    # unless a channel minimum or the pair's own minimum needs it: a unit above all three
    # can always be taken back without breaking a rule. Cutting the curve there is exact,
    # drops the pairs that never pay (often most of them), and spends the pieces where an
    # allocation can actually land.
    with np.errstate(divide="ignore", invalid="ignore"):
        break_even = scale * np.log(value / (scale * unit))  # marginal profit 0, in units
    useful = np.where(break_even > 0, np.ceil(np.nan_to_num(break_even) - 1e-9), 0.0)
    channel_min_units = np.ceil(_lookup(rules.channel_min, channel, 0.0) / unit - 1e-9)
    bound = np.maximum.reduce([useful, channel_min_units, min_units])
    bound[(useful == 0) & (channel_min_units == 0)] = 0
    cap = np.minimum(cap, bound).astype(int)

    problem = pulp.LpProblem("budget_allocation", pulp.LpMaximize)
    objective: dict[pulp.LpVariable, float] = {}
    units: dict[int, pulp.LpVariable] = {}  # only pairs that can be funded at all
    binaries = pieces_total = 0
    for p in np.flatnonzero(cap > 0):
        n = problem.add_variable(f"n_{p}", lowBound=0, upBound=int(cap[p]), cat=pulp.LpInteger)
        units[p] = n
        ends = _breakpoints(scale[p], int(cap[p]), pieces if height[p] > 0 else 1)
        gains = value[p] * -np.expm1(-ends / scale[p])
        chords = []
        for j in range(1, len(ends)):
            length = float(ends[j] - ends[j - 1])
            x = problem.add_variable(f"x_{p}_{j}", lowBound=0, upBound=length)
            objective[x] = (gains[j] - gains[j - 1]) / length - unit
            chords.append(x)
        pieces_total += len(chords)
        problem += pulp.LpAffineExpression([(n, 1.0)] + [(x, -1.0) for x in chords]) == 0
        if setup[p] > 0 or min_units[p] > 0:
            on = problem.add_variable(f"on_{p}", lowBound=0, upBound=1, cat=pulp.LpBinary)
            binaries += 1
            objective[on] = -float(setup[p])
            # Each chord switched by `on` (not just n <= cap * on): the LP relaxation then
            # cannot buy the steep first chord with a sliver of `on` and a sliver of set-up
            # cost, so its bound stays close and CBC can prove optimality.
            for x in chords:
                problem += pulp.LpAffineExpression([(x, 1.0), (on, -x.upBound)]) <= 0
            if min_units[p] > 0:
                problem += pulp.LpAffineExpression([(n, 1.0), (on, -float(min_units[p]))]) >= 0
    problem += pulp.LpAffineExpression(list(objective.items()))

    problem += pulp.LpAffineExpression([(n, 1.0) for n in units.values()]) <= budget_units
    for name, rows in pd.Series(range(len(curves))).groupby(channel).groups.items():
        members = [(units[p], 1.0) for p in rows if p in units]
        if name in rules.channel_min:
            low = math.ceil(rules.channel_min[name] / unit - 1e-9)
            if low > sum(cap[p] for p in rows):
                raise InfeasibleBudgetError(
                    f"channel_min[{_show(name)}] needs {low} units of spend, but the caps "
                    f"(segment limits, channel_max, min_pair_spend) allow at most "
                    f"{int(sum(cap[p] for p in rows))} on that channel"
                )
            problem += pulp.LpAffineExpression(members) >= low
        if name in rules.channel_max and members:
            high = math.floor(rules.channel_max[name] / unit + 1e-9)
            problem += pulp.LpAffineExpression(members) <= high
    for name, rows in pd.Series(range(len(curves))).groupby(segment).groups.items():
        funded = [p for p in rows if p in units]
        if name in rules.segment_max_spend and funded:
            high = math.floor(rules.segment_max_spend[name] / unit + 1e-9)
            problem += pulp.LpAffineExpression([(units[p], 1.0) for p in funded]) <= high
        if name in rules.segment_max_contacts and funded:
            contacts = [(units[p], unit / rules.cost_per_contact[channel[p]]) for p in funded]
            problem += pulp.LpAffineExpression(contacts) <= rules.segment_max_contacts[name]

    size = {
        "pairs": len(curves),
        "pairs_in_model": len(units),
        "variables": problem.numVariables(),
        "integer_variables": len(units),
        "binary_variables": binaries,
        "chord_variables": pieces_total,
        "constraints": problem.numConstraints(),
        "budget_units": budget_units,
    }
    return problem, units, size


def _breakpoints(scale: float, cap: int, pieces: int) -> np.ndarray:
    """Chord ends in whole units, at equal steps of the curve's height up to `cap`."""
    if pieces >= cap:
        return np.arange(cap + 1, dtype=float)
    top = -np.expm1(-cap / scale)
    steps = np.arange(1, pieces) / pieces * top
    inner = np.round(-scale * np.log1p(-steps))
    return np.unique(np.concatenate([[0.0], inner, [float(cap)]]).clip(0, cap))


def _solve(problem: pulp.LpProblem, time_limit: float, threads: int | None, warm: bool):
    with warnings.catch_warnings():
        # PuLP 3 warns that PuLP 4 drops its bundled CBC binary; we pin PuLP < 4 and use it.
        warnings.simplefilter("ignore", DeprecationWarning)
        solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, threads=threads, warmStart=warm)
    problem.solve(solver)
    if problem.status == pulp.LpStatusInfeasible:
        raise InfeasibleBudgetError(
            "no allocation meets all the rules together (CBC: infeasible): check channel_min "
            "against the segment caps, channel_max and min_pair_spend"
        )
    if problem.sol_status == pulp.LpSolutionOptimal:
        return "optimal", True
    if problem.sol_status == pulp.LpSolutionIntegerFeasible:
        return "feasible (time limit)", False
    raise RuntimeError(
        f"CBC found no allocation within {time_limit} s (status "
        f"{pulp.LpStatus[problem.status]}): raise time_limit or use fewer pieces"
    )


def _per_channel(setting: float | Mapping[str, float], channels: pd.Series) -> np.ndarray:
    if isinstance(setting, Mapping):
        return _lookup(setting, channels.to_numpy(), 0.0)
    return np.full(len(channels), float(setting))


def _lookup(limits: Mapping, keys: np.ndarray, default: float) -> np.ndarray:
    return np.array([float(limits.get(key, default)) for key in keys])


def _non_negative(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _show(value: object) -> str:
    """repr of a value as the user wrote it (2, not np.int64(2))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _first(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])
