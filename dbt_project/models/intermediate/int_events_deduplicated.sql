{#
    Web and app events in one shape, one row per event_id. Incremental (see below).
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
    - Incremental runs rewrite whole UTC days from var events_lookback_days days before the
      latest event already here (delete+insert on event_date), so late events up to that age
      land exactly where a full refresh puts them. The day before that window is read as
      context (the predecessor of a near-duplicate, the first copy of a re-send) and events
      whose id is already stored from before the window are not taken again. Later-arriving
      events older than the window wait for the next full refresh. Raw times written (ISO
      8601) on a date before the context day's eve are left out before any parsing.
    - Bot flags and the catalogue category are added downstream (int_events_enriched), since
      they can change for old events when new data arrives.
#}

{{
    config(
        materialized=dmp.incremental_materialization(),
        incremental_strategy='delete+insert',
        unique_key='event_date',
        on_schema_change='fail',
    )
}}

{% if is_incremental() and execute %}
    {#- The day before the window's context day as text, read before the query: raw times
        written on an earlier date lie before the window whatever their offset and are never
        parsed (a constant, so the engine tests it before parsing: 5x fewer rows parsed). -#}
    {% set earliest_date_query %}
        select cast(cast({{ dbt.dateadd('day', -var('events_lookback_days') - 2, 'cast(max(event_date) as ' ~ dbt.type_timestamp() ~ ')') }} as date) as {{ dbt.type_string() }})
        from {{ this }}
    {% endset %}
    {% set earliest = run_query(earliest_date_query).columns[0].values()[0] %}
    {#- 'YYYY-MM-DD' whether the adapter hands back text or a date -#}
    {% set earliest_written_date = (earliest | string)[:10] if earliest is not none else none %}
{% endif %}

with

{% for channel in ['web', 'app'] %}
{{ channel }}_events as (

    select * from {{ ref('stg_' ~ channel ~ '__events') }}
    {% if earliest_written_date %}
    where not {{ dmp.iso_time_written_before('event_time_sent', earliest_written_date) }}
    {% endif %}

),

{% endfor %}
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

{% if is_incremental() %}
window_bounds as (

    {#- while no event is stored (web and app data arrived after the first build), every day -#}
    {%- set latest_day = 'coalesce(max(event_date), ' ~ dmp.earliest_date() ~ ')' %}
    select
        {{ dbt.dateadd('day', -var('events_lookback_days'), 'cast(' ~ latest_day ~ ' as ' ~ dbt.type_timestamp() ~ ')') }}
            as window_start_at,
        {{ dbt.dateadd('day', -var('events_lookback_days') - 1, 'cast(' ~ latest_day ~ ' as ' ~ dbt.type_timestamp() ~ ')') }}
            as context_start_at
    from {{ this }}

),

events_in_context as (

    select events_unioned.*
    from events_unioned
    cross join window_bounds
    where events_unioned.event_at >= window_bounds.context_start_at

),

-- the ids read now that are stored from before the context day: joined with what was read
-- (a few days), not all the stored ids set aside (2.6 s of 6.5 at 10M events)
stored_before_context as (

    select stored.event_id
    from {{ this }} as stored
    inner join events_in_context
        on stored.event_id = events_in_context.event_id
    cross join window_bounds
    where stored.event_at < window_bounds.context_start_at

),

events_in_scope as (

    select *
    from events_in_context
    where event_id not in (select event_id from stored_before_context)

),
{% else %}
events_in_scope as (

    select * from events_unioned

),
{% endif %}

events_ranked as (

    select
        *,
        row_number() over (
            partition by event_id
            order by event_at, _source_file, _line_number
        ) as occurrence
    from events_in_scope
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
        events.category,
        events.user_agent,

        -- measures
        events.near_duplicates_collapsed,

        -- timestamps
        events.event_at,
        cast(events.event_at as date) as event_date,

        -- lineage
        events._source_file,
        events._line_number

    from events_near_deduplicated as events
    {% if is_incremental() %}
    cross join window_bounds
    {% endif %}
    where not events.is_near_duplicate
    {% if is_incremental() %}
        and events.event_at >= window_bounds.window_start_at
    {% endif %}

)

select * from final
