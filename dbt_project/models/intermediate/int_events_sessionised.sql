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
    - Incremental by person: person_events_fingerprint (macro set_fingerprint over the
      person's events) says which persons' events changed since the last run (late or new
      events, an identity merge or split, a client turned bot); only their sessions are
      rebuilt, from their whole history (delete+insert on person_id). Persons that no longer
      have events are deleted after the run.
#}

{{
    config(
        materialized=dmp.incremental_materialization(),
        incremental_strategy='delete+insert',
        unique_key='person_id',
        on_schema_change='fail',
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

with

events as (

    select * from {{ ref('int_activities_attributed') }}
    where activity_kind = 'event'
        and person_id is not null
        and not is_bot

),

fingerprints as (

    select
        person_id,
        {{ dmp.set_fingerprint([
            'activity_id', 'activity_at', 'product_id', 'channel', 'activity_type', 'category',
        ]) }} as person_events_fingerprint
    from events
    group by 1

),

persons_changed as (

    select fingerprints.*
    from fingerprints
    {% if is_incremental() %}
    left join (
        -- one fingerprint per person: a group, cheaper than a distinct over both columns
        select
            person_id,
            min(person_events_fingerprint) as person_events_fingerprint
        from {{ this }}
        group by person_id
    ) as stored
        on fingerprints.person_id = stored.person_id
    where stored.person_id is null
        or stored.person_events_fingerprint <> fingerprints.person_events_fingerprint
    {% endif %}

),

events_ordered as (

    select
        events.activity_id as event_id,
        events.person_id,
        events.product_id,
        events.channel,
        events.activity_type as event_type,
        events.category,
        events.activity_at as event_at,
        persons_changed.person_events_fingerprint,
        lag(events.activity_at) over (
            partition by events.person_id
            order by events.activity_at, events.activity_id
        ) as previous_event_at
    from events
    inner join persons_changed
        on events.person_id = persons_changed.person_id

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
        sum(starts_session) over (
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
        {{ dbt.datediff('previous_event_at', 'event_at', 'second') }}
            as seconds_since_previous_event,

        -- lineage
        person_events_fingerprint,

        -- timestamps
        event_at

    from events_positioned

)

select * from final
