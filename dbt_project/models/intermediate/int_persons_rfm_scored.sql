{#
    RFM per person with at least one non-bot activity.
    - recency_days: days from the last completed purchase (or, never purchased, the last
      activity) to the as-of date (the latest activity in the data).
    - frequency: completed orders; monetary: their revenue.
    - r_score: quintile (1..5, 5 = most recent) over all these persons; f_score and m_score:
      quintiles over the buyers (persons with a completed order); non-buyers get 1.
      Quintiles use the mid-rank (macro quintile_score), so ties share a score.
    - rfm_segment, first matching rule wins:
        champions           r >= 4 and f >= 4 and m >= 4
        loyal               r >= 3 and f >= 4
        potential_loyalist  r >= 3 and f in (2, 3)
        new                 r >= 4                      (recent, at most few purchases)
        at_risk             r <= 2 and f >= 3
        hibernating         r >= 2
        lost                otherwise                   (r = 1 and f <= 2)
#}

with

activities as (

    select * from {{ ref('int_activities_attributed') }}
    where person_id is not null
        and not is_bot

),

persons as (

    select
        person_id,
        min(activity_at) as first_seen_at,
        max(activity_at) as last_seen_at,
        max(case when is_completed_order then activity_at end) as last_purchase_at,
        cast(sum(case when is_completed_order then 1 else 0 end) as {{ dbt.type_bigint() }}) as frequency,
        cast(sum(case when is_completed_order then revenue else 0 end) as {{ dmp.type_double() }}) as monetary
    from activities
    group by 1

),

as_of as (

    {{ dmp.as_of_at(ref('int_activities_attributed')) }}

),

persons_recency as (

    select
        persons.*,
        as_of.as_of_at,
        {{ dbt.datediff(
            'cast(coalesce(persons.last_purchase_at, persons.last_seen_at) as date)',
            'cast(as_of.as_of_at as date)',
            'day'
        ) }} as recency_days
    from persons
    cross join as_of

),

recency_scored as (

    select
        person_id,
        {{ dmp.quintile_score('recency_days', descending=true) }} as r_score
    from persons_recency

),

buyers_scored as (

    select
        person_id,
        {{ dmp.quintile_score('frequency') }} as f_score,
        {{ dmp.quintile_score('monetary') }} as m_score
    from persons_recency
    where frequency > 0

),

scored as (

    select
        persons_recency.*,
        recency_scored.r_score,
        coalesce(buyers_scored.f_score, 1) as f_score,
        coalesce(buyers_scored.m_score, 1) as m_score
    from persons_recency
    inner join recency_scored
        on persons_recency.person_id = recency_scored.person_id
    left join buyers_scored
        on persons_recency.person_id = buyers_scored.person_id

),

final as (

    select
        -- ids
        person_id,

        -- measures
        recency_days,
        frequency,
        monetary,
        r_score,
        f_score,
        m_score,
        case
            when r_score >= 4 and f_score >= 4 and m_score >= 4 then 'champions'
            when r_score >= 3 and f_score >= 4 then 'loyal'
            when r_score >= 3 and f_score >= 2 then 'potential_loyalist'
            when r_score >= 4 then 'new'
            when r_score <= 2 and f_score >= 3 then 'at_risk'
            when r_score >= 2 then 'hibernating'
            else 'lost'
        end as rfm_segment,

        -- timestamps
        first_seen_at,
        last_seen_at,
        last_purchase_at,
        as_of_at

    from scored

)

select * from final
