with

source as (

    select * from {{ source('marketing', 'campaign_touches') }}

),

renamed as (

    select
        -- ids
        {{ dmp.clean_text('touch_id') }} as touch_id,
        {{ dmp.clean_text('campaign_id') }} as campaign_id,
        {{ dmp.clean_text('variant') }} as variant,
        {{ dmp.clean_text('customer_id') }} as customer_id,
        {{ dmp.clean_text('anonymous_id') }} as anonymous_id,

        -- attributes
        {{ dmp.clean_lower('channel') }} as channel,
        {{ dmp.clean_lower('touch_type') }} as touch_type,

        -- timestamps
        {{ dmp.clean_text('touch_time') }} as touch_time_raw,
        {{ dmp.parse_timestamp('touch_time') }} as touched_at_parsed,

        -- lineage
        _source_file,
        _line_number

    from source

),

validated as (

    select
        touch_id,
        campaign_id,
        variant,
        customer_id,
        anonymous_id,
        channel,
        touch_type,
        {{ dmp.bounded_timestamp('touched_at_parsed') }} as touched_at,
        touch_time_raw is not null
            and {{ dmp.bounded_timestamp('touched_at_parsed') }} is null as has_invalid_touch_time,
        _source_file,
        _line_number

    from renamed

)

select * from validated
