{#
    Who touched which product, how and when: non-bot product events of known persons, plus
    their completed order lines as purchases (the order export is the source of truth for
    what was bought). The recommender's implicit feedback.
#}

{{ config(materialized=dmp.projection_materialization()) }}

with

activities as (

    select * from {{ ref('int_activities_attributed') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_deduplicated') }}

),

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

product_events as (

    select
        'event' as interaction_source,
        activity_id as interaction_id,
        person_id,
        product_id,
        activity_type as event_type,
        activity_at as occurred_at
    from activities
    where person_id is not null
        and not is_bot
        and activity_kind = 'event'
        and product_id is not null

),

purchases as (

    select
        'order_line' as interaction_source,
        order_lines.order_line_id as interaction_id,
        orders.person_id,
        order_lines.product_id,
        'purchase' as event_type,
        order_lines.order_at as occurred_at
    from order_lines
    inner join orders
        on order_lines.order_id = orders.order_id
    where order_lines.is_revenue
        and orders.person_id is not null
        and order_lines.product_id is not null
        and order_lines.order_at is not null

),

final as (

    select * from product_events

    union all

    select * from purchases

)

select * from final
