{#
    Every kept identifier with its person: the components of int_identifiers_clustered (label
    propagation over the identity graph) with the stable person_id int_person_ids_assigned
    keeps for them. Identifiers that left the graph (excluded later) are not here.
#}

with

clustered as (

    select * from {{ ref('int_identifiers_clustered') }}

),

assigned as (

    select * from {{ ref('int_person_ids_assigned') }}

),

final as (

    select
        clustered.identifier_type,
        clustered.identifier_value,
        clustered.node_key,
        clustered.component_key,
        assigned.person_id
    from clustered
    inner join assigned
        on clustered.node_key = assigned.node_key

)

select * from final
