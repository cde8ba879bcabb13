with

source as (

    select * from {{ source('app', 'app_events') }}

),

renamed as (

    select
        -- ids
        {{ dmp.clean_text('event_id') }} as event_id,
        {{ dmp.clean_text('device_id') }} as device_id,
        {{ dmp.clean_text('user_id') }} as user_id,
        {{ dmp.clean_text('product_id') }} as product_id,

        -- attributes
        {{ dmp.clean_lower('event_type') }} as event_type,
        {{ dmp.clean_lower('platform') }} as platform,
        {{ dmp.clean_text('app_version') }} as app_version,
        {{ dmp.clean_text('screen_name') }} as screen_name,
        {{ dmp.clean_lower('category') }} as category,

        -- timestamps
        {{ dmp.clean_text('event_time') }} as event_time_raw,
        event_time as event_time_sent,
        {{ dmp.parse_timestamp('event_time') }} as event_at_parsed,

        -- lineage
        _source_file,
        _line_number

    from source

),

validated as (

    select
        event_id,
        device_id,
        user_id,
        product_id,
        event_type,
        platform,
        app_version,
        screen_name,
        category,
        {{ dmp.bounded_timestamp('event_at_parsed') }} as event_at,
        event_time_raw is not null
            and {{ dmp.bounded_timestamp('event_at_parsed') }} is null as has_invalid_event_time,
        event_time_sent,
        _source_file,
        _line_number

    from renamed

)

select * from validated
