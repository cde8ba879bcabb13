{#
    Per UTC day and channel: web, app and social carry events; web, app and store carry orders
    (an order's channel). Bot events are counted apart (bot_events) and nowhere else.
        events          non-bot events / social engagements
        active_persons  distinct persons with any non-bot activity (events or orders of any status)
        orders          completed orders;  revenue  their revenue
        last_activity_at  the latest non-bot activity (tells a partial last day in the report)
#}

with

activities as (

    select * from {{ ref('int_activities_attributed') }}

),

final as (

    select
        cast(activity_date as date) as activity_date,
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(sum(
            case when activity_kind <> 'order' and not is_bot then 1 else 0 end
        ) as {{ dbt.type_bigint() }}) as events,
        cast(sum(
            case when is_bot then 1 else 0 end
        ) as {{ dbt.type_bigint() }}) as bot_events,
        cast(count(distinct
            case when not is_bot then person_id end
        ) as {{ dbt.type_bigint() }}) as active_persons,
        cast(sum(
            case when is_completed_order then 1 else 0 end
        ) as {{ dbt.type_bigint() }}) as orders,
        cast(sum(
            case when is_completed_order then revenue else 0 end
        ) as {{ dmp.type_double() }}) as revenue,
        cast(max(
            case when not is_bot then activity_at end
        ) as {{ dbt.type_timestamp() }}) as last_activity_at
    from activities
    where channel is not null
    group by 1, 2

)

select * from final
