{#
    Time-decayed interest of each person in each category, from non-bot events and social
    engagements that name a category (directly or through the product):
        interest = sum over activities of  weight(activity_type) * 0.5 ^ (age_days / half_life)
    weight from var interest_event_weights (types without a weight are ignored), half_life
    var interest_half_life_days, age_days = whole days between the activity and the as-of date.
    interest_rank 1 is the person's top interest (ties: alphabetical category).
#}

with

activities as (

    select * from {{ ref('int_activities_attributed') }}
    where person_id is not null
        and not is_bot
        and category is not null
        and activity_kind in ('event', 'social_engagement')

),

as_of as (

    {{ dmp.as_of_at(ref('int_activities_attributed')) }}

),

activities_weighted as (

    select
        person_id,
        category,
        {{ dmp.interest_weight('activity_type') }} as weight,
        {{ dbt.datediff('activity_date', 'cast(as_of.as_of_at as date)', 'day') }} as age_days,
        activity_at
    from activities
    cross join as_of

),

interests as (

    select
        person_id,
        category,
        sum(weight * {{ dmp.decay_weight('age_days', var('interest_half_life_days')) }})
            as interest_score,
        count(*) as weighted_activities,
        max(activity_at) as last_activity_at
    from activities_weighted
    where weight > 0
    group by 1, 2

),

final as (

    select
        -- ids
        person_id,
        category,

        -- measures
        interest_score,
        weighted_activities,
        row_number() over (
            partition by person_id
            order by {{ dmp.sort_key_of_sum('interest_score') }} desc, category
        ) as interest_rank,

        -- timestamps
        last_activity_at

    from interests

)

select * from final
