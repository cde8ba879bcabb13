{#- The stitched identity graph: every identifier that identifies a person, and the person. -#}

with

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

final as (

    select
        cast(identifier_type as {{ dbt.type_string() }}) as identifier_type,
        cast(identifier_value as {{ dbt.type_string() }}) as identifier_value,
        cast(person_id as {{ dbt.type_string() }}) as person_id
    from identifiers

)

select * from final
