{#- A 64-bit floating point type. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'dmp')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double
{%- endmacro %}

{% macro postgres__type_double() -%}
    double precision
{%- endmacro %}

{#- numerator / denominator as a double; null when the denominator is null or zero. -#}
{% macro safe_divide(numerator, denominator) -%}
    case
        when {{ denominator }} is null or {{ denominator }} = 0 then null
        else cast({{ numerator }} as {{ dmp.type_double() }}) / {{ denominator }}
    end
{%- endmacro %}

{#
    1..5 quintile score of `expression` over all rows of the query, using the mid-rank so that
    ties share one score and the score does not depend on row order:
        p = (rows ranked before + half of the tied rows) / rows,  score = min(5, 1 + floor(5 p)).
    Ranking is ascending (a larger value is better) unless `descending=true` (a smaller value is
    better, e.g. recency in days).
#}
{% macro quintile_score(expression, descending=false) -%}
    least(
        5,
        1 + cast(floor(
            5 * (
                (rank() over (order by {{ expression }} {{ 'desc' if descending else 'asc' }}) - 1)
                + count(*) over (partition by {{ expression }}) / 2.0
            ) / count(*) over ()
        ) as {{ dbt.type_int() }})
    )
{%- endmacro %}

{#- A float sum as a sort key: sums of the same terms added in another order (by other
    threads) differ in the last bit; rounded, equal sums tie and the next key decides. -#}
{% macro sort_key_of_sum(expression) -%}
    round({{ expression }}, 9)
{%- endmacro %}

{#- Exponential decay weight 0.5 ^ (age_days / half_life_days). -#}
{% macro decay_weight(age_days, half_life_days) -%}
    power(0.5, cast({{ age_days }} as {{ dmp.type_double() }}) / {{ half_life_days }})
{%- endmacro %}

{#- case expression mapping an event type/action to its var interest_event_weights weight. -#}
{% macro interest_weight(event_type) -%}
    case {{ event_type }}
    {%- for event_name, weight in var('interest_event_weights').items() %}
        when '{{ event_name }}' then {{ weight }}
    {%- endfor %}
        else 0
    end
{%- endmacro %}
