{#
    Data tests on the event-heavy models check only the recent slice in incremental runs
    (environment variable DMP_TEST_RECENT_SLICE=true, no --full-refresh): the rows whose meta
    `test_slice_column` (a date
    or timestamp column of the tested model) lies within var tests_recent_days days of its
    latest value, which covers what an incremental run rewrites (the new days plus var
    events_lookback_days). A --full-refresh run (the nightly one, an erasure) tests every row,
    and so does every run without DMP_TEST_RECENT_SLICE. Models without the meta are always
    tested in full. An environment variable, not a dbt var, read only when tests run: a var
    that differs between builds makes dbt parse the whole project again (~6 s) every time.
    Overrides dbt's get_where_subquery, which also applies a test's own `where:` config.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- set slice = dmp.test_slice_condition(relation) -%}
    {%- set conditions = [where, slice] | select | list -%}
    {%- if conditions -%}
        {%- set filtered -%}
            {#- "where (" would read as a table alias with column names on Spark -#}
            (select * from {{ relation }} where true and ({{ conditions | join(') and (') }})) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{% macro test_slice_condition(relation) -%}
    {%- set days = var('tests_recent_days') -%}
    {%- if not execute or flags.FULL_REFRESH or env_var('DMP_TEST_RECENT_SLICE', 'false') != 'true' -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set tested = graph.nodes.get(model.attached_node) if model.attached_node else none -%}
    {%- set column = tested.config.meta.get('test_slice_column') if tested else none -%}
    {%- if column is none -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set condition -%}
        {{ column }} >= (
            select {{ dbt.dateadd('day', -days, 'max(' ~ column ~ ')') }} from {{ relation }}
        )
    {%- endset -%}
    {%- do return(condition) -%}
{%- endmacro %}
