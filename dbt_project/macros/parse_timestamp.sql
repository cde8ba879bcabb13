{#
    Text timestamp in any format of docs/landing.md -> UTC `timestamp` (without time zone);
    null when it cannot be parsed.
      - ISO 8601 UTC, with or without millis: 2026-03-01T12:34:56Z, 2026-03-01T12:34:56.123Z
      - ISO 8601 with an offset: 2026-03-01T20:34:56+08:00 (converted to UTC)
      - naive: 2026-03-01 12:34:56 (taken as UTC)
      - epoch milliseconds as digits, optionally with a decimal part: 1772368496000
#}
{% macro parse_timestamp(expression) -%}
    {{ return(adapter.dispatch('parse_timestamp', 'dmp')(expression)) }}
{%- endmacro %}

{% macro default__parse_timestamp(expression) -%}
    {#- ISO 8601 only: engines without a duckdb-style implementation get the plain safe cast. -#}
    {{ dbt.safe_cast('trim(' ~ expression ~ ')', api.Column.translate_type('timestamp')) }}
{%- endmacro %}

{% macro duckdb__parse_timestamp(expression) -%}
    case
        when regexp_full_match(trim({{ expression }}), '[0-9]{1,15}(\.[0-9]*)?')
            then epoch_ms(cast(round(cast(trim({{ expression }}) as double)) as bigint))
        when regexp_full_match(
            trim({{ expression }}),
            '.*[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?\s*([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)'
        )
            {#- epoch_us of a timestamptz is absolute, so the session time zone plays no part -#}
            then make_timestamp(epoch_us(try_cast(trim({{ expression }}) as timestamptz)))
        else try_cast(trim({{ expression }}) as timestamp)
    end
{%- endmacro %}


{% macro spark__parse_timestamp(expression) -%}
    {#- Spark's cast reads ISO 8601 with Z or +hh:mm (to the session time zone, UTC) and the
        naive forms; a compact offset (+0200) gets its colon first. Not ANSI mode (dbt-spark
        turns it off), so what cannot be read casts to null. -#}
    case
        when trim({{ expression }}) rlike '^[0-9]{1,15}([.][0-9]*)?$'
            then timestamp_millis(cast(round(cast(trim({{ expression }}) as double)) as bigint))
        else cast(
            regexp_replace(
                trim({{ expression }}),
                '(:[0-9]{2}([.][0-9]+)?) *([+-][0-9]{2}):?([0-9]{2})$',
                '$1$3:$4'
            ) as timestamp
        )
    end
{%- endmacro %}

{#
    The bounds for plausible timestamps: var min_valid_time, and var max_valid_time
    (null = the current time, so only timestamps in the future are rejected).
#}
{% macro min_valid_timestamp() -%}
    cast('{{ var("min_valid_time") }}' as {{ api.Column.translate_type('timestamp') }})
{%- endmacro %}

{% macro max_valid_timestamp() -%}
    {%- if var('max_valid_time', none) is none -%}
        cast({{ dbt.current_timestamp() }} as {{ api.Column.translate_type('timestamp') }})
    {%- else -%}
        cast('{{ var("max_valid_time") }}' as {{ api.Column.translate_type('timestamp') }})
    {%- endif -%}
{%- endmacro %}

{#- The timestamp when it lies within the plausible bounds, else null. -#}
{% macro bounded_timestamp(timestamp_expression) -%}
    case
        when {{ timestamp_expression }} >= {{ dmp.min_valid_timestamp() }}
            and {{ timestamp_expression }} <= {{ dmp.max_valid_timestamp() }}
            then {{ timestamp_expression }}
    end
{%- endmacro %}

{#
    True when the text `expression` (as sent: a leading blank makes it false) is an ISO
    8601 time (YYYY-MM-DD, then T, a blank or the end) written with a date before
    `date_text` ('YYYY-MM-DD'): a cheap text test that spares parse_timestamp on rows known
    to be old; false (keep, parse) for every other form. An offset moves a written time by
    at most 14 hours, so a caller wanting instants before day D passes the day before D.
#}
{% macro iso_time_written_before(expression, date_text) -%}
    coalesce(
        substr({{ expression }}, 1, 10) < '{{ date_text }}'
        and substr({{ expression }}, 5, 1) = '-'
        and substr({{ expression }}, 8, 1) = '-'
        and (length({{ expression }}) = 10 or substr({{ expression }}, 11, 1) in ('T', 't', ' ')),
        false
    )
{%- endmacro %}
