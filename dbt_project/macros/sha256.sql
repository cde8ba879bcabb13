{#- Lower-case hex SHA-256 of a text expression. -#}
{% macro sha256(expression) -%}
    {{ return(adapter.dispatch('sha256', 'dmp')(expression)) }}
{%- endmacro %}

{% macro default__sha256(expression) -%}
    {#- Spark, Databricks, Snowflake -#}
    sha2({{ expression }}, 256)
{%- endmacro %}

{% macro duckdb__sha256(expression) -%}
    sha256({{ expression }})
{%- endmacro %}

{% macro trino__sha256(expression) -%}
    lower(to_hex(sha256(to_utf8({{ expression }}))))
{%- endmacro %}
