{#
    The materialization of the incremental models. dbt-spark on plain Parquet tables offers
    only the append and insert_overwrite strategies: delete+insert, merge and the delete of
    int_events_sessionised's post-hook need Delta Lake, whose jars cannot be installed here
    (they come from Maven at session start). So Spark rebuilds these models in full every
    run: the same rows, without the incremental saving and without stored person ids.
#}
{% macro incremental_materialization() -%}
    {{ return(adapter.dispatch('incremental_materialization', 'dmp')()) }}
{%- endmacro %}

{% macro default__incremental_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro spark__incremental_materialization() -%}
    {{ return('table') }}
{%- endmacro %}

{#
    The materialization of the marts that only filter and rename rows of other tables
    (person_events, person_product_interactions): a view on DuckDB, so a build does not copy
    their ~15M rows at 10M events; a table on Spark, whose marts Python reads as the Parquet
    files each mart leaves in the warehouse folder (marts.attach_parquet_marts).
#}
{% macro projection_materialization() -%}
    {{ return(adapter.dispatch('projection_materialization', 'dmp')()) }}
{%- endmacro %}

{% macro default__projection_materialization() -%}
    {{ return('view') }}
{%- endmacro %}

{% macro spark__projection_materialization() -%}
    {{ return('table') }}
{%- endmacro %}
