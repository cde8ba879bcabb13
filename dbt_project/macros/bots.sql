{#- true when the user agent names itself a robot (var bot_user_agent_patterns, any case). -#}
{% macro is_bot_user_agent(user_agent) -%}
    coalesce(
        {%- for pattern in var('bot_user_agent_patterns') %}
        lower({{ user_agent }}) like '%{{ pattern | lower }}%'{{ ' or' if not loop.last }}
        {%- endfor %},
        false
    )
{%- endmacro %}
