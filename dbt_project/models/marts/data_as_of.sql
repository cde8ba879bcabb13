{#
    The data's "today", one row: the latest non-bot activity of the whole data set (null on an
    empty warehouse). Every recency, decay and engagement score refers to it, and so do the
    ML models' training cut-offs.
#}

with

activities as (

    select * from {{ ref('int_activities_attributed') }}

),

final as (

    select
        max(activity_at) as as_of_at
    from activities
    where not is_bot

)

select * from final
