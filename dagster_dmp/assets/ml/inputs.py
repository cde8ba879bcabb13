"""What the ML assets read from the warehouse: one query per input, with its asset key."""

import dagster as dg

PERSON_PROFILES = dg.AssetKey(["marts", "person_profiles"])
PERSON_SEGMENTS = dg.AssetKey(["ml", "person_segments"])
PERSON_INTERESTS = dg.AssetKey(["marts", "person_interests"])
PERSON_BEHAVIOUR = dg.AssetKey(["marts", "person_behaviour"])
ACTIVITIES = dg.AssetKey(["intermediate", "int_activities_attributed"])
ORDERS = dg.AssetKey(["intermediate", "int_orders_aggregated"])
ORDER_LINES = dg.AssetKey(["intermediate", "int_order_lines_deduplicated"])
ORDERS_ATTRIBUTED = dg.AssetKey(["intermediate", "int_orders_attributed"])
PRODUCTS = dg.AssetKey(["staging", "stg_shop__products"])
CAMPAIGN_TOUCHES = dg.AssetKey(["staging", "stg_marketing__campaign_touches"])
IDENTIFIERS = dg.AssetKey(["intermediate", "int_identifiers_stitched"])

# Non-bot events and social engagements of known persons (what a person did, when).
PERSON_EVENTS_SQL = """
    select
        person_id,
        activity_type as event_type,
        activity_at as occurred_at,
        product_id,
        category,
        channel
    from intermediate.int_activities_attributed
    where person_id is not null
        and not is_bot
        and activity_kind in ('event', 'social_engagement')
"""

# Completed, dated orders of known persons.
PERSON_ORDERS_SQL = """
    select
        person_id,
        order_id,
        order_at as ordered_at,
        revenue
    from intermediate.int_orders_aggregated
    where is_completed
        and person_id is not null
        and order_at is not null
"""

# The data's "today": the latest non-bot activity (every dbt score refers to it too).
AS_OF_SQL = """
    select max(activity_at) as as_of_at
    from intermediate.int_activities_attributed
    where not is_bot
"""

# Who touched which product, how and when: product events, plus completed order lines as
# purchases (the order export is the source of truth for what was bought).
PERSON_PRODUCT_INTERACTIONS_SQL = """
    select
        person_id,
        product_id,
        activity_type as event_type,
        activity_at as occurred_at
    from intermediate.int_activities_attributed
    where person_id is not null
        and not is_bot
        and activity_kind = 'event'
        and product_id is not null

    union all

    select
        orders.person_id,
        order_lines.product_id,
        'purchase' as event_type,
        order_lines.order_at as occurred_at
    from intermediate.int_order_lines_deduplicated as order_lines
    inner join intermediate.int_orders_aggregated as orders
        on order_lines.order_id = orders.order_id
    where order_lines.is_revenue
        and orders.person_id is not null
        and order_lines.product_id is not null
        and order_lines.order_at is not null
"""

PRODUCTS_SQL = "select product_id, category, brand from staging.stg_shop__products"

PERSONS_SQL = "select person_id from marts.person_profiles order by person_id"

