{#- Fails when the model is empty (guards against a silently broken join). -#}
{% test at_least_one_row(model) %}

with

counted as (

    select count(*) as row_count
    from {{ model }}

)

select * from counted
where row_count = 0

{% endtest %}
