{#- Trimmed text, empty -> null. -#}
{% macro clean_text(expression) -%}
    nullif(trim({{ expression }}), '')
{%- endmacro %}

{#- Trimmed, lower-cased text, empty -> null. -#}
{% macro clean_lower(expression) -%}
    nullif(lower(trim({{ expression }})), '')
{%- endmacro %}

{#- true/false/yes/no/1/0 (any case, t/f/y/n too) -> boolean; anything else -> null. -#}
{% macro parse_boolean(expression) -%}
    case
        when lower(trim({{ expression }})) in ('true', 't', 'yes', 'y', '1') then true
        when lower(trim({{ expression }})) in ('false', 'f', 'no', 'n', '0') then false
    end
{%- endmacro %}

{#- Only the digits of a text (phone numbers). -#}
{% macro digits_only(expression) -%}
    {{ return(adapter.dispatch('digits_only', 'dmp')(expression)) }}
{%- endmacro %}

{% macro default__digits_only(expression) -%}
    regexp_replace({{ expression }}, '[^0-9]', '')
{%- endmacro %}

{% macro duckdb__digits_only(expression) -%}
    regexp_replace({{ expression }}, '[^0-9]', '', 'g')
{%- endmacro %}

{#- SHA-256 of the trimmed, lower-cased e-mail; null when empty. -#}
{% macro hash_email(expression) -%}
    {{ dmp.sha256(dmp.clean_lower(expression)) }}
{%- endmacro %}

{#- SHA-256 of the digits of a phone number; null when it has no digits. -#}
{% macro hash_phone(expression) -%}
    {{ dmp.sha256('nullif(' ~ dmp.digits_only(expression) ~ ", '')") }}
{%- endmacro %}

{#- Social handle: trimmed, lower-cased, with exactly the leading @ it is known by. -#}
{% macro clean_handle(expression) -%}
    case
        when {{ dmp.clean_lower(expression) }} like '@%' then {{ dmp.clean_lower(expression) }}
        when {{ dmp.clean_lower(expression) }} is not null
            then {{ dbt.concat(["'@'", dmp.clean_lower(expression)]) }}
    end
{%- endmacro %}