# One row per person assigned to an arm of a campaign: a variant sent to them, or held out
# (touch_type 'holdout' / 'control': in the test, not mailed; the importers write Hillstrom's
# "No E-Mail" arm so). An arm without a variant name is named by its touch type ('sent' for
# a campaign that tested nothing, e.g. bank-marketing's calls: one arm, read out alone).
# held_out marks the untreated arm, which the analysis takes as the control. Outcomes count
# from the person's first touch for RESPONSE_WINDOW_DAYS: converted when they placed an order
# carrying the campaign's tag (coupon / newsletter link; a held-out person's order carries
# it when the test's read-out tagged it, as Hillstrom's does), whatever became of it (a later
# cancellation or refund does not undo the response the test measures); spend is those
# orders' completed revenue; visit when they had a non-bot web or app event (no tag needed:
# the visit is the outcome whether or not it came through the e-mail). A person touched in
# two arms keeps the first touch's arm (ties: the first by name).
RESPONSE_WINDOW_DAYS = 14
HELD_OUT_TOUCH_TYPES = ("holdout", "hold_out", "held_out", "control")
_HELD_OUT_LIST = ", ".join(f"'{touch_type}'" for touch_type in HELD_OUT_TOUCH_TYPES)
EXPERIMENT_OBSERVATIONS_SQL = f"""
    with touches as (
        select
            touches.campaign_id,
            customers.person_id,
            coalesce(touches.variant, touches.touch_type) as variant,
            touches.touch_type in ({_HELD_OUT_LIST}) as held_out,
            touches.touched_at
        from staging.stg_marketing__campaign_touches as touches
        inner join intermediate.int_identifiers_stitched as customers
            on customers.identifier_type = 'customer_id'
            and touches.customer_id = customers.identifier_value
        where touches.touched_at is not null
            and touches.touch_type in ('sent', {_HELD_OUT_LIST})
    ),

    assigned as (
        select
            campaign_id,
            person_id,
            variant,
            held_out,
            touched_at as first_touched_at,
            touched_at + interval {RESPONSE_WINDOW_DAYS} day as window_ends_at
        from touches
        qualify row_number() over (
            partition by campaign_id, person_id order by touched_at, variant
        ) = 1
    ),

    tagged_orders as (
        select
            assigned.campaign_id,
            assigned.person_id,
            count(*) as orders,
            sum(orders.revenue) as spend
        from assigned
        inner join intermediate.int_orders_aggregated as orders
            on orders.person_id = assigned.person_id
            and orders.campaign_id = assigned.campaign_id
            and orders.order_at >= assigned.first_touched_at
            and orders.order_at < assigned.window_ends_at
        group by 1, 2
    ),

    visits as (
        select distinct
            assigned.campaign_id,
            assigned.person_id
        from assigned
        inner join intermediate.int_activities_attributed as activities
            on activities.person_id = assigned.person_id
            and activities.activity_at >= assigned.first_touched_at
            and activities.activity_at < assigned.window_ends_at
        where activities.activity_kind = 'event'
            and not activities.is_bot
    )

    select
        assigned.campaign_id,
        assigned.variant,
        assigned.person_id,
        assigned.held_out,
        case when tagged_orders.orders > 0 then 1 else 0 end as converted,
        coalesce(tagged_orders.spend, 0) as spend,
        case when visits.person_id is not null then 1 else 0 end as visit
    from assigned
    left join tagged_orders
        on assigned.campaign_id = tagged_orders.campaign_id
        and assigned.person_id = tagged_orders.person_id
    left join visits
        on assigned.campaign_id = visits.campaign_id
        and assigned.person_id = visits.person_id
"""

# Campaign history per segment x channel x ISO week: conversions and revenue of orders
# credited to the channel's campaigns (int_orders_attributed) by the segment's persons; the
# channel's cost that week split over segments by their share of its reached persons (touches
# and click-throughs). Spend comes from the ad networks' reports; who it reached, from ours.
SEGMENT_CHANNEL_HISTORY_SQL = """
    with campaigns as (
        select campaign_id, max(channel) as channel
        from marts.campaign_performance
        group by 1
    ),

    weekly_cost as (
        select
            campaigns.channel,
            date_trunc('week', performance.report_date) as week,
            sum(performance.cost) as cost
        from marts.campaign_performance as performance
        inner join campaigns on performance.campaign_id = campaigns.campaign_id
        group by 1, 2
    ),

    reached as (
        select campaign_id, person_id, activity_at as touched_at
        from intermediate.int_activities_attributed
        where campaign_id is not null and person_id is not null and not is_bot

        union all

        select touches.campaign_id, identifiers.person_id, touches.touched_at
        from staging.stg_marketing__campaign_touches as touches
        inner join intermediate.int_identifiers_stitched as identifiers
            on (identifiers.identifier_type = 'customer_id'
                and touches.customer_id = identifiers.identifier_value)
            or (identifiers.identifier_type = 'anonymous_id'
                and touches.anonymous_id = identifiers.identifier_value)
        where touches.touched_at is not null
    ),

    weekly_reach as (
        select
            campaigns.channel,
            date_trunc('week', reached.touched_at) as week,
            segments.segment_id,
            count(distinct reached.person_id) as persons
        from reached
        inner join campaigns on reached.campaign_id = campaigns.campaign_id
        inner join ml.person_segments as segments on reached.person_id = segments.person_id
        group by 1, 2, 3
    ),

    weekly_orders as (
        select
            campaigns.channel,
            date_trunc('week', orders.order_at) as week,
            segments.segment_id,
            count(*) as conversions,
            sum(orders.revenue) as revenue
        from intermediate.int_orders_attributed as orders
        inner join campaigns on orders.attributed_campaign_id = campaigns.campaign_id
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
