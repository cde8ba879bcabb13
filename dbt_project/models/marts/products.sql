{#
    The product catalogue as the shop exports it, one row per product (the recommender's
    content features).
#}

with

products as (

    select * from {{ ref('stg_shop__products') }}

),

final as (

    select
        -- ids
        product_id,

        -- attributes
        product_name,
        category,
        brand,
        currency,

        -- measures
        price

    from products

)

select * from final
