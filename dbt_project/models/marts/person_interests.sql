{#
    Every person's time-decayed interest in every category they showed one for (the long
    form of person_profiles.top_interest), for audiences such as "interest in books >= 5".
    Formula in int_person_interests_scored.
#}

with

interests as (

    select * from {{ ref('int_person_interests_scored') }}

),

final as (

    select
        -- ids
        cast(person_id as {{ dbt.type_string() }}) as person_id,
        cast(category as {{ dbt.type_string() }}) as category,

        -- measures
        cast(interest_score as {{ dmp.type_double() }}) as interest_score,
        cast(interest_rank as {{ dbt.type_bigint() }}) as interest_rank,
        cast(weighted_activities as {{ dbt.type_bigint() }}) as weighted_activities,

        -- timestamps
        cast(last_activity_at as {{ dbt.type_timestamp() }}) as last_activity_at

    from interests

)

select * from final
