{#
    The clients (cookie or device) that are bots: ever sent a robot user agent (macro
    is_bot_user_agent), or more than var bot_max_events_per_day events on one UTC day,
    counting the near-duplicates each kept event absorbed (so the rule sees what the client
    sent; both per client and day in int_event_clients_daily). Rebuilt whole every run: a
    client turning into a bot today flags its history. A table of its own because several
    models read int_events_enriched, which would otherwise work it out again each time.
#}

with

event_clients_daily as (

    select * from {{ ref('int_event_clients_daily') }}

),

client_days as (

    select
        client_id_type,
        client_id,
        event_date,
        sum(events_sent) as events_sent,
        max(case when has_bot_user_agent then 1 else 0 end) as has_bot_user_agent
    from event_clients_daily
    group by 1, 2, 3

),

final as (

    select
        -- ids
        client_id_type,
        client_id,

        -- attributes
        max(has_bot_user_agent) = 1 as has_bot_user_agent,

        -- measures
        max(events_sent) as most_events_sent_in_a_day

    from client_days
    group by 1, 2
    having max(has_bot_user_agent) = 1
        or max(events_sent) > {{ var('bot_max_events_per_day') }}

)

select * from final
