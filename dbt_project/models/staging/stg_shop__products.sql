with

source as (

    select * from {{ source('shop', 'products') }}

),

renamed as (

    select
        -- ids
        {{ dmp.clean_text('product_id') }} as product_id,

        -- attributes
        {{ dmp.clean_text('product_name') }} as product_name,
        {{ dmp.clean_lower('category') }} as category,
        {{ dmp.clean_text('brand') }} as brand,
        upper({{ dmp.clean_text('currency') }}) as currency,

        -- measures
        price,

        -- lineage
        _source_file,
        _line_number

    from source

),

validated as (

    select
        product_id,
        product_name,
        category,
        brand,
        currency,
        case when price > 0 then price end as price,
        coalesce(price <= 0, false) as has_invalid_price,
        _source_file,
        _line_number

    from renamed

)

select * from validated
