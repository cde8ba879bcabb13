{#
    Every completed, dated order with the campaign it is credited to (one campaign per order):
    1. order_tag: the order carries a campaign_id (a coupon or the utm tag of the checkout);
       that campaign gets it, since it is direct evidence.
    2. last_touch: otherwise the person's latest engaged touch at or before the order and no
       more than var attribution_window_days before it: a click-through visit (a web event with
       utm_campaign), a social engagement with a campaign, an e-mail sent. Only when there is
       none, the latest display impression within var attribution_view_through_days (a
       view-through). Ties in time go to clicks, then social, sends, then campaign_id.
    3. none: no tag and no touch in the window (attributed_campaign_id null).
    A tagged order also gets, as its touch, the person's latest click on that same campaign in
    the window (the visit its checkout utm came from), so click-through conversions and the
    clicks that converted are counted alike for tagged and untagged orders.
    Touches reach the person through the identity graph (customer_id of an e-mail, cookie of an
    impression), so a touch on one device credits an order on another.
#}

with

orders as (

    select * from {{ ref('int_orders_aggregated') }}
    where is_completed
        and order_at is not null

),

activities as (

    select * from {{ ref('int_activities_attributed') }}

),

campaign_touches as (

    select * from {{ ref('stg_marketing__campaign_touches') }}

),

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

touches as (

    select
        person_id,
        campaign_id,
        case when activity_kind = 'event' then 'click' else 'social' end as touch_kind,
        case when activity_kind = 'event' then 1 else 2 end as touch_priority,
        activity_at as touched_at
    from activities
    where activity_kind in ('event', 'social_engagement')
        and campaign_id is not null
        and person_id is not null
        and not is_bot

    union all

    select
        coalesce(customers.person_id, cookies.person_id) as person_id,
        campaign_touches.campaign_id,
        coalesce(campaign_touches.touch_type, 'touch') as touch_kind,
        case when campaign_touches.touch_type = 'impression' then 4 else 3 end as touch_priority,
        campaign_touches.touched_at
    from campaign_touches
    left join identifiers as customers
        on customers.identifier_type = 'customer_id'
        and campaign_touches.customer_id = customers.identifier_value
    left join identifiers as cookies
        on cookies.identifier_type = 'anonymous_id'
        and campaign_touches.anonymous_id = cookies.identifier_value
    where campaign_touches.campaign_id is not null
        and campaign_touches.touched_at is not null

),

touches_before_orders as (

    select
        orders.order_id,
        touches.campaign_id,
        touches.touch_kind,
        touches.touched_at,
        row_number() over (
            partition by orders.order_id
            order by
                case when touches.touch_kind = 'impression' then 1 else 0 end,
                touches.touched_at desc,
                touches.touch_priority,
                touches.campaign_id
        ) as touch_rank
    from orders
    inner join touches
        on orders.person_id = touches.person_id
        and touches.touched_at <= orders.order_at
        and touches.touched_at >= case
            when touches.touch_kind = 'impression'
                then {{ dbt.dateadd('day', -var('attribution_view_through_days'), 'orders.order_at') }}
            else {{ dbt.dateadd('day', -var('attribution_window_days'), 'orders.order_at') }}
        end
    where orders.campaign_id is null

),

clicks_before_tagged_orders as (

    select
        orders.order_id,
        touches.touch_kind,
        touches.touched_at,
        row_number() over (
            partition by orders.order_id
            order by touches.touched_at desc
        ) as touch_rank
    from orders
    inner join touches
        on orders.person_id = touches.person_id
        and orders.campaign_id = touches.campaign_id
        and touches.touch_kind = 'click'
        and touches.touched_at <= orders.order_at
        and touches.touched_at >= {{ dbt.dateadd('day', -var('attribution_window_days'), 'orders.order_at') }}
    where orders.campaign_id is not null

),

final as (

    select
        -- ids
        orders.order_id,
        orders.person_id,
        coalesce(orders.campaign_id, last_touches.campaign_id) as attributed_campaign_id,

        -- attributes
        case
            when orders.campaign_id is not null then 'order_tag'
            when last_touches.campaign_id is not null then 'last_touch'
            else 'none'
        end as attribution_rule,
        coalesce(last_touches.touch_kind, tagged_clicks.touch_kind) as last_touch_kind,

        -- measures
        orders.revenue,

        -- timestamps
        orders.order_at,
        coalesce(last_touches.touched_at, tagged_clicks.touched_at) as last_touched_at

    from orders
    left join touches_before_orders as last_touches
        on orders.order_id = last_touches.order_id
        and last_touches.touch_rank = 1
    left join clicks_before_tagged_orders as tagged_clicks
        on orders.order_id = tagged_clicks.order_id
        and tagged_clicks.touch_rank = 1

)

select * from final
