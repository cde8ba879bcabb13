{#
    Engagement per person with at least one non-bot activity (events, social engagements,
    orders):
        engagement_raw   = sum over activities of 0.5 ^ (age_days / var interest_half_life_days)
                         + var engagement_active_day_weight
                           * distinct active days in the last var engagement_window_days days
        engagement_score = 100 * ln(1 + engagement_raw) / max over persons of ln(1 + engagement_raw)
    so the most engaged person scores 100 and the log keeps heavy users from flattening the
    rest; ages count whole days back from the as-of date.
#}

with

activities as (

    select * from {{ ref('int_activities_attributed') }}
    where person_id is not null
        and not is_bot

),

as_of as (

    {{ dmp.as_of_at(ref('int_activities_attributed')) }}

),

activities_aged as (

    select
        person_id,
        activity_date,
        {{ dbt.datediff('activity_date', 'cast(as_of.as_of_at as date)', 'day') }} as age_days
    from activities
    cross join as_of

),

persons as (

    select
        person_id,
        count(*) as activities,
        sum({{ dmp.decay_weight('age_days', var('interest_half_life_days')) }})
            as decayed_activities,
        count(distinct
            case when age_days < {{ var('engagement_window_days') }} then activity_date end
        ) as active_days_in_window
    from activities_aged
    group by 1

),

persons_raw as (

    select
        *,
        decayed_activities
            + {{ var('engagement_active_day_weight') }} * active_days_in_window
            as engagement_raw
    from persons

),

final as (

    select
        -- ids
        person_id,

        -- measures
        activities,
        decayed_activities,
        active_days_in_window,
        engagement_raw,
        coalesce(
            round(
                100 * {{ dmp.safe_divide('ln(1 + engagement_raw)', 'max(ln(1 + engagement_raw)) over ()') }},
                1
            ),
            0
        ) as engagement_score

    from persons_raw

)

select * from final
