{#
    One row per person (every person_id of person_identifiers): how the person shops, as counts
    a segmentation model can read (ml/segmentation.py). Bot traffic is excluded.
    - Price tier of a product = the tier of its brand within the category: the brand's mean
      catalogue price / the median of those brand means in the category, 'budget' below var
      price_budget_below, 'premium' above var price_premium_above, else 'mid' (the bands of
      person_profiles.price_preference).
    - *_tier_interactions count the person's events naming a product (views, carts, purchases)
      plus their order lines (any status), by the product's price tier.
    - A discounted order line sells below 99% of the product's catalogue price.
#}

with

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

activities as (

    select * from {{ ref('int_activities_attributed') }}
    where person_id is not null
        and not is_bot

),

sessions as (

    select * from {{ ref('int_sessions_aggregated') }}

),

orders as (

    select * from {{ ref('int_orders_aggregated') }}
    where person_id is not null

),

order_lines as (

    select * from {{ ref('int_order_lines_deduplicated') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

persons as (

    select distinct person_id
    from identifiers

),

brand_prices as (

    select
        category,
        brand,
        avg(price) as brand_price
    from products
    where category is not null
        and brand is not null
        and price > 0
    group by 1, 2

),

category_prices as (

    select
        category,
        percentile_cont(0.5) within group (order by brand_price) as median_brand_price
    from brand_prices
    group by 1

),

product_tiers as (

    select
        products.product_id,
        products.price,
        case
            when brand_prices.brand_price / category_prices.median_brand_price
                < {{ var('price_budget_below') }} then 'budget'
            when brand_prices.brand_price / category_prices.median_brand_price
                > {{ var('price_premium_above') }} then 'premium'
            else 'mid'
        end as price_tier
    from products
    inner join brand_prices
        on products.category = brand_prices.category
        and products.brand = brand_prices.brand
    inner join category_prices
        on products.category = category_prices.category

),

person_order_lines as (

    select
        orders.person_id,
        order_lines.product_id,
        order_lines.unit_price
    from order_lines
    inner join orders
        on order_lines.order_id = orders.order_id

),

product_interactions as (

    select
        person_id,
        product_id
    from activities
    where activity_kind = 'event'
        and product_id is not null

    union all

    select
        person_id,
        product_id
    from person_order_lines
    where product_id is not null

),

tier_counts as (

    select
        product_interactions.person_id,
        sum(case when product_tiers.price_tier = 'budget' then 1 else 0 end)
            as budget_tier_interactions,
        sum(case when product_tiers.price_tier = 'mid' then 1 else 0 end)
            as mid_tier_interactions,
        sum(case when product_tiers.price_tier = 'premium' then 1 else 0 end)
            as premium_tier_interactions
    from product_interactions
    inner join product_tiers
        on product_interactions.product_id = product_tiers.product_id
    group by 1

),

activity_counts as (

    select
        person_id,
        sum(case when activity_kind = 'event' then 1 else 0 end) as events,
        sum(case when activity_kind = 'social_engagement' then 1 else 0 end)
            as social_engagements,
        sum(case when activity_kind = 'order' then 1 else 0 end) as orders,
        sum(case when activity_kind = 'order' and channel = 'store' then 1 else 0 end)
            as store_orders,
        sum(case when activity_kind = 'order' then revenue else 0 end) as revenue
    from activities
    group by 1

),

session_counts as (

    select
        person_id,
        count(*) as sessions,
        sum(case when channels in ('app', 'both') then 1 else 0 end) as app_sessions
    from sessions
    group by 1

),

line_counts as (

    select
        person_order_lines.person_id,
        count(*) as order_lines,
        sum(case when person_order_lines.unit_price < 0.99 * product_tiers.price then 1 else 0 end)
            as discounted_order_lines
    from person_order_lines
    inner join product_tiers
        on person_order_lines.product_id = product_tiers.product_id
    where person_order_lines.unit_price > 0
        and product_tiers.price > 0
    group by 1

),

final as (

    select
        -- ids
        cast(persons.person_id as {{ dbt.type_string() }}) as person_id,

        -- measures
        cast(coalesce(session_counts.sessions, 0) as {{ dbt.type_bigint() }}) as sessions,
        cast(coalesce(session_counts.app_sessions, 0) as {{ dbt.type_bigint() }})
            as app_sessions,
        cast(coalesce(activity_counts.events, 0) as {{ dbt.type_bigint() }}) as events,
        cast(coalesce(tier_counts.budget_tier_interactions, 0) as {{ dbt.type_bigint() }})
            as budget_tier_interactions,
        cast(coalesce(tier_counts.mid_tier_interactions, 0) as {{ dbt.type_bigint() }})
            as mid_tier_interactions,
        cast(coalesce(tier_counts.premium_tier_interactions, 0) as {{ dbt.type_bigint() }})
            as premium_tier_interactions,
        cast(coalesce(activity_counts.social_engagements, 0) as {{ dbt.type_bigint() }})
            as social_engagements,
        cast(coalesce(activity_counts.orders, 0) as {{ dbt.type_bigint() }}) as orders,
        cast(coalesce(activity_counts.store_orders, 0) as {{ dbt.type_bigint() }})
            as store_orders,
        cast(coalesce(line_counts.order_lines, 0) as {{ dbt.type_bigint() }}) as order_lines,
        cast(coalesce(line_counts.discounted_order_lines, 0) as {{ dbt.type_bigint() }})
            as discounted_order_lines,
        cast(coalesce(activity_counts.revenue, 0) as {{ dmp.type_double() }}) as revenue

    from persons
    left join session_counts
        on persons.person_id = session_counts.person_id
    left join activity_counts
        on persons.person_id = activity_counts.person_id
    left join tier_counts
        on persons.person_id = tier_counts.person_id
    left join line_counts
        on persons.person_id = line_counts.person_id

)

select * from final
