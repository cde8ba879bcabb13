{#
    Each known person's order history: their completed, dated orders (the input of customer
    value, propensity labels and the order-only segmentation).
#}

with

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

final as (

    select
        -- ids
        order_id,
        person_id,
        campaign_id,

        -- attributes
        channel,

        -- measures
        revenue,

        -- timestamps
        order_at as ordered_at

    from orders
    where is_completed
        and person_id is not null
        and order_at is not null

)

select * from final
