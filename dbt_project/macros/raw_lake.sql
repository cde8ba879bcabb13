{#
    Where the raw sources are, per engine. DuckDB: dlt loads raw.<table> into the warehouse
    itself, nothing to do. Spark: ingestion copies each raw table to the lake as Parquet
    (ingestion/lake.py, DMP_SPARK_DIR/lake/raw/<table>/) and every run declares raw.<table>
    over that folder afresh (on-run-start), so new columns and replaced files are read.
#}
{% macro register_raw_lake() -%}
    {%- if execute -%}
        {%- set lake = env_var('DMP_SPARK_DIR', '../data/spark') ~ '/lake/raw' -%}
        {%- for source in graph.sources.values() | sort(attribute='name') -%}
            {%- set relation = api.Relation.create(schema=source.schema, identifier=source.identifier) -%}
            {%- do adapter.dispatch('register_raw_lake', 'dmp')(relation, lake ~ '/' ~ source.identifier) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{% macro default__register_raw_lake(relation, path) -%}
{%- endmacro %}

{% macro spark__register_raw_lake(relation, path) -%}
    {%- do run_query('create database if not exists ' ~ relation.schema) -%}
    {%- do run_query('drop table if exists ' ~ relation) -%}
    {%- do run_query("create table " ~ relation ~ " using parquet location '" ~ path ~ "'") -%}
{%- endmacro %}
