{#
    One row per person (every person_id of person_identifiers), bot traffic excluded.
    RFM, interest and engagement come from the int_persons_* models (their docs give the
    formulas); CRM attributes from the person's most recently updated customer record.
    Persons without any dated activity (e.g. a customer known only from the CRM or a campaign
    touch) get recency_days null, scores 1, segment 'lost' and engagement 0. sessions and
    avg_session_seconds come from int_sessions_aggregated (web and app events only); brand and
    price preference from int_persons_preferences_scored. Channel mix: web_events, app_events,
    social_engagements, store_orders; primary_channel is the largest (ties: web, app, social,
    store).
#}

with

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

activities as (

    select * from {{ ref('int_activities_attributed') }}
    where person_id is not null
        and not is_bot

),

rfm as (

    select * from {{ ref('int_persons_rfm_scored') }}

),

interests as (

    select * from {{ ref('int_person_interests_scored') }}
    where interest_rank = 1

),

engagement as (

    select * from {{ ref('int_persons_engagement_scored') }}

),

customers as (

    select * from {{ ref('int_customers_deduplicated') }}

),

preferences as (

    select * from {{ ref('int_persons_preferences_scored') }}

),

sessions as (

    select * from {{ ref('int_sessions_aggregated') }}

),

persons as (

    select
        person_id,
        count(*) as identifier_count
    from identifiers
    group by 1

),

activity_counts as (

    select
        person_id,
        sum(case when activity_kind = 'event' and channel = 'web' then 1 else 0 end)
            as web_events,
        sum(case when activity_kind = 'event' and channel = 'app' then 1 else 0 end)
            as app_events,
        sum(case when activity_kind = 'social_engagement' then 1 else 0 end)
            as social_engagements,
        sum(case when activity_kind = 'order' and channel = 'store' then 1 else 0 end)
            as store_orders
    from activities
    group by 1

),

activity_counts_ranked as (

    select
        *,
        case
            when web_events + app_events + social_engagements + store_orders = 0 then null
            when web_events >= app_events
                and web_events >= social_engagements
                and web_events >= store_orders then 'web'
            when app_events >= social_engagements and app_events >= store_orders then 'app'
            when social_engagements >= store_orders then 'social'
            else 'store'
        end as primary_channel
    from activity_counts

),

session_stats as (

    select
        person_id,
        count(*) as sessions,
        avg(cast(duration_seconds as {{ dmp.type_double() }})) as avg_session_seconds
    from sessions
    group by 1

),

as_of as (

    {{ dmp.as_of_at(ref('int_activities_attributed')) }}

),
customers_ranked as (

    select
        identifiers.person_id,
        customers.*,
        row_number() over (
            partition by identifiers.person_id
            order by
                case when customers.updated_at is null then 1 else 0 end,
                customers.updated_at desc,
                customers.customer_id
        ) as customer_rank
    from customers
    inner join identifiers
        on identifiers.identifier_type = 'customer_id'
        and customers.customer_id = identifiers.identifier_value

),

final as (

    select
        -- ids
        cast(persons.person_id as {{ dbt.type_string() }}) as person_id,

        -- attributes
        cast(persons.identifier_count as {{ dbt.type_bigint() }}) as identifier_count,
        cast(customers.gender as {{ dbt.type_string() }}) as gender,
        cast(customers.birth_year as {{ dbt.type_bigint() }}) as birth_year,
        cast(customers.country as {{ dbt.type_string() }}) as country,
        cast(customers.loyalty_tier as {{ dbt.type_string() }}) as loyalty_tier,
        cast(coalesce(customers.consent_ads, false) as {{ dbt.type_boolean() }}) as consent_ads,
        cast(coalesce(customers.consent_email, false) as {{ dbt.type_boolean() }})
            as consent_email,
        cast(interests.category as {{ dbt.type_string() }}) as top_interest,
        cast(preferences.preferred_brand as {{ dbt.type_string() }}) as preferred_brand,
        cast(preferences.price_preference as {{ dbt.type_string() }}) as price_preference,
        cast(activity_counts.primary_channel as {{ dbt.type_string() }}) as primary_channel,
        cast(coalesce(rfm.rfm_segment, 'lost') as {{ dbt.type_string() }}) as rfm_segment,

        -- measures
        cast(coalesce(activity_counts.web_events, 0) as {{ dbt.type_bigint() }}) as web_events,
        cast(coalesce(activity_counts.app_events, 0) as {{ dbt.type_bigint() }}) as app_events,
        cast(coalesce(activity_counts.social_engagements, 0) as {{ dbt.type_bigint() }})
            as social_engagements,
        cast(coalesce(activity_counts.store_orders, 0) as {{ dbt.type_bigint() }})
            as store_orders,
        cast(coalesce(session_stats.sessions, 0) as {{ dbt.type_bigint() }}) as sessions,
        cast(session_stats.avg_session_seconds as {{ dmp.type_double() }})
            as avg_session_seconds,
        cast(rfm.recency_days as {{ dbt.type_bigint() }}) as recency_days,
        cast(coalesce(rfm.frequency, 0) as {{ dbt.type_bigint() }}) as frequency,
        cast(coalesce(rfm.monetary, 0) as {{ dmp.type_double() }}) as monetary,
        cast({{ dmp.safe_divide('rfm.monetary', 'rfm.frequency') }} as {{ dmp.type_double() }})
            as avg_order_value,
        cast(coalesce(rfm.r_score, 1) as {{ dbt.type_int() }}) as r_score,
        cast(coalesce(rfm.f_score, 1) as {{ dbt.type_int() }}) as f_score,
        cast(coalesce(rfm.m_score, 1) as {{ dbt.type_int() }}) as m_score,
        cast(interests.interest_score as {{ dmp.type_double() }}) as top_interest_score,
        cast(preferences.price_index as {{ dmp.type_double() }}) as price_index,
        cast(coalesce(engagement.engagement_score, 0) as {{ dmp.type_double() }})
            as engagement_score,

        -- timestamps
        cast(rfm.first_seen_at as {{ dbt.type_timestamp() }}) as first_seen_at,
        cast(rfm.last_seen_at as {{ dbt.type_timestamp() }}) as last_seen_at,
        cast(rfm.last_purchase_at as {{ dbt.type_timestamp() }}) as last_purchase_at,
        cast(as_of.as_of_at as date) as as_of_date

    from persons
    cross join as_of
    left join activity_counts_ranked as activity_counts
        on persons.person_id = activity_counts.person_id
    left join session_stats
        on persons.person_id = session_stats.person_id
    left join rfm
        on persons.person_id = rfm.person_id
    left join interests
        on persons.person_id = interests.person_id
    left join engagement
        on persons.person_id = engagement.person_id
    left join customers_ranked as customers
        on persons.person_id = customers.person_id
        and customers.customer_rank = 1
    left join preferences
        on persons.person_id = preferences.person_id

)

select * from final
