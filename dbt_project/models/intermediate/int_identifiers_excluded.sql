{#
    Identifiers that must not merge persons, with the reason:
    - placeholder: the value (lower-cased; for social handles without the @) is in
      var identity_placeholder_values, consists only of zeros and dashes (the all-zero uuid),
      or, for email_sha256 / phone_sha256, is the hash of such a value;
    - bot: a web cookie or app device in int_bot_clients_detected;
    - too_many_links: linked to more than var identity_max_links_per_identifier distinct
      user_ids, or more than that many distinct customer_ids (a shared device or e-mail).
    One row per identifier; when several reasons apply the first in this list is given.
#}

{%- set placeholders = var('identity_placeholder_values') -%}
{%- set max_links = var('identity_max_links_per_identifier') -%}

with

edges as (

    select * from {{ ref('int_identity_edges') }}

),

bot_clients as (

    select * from {{ ref('int_bot_clients_detected') }}

),

nodes as (

    select left_type as identifier_type, left_value as identifier_value, left_key as node_key
    from edges

    union

    select right_type as identifier_type, right_value as identifier_value, right_key as node_key
    from edges

),

links as (

    select left_key as node_key, right_type as linked_type, right_value as linked_value
    from edges
    where not is_self_loop

    union all

    select right_key as node_key, left_type as linked_type, left_value as linked_value
    from edges
    where not is_self_loop

),

link_counts as (

    select
        node_key,
        count(distinct case when linked_type = 'user_id' then linked_value end)
            as linked_user_ids,
        count(distinct case when linked_type = 'customer_id' then linked_value end)
            as linked_customer_ids
    from links
    group by 1

),

placeholder_nodes as (

    select
        identifier_type,
        identifier_value,
        node_key,
        1 as reason_priority,
        'placeholder' as exclusion_reason
    from nodes
    where lower(
            case
                when identifier_type = 'social_handle' then replace(identifier_value, '@', '')
                else identifier_value
            end
        ) in (
            {%- for value in placeholders %}'{{ dbt.escape_single_quotes(value | lower) }}'{{ ', ' if not loop.last }}{% endfor -%}
        )
        or replace(replace(identifier_value, '0', ''), '-', '') = ''
        or (
            identifier_type in ('email_sha256', 'phone_sha256')
            and identifier_value in (
                {%- for value in placeholders %}
                {{ dmp.sha256("'" ~ dbt.escape_single_quotes(value | lower) ~ "'") }},
                {%- endfor %}
                {%- for length in range(1, 16) %}
                {{ dmp.sha256("'" ~ ('0' * length) ~ "'") }}{{ ',' if not loop.last }}
                {%- endfor %}
            )
        )

),

bot_nodes as (

    select
        client_id_type as identifier_type,
        client_id as identifier_value,
        {{ dbt.concat(['client_id_type', "':'", 'client_id']) }} as node_key,
        2 as reason_priority,
        'bot' as exclusion_reason
    from bot_clients

),

hub_nodes as (

    select
        nodes.identifier_type,
        nodes.identifier_value,
        nodes.node_key,
        3 as reason_priority,
        'too_many_links' as exclusion_reason
    from nodes
    inner join link_counts
        on nodes.node_key = link_counts.node_key
    where link_counts.linked_user_ids > {{ max_links }}
        or link_counts.linked_customer_ids > {{ max_links }}

),

reasons as (

    select * from placeholder_nodes
    union all
    select * from bot_nodes
    union all
    select * from hub_nodes

),

reasons_ranked as (

    select
        *,
        row_number() over (partition by node_key order by reason_priority) as reason_rank
    from reasons

),

final as (

    select
        reasons_ranked.identifier_type,
        reasons_ranked.identifier_value,
        reasons_ranked.node_key,
        reasons_ranked.exclusion_reason,
        coalesce(link_counts.linked_user_ids, 0) as linked_user_ids,
        coalesce(link_counts.linked_customer_ids, 0) as linked_customer_ids
    from reasons_ranked
    left join link_counts
        on reasons_ranked.node_key = link_counts.node_key
    where reasons_ranked.reason_rank = 1

)

select * from final
