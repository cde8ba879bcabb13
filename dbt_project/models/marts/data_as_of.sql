{#
    The data's "today", one row: the latest non-bot activity of the whole data set (null on an
    empty warehouse). Every recency, decay and engagement score refers to it, and so do the
    ML models' training cut-offs.
#}

with

final as (

    {{ dmp.as_of_at(ref('int_activities_attributed')) }}

)

select * from final
