{#
    One row per person assigned to an arm of a campaign test: a variant sent to them, or held
    out (touch types in var experiment_held_out_touch_types: in the test, not mailed; the
    importers write Hillstrom's "No E-Mail" arm so). An arm without a variant name is named
    by its touch type ('sent' for a campaign that tested nothing, e.g. bank-marketing's calls:
    one arm, read out alone). held_out marks the untreated arm, which the analysis takes as
    the control. Outcomes count from the person's first touch for var
    experiment_response_window_days: converted when they placed an order carrying the
    campaign's tag (coupon / newsletter link; a held-out person's order carries it when the
    test's read-out tagged it, as Hillstrom's does), whatever became of it (a later
    cancellation or refund does not undo the response the test measures); spend is those
    orders' completed revenue; visit when they had a non-bot web or app event (no tag needed:
    the visit is the outcome whether or not it came through the e-mail). A person touched in
    two arms keeps the first touch's arm (ties: the first by name).
#}

{%- set held_out_types = var('experiment_held_out_touch_types') -%}
{%- set held_out_list -%}
    {%- for touch_type in held_out_types -%}'{{ touch_type }}'{{ ", " if not loop.last }}{%- endfor -%}
{%- endset %}

with

campaign_touches as (

    select * from {{ ref('stg_marketing__campaign_touches') }}

),

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

orders as (

    select * from {{ ref('int_orders_aggregated') }}

),

activities as (

    select * from {{ ref('int_activities_attributed') }}

),

touches as (

    select
        campaign_touches.campaign_id,
        identifiers.person_id,
        coalesce(campaign_touches.variant, campaign_touches.touch_type) as variant,
        campaign_touches.touch_type in ({{ held_out_list }}) as held_out,
        campaign_touches.touched_at,
        row_number() over (
            partition by campaign_touches.campaign_id, identifiers.person_id
            order by
                campaign_touches.touched_at,
                coalesce(campaign_touches.variant, campaign_touches.touch_type)
        ) as touch_rank
    from campaign_touches
    inner join identifiers
        on identifiers.identifier_type = 'customer_id'
        and campaign_touches.customer_id = identifiers.identifier_value
    where campaign_touches.touched_at is not null
        and campaign_touches.touch_type in ('sent', {{ held_out_list }})

),

assigned as (

    select
        campaign_id,
        person_id,
        variant,
        held_out,
        touched_at as first_touched_at,
        {{ dbt.dateadd('day', var('experiment_response_window_days'), 'touched_at') }}
            as window_ends_at
    from touches
    where touch_rank = 1

),

tagged_orders as (

    select
        assigned.campaign_id,
        assigned.person_id,
        count(*) as orders,
        sum(orders.revenue) as spend
    from assigned
    inner join orders
        on orders.person_id = assigned.person_id
        and orders.campaign_id = assigned.campaign_id
        and orders.order_at >= assigned.first_touched_at
        and orders.order_at < assigned.window_ends_at
    group by 1, 2

),

visits as (

    select distinct
        assigned.campaign_id,
        assigned.person_id
    from assigned
    inner join activities
        on activities.person_id = assigned.person_id
        and activities.activity_at >= assigned.first_touched_at
        and activities.activity_at < assigned.window_ends_at
    where activities.activity_kind = 'event'
        and not activities.is_bot

),

final as (

    select
        -- ids
        assigned.campaign_id,
        assigned.variant,
        assigned.person_id,

        -- attributes
        assigned.held_out,

        -- measures
        case when tagged_orders.orders > 0 then 1 else 0 end as converted,
        coalesce(tagged_orders.spend, 0) as spend,
        case when visits.person_id is not null then 1 else 0 end as visit,

        -- timestamps
        assigned.first_touched_at,
        assigned.window_ends_at

    from assigned
    left join tagged_orders
        on assigned.campaign_id = tagged_orders.campaign_id
        and assigned.person_id = tagged_orders.person_id
    left join visits
        on assigned.campaign_id = visits.campaign_id
        and assigned.person_id = visits.person_id

)

select * from final
