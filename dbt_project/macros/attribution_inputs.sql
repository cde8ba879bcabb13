{#
    What int_activities_attributed attributes with, one row per input key: each identifier's
    person (int_identifiers_stitched), each bot client (int_bot_clients_detected) and each
    product's catalogue category (stg_shop__products). Its post-hook keeps this state beside
    the table (<table>__inputs); its next incremental run rewrites only the older events whose
    keys changed since.
#}
{% macro attribution_inputs() -%}
    select
        'person' as input,
        identifier_type as key_type,
        identifier_value as key_value,
        person_id as input_value
    from {{ ref('int_identifiers_stitched') }}
    union all
    select
        'bot' as input,
        client_id_type as key_type,
        client_id as key_value,
        'bot' as input_value
    from {{ ref('int_bot_clients_detected') }}
    union all
    select
        'category' as input,
        'product_id' as key_type,
        product_id as key_value,
        category as input_value
    from {{ ref('stg_shop__products') }}
{%- endmacro %}

{#- The kept inputs of the model being run: its relation, none when not there (a first run,
    a warehouse built before the table kept them). -#}
{% macro attribution_inputs_kept() -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(adapter.get_relation(this.database, this.schema, this.identifier ~ '__inputs')) }}
{%- endmacro %}

{#- Post-hook: replace the kept inputs with this run's. Only where the model is incremental
    (not on Spark, which rebuilds it in full every run). -#}
{% macro keep_attribution_inputs() -%}
    {%- if config.get('materialized') == 'incremental' -%}
        create or replace table {{ this.incorporate(path={'identifier': this.identifier ~ '__inputs'}) }}
        as {{ dmp.attribution_inputs() }}
    {%- endif -%}
{%- endmacro %}
