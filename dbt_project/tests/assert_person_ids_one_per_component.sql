{#
    A person_id names one component of the identity graph: the id memory of
    int_person_ids_assigned never gives one id to two components (after a split, say).
#}

{{ config(meta={'dagster': {'ref': {'name': 'int_identifiers_stitched'}}}) }}

with

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

shared_ids as (

    select
        person_id,
        count(distinct component_key) as components
    from identifiers
    group by 1
    having count(distinct component_key) > 1

)

select * from shared_ids
