{#
    Every non-bot web and app event of a known person, placed in that person's session.
    - A session belongs to a person, not to a cookie or device: the person's web and app
      events are ordered together (by event_at, then event_id, so ties are deterministic).
    - A new session starts with the person's first event and with every event that comes more
      than var session_timeout_minutes after the person's previous event; exactly the timeout
      apart stays in the session.
    - Social engagements and orders are not events here and never extend a session; bot
      events have no person and are left out.
    - session_id = 's_' || the first 16 hex digits of md5(person_id || '-' || the session's
      first event_id): the same data always gives the same ids.
    - Incremental by person (strategy replace_slice): a fingerprint of each person's events
      (macro set_fingerprint), here and over the stored rows, says whose events changed since
      the last run (late or new events, an identity merge or split, a client turned bot).
      When the person's events before the window (the days int_events_deduplicated
      rewrites) are the same as stored, only the tail is rebuilt: from the start of the
      stored session holding the last event before the window, numbered on from the sessions
      before it. Otherwise the person's whole history is rebuilt. Persons that no longer have
      events are deleted after the run.
#}

{{
    config(
        materialized=dmp.incremental_materialization(),
        incremental_strategy='replace_slice',
        incremental_predicates=[
            "session_number >= (
                select min(new_rows.session_number) from {{ new_rows }} as new_rows
                where new_rows.person_id = {{ this }}.person_id
            )",
        ],
        on_schema_change='sync_all_columns',
        post_hook=[
            "{% if is_incremental() %}
            delete from {{ this }} where person_id not in (
                select person_id from {{ ref('int_activities_attributed') }}
                where activity_kind = 'event' and person_id is not null and not is_bot
            )
            {% endif %}",
        ],
    )
}}

{%- set fingerprinted = ['event_id', 'event_at', 'product_id', 'channel', 'event_type', 'category'] %}

with

events as (

    select
        activity_id as event_id,
        person_id,
        product_id,
        channel,
        activity_type as event_type,
        category,
        activity_at as event_at
    from {{ ref('int_activities_attributed') }}
    where activity_kind = 'event'
        and person_id is not null
        and not is_bot

),

{% if is_incremental() %}
window_start as (

    select cast({{ dmp.latest_days_start(this, 'event_at', var('events_lookback_days')) }}
        as {{ dbt.type_timestamp() }}) as window_start_at

),

fingerprints as (

    select
        events.person_id,
        {{ dmp.set_fingerprint(fingerprinted) }} as events_fingerprint,
        {{ dmp.set_fingerprint(fingerprinted, 'event_at < window_start_at') }}
            as events_before_window_fingerprint
    from events
    cross join window_start
    group by 1

),

stored as (

    select
        person_id,
        {{ dmp.set_fingerprint(fingerprinted) }} as events_fingerprint,
        {{ dmp.set_fingerprint(fingerprinted, 'event_at < window_start_at') }}
            as events_before_window_fingerprint,
        max(case when event_at < window_start_at then session_number end)
            as last_session_before_window
    from {{ this }}
    cross join window_start
    group by 1

),

persons_changed as (

    -- the session to rebuild from: null rebuilds the person's whole history
    select
        fingerprints.person_id,
        case
            when stored.events_before_window_fingerprint
                = fingerprints.events_before_window_fingerprint
                then stored.last_session_before_window
        end as rebuild_from_session
    from fingerprints
    left join stored
        on fingerprints.person_id = stored.person_id
    where stored.person_id is null
        or stored.events_fingerprint <> fingerprints.events_fingerprint

),

rebuild_starts as (

    select
        persons_changed.person_id,
        persons_changed.rebuild_from_session,
        stored_start.event_at as rebuild_from_at,
        stored_start.event_id as rebuild_from_event_id,
        stored_start.seconds_since_previous_event as rebuild_from_seconds_since_previous
    from persons_changed
    left join {{ this }} as stored_start
        on persons_changed.person_id = stored_start.person_id
        and persons_changed.rebuild_from_session = stored_start.session_number
        and stored_start.is_session_start

),

events_to_rebuild as (

    select
        events.*,
        rebuild_starts.rebuild_from_session,
        rebuild_starts.rebuild_from_seconds_since_previous
    from events
    inner join rebuild_starts
        on events.person_id = rebuild_starts.person_id
    where rebuild_starts.rebuild_from_session is null
        or events.event_at > rebuild_starts.rebuild_from_at
        or (
            events.event_at = rebuild_starts.rebuild_from_at
            and events.event_id >= rebuild_starts.rebuild_from_event_id
        )

),
{% else %}
events_to_rebuild as (

    select
        *,
        cast(null as {{ dbt.type_int() }}) as rebuild_from_session,
        cast(null as {{ dbt.type_bigint() }}) as rebuild_from_seconds_since_previous
    from events

),
{% endif %}

events_ordered as (

    select
        *,
        lag(event_at) over (
            partition by person_id
            order by event_at, event_id
        ) as previous_event_at
    from events_to_rebuild

),

events_flagged as (

    select
        *,
        case
            when previous_event_at is null then 1
            when event_at > {{ dbt.dateadd(
                'minute', var('session_timeout_minutes'), 'previous_event_at'
            ) }} then 1
            else 0
        end as starts_session
    from events_ordered

),

events_numbered as (

    select
        *,
        coalesce(rebuild_from_session - 1, 0) + sum(starts_session) over (
            partition by person_id
            order by event_at, event_id
            rows between unbounded preceding and current row
        ) as session_number
    from events_flagged

),

events_positioned as (

    select
        *,
        first_value(event_id) over (
            partition by person_id, session_number
            order by event_at, event_id
            rows between unbounded preceding and unbounded following
        ) as session_first_event_id,
        row_number() over (
            partition by person_id, session_number
            order by event_at, event_id
        ) as session_event_number
    from events_numbered

),

final as (

    select
        -- ids
        event_id,
        {{ dbt.concat([
            "'s_'",
            'substring(' ~ dbt.hash(dbt.concat([
                'person_id', "'-'", 'session_first_event_id'
            ])) ~ ', 1, 16)',
        ]) }} as session_id,
        person_id,
        product_id,

        -- attributes
        channel,
        event_type,
        category,
        session_number,
        session_event_number,
        starts_session = 1 as is_session_start,

        -- measures
        -- a rebuilt tail's first event keeps the gap to the stored event before it
        coalesce(
            {{ dbt.datediff('previous_event_at', 'event_at', 'second') }},
            rebuild_from_seconds_since_previous
        ) as seconds_since_previous_event,

        -- timestamps
        event_at

    from events_positioned

)

select * from final
