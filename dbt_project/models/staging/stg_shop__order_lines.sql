with

source as (

    select * from {{ source('shop', 'orders') }}

),

renamed as (

    select
        -- ids
        {{ dmp.clean_text('order_id') }} as order_id,
        line_number,
        {{ dmp.clean_text('customer_id') }} as customer_id,
        {{ dmp.clean_text('user_id') }} as user_id,
        {{ dmp.hash_email('email') }} as email_sha256,
        {{ dmp.clean_text('product_id') }} as product_id,
        {{ dmp.clean_text('campaign_id') }} as campaign_id,

        -- attributes
        {{ dmp.clean_lower('channel') }} as channel,
        {{ dmp.clean_lower('status') }} as status,
        upper({{ dmp.clean_text('currency') }}) as currency,

        -- measures
        quantity,
        unit_price,

        -- timestamps
        {{ dmp.clean_text('order_time') }} as order_time_raw,
        {{ dmp.parse_timestamp('order_time') }} as order_at_parsed,

        -- lineage
        _source_file,
        _line_number

    from source

),

validated as (

    select
        order_id,
        line_number,
        customer_id,
        user_id,
        email_sha256,
        product_id,
        campaign_id,
        channel,
        status,
        currency,
        case when quantity > 0 then quantity end as quantity,
        coalesce(quantity <= 0, false) as has_invalid_quantity,
        case when unit_price > 0 then unit_price end as unit_price,
        coalesce(unit_price <= 0, false) as has_invalid_unit_price,
        {{ dmp.bounded_timestamp('order_at_parsed') }} as order_at,
        order_time_raw is not null
            and {{ dmp.bounded_timestamp('order_at_parsed') }} is null as has_invalid_order_time,
        _source_file,
        _line_number

    from renamed

)

select * from validated
