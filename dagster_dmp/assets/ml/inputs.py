"""What the ML assets read: dbt marts only (marts/__init__.py), as data frames with the
columns the models take, and the marts' Dagster asset keys for the assets' deps."""

import dagster as dg
import pandas as pd

import marts
from dagster_dmp.resources import WarehouseResource


def mart_key(mart: marts.Mart) -> dg.AssetKey:
    return dg.AssetKey(mart.key_path)


PERSON_PROFILES = mart_key(marts.PERSON_PROFILES)
PERSON_IDENTIFIERS = mart_key(marts.PERSON_IDENTIFIERS)
PERSON_INTERESTS = mart_key(marts.PERSON_INTERESTS)
PERSON_BEHAVIOUR = mart_key(marts.PERSON_BEHAVIOUR)
PERSON_EVENTS = mart_key(marts.PERSON_EVENTS)
PERSON_ORDERS = mart_key(marts.PERSON_ORDERS)
PERSON_PRODUCT_INTERACTIONS = mart_key(marts.PERSON_PRODUCT_INTERACTIONS)
PRODUCTS = mart_key(marts.PRODUCTS)
CAMPAIGN_PERFORMANCE = mart_key(marts.CAMPAIGN_PERFORMANCE)
CAMPAIGN_REACH = mart_key(marts.CAMPAIGN_REACH)
CAMPAIGN_ORDERS = mart_key(marts.CAMPAIGN_ORDERS)
EXPERIMENT_OBSERVATIONS = mart_key(marts.EXPERIMENT_OBSERVATIONS)
DATA_AS_OF = mart_key(marts.DATA_AS_OF)
PERSON_SEGMENTS = dg.AssetKey(["ml", "person_segments"])


# person_events rows a model reads at once: the persons are read in as many groups as it takes.
# Reading 500k rows took ~230 MB of RSS (DuckDB's result and the frame), 200k rows ~100 MB.
EVENTS_PER_GROUP = 250_000


