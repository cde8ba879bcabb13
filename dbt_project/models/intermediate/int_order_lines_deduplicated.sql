{#
    One row per order line (order_id, line_number). A re-sent line keeps its first occurrence
    by order_at, then file and line. line_revenue = quantity * unit_price (null when either is
    invalid); only lines of completed orders count as revenue (is_revenue).
#}

with

order_lines as (

    select * from {{ ref('stg_shop__order_lines') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

order_lines_ranked as (

    select
        *,
        row_number() over (
            partition by order_id, line_number
            order by
                case when order_at is null then 1 else 0 end,
                order_at,
                _source_file,
                _line_number
        ) as occurrence
    from order_lines
    where order_id is not null
        and line_number is not null

),

final as (

    select
        -- ids
        {{ dbt.concat([
            'order_lines.order_id',
            "'-'",
            dbt.cast('order_lines.line_number', api.Column.translate_type('string')),
        ]) }} as order_line_id,
        order_lines.order_id,
        order_lines.line_number,
        order_lines.customer_id,
        order_lines.user_id,
        order_lines.email_sha256,
        order_lines.product_id,
        order_lines.campaign_id,

        -- attributes
        order_lines.channel,
        order_lines.status,
        order_lines.currency,
        products.category,
        products.brand,
        order_lines.status = 'completed' as is_revenue,

        -- measures
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.quantity * order_lines.unit_price as line_revenue,

        -- timestamps
        order_lines.order_at,

        -- lineage
        order_lines._source_file,
        order_lines._line_number

    from order_lines_ranked as order_lines
    left join products
        on order_lines.product_id = products.product_id
    where order_lines.occurrence = 1

)

select * from final
