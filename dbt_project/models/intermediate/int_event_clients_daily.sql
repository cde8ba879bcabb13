{#
    Each cookie or device per UTC day, channel and user_id it carried (none for its anonymous
    events): how many events it sent, counting the near-duplicates each kept event absorbed
    (so the bot rule sees what the client sent), and whether one named a robot user agent
    (macro is_bot_user_agent). Bot detection (int_bot_clients_detected) and the event side of
    the identity graph (int_identity_edges) read these few rows per client and day instead of
    every event.
    Incremental on the days int_events_deduplicated rewrites (delete+insert on event_date):
    from var events_lookback_days days before the latest day stored here, which is the latest
    day int_events_deduplicated held when both last ran.
#}

{{
    config(
        materialized=dmp.incremental_materialization(),
        incremental_strategy='delete+insert',
        unique_key='event_date',
        on_schema_change='fail',
    )
}}

with

events as (

    select * from {{ ref('int_events_deduplicated') }}
    {% if is_incremental() %}
    where event_date >= {{ dmp.latest_days_start(this, 'event_date', var('events_lookback_days')) }}
    {% endif %}

),

final as (

    select
        -- ids
        client_id_type,
        client_id,
        user_id,

        -- attributes
        channel,
        max(case when {{ dmp.is_bot_user_agent('user_agent') }} then 1 else 0 end) = 1
            as has_bot_user_agent,

        -- measures
        sum(1 + near_duplicates_collapsed) as events_sent,

        -- timestamps
        event_date

    from events
    where client_id is not null
    group by client_id_type, client_id, user_id, channel, event_date

)

select * from final
