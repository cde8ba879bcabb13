{#
    Fails for every row where the boolean SQL `expression` is false or null.
    On a model the expression is complete (`revenue = 0 or is_completed`); on a column it is
    the rest of a condition on that column (`>= 0`, `between 1 and 5`).
    Restrict the rows checked with the test config `where:`.
#}
{% test expression_is_true(model, expression, column_name=none) %}

{%- set condition = (column_name ~ ' ' ~ expression) if column_name else expression %}

select *
from {{ model }}
where not coalesce(({{ condition }}), false)

{% endtest %}
