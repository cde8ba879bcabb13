with

source as (

    select * from {{ source('social', 'social_engagements') }}

),

renamed as (

    select
        -- ids
        {{ dmp.clean_text('engagement_id') }} as engagement_id,
        {{ dmp.clean_handle('handle') }} as social_handle,
        {{ dmp.clean_text('post_id') }} as post_id,
        {{ dmp.clean_text('campaign_id') }} as campaign_id,

        -- attributes
        {{ dmp.clean_lower('network') }} as network,
        {{ dmp.clean_lower('action') }} as action,
        {{ dmp.clean_lower('category') }} as category,

        -- timestamps
        {{ dmp.clean_text('event_time') }} as event_time_raw,
        {{ dmp.parse_timestamp('event_time') }} as event_at_parsed,

        -- lineage
        _source_file,
        _line_number

    from source

),

validated as (

    select
        engagement_id,
        social_handle,
        post_id,
        campaign_id,
        network,
        action,
        category,
        {{ dmp.bounded_timestamp('event_at_parsed') }} as event_at,
        event_time_raw is not null
            and {{ dmp.bounded_timestamp('event_at_parsed') }} is null as has_invalid_event_time,
        _source_file,
        _line_number

    from renamed

)

select * from validated
