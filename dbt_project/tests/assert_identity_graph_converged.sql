{#
    Proves the label propagation in int_identifiers_clustered converged: no kept edge of the
    identity graph joins two different components or persons (int_identifiers_stitched). Fails with the offending edges when a
    component is wider than var identity_iterations hops (raise the var).
#}

{{ config(meta={'dagster': {'ref': {'name': 'int_identifiers_stitched'}}}) }}

with

edges as (

    select * from {{ ref('int_identity_edges') }}
    where not is_self_loop

),

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

split_edges as (

    select
        edges.edge_source,
        edges.left_key,
        edges.right_key,
        left_identifiers.component_key as left_component_key,
        right_identifiers.component_key as right_component_key,
        left_identifiers.person_id as left_person_id,
        right_identifiers.person_id as right_person_id
    from edges
    inner join identifiers as left_identifiers
        on edges.left_key = left_identifiers.node_key
    inner join identifiers as right_identifiers
        on edges.right_key = right_identifiers.node_key
    where left_identifiers.component_key <> right_identifiers.component_key
        or left_identifiers.person_id <> right_identifiers.person_id

)

select * from split_edges