def person_groups(
    warehouse: WarehouseResource, rows_per_group: int = EVENTS_PER_GROUP
) -> list[str]:
    """Filters (`where` of read_mart) that split the persons into groups of about
    `rows_per_group` person_events rows each; one group (every person) on a small warehouse."""
    rows = warehouse.row_counts([marts.PERSON_EVENTS.relation]).get(marts.PERSON_EVENTS.relation, 0)
    groups = max(1, -(-rows // rows_per_group))
    return [f"hash(person_id) % {groups} = {group}" for group in range(groups)]


def person_events(warehouse: WarehouseResource, persons: str = "") -> pd.DataFrame:
    """Non-bot events and social engagements of known persons (what a person did, when); of
    the `persons` filter's group only when given (see person_groups)."""
    return warehouse.read_mart(
        marts.PERSON_EVENTS,
        ["person_id", "event_type", "occurred_at", "product_id", "category", "channel"],
        where=persons,
    )


def person_orders(warehouse: WarehouseResource, persons: str = "") -> pd.DataFrame:
    """Completed, dated orders of known persons (of the `persons` filter's group when given)."""
    return warehouse.read_mart(
        marts.PERSON_ORDERS, ["person_id", "order_id", "ordered_at", "revenue"], where=persons
    )


def activity_times(warehouse: WarehouseResource) -> pd.Series:
    """When every event and every order of known persons happened: where a history begins."""
    return pd.concat(
        [
            warehouse.read_mart(marts.PERSON_EVENTS, ["occurred_at"])["occurred_at"],
            warehouse.read_mart(marts.PERSON_ORDERS, ["ordered_at"])["ordered_at"],
        ],
        ignore_index=True,
    )


def event_types_before(warehouse: WarehouseResource, cutoff: pd.Timestamp) -> list[str | None]:
    """The distinct event types of known persons' events before `cutoff`."""
    with warehouse.connect(read_only=True) as con:
        rows = con.execute(
            f"select distinct event_type from {marts.PERSON_EVENTS} "
            "where person_id is not null and occurred_at < ?",
            [cutoff.to_pydatetime()],
        ).fetchall()
    return [row[0] for row in rows]


def data_as_of(warehouse: WarehouseResource) -> pd.Timestamp:
    """The data's "today": the latest non-bot activity (every dbt score refers to it too)."""
    return pd.Timestamp(warehouse.read_mart(marts.DATA_AS_OF, ["as_of_at"])["as_of_at"].iloc[0])


def person_product_interactions(warehouse: WarehouseResource) -> pd.DataFrame:
    """Who touched which product, how and when: product events and purchased order lines."""
    return warehouse.read_mart(
        marts.PERSON_PRODUCT_INTERACTIONS, ["person_id", "product_id", "event_type", "occurred_at"]
    )


def product_catalogue(warehouse: WarehouseResource) -> pd.DataFrame:
    return warehouse.read_mart(marts.PRODUCTS, ["product_id", "category", "brand"])


def profiled_persons(warehouse: WarehouseResource) -> pd.Series:
    """Every profiled person, in id order."""
    return warehouse.read_mart(marts.PERSON_PROFILES, ["person_id"], order_by=["person_id"])[
        "person_id"
    ]


def experiment_observations(warehouse: WarehouseResource) -> pd.DataFrame:
    """One row per person in an arm of a campaign test, with their outcomes in the window."""
    return warehouse.read_mart(
        marts.EXPERIMENT_OBSERVATIONS,
        ["campaign_id", "variant", "person_id", "held_out", "converted", "spend", "visit"],
    )


# Campaign history per segment x channel x ISO week: conversions and revenue of orders
# credited to the channel's campaigns (campaign_orders) by the segment's persons; the
# channel's cost that week split over segments by their share of its reached persons
# (campaign_reach: touches and click-throughs). Spend comes from the ad networks' reports; who
# it reached, from ours. The segments are an ML output, so this join stays out of dbt.
SEGMENT_CHANNEL_HISTORY_SQL = f"""
    with campaigns as (
        select campaign_id, max(channel) as channel
        from {marts.CAMPAIGN_PERFORMANCE}
        group by 1
    ),

    weekly_cost as (
        select
            campaigns.channel,
            date_trunc('week', performance.report_date) as week,
            sum(performance.cost) as cost
        from {marts.CAMPAIGN_PERFORMANCE} as performance
        inner join campaigns on performance.campaign_id = campaigns.campaign_id
        group by 1, 2
    ),

    weekly_reach as (
        select
            campaigns.channel,
            date_trunc('week', reached.reached_at) as week,
            segments.segment_id,
            count(distinct reached.person_id) as persons
        from {marts.CAMPAIGN_REACH} as reached
        inner join campaigns on reached.campaign_id = campaigns.campaign_id
        inner join ml.person_segments as segments on reached.person_id = segments.person_id
        group by 1, 2, 3
    ),

    weekly_orders as (
        select
            campaigns.channel,
            date_trunc('week', orders.ordered_at) as week,
            segments.segment_id,
            count(*) as conversions,
            sum(orders.revenue) as revenue
        from {marts.CAMPAIGN_ORDERS} as orders
        inner join campaigns on orders.campaign_id = campaigns.campaign_id
        inner join ml.person_segments as segments on orders.person_id = segments.person_id
        group by 1, 2, 3
    )

    select
        weekly_reach.segment_id,
        weekly_reach.channel,
        weekly_reach.week,
        weekly_cost.cost * weekly_reach.persons
            / sum(weekly_reach.persons) over (partition by weekly_reach.channel, weekly_reach.week)
            as spend,
        coalesce(weekly_orders.conversions, 0) as conversions,
        coalesce(weekly_orders.revenue, 0) as revenue,
        weekly_reach.persons as reached_persons
    from weekly_reach
    inner join weekly_cost
        on weekly_reach.channel = weekly_cost.channel
        and weekly_reach.week = weekly_cost.week
    left join weekly_orders
        on weekly_reach.channel = weekly_orders.channel
        and weekly_reach.week = weekly_orders.week
        and weekly_reach.segment_id = weekly_orders.segment_id
"""
