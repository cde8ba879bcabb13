{#
    Web and app events in one shape, one row per event_id.
    - Re-sends (same event_id) keep the first occurrence by event_at, then file and line.
    - Events without a valid event_at are left out.
    - category falls back to the product's catalogue category.
    - is_bot marks every event of a client (cookie or device) that ever sent a robot user agent
      or more than var bot_max_events_per_day events on one UTC day.
#}

with

web_events as (

    select * from {{ ref('stg_web__events') }}

),

app_events as (

    select * from {{ ref('stg_app__events') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

events_unioned as (

    select
        event_id,
        'web' as channel,
        event_type,
        event_at,
        anonymous_id as client_id,
        'anonymous_id' as client_id_type,
        user_id,
        product_id,
        category,
        utm_campaign,
        user_agent,
        _source_file,
        _line_number
    from web_events

    union all

    select
        event_id,
        'app' as channel,
        event_type,
        event_at,
        device_id as client_id,
        'device_id' as client_id_type,
        user_id,
        product_id,
        category,
        cast(null as {{ dbt.type_string() }}) as utm_campaign,
        cast(null as {{ dbt.type_string() }}) as user_agent,
        _source_file,
        _line_number
    from app_events

),

events_ranked as (

    select
        *,
        row_number() over (
            partition by event_id
            order by event_at, _source_file, _line_number
        ) as occurrence
    from events_unioned
    where event_id is not null
        and event_at is not null

),

events_deduplicated as (

    select * from events_ranked
    where occurrence = 1

),

client_days as (

    select
        client_id_type,
        client_id,
        {{ dbt.date_trunc('day', 'event_at') }} as event_day,
        count(*) as events,
        max(case when {{ dmp.is_bot_user_agent('user_agent') }} then 1 else 0 end)
            as has_bot_user_agent
    from events_deduplicated
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
        or max(events) > {{ var('bot_max_events_per_day') }}

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

        -- timestamps
        events.event_at,

        -- lineage
        events._source_file,
        events._line_number

    from events_deduplicated as events
    left join products
        on events.product_id = products.product_id
    left join bot_clients
        on events.client_id_type = bot_clients.client_id_type
        and events.client_id = bot_clients.client_id

)

select * from final
