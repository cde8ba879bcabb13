{#
    Connected components of the identity graph: one component per person.

    Nodes are the identifiers of int_identity_edges minus int_identifiers_excluded; edges are
    the pairs between two kept nodes. Label propagation: every node starts with its own
    node_key as label; in each step a node takes the minimum label of itself and its
    neighbours. The steps are unrolled var identity_iterations times as plain CTEs (no
    recursive CTE, each step reads the previous one once), so the model runs unchanged on
    DuckDB, Spark and Trino. Labels are node numbers (node_key's rank), not the node_keys
    themselves: ten joins and aggregates over 64-bit numbers instead of text keys of up to 77
    characters is what keeps the model within DuckDB's memory_limit at 10M events (2.6M edges:
    out of memory at 1 GB with text labels). The rank follows node_key's order, so the
    minimum number is the minimum node_key. A component whose diameter exceeds the iterations would not
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

node_numbers as (

    select
        node_key,
        row_number() over (order by node_key) as node_number
    from (select distinct node_key from nodes) as node_keys

),

kept_edges as (

    select distinct
        left_nodes.node_number as left_number,
        right_nodes.node_number as right_number
    from edges
    inner join node_numbers as left_nodes
        on edges.left_key = left_nodes.node_key
    inner join node_numbers as right_nodes
        on edges.right_key = right_nodes.node_key
    where not edges.is_self_loop

),

graph_edges as (

    select node_number as from_number, node_number as to_number from node_numbers
    union all
    select left_number as from_number, right_number as to_number from kept_edges
    union all
    select right_number as from_number, left_number as to_number from kept_edges

),

labels_0 as (

    select
        node_number,
        node_number as label
    from node_numbers

),

{% for step in range(1, var('identity_iterations') + 1) %}
labels_{{ step }} as (

    select
        graph_edges.from_number as node_number,
        min(labels_{{ step - 1 }}.label) as label
    from graph_edges
    inner join labels_{{ step - 1 }}
        on graph_edges.to_number = labels_{{ step - 1 }}.node_number
    group by 1

),

{% endfor %}
final as (

    select
        nodes.identifier_type,
        nodes.identifier_value,
        nodes.node_key,
        components.node_key as component_key
    from nodes
    inner join node_numbers
        on nodes.node_key = node_numbers.node_key
    inner join labels_{{ var('identity_iterations') }} as labels
        on node_numbers.node_number = labels.node_number
    inner join node_numbers as components
        on labels.label = components.node_number

)

select * from final
