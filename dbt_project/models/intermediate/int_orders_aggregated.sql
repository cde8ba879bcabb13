{#
    One row per order. Header fields come from the order's first line; order_value sums the
    line revenues; revenue counts only completed orders (cancelled and refunded orders have
    revenue 0). The person is found by customer_id, else user_id, else email_sha256.
#}

with

order_lines as (

    select * from {{ ref('int_order_lines_deduplicated') }}

),

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

order_lines_ranked as (

    select
        *,
        row_number() over (partition by order_id order by line_number) as line_rank
    from order_lines

),

order_totals as (

    select
        order_id,
        count(*) as line_count,
        sum(quantity) as item_count,
        coalesce(sum(line_revenue), 0) as order_value,
        min(order_at) as order_at
    from order_lines
    group by 1

),

orders as (

    select
        headers.order_id,
        headers.customer_id,
        headers.user_id,
        headers.email_sha256,
        headers.campaign_id,
        headers.channel,
        headers.status,
        headers.currency,
        headers.status = 'completed' as is_completed,
        order_totals.line_count,
        order_totals.item_count,
        order_totals.order_value,
        order_totals.order_at
    from order_lines_ranked as headers
    inner join order_totals
        on headers.order_id = order_totals.order_id
    where headers.line_rank = 1

),

final as (

    select
        -- ids
        orders.order_id,
        coalesce(customers.person_id, users.person_id, emails.person_id) as person_id,
        orders.customer_id,
        orders.user_id,
        orders.email_sha256,
        orders.campaign_id,

        -- attributes
        orders.channel,
        orders.status,
        orders.currency,
        orders.is_completed,

        -- measures
        orders.line_count,
        orders.item_count,
        orders.order_value,
        case when orders.is_completed then orders.order_value else 0 end as revenue,

        -- timestamps
        orders.order_at

    from orders
    left join identifiers as customers
        on customers.identifier_type = 'customer_id'
        and orders.customer_id = customers.identifier_value
    left join identifiers as users
        on users.identifier_type = 'user_id'
        and orders.user_id = users.identifier_value
    left join identifiers as emails
        on emails.identifier_type = 'email_sha256'
        and orders.email_sha256 = emails.identifier_value

)

select * from final
