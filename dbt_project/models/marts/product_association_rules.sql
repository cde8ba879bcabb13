{#
    Product association rules "bought A -> also bought B" from completed orders: the
    item_level 'product' rules of int_association_rules_mined (its doc gives the formulas and
    the var thresholds), with both products' names and categories from the catalogue.
#}

with

rules as (

    select * from {{ ref('int_association_rules_mined') }}
    where item_level = 'product'

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

final as (

    select
        -- ids
        cast(rules.antecedent_item as {{ dbt.type_string() }}) as antecedent_product_id,
        cast(rules.consequent_item as {{ dbt.type_string() }}) as consequent_product_id,

        -- attributes
        cast(antecedents.product_name as {{ dbt.type_string() }}) as antecedent_product_name,
        cast(consequents.product_name as {{ dbt.type_string() }}) as consequent_product_name,
        cast(antecedents.category as {{ dbt.type_string() }}) as antecedent_category,
        cast(consequents.category as {{ dbt.type_string() }}) as consequent_category,

        -- measures
        cast(rules.pair_orders as {{ dbt.type_bigint() }}) as pair_orders,
        cast(rules.antecedent_orders as {{ dbt.type_bigint() }}) as antecedent_orders,
        cast(rules.consequent_orders as {{ dbt.type_bigint() }}) as consequent_orders,
        cast(rules.total_orders as {{ dbt.type_bigint() }}) as total_orders,
        cast(rules.support as {{ dmp.type_double() }}) as support,
        cast(rules.confidence as {{ dmp.type_double() }}) as confidence,
        cast(rules.lift as {{ dmp.type_double() }}) as lift

    from rules
    left join products as antecedents
        on rules.antecedent_item = antecedents.product_id
    left join products as consequents
        on rules.consequent_item = consequents.product_id

)

select * from final
