{#
    Category association rules "bought in category A -> also bought in category B" from
    completed orders: the item_level 'category' rules of int_association_rules_mined (its doc
    gives the formulas and the var thresholds).
#}

with

rules as (

    select * from {{ ref('int_association_rules_mined') }}
    where item_level = 'category'

),

final as (

    select
        -- ids
        cast(antecedent_item as {{ dbt.type_string() }}) as antecedent_category,
        cast(consequent_item as {{ dbt.type_string() }}) as consequent_category,

        -- measures
        cast(pair_orders as {{ dbt.type_bigint() }}) as pair_orders,
        cast(antecedent_orders as {{ dbt.type_bigint() }}) as antecedent_orders,
        cast(consequent_orders as {{ dbt.type_bigint() }}) as consequent_orders,
        cast(total_orders as {{ dbt.type_bigint() }}) as total_orders,
        cast(support as {{ dmp.type_double() }}) as support,
        cast(confidence as {{ dmp.type_double() }}) as confidence,
        cast(lift as {{ dmp.type_double() }}) as lift

    from rules

)

select * from final
