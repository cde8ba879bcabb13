"""What the ML assets read from the warehouse: one query per input, with its asset key."""

import dagster as dg

PERSON_PROFILES = dg.AssetKey(["marts", "person_profiles"])
PERSON_INTERESTS = dg.AssetKey(["marts", "person_interests"])
ACTIVITIES = dg.AssetKey(["intermediate", "int_activities_attributed"])
ORDERS = dg.AssetKey(["intermediate", "int_orders_aggregated"])
PRODUCTS = dg.AssetKey(["staging", "stg_shop__products"])

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
