{#
    Orders credited to a campaign (int_orders_attributed: the order's own tag, else the last
    engaged touch in the attribution window) by a known person: the conversions and revenue
    the budget model learns each channel's response from.
#}

with

orders as (

    select * from {{ ref('int_orders_attributed') }}

),

final as (

    select
        -- ids
        order_id,
        person_id,
        attributed_campaign_id as campaign_id,

        -- attributes
        attribution_rule,

        -- measures
        revenue,

        -- timestamps
        order_at as ordered_at

    from orders
    where attributed_campaign_id is not null
        and person_id is not null

)

select * from final
