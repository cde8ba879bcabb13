{{ config(materialized='view') }}

{#
    int_events_deduplicated with what old events can gain from new data, so the incremental
    events table never has to rewrite history for it:
    - category falls back to the product's catalogue category (the catalogue can change);
    - is_bot marks every event of a client (cookie or device) that ever sent a robot user
      agent (macro is_bot_user_agent) or more than var bot_max_events_per_day events on one UTC
      day, counting the near-duplicates each kept event absorbed (so the rule sees what the
      client sent). A client turning into a bot today flags its whole history.
#}

with

events as (

    select * from {{ ref('int_events_deduplicated') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

client_days as (

    select
        client_id_type,
        client_id,
        event_date,
        sum(1 + near_duplicates_collapsed) as events_sent,
        max(case when {{ dmp.is_bot_user_agent('user_agent') }} then 1 else 0 end)
            as has_bot_user_agent
    from events
    where client_id is not null
    group by 1, 2, 3

),

bot_clients as (

    select
        client_id_type,
        client_id
    from client_days
    group by 1, 2
    having max(has_bot_user_agent) = 1
        or max(events_sent) > {{ var('bot_max_events_per_day') }}

),

final as (

    select
        -- ids
        events.event_id,
        events.client_id,
        events.client_id_type,
        events.user_id,
        events.product_id,
        events.utm_campaign,

        -- attributes
        events.channel,
        events.event_type,
        coalesce(events.category, products.category) as category,
        events.user_agent,
        bot_clients.client_id is not null as is_bot,

        -- measures
        events.near_duplicates_collapsed,

        -- timestamps
        events.event_at,
        events.event_date,

        -- lineage
        events._source_file,
        events._line_number

    from events
    left join products
        on events.product_id = products.product_id
    left join bot_clients
        on events.client_id_type = bot_clients.client_id_type
        and events.client_id = bot_clients.client_id

)

select * from final
