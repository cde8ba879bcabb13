with

source as (

    select * from {{ source('web', 'web_events') }}

),

renamed as (

    select
        -- ids
        {{ dmp.clean_text('event_id') }} as event_id,
        {{ dmp.clean_text('anonymous_id') }} as anonymous_id,
        {{ dmp.clean_text('user_id') }} as user_id,
        {{ dmp.clean_text('product_id') }} as product_id,
        {{ dmp.clean_text('utm_campaign') }} as utm_campaign,

        -- attributes
        {{ dmp.clean_lower('event_type') }} as event_type,
        {{ dmp.clean_text('page_url') }} as page_url,
        {{ dmp.clean_lower('category') }} as category,
        {{ dmp.clean_text('search_query') }} as search_query,
        {{ dmp.clean_lower('referrer') }} as referrer,
        {{ dmp.clean_lower('utm_source') }} as utm_source,
        {{ dmp.clean_lower('utm_medium') }} as utm_medium,
        {{ dmp.clean_text('user_agent') }} as user_agent,

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
        anonymous_id,
        user_id,
        product_id,
        utm_campaign,
        event_type,
        page_url,
        category,
        search_query,
        referrer,
        utm_source,
        utm_medium,
        user_agent,
        {{ dmp.bounded_timestamp('event_at_parsed') }} as event_at,
        event_time_raw is not null
            and {{ dmp.bounded_timestamp('event_at_parsed') }} is null as has_invalid_event_time,
        event_time_sent,
        _source_file,
        _line_number

    from renamed

)

select * from validated
