{#
    Web and app events in one shape, one row per event_id.
    - Re-sends (same event_id) keep the first occurrence by event_at, then file and line.
    - Events without a valid event_at are left out.
    - Near-duplicates (an SDK retry that minted a new event_id, a double click) are dropped: an
      event whose signature (client_id + client_id_type, event_type, product_id, page_url or
      screen_name, user_id; nulls equal) matches the previous event of that signature no more
      than var near_duplicate_seconds earlier (dbt.datediff in seconds, inclusive). Compared
      with the previous event, not the kept one, so a chain of 1-second repeats collapses to
      its first event. Purchases are never near-duplicates (each is a distinct order and the
      events carry no order id), nor are events without a client_id. The kept event counts
      what it absorbed in near_duplicates_collapsed.
    - category falls back to the product's catalogue category.
    - is_bot marks every event of a client (cookie or device) that ever sent a robot user agent
      or more than var bot_max_events_per_day events on one UTC day (counted before the
      near-duplicates are dropped, so the bot rule is unchanged by them).
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
        page_url as page_or_screen,
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
        screen_name as page_or_screen,
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

events_lagged as (

    select
        *,
        lag(event_at) over (
            partition by client_id_type, client_id, event_type, product_id, page_or_screen, user_id
            order by event_at, _source_file, _line_number, event_id
        ) as previous_event_at
    from events_deduplicated

),

events_flagged as (

    select
        *,
        coalesce(
            client_id is not null
            and coalesce(event_type, '') <> 'purchase'
            and {{ dbt.datediff('previous_event_at', 'event_at', 'second') }}
                <= {{ var('near_duplicate_seconds') }},
            false
        ) as is_near_duplicate
    from events_lagged

),

events_chained as (

    select
        *,
        sum(case when is_near_duplicate then 0 else 1 end) over (
            partition by client_id_type, client_id, event_type, product_id, page_or_screen, user_id
            order by event_at, _source_file, _line_number, event_id
            rows between unbounded preceding and current row
        ) as chain_number
    from events_flagged

),

events_near_deduplicated as (

    select
        *,
        count(*) over (
            partition by
                client_id_type, client_id, event_type, product_id, page_or_screen, user_id,
                chain_number
        ) - 1 as near_duplicates_collapsed
    from events_chained

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

        -- measures
        events.near_duplicates_collapsed,

        -- timestamps
        events.event_at,

        -- lineage
        events._source_file,
        events._line_number

    from events_near_deduplicated as events
    left join products
        on events.product_id = products.product_id
    left join bot_clients
        on events.client_id_type = bot_clients.client_id_type
        and events.client_id = bot_clients.client_id
    where not events.is_near_duplicate

)

select * from final
