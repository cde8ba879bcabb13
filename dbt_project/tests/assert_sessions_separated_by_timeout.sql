{#
    Proves the sessions of int_sessions_aggregated partition each person's timeline: a person's
    next session starts more than var session_timeout_minutes after the previous one ended
    (so sessions never overlap and no gap inside a session is what splits two sessions).
    Fails with the offending pairs of consecutive sessions.
#}

{{ config(meta={'dagster': {'ref': {'name': 'int_sessions_aggregated'}}}) }}

with

sessions as (

    select * from {{ ref('int_sessions_aggregated') }}

),

sessions_paired as (

    select
        person_id,
        session_id,
        started_at,
        lag(session_id) over (partition by person_id order by session_number)
            as previous_session_id,
        lag(ended_at) over (partition by person_id order by session_number)
            as previous_ended_at
    from sessions

),

too_close as (

    select * from sessions_paired
    where previous_session_id is not null
        and started_at <= {{ dbt.dateadd(
            'minute', var('session_timeout_minutes'), 'previous_ended_at'
        ) }}

)

select * from too_close
