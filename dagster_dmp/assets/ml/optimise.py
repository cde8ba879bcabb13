"""Next week's budget across segment x channel, from what each pair returned so far."""

import dagster as dg
import pandas as pd

from dagster_dmp.assets.ml.inputs import (
    CAMPAIGN_ORDERS,
    CAMPAIGN_PERFORMANCE,
    CAMPAIGN_REACH,
    PERSON_SEGMENTS,
    SEGMENT_CHANNEL_HISTORY_SQL,
)
from dagster_dmp.assets.ml.quality import fits_what_it_can
from dagster_dmp.resources import WarehouseResource, markdown_preview
from ml.frames import ModelFitError
from ml.optimise import BudgetRules, fit_response_curves, optimise_budget

BUDGET_ALLOCATION = dg.AssetKey(["ml", "budget_allocation"])
BUDGET_UNITS = 200  # the budget is split in this many whole units
CHANNEL_MAX_GROWTH = 3.0  # a channel may get at most this multiple of its best week so far
EMPTY = {
    "ml.budget_allocation": {
        "segment_id": "int64",
        "channel": "string",
        "spend": "float64",
        "expected_conversions": "float64",
        "expected_revenue": "float64",
    },
    "ml.budget_summary": {"budget": "float64", "status": "string", "proven_optimal": "bool"},
    "ml.response_curves": {"segment_id": "int64", "channel": "string"},
}


@dg.asset(
    key=BUDGET_ALLOCATION,
    deps=[CAMPAIGN_PERFORMANCE, CAMPAIGN_REACH, CAMPAIGN_ORDERS, PERSON_SEGMENTS],
    group_name="ml",
    kinds={"pulp", "duckdb"},
    description=(
        "Next week's budget (the average weekly spend so far) split over segment x channel "
        "to maximise expected profit: a diminishing-returns response curve per pair fitted "
        "to weekly history (spend split by the segment's share of reached persons, "
        "conversions and revenue by last-touch attribution), piecewise-linear in a MILP "
        f"solved to proven optimality by CBC, in {BUDGET_UNITS} whole units, each channel "
        f"at most {CHANNEL_MAX_GROWTH:g}x its best week, a used pair at least one unit. "
        "Metadata: objective, status and the marginal value of one more unit."
    ),
)
@fits_what_it_can(BUDGET_ALLOCATION, EMPTY)
def budget_allocation(warehouse: WarehouseResource) -> dg.MaterializeResult:
    # A week whose cost the ad network did not report says nothing about its response.
    history = warehouse.read_frame(SEGMENT_CHANNEL_HISTORY_SQL).dropna(subset=["spend"])
    spend_levels = history[history["spend"] > 0].groupby(["segment_id", "channel"])["spend"]
    fittable = spend_levels.nunique()
    fittable = fittable[fittable >= 2].index
    history = history.set_index(["segment_id", "channel"]).loc[fittable].reset_index()
    if history.empty:
        # No paid campaign history (e.g. an order history): nothing to allocate, said so.
        raise ModelFitError("no segment x channel has two weeks of spend to fit a response curve")
    curves = fit_response_curves(history)
    weekly = history.groupby(["channel", "week"])["spend"].sum()
    budget = float(weekly.groupby("week").sum().mean())
    unit = budget / BUDGET_UNITS
    rules = BudgetRules(
        budget=budget,
        unit=unit,
        channel_max=(weekly.groupby("channel").max() * CHANNEL_MAX_GROWTH).to_dict(),
        min_pair_spend=unit,
    )
    result = optimise_budget(curves, rules)
    allocation = result.allocation
    summary = pd.DataFrame(
        {
            "budget": [budget],
            "unit": [unit],
            "objective": [result.objective],
            "expected_profit": [result.expected_profit],
            "marginal_value_of_one_unit": [result.marginal_value],
            "status": [result.status],
            "proven_optimal": [result.proven_optimal],
        }
    )
    warehouse.replace_tables(
        {
            "ml.budget_allocation": allocation,
            "ml.budget_summary": summary,
            "ml.response_curves": curves,
        }
    )
    by_channel = allocation.groupby("channel")[["spend", "expected_revenue"]].sum()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(allocation),
            "preview": markdown_preview(allocation.nlargest(10, "spend")),
            "budget": dg.MetadataValue.float(budget),
            "status": result.status,
            "proven_optimal": result.proven_optimal,
            "expected_profit": dg.MetadataValue.float(result.expected_profit),
            "marginal_value_of_one_unit": dg.MetadataValue.float(result.marginal_value),
            "unit": dg.MetadataValue.float(unit),
            "solve_seconds": dg.MetadataValue.float(result.solve_seconds),
            "by_channel": dg.MetadataValue.md(by_channel.round(2).to_markdown()),
        }
    )


@dg.asset_check(
    asset=BUDGET_ALLOCATION,
    description="The allocation is proven optimal and spends no more than the budget.",
)
def budget_optimal_within_budget(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    summary = warehouse.read_frame("select * from ml.budget_summary")
    if summary.empty:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="not judged: no campaign history to allocate a budget from",
        )
    summary = summary.iloc[0]
    spend = float(warehouse.read_frame("select sum(spend) as s from ml.budget_allocation")["s"][0])
    within = spend <= summary["budget"] * (1 + 1e-9)
    return dg.AssetCheckResult(
        passed=bool(summary["proven_optimal"] and within),
        metadata={
            "allocated": spend,
            "budget": float(summary["budget"]),
            "status": summary["status"],
        },
    )
