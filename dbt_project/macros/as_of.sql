{#-
    The data's "today" as a one-row select of as_of_at: the latest non-bot activity of
    `activities` (int_activities_attributed). Every score counts its ages from it. Models read
    it from the stored table, one column's scan; carried on every row of that table it cost
    a fifth of the table's build (5 of 24 s at 10M events).
-#}
{% macro as_of_at(activities) -%}
    select max(activity_at) as as_of_at from {{ activities }} where not is_bot
{%- endmacro %}
