{#
    Association rules "bought A -> also bought B" between the items of completed orders, at
    two levels: item_level 'product' (product_id) and 'category' (the product's category).
    - A basket is one completed order; its items are the distinct products (categories) of
      its lines with a product_id and a valid (positive) quantity. total_orders counts these
      baskets, the same for both levels.
    - For antecedent A and consequent B (both directions of every pair):
        pair_orders = baskets with A and B, antecedent_orders / consequent_orders = with A / B
        support     = pair_orders / total_orders
        confidence  = pair_orders / antecedent_orders
        lift        = confidence / (consequent_orders / total_orders)
                    = pair_orders * total_orders / (antecedent_orders * consequent_orders)
      each computed with one division, so equal counts give bit-equal values.
    - A pair is kept when pair_orders >= var association_min_pair_orders and
      support >= var association_min_support. Items below either threshold on their own are
      dropped before pairing (a pair is never in more baskets than each of its items), which
      keeps the self-join small.
#}

with

order_lines as (

    select * from {{ ref('int_order_lines_deduplicated') }}
    where is_revenue
        and product_id is not null
        and quantity is not null

),

basket_items as (

    select distinct
        order_id,
        'product' as item_level,
        product_id as item
    from order_lines

    union all

    select distinct
        order_id,
        'category' as item_level,
        category as item
    from order_lines
    where category is not null

),

baskets as (

    select count(distinct order_id) as total_orders
    from order_lines

),

items as (

    select
        item_level,
        item,
        count(*) as item_orders
    from basket_items
    group by 1, 2

),

frequent_items as (

    select items.*
    from items
    cross join baskets
    where items.item_orders >= {{ var('association_min_pair_orders') }}
        and {{ dmp.safe_divide('items.item_orders', 'baskets.total_orders') }}
            >= {{ var('association_min_support') }}

),

frequent_basket_items as (

    select basket_items.*
    from basket_items
    inner join frequent_items
        on basket_items.item_level = frequent_items.item_level
        and basket_items.item = frequent_items.item

),

pairs as (

    select
        lower_items.item_level,
        lower_items.item as lower_item,
        higher_items.item as higher_item,
        count(*) as pair_orders
    from frequent_basket_items as lower_items
    inner join frequent_basket_items as higher_items
        on lower_items.order_id = higher_items.order_id
        and lower_items.item_level = higher_items.item_level
        and lower_items.item < higher_items.item
    group by 1, 2, 3

),

frequent_pairs as (

    select
        pairs.*,
        baskets.total_orders,
        {{ dmp.safe_divide('pairs.pair_orders', 'baskets.total_orders') }} as support
    from pairs
    cross join baskets
    where pairs.pair_orders >= {{ var('association_min_pair_orders') }}

),

rules as (

    select
        item_level,
        lower_item as antecedent_item,
        higher_item as consequent_item,
        pair_orders,
        total_orders,
        support
    from frequent_pairs
    where support >= {{ var('association_min_support') }}

    union all

    select
        item_level,
        higher_item as antecedent_item,
        lower_item as consequent_item,
        pair_orders,
        total_orders,
        support
    from frequent_pairs
    where support >= {{ var('association_min_support') }}

),

final as (

    select
        -- ids
        rules.item_level,
        rules.antecedent_item,
        rules.consequent_item,

        -- measures
        rules.pair_orders,
        antecedents.item_orders as antecedent_orders,
        consequents.item_orders as consequent_orders,
        rules.total_orders,
        rules.support,
        {{ dmp.safe_divide('rules.pair_orders', 'antecedents.item_orders') }} as confidence,
        {{ dmp.safe_divide(
            'rules.pair_orders * rules.total_orders',
            '(antecedents.item_orders * consequents.item_orders)',
        ) }} as lift

    from rules
    inner join items as antecedents
        on rules.item_level = antecedents.item_level
        and rules.antecedent_item = antecedents.item
    inner join items as consequents
        on rules.item_level = consequents.item_level
        and rules.consequent_item = consequents.item

)

select * from final
