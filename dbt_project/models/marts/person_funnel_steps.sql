{#
    The shopping funnel steps of each person on each channel with events (web, app), over the
    whole data set (bots excluded), one row per person, channel and step:
        1 visit          any event on the channel
        2 product_view   viewed a product on the channel
        3 add_to_cart    put a product in the cart on the channel
        4 order          placed a completed order on the channel (the order export, not the
                         purchase event, is the source of truth for what was bought)
    did_step: 1 when the person did the step on the channel, whatever came before;
    reached_step: 1 when the person did it and every earlier step there. Channels nobody
    visited (store, phone: orders without events) have no rows. channel_funnel counts these
    rows per channel; the report counts them per segment too.
#}

with

activities as (

    select * from {{ ref('int_activities_attributed') }}
    where person_id is not null
        and not is_bot
        and channel is not null

),

person_channel_steps as (

    select
        person_id,
        channel,
        max(case when activity_kind = 'event' then 1 else 0 end) as did_visit,
        max(case
            when activity_kind = 'event' and activity_type = 'product_view' then 1 else 0
        end) as did_product_view,
        max(case
            when activity_kind = 'event' and activity_type = 'add_to_cart' then 1 else 0
        end) as did_add_to_cart,
        max(case
            when activity_kind = 'order' and is_completed_order then 1 else 0
        end) as did_order
    from activities
    group by 1, 2

),

visited_channels as (

    select distinct channel
    from person_channel_steps
    where did_visit = 1

),

person_steps as (

    select
        steps.person_id,
        steps.channel,
        1 as step_number,
        'visit' as step,
        steps.did_visit as did_step,
        steps.did_visit as reached_step
    from person_channel_steps as steps

    union all

    select
        steps.person_id,
        steps.channel,
        2 as step_number,
        'product_view' as step,
        steps.did_product_view as did_step,
        steps.did_visit * steps.did_product_view as reached_step
    from person_channel_steps as steps

    union all

    select
        steps.person_id,
        steps.channel,
        3 as step_number,
        'add_to_cart' as step,
        steps.did_add_to_cart as did_step,
        steps.did_visit * steps.did_product_view * steps.did_add_to_cart as reached_step
    from person_channel_steps as steps

    union all

    select
        steps.person_id,
        steps.channel,
        4 as step_number,
        'order' as step,
        steps.did_order as did_step,
        steps.did_visit * steps.did_product_view * steps.did_add_to_cart * steps.did_order
            as reached_step
    from person_channel_steps as steps

),

final as (

    select
        -- ids
        person_steps.person_id,
        cast(person_steps.channel as {{ dbt.type_string() }}) as channel,
        cast(person_steps.step as {{ dbt.type_string() }}) as step,

        -- attributes
        cast(person_steps.step_number as {{ dbt.type_int() }}) as step_number,

        -- measures
        cast(person_steps.did_step as {{ dbt.type_int() }}) as did_step,
        cast(person_steps.reached_step as {{ dbt.type_int() }}) as reached_step

    from person_steps
    inner join visited_channels
        on person_steps.channel = visited_channels.channel

)

select * from final
