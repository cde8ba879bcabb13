{#
    Every dated activity in one shape, attributed to a person: web and app events, social
    engagements (re-sends removed by engagement_id) and orders. Undated rows (no valid
    timestamp) are left out.
    - events find their person by user_id, else by the cookie / device; bot events have no
      person (is_bot = true).
    - The reference "today" of every score is the latest non-bot activity here (macro
      as_of_at), so results never depend on the wall clock.
    Incremental (strategy replace_slice on activity_kind + activity_id): a run rewrites
    - the events of the days int_events_deduplicated rewrites: from var events_lookback_days
      days before the latest event day stored here;
    - the social engagements of the same latest days (of social engagements) and those whose
      handle's person changed, each with every occurrence of its engagement_id, so re-sends
      are removed as a full build removes them (re-sends older than the window wait for the
      next full refresh, as late events do);
    - older events whose attribution changed: their user_id or cookie / device now has another
      person or none (a merge, a split, an exclusion), their client turned bot (or back), their
      product's catalogue category changed. The post-hook keeps what this run attributed with
      (macro attribution_inputs) beside the table, and the next run compares with it;
    - every order (~1.5% of the rows).
#}

{{
    config(
        materialized=dmp.incremental_materialization(),
        incremental_strategy='replace_slice',
        unique_key=['activity_kind', 'activity_id'],
        incremental_predicates=[
            "activity_kind = 'order'",
            "activity_kind = 'event' and activity_date >= " ~ dmp.latest_days_start(
                '{{ this }}', 'activity_date', var('events_lookback_days'), "activity_kind = 'event'"
            ),
        ],
        on_schema_change='fail',
        post_hook="{{ dmp.keep_attribution_inputs() }}",
    )
}}

{%- set attributed_with = dmp.attribution_inputs_kept() -%}
{%- set rewrite_changed_only = is_incremental() and attributed_with is not none %}
-- depends_on: {{ ref('int_bot_clients_detected') }}, {{ ref('stg_shop__products') }}

with

{% if rewrite_changed_only %}
inputs_changed as (

    select
        coalesce(current_inputs.input, kept.input) as input,
        coalesce(current_inputs.key_type, kept.key_type) as key_type,
        coalesce(current_inputs.key_value, kept.key_value) as key_value
    from ({{ dmp.attribution_inputs() }}) as current_inputs
    full outer join {{ attributed_with }} as kept
        on current_inputs.input = kept.input
        and current_inputs.key_type = kept.key_type
        and current_inputs.key_value = kept.key_value
    where current_inputs.key_value is null
        or kept.key_value is null
        or current_inputs.input_value is distinct from kept.input_value

),
{% endif %}

events as (

    select * from {{ ref('int_events_enriched') }}
    {% if rewrite_changed_only %}
    where event_date >= {{ dmp.latest_days_start(
        this, 'activity_date', var('events_lookback_days'), "activity_kind = 'event'"
    ) }}
        or user_id in (
            select key_value from inputs_changed
            where input = 'person' and key_type = 'user_id'
        )
        or (client_id_type, client_id) in (
            select key_type, key_value from inputs_changed where input in ('person', 'bot')
        )
        or product_id in (select key_value from inputs_changed where input = 'category')
    {% endif %}

),

social_engagements as (

    select * from {{ ref('stg_social__engagements') }}
    {% if rewrite_changed_only %}
    where engagement_id in (
        select engagement_id from {{ ref('stg_social__engagements') }}
        where {{ dbt.cast('event_at', 'date') }} >= {{ dmp.latest_days_start(
            this, 'activity_date', var('events_lookback_days'),
            "activity_kind = 'social_engagement'"
        ) }}
            or social_handle in (
                select key_value from inputs_changed
                where input = 'person' and key_type = 'social_handle'
            )
    )
    {% endif %}

),

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

events_attributed as (

    select
        events.event_id as activity_id,
        'event' as activity_kind,
        case when events.is_bot then null else coalesce(users.person_id, clients.person_id) end
            as person_id,
        events.product_id,
        events.utm_campaign as campaign_id,
        events.channel,
        events.event_type as activity_type,
        events.category,
        events.is_bot,
        false as is_completed_order,
        cast(0 as {{ dmp.type_double() }}) as revenue,
        events.event_at as activity_at
    from events
    left join identifiers as users
        on users.identifier_type = 'user_id'
        and events.user_id = users.identifier_value
    left join identifiers as clients
        on events.client_id_type = clients.identifier_type
        and events.client_id = clients.identifier_value

),

social_ranked as (

    select
        *,
        row_number() over (
            partition by engagement_id
            order by event_at, _source_file, _line_number
        ) as occurrence
    from social_engagements
    where engagement_id is not null
        and event_at is not null

),

social_attributed as (

    select
        social.engagement_id as activity_id,
        'social_engagement' as activity_kind,
        handles.person_id,
        cast(null as {{ dbt.type_string() }}) as product_id,
        social.campaign_id,
        'social' as channel,
        social.action as activity_type,
        social.category,
        false as is_bot,
        false as is_completed_order,
        cast(0 as {{ dmp.type_double() }}) as revenue,
        social.event_at as activity_at
    from social_ranked as social
    left join identifiers as handles
        on handles.identifier_type = 'social_handle'
        and social.social_handle = handles.identifier_value
    where social.occurrence = 1

),

orders_attributed as (

    select
        order_id as activity_id,
        'order' as activity_kind,
        person_id,
        cast(null as {{ dbt.type_string() }}) as product_id,
        campaign_id,
        channel,
        'order' as activity_type,
        cast(null as {{ dbt.type_string() }}) as category,
        false as is_bot,
        is_completed as is_completed_order,
        cast(revenue as {{ dmp.type_double() }}) as revenue,
        order_at as activity_at
    from orders
    where order_at is not null

),

activities as (

    select * from events_attributed
    union all
    select * from social_attributed
    union all
    select * from orders_attributed

),

final as (

    select
        -- ids
        activity_id,
        activity_kind,
        person_id,
        product_id,
        campaign_id,

        -- attributes
        channel,
        activity_type,
        category,
        is_bot,
        is_completed_order,

        -- measures
        revenue,

        -- timestamps
        activity_at,
        cast(activity_at as date) as activity_date

    from activities

)

select * from final
