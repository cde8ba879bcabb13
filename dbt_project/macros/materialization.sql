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
