{{ config(materialized='view') }}

{#
    int_events_deduplicated with what old events can gain from new data, so the incremental
    events table never has to rewrite history for it:
    - category falls back to the product's catalogue category (the catalogue can change);
    - is_bot marks every event of a client in int_bot_clients_detected: a client turning
      into a bot today flags its whole history.
#}

with

events as (

    select * from {{ ref('int_events_deduplicated') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

bot_clients as (

    select * from {{ ref('int_bot_clients_detected') }}

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
