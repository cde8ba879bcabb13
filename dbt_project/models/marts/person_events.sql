{#
    What each known person did and when: their non-bot web and app events and social
    engagements, one row per activity (the propensity model's behaviour features).
#}

{{ config(materialized=dmp.projection_materialization()) }}

with

activities as (

    select * from {{ ref('int_activities_attributed') }}

),

final as (

    select
        -- ids
        activity_kind,
        activity_id,
        person_id,
        product_id,
        campaign_id,

        -- attributes
        activity_type as event_type,
        category,
        channel,

        -- timestamps
        activity_at as occurred_at

    from activities
    where person_id is not null
        and not is_bot
        and activity_kind in ('event', 'social_engagement')

)

select * from final
