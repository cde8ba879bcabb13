{#
    What a person prefers, from their completed order lines (is_revenue) of known persons:
    - preferred_brand: the brand with most units bought (ties: more revenue, then name).
    - price_index: sum(quantity * unit_price / category median unit price)
      / sum(quantity), over lines with a category and a price: 1 = pays the category's
      typical price, 2 = twice it. The median is over all completed lines of the category
      (each line once, not weighted by quantity).
    - price_preference: 'budget' when price_index < var price_budget_below, 'premium' when
      > var price_premium_above, else 'mid'; null without priced lines.
#}

with

order_lines as (

    select * from {{ ref('int_order_lines_deduplicated') }}
    where is_revenue

),

orders as (

    select * from {{ ref('int_orders_aggregated') }}
    where person_id is not null

),

person_lines as (

    select
        orders.person_id,
        order_lines.brand,
        order_lines.category,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.line_revenue
    from order_lines
    inner join orders
        on order_lines.order_id = orders.order_id

),

category_prices as (

    select
        category,
        percentile_cont(0.5) within group (order by unit_price) as median_unit_price
    from order_lines
    where category is not null
        and unit_price > 0
    group by 1

),

brands as (

    select
        person_id,
        brand,
        sum(quantity) as units,
        sum(line_revenue) as brand_revenue
    from person_lines
    where brand is not null
    group by 1, 2

),

brands_ranked as (

    select
        *,
        row_number() over (
            partition by person_id
            order by units desc, {{ dmp.sort_key_of_sum('brand_revenue') }} desc, brand
        ) as brand_rank
    from brands

),

prices as (

    select
        person_lines.person_id,
        sum(person_lines.quantity * person_lines.unit_price / category_prices.median_unit_price)
            / sum(person_lines.quantity) as price_index
    from person_lines
    inner join category_prices
        on person_lines.category = category_prices.category
    where person_lines.quantity > 0
        and person_lines.unit_price > 0
    group by 1

),

persons as (

    select person_id from brands_ranked
    union
    select person_id from prices

),

final as (

    select
        -- ids
        persons.person_id,

        -- attributes
        brands_ranked.brand as preferred_brand,
        case
            when prices.price_index is null then null
            when prices.price_index < {{ var('price_budget_below') }} then 'budget'
            when prices.price_index > {{ var('price_premium_above') }} then 'premium'
            else 'mid'
        end as price_preference,

        -- measures
        brands_ranked.units as preferred_brand_units,
        cast(prices.price_index as {{ dmp.type_double() }}) as price_index

    from persons
    left join brands_ranked
        on persons.person_id = brands_ranked.person_id
        and brands_ranked.brand_rank = 1
    left join prices
        on persons.person_id = prices.person_id

)

select * from final
