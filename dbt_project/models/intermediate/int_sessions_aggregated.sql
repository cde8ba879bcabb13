{#
    One row per session of int_events_sessionised (a person's web and app events with no gap
    over var session_timeout_minutes). channels says where the session happened: web, app or
    both. The landing event is the session's first event. duration_seconds runs from the first
    to the last event, so a one-event session lasts 0 seconds.
#}

with

events as (

    select * from {{ ref('int_events_sessionised') }}

),

sessions as (

    select
        session_id,
        person_id,
        session_number,
        count(*) as events,
        sum(case when channel = 'web' then 1 else 0 end) as web_events,
        sum(case when channel = 'app' then 1 else 0 end) as app_events,
        sum(case when event_type = 'product_view' then 1 else 0 end) as product_views,
        sum(case when event_type = 'add_to_cart' then 1 else 0 end) as add_to_carts,
        sum(case when event_type = 'purchase' then 1 else 0 end) as purchases,
        min(event_at) as started_at,
        max(event_at) as ended_at
    from events
    group by 1, 2, 3

),

landings as (

    select
        session_id,
        event_id as landing_event_id,
        channel as landing_channel,
        event_type as landing_event_type
    from events
    where is_session_start

),

final as (

    select
        -- ids
        sessions.session_id,
        sessions.person_id,
        landings.landing_event_id,

        -- attributes
        sessions.session_number,
        case
            when sessions.web_events > 0 and sessions.app_events > 0 then 'both'
            when sessions.web_events > 0 then 'web'
            else 'app'
        end as channels,
        landings.landing_channel,
        landings.landing_event_type,

        -- measures
        sessions.events,
        sessions.web_events,
        sessions.app_events,
        sessions.product_views,
        sessions.add_to_carts,
        sessions.purchases,
        {{ dbt.datediff('sessions.started_at', 'sessions.ended_at', 'second') }}
            as duration_seconds,

        -- timestamps
        sessions.started_at,
        sessions.ended_at

    from sessions
    inner join landings
        on sessions.session_id = landings.session_id

)

select * from final
