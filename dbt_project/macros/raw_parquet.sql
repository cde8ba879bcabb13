{#
    Hands the raw tables of a built DuckDB warehouse to another engine through Parquet, one
    folder per source table under DMP_SPARK_DIR/raw, which must exist (issue 16: the same
    project on Spark).
        dbt run-operation raw_parquet_handover               (DuckDB: writes the Parquet)
        dbt run-operation raw_parquet_handover --target spark (Spark: tables raw.<table> on it)
#}
{% macro raw_parquet_handover() -%}
    {%- set folder = env_var('DMP_SPARK_DIR', '../data/spark') ~ '/raw' -%}
    {%- for source in graph.sources.values() | sort(attribute='name') -%}
        {%- set relation = api.Relation.create(schema=source.schema, identifier=source.identifier) -%}
        {%- do adapter.dispatch('raw_parquet_handover', 'dmp')(relation, folder ~ '/' ~ source.identifier) -%}
        {%- do log('raw_parquet_handover: ' ~ relation ~ ' <-> ' ~ folder ~ '/' ~ source.identifier, info=true) -%}
    {%- endfor -%}
{%- endmacro %}

{% macro duckdb__raw_parquet_handover(relation, path) -%}
    {%- do run_query(
        "copy " ~ relation ~ " to '" ~ path ~ "' (format parquet, per_thread_output true, overwrite true)"
    ) -%}
{%- endmacro %}

{% macro spark__raw_parquet_handover(relation, path) -%}
    {%- do run_query('create database if not exists ' ~ relation.schema) -%}
    {%- do run_query('drop table if exists ' ~ relation) -%}
    {%- do run_query("create table " ~ relation ~ " using parquet location '" ~ path ~ "'") -%}
{%- endmacro %}
