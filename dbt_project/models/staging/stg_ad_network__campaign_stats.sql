with

source as (

    select * from {{ source('ad_network', 'ad_campaign_stats') }}

),

renamed as (

    select
        -- ids
        {{ dmp.clean_text('campaign_id') }} as campaign_id,
        {{ dmp.clean_text('variant') }} as variant,

        -- attributes
        {{ dmp.clean_lower('network') }} as network,
        {{ dmp.clean_text('campaign_name') }} as campaign_name,
        {{ dmp.clean_lower('channel') }} as channel,
        {{ dmp.clean_text('currency') }} as currency,

        -- measures
        impressions,
        clicks,
        cost,

        -- dates
        {{ dbt.safe_cast(dmp.clean_text('report_date'), api.Column.translate_type('date')) }}
            as report_date,

        -- lineage
        _source_file,
        _line_number

    from source

),

validated as (

    select
        campaign_id,
        variant,
        network,
        campaign_name,
        channel,
        upper(currency) as currency,
        case when impressions >= 0 then impressions end as impressions,
        case when clicks >= 0 then clicks end as clicks,
        case when cost >= 0 then cost end as cost,
        coalesce(impressions < 0, false) as has_invalid_impressions,
        coalesce(clicks < 0, false) as has_invalid_clicks,
        coalesce(cost < 0, false) as has_invalid_cost,
        report_date,
        _source_file,
        _line_number

    from renamed

)

select * from validated
