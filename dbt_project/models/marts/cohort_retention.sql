{#
    Cohort retention: of the persons first seen in a week (or month), the share active again
    1, 2, ... weeks (months) later. Cohorts are cut three ways (cohort_dimension):
        all                 every person of the period: cohort_value 'all'
        first_seen_channel  by the channel of the person's first activity
    (by segment: the report joins ml.person_segments to person_activity_periods, since
    the segments are computed after dbt.)
    A cohort has a row for every period of the data from its own on, retained_persons 0 where
    nobody of it was active: a missing cell never reads as "not measured". A period with no
    activity at all in the data has no row. period_is_complete is false for the period the
    data stops in before its last day (its retention is still growing).
#}

with

periods as (

    select * from {{ ref('person_activity_periods') }}

),

as_of as (

    select cast(as_of_at as date) as as_of_date
    from ({{ dmp.as_of_at(ref('int_activities_attributed')) }}) as latest

),

periods_dimensioned as (

    select
        person_id,
        cohort_grain,
        cohort_period,
        activity_period,
        'all' as cohort_dimension,
        'all' as cohort_value
    from periods

    union all

    select
        person_id,
        cohort_grain,
        cohort_period,
        activity_period,
        'first_seen_channel' as cohort_dimension,
        first_seen_channel as cohort_value
    from periods

),

-- each person has one row per grain and period, so rows count persons
retained as (

    select
        cohort_grain,
        cohort_dimension,
        cohort_value,
        cohort_period,
        activity_period,
        count(*) as retained_persons
    from periods_dimensioned
    group by 1, 2, 3, 4, 5

),

cohorts as (

    select
        cohort_grain,
        cohort_dimension,
        cohort_value,
        cohort_period,
        retained_persons as cohort_persons
    from retained
    where activity_period = cohort_period

),

data_periods as (

    select distinct
        cohort_grain,
        activity_period
    from periods

),

cohort_periods as (

    select
        cohorts.cohort_grain,
        cohorts.cohort_dimension,
        cohorts.cohort_value,
        cohorts.cohort_period,
        data_periods.activity_period,
        cohorts.cohort_persons
    from cohorts
    inner join data_periods
        on cohorts.cohort_grain = data_periods.cohort_grain
        and cohorts.cohort_period <= data_periods.activity_period

),

retention as (

    select
        cohort_periods.*,
        coalesce(retained.retained_persons, 0) as retained_persons,
        case cohort_periods.cohort_grain
            when 'week' then {{ dbt.datediff(
                'cohort_periods.cohort_period', 'cohort_periods.activity_period', 'week'
            ) }}
            else {{ dbt.datediff(
                'cohort_periods.cohort_period', 'cohort_periods.activity_period', 'month'
            ) }}
        end as periods_since_first_seen,
        case cohort_periods.cohort_grain
            when 'week' then {{ dbt.dateadd('day', 6, 'cohort_periods.activity_period') }}
            else {{ dbt.dateadd(
                'day', -1, dbt.dateadd('month', 1, 'cohort_periods.activity_period')
            ) }}
        end as period_last_day
    from cohort_periods
    left join retained
        on cohort_periods.cohort_grain = retained.cohort_grain
        and cohort_periods.cohort_dimension = retained.cohort_dimension
        and cohort_periods.cohort_value = retained.cohort_value
        and cohort_periods.cohort_period = retained.cohort_period
        and cohort_periods.activity_period = retained.activity_period

),

final as (

    select
        -- ids
        cast(retention.cohort_grain as {{ dbt.type_string() }}) as cohort_grain,
        cast(retention.cohort_dimension as {{ dbt.type_string() }}) as cohort_dimension,
        cast(retention.cohort_value as {{ dbt.type_string() }}) as cohort_value,
        cast(retention.cohort_period as date) as cohort_period,
        cast(retention.periods_since_first_seen as {{ dbt.type_int() }})
            as periods_since_first_seen,

        -- attributes
        cast(retention.activity_period as date) as activity_period,
        cast(retention.period_last_day as date) <= as_of.as_of_date as period_is_complete,

        -- measures
        cast(retention.cohort_persons as {{ dbt.type_bigint() }}) as cohort_persons,
        cast(retention.retained_persons as {{ dbt.type_bigint() }}) as retained_persons,
        cast(retention.retained_persons as {{ dmp.type_double() }})
            / retention.cohort_persons as retention_rate

    from retention
    cross join as_of

)

select * from final
