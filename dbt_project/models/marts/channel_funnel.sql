{#
    The shopping funnel per channel with events (web, app), over the whole data set, counted
    in persons (bots excluded); the steps each person did and reached are
    person_funnel_steps's.
    persons: reached the step and every earlier one on the channel, so it never grows along
    the funnel; step_persons: did the step on the channel, whatever came before (an order
    without a recorded cart shows here and not in persons).
#}

with

person_steps as (

    select * from {{ ref('person_funnel_steps') }}

),

funnel as (

    select
        channel,
        step_number,
        step,
        sum(reached_step) as persons,
        sum(did_step) as step_persons
    from person_steps
    group by 1, 2, 3

),

final as (

    select
        -- ids
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(step as {{ dbt.type_string() }}) as step,

        -- attributes
        cast(step_number as {{ dbt.type_int() }}) as step_number,

        -- measures
        cast(persons as {{ dbt.type_bigint() }}) as persons,
        cast(step_persons as {{ dbt.type_bigint() }}) as step_persons,
        cast(persons as {{ dmp.type_double() }}) / nullif(first_value(persons) over (
            partition by channel
            order by step_number
            rows between unbounded preceding and unbounded following
        ), 0) as share_of_visitors,
        cast(persons as {{ dmp.type_double() }}) / nullif(lag(persons) over (
            partition by channel
            order by step_number
        ), 0) as conversion_from_previous_step

    from funnel

)

select * from final
