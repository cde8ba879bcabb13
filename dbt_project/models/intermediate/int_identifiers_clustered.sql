{#
    Connected components of the identity graph: one component per person.

    Nodes are the identifiers of int_identity_edges minus int_identifiers_excluded; edges are
    the pairs between two kept nodes. Label propagation: every node starts with its own
    node_key as label; in each step a node takes the minimum label of itself and its
    neighbours. The steps are unrolled var identity_iterations times as plain CTEs (no
    recursive CTE, each step reads the previous one once), so the model runs unchanged on
    DuckDB, Spark and Trino. A component whose diameter exceeds the iterations would not
    converge: tests/assert_identity_graph_converged.sql fails then (raise the var).

    component_key = the component's minimum node_key; it changes when a smaller identifier
    joins. The person_id is not made here: int_person_ids_assigned keeps it stable across runs
    and int_identifiers_stitched joins both.
#}

with

edges as (

    select * from {{ ref('int_identity_edges') }}

),

excluded as (

    select * from {{ ref('int_identifiers_excluded') }}

),

observed_nodes as (

    select left_type as identifier_type, left_value as identifier_value, left_key as node_key
    from edges

    union

    select right_type as identifier_type, right_value as identifier_value, right_key as node_key
    from edges

),

nodes as (

    select observed_nodes.*
    from observed_nodes
    left join excluded
        on observed_nodes.node_key = excluded.node_key
    where excluded.node_key is null

),

kept_edges as (

    select distinct
        edges.left_key,
        edges.right_key
    from edges
    inner join nodes as left_nodes
        on edges.left_key = left_nodes.node_key
    inner join nodes as right_nodes
        on edges.right_key = right_nodes.node_key
    where not edges.is_self_loop

),

graph_edges as (

    select node_key as from_key, node_key as to_key from nodes
    union all
    select left_key as from_key, right_key as to_key from kept_edges
    union all
    select right_key as from_key, left_key as to_key from kept_edges

),

labels_0 as (

    select
        node_key,
        node_key as label
    from nodes

),

{% for step in range(1, var('identity_iterations') + 1) %}
labels_{{ step }} as (

    select
        graph_edges.from_key as node_key,
        min(labels_{{ step - 1 }}.label) as label
    from graph_edges
    inner join labels_{{ step - 1 }}
        on graph_edges.to_key = labels_{{ step - 1 }}.node_key
    group by 1

),

{% endfor %}
final as (

    select
        nodes.identifier_type,
        nodes.identifier_value,
        nodes.node_key,
        labels.label as component_key
    from nodes
    inner join labels_{{ var('identity_iterations') }} as labels
        on nodes.node_key = labels.node_key

)

select * from final
