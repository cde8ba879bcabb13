{#
    Incremental strategy replace_slice: delete the stored rows that share the unique_key (if
    any) of a new row or match any of the model's incremental_predicates, then insert the new
    rows. For a model whose run rewrites a slice in full (its latest days, rows of one kind, a
    person's latest sessions: rows missing from the new slice must go) and a few older rows by
    key; dbt's delete+insert deletes only by key, and its incremental_predicates narrow that
    delete rather than widen it.
    A predicate names the stored table as the text {{ this }} and the new rows as
    {{ new_rows }}, put in here: config is read at parse time, when `this` does not yet carry
    the model's schema and the new rows have no table yet.
#}
{% macro get_incremental_replace_slice_sql(arg_dict) -%}
    {%- set target, source = arg_dict['target_relation'], arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- set conditions = [] -%}
    {%- if unique_key -%}
        {%- set keys = ([unique_key] if unique_key is string else unique_key) | join(', ') -%}
        {%- do conditions.append('(' ~ keys ~ ') in (select ' ~ keys ~ ' from ' ~ source ~ ')') -%}
    {%- endif -%}
    {%- for predicate in arg_dict['incremental_predicates'] or [] -%}
        {%- do conditions.append('(' ~ predicate
            | replace('{{ this }}', target | string)
            | replace('{{ new_rows }}', source | string) ~ ')') -%}
    {%- endfor -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    where {{ conditions | join('\n        or ') }};

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{%- endmacro %}

{#- The first day of the latest `days` + 1 days of `date_column` in `relation` (rows
    matching `where`), as a scalar subquery: the days an incremental run rewrites. While
    no such row is stored (a channel that arrives after the first build), every day. -#}
{% macro latest_days_start(relation, date_column, days, where='true') -%}
    (
        select coalesce(
            cast({{ dbt.dateadd(
                'day', -days, 'cast(max(' ~ date_column ~ ') as ' ~ dbt.type_timestamp() ~ ')'
            ) }} as date),
            {{ dmp.earliest_date() }}
        )
        from {{ relation }}
        where {{ where }}
    )
{%- endmacro %}

{#- A date before any data: the window start of a model that stores no rows yet. -#}
{% macro earliest_date() -%}
    {{ dbt.cast("'1900-01-01'", 'date') }}
{%- endmacro %}
