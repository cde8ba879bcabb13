{#
    Per campaign and day: delivery and cost from the ad networks' reports (all variants and
    networks summed) and the orders attributed to the campaign.
    Attribution (int_orders_attributed): a conversion is a completed order credited to the
    campaign (its own coupon / utm tag, else the person's last campaign touch within var
    attribution_window_days), counted on the order's UTC date; revenue is those orders'
    revenue. Days with conversions but no report row have zero delivery and cost.
    Ratios are null when their denominator is zero:
        ctr = clicks / impressions, cpc = cost / clicks, cpm = 1000 * cost / impressions,
        conversion_rate = conversions / clicks, roi = (revenue - cost) / cost.
#}

with

campaign_stats as (

    select * from {{ ref('int_campaign_stats_deduplicated') }}

),

orders as (

    select * from {{ ref('int_orders_attributed') }}
    where attributed_campaign_id is not null

),

campaigns as (

    select
        campaign_id,
        max(campaign_name) as campaign_name,
        max(channel) as channel,
        max(currency) as currency
    from campaign_stats
    group by 1

),

daily_stats as (

    select
        campaign_id,
        report_date,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(cost) as cost
    from campaign_stats
    group by 1, 2

),

daily_conversions as (

    select
        attributed_campaign_id as campaign_id,
        cast(order_at as date) as report_date,
        count(*) as conversions,
        sum(revenue) as revenue
    from orders
    group by 1, 2

),

campaign_days as (

    select campaign_id, report_date from daily_stats
    union
    select campaign_id, report_date from daily_conversions

),

joined as (

    select
        campaign_days.campaign_id,
        campaign_days.report_date,
        campaigns.campaign_name,
        campaigns.channel,
        campaigns.currency,
        coalesce(daily_stats.impressions, 0) as impressions,
        coalesce(daily_stats.clicks, 0) as clicks,
        coalesce(daily_stats.cost, 0) as cost,
        coalesce(daily_conversions.conversions, 0) as conversions,
        coalesce(daily_conversions.revenue, 0) as revenue
    from campaign_days
    left join campaigns
        on campaign_days.campaign_id = campaigns.campaign_id
    left join daily_stats
        on campaign_days.campaign_id = daily_stats.campaign_id
        and campaign_days.report_date = daily_stats.report_date
    left join daily_conversions
        on campaign_days.campaign_id = daily_conversions.campaign_id
        and campaign_days.report_date = daily_conversions.report_date

),

final as (

    select
        -- ids
        cast(campaign_id as {{ dbt.type_string() }}) as campaign_id,
        cast(report_date as date) as report_date,

        -- attributes
        cast(campaign_name as {{ dbt.type_string() }}) as campaign_name,
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(currency as {{ dbt.type_string() }}) as currency,

        -- measures
        cast(impressions as {{ dbt.type_bigint() }}) as impressions,
        cast(clicks as {{ dbt.type_bigint() }}) as clicks,
        cast(cost as {{ dmp.type_double() }}) as cost,
        cast(conversions as {{ dbt.type_bigint() }}) as conversions,
        cast(revenue as {{ dmp.type_double() }}) as revenue,
        cast({{ dmp.safe_divide('clicks', 'impressions') }} as {{ dmp.type_double() }}) as ctr,
        cast({{ dmp.safe_divide('cost', 'clicks') }} as {{ dmp.type_double() }}) as cpc,
        cast({{ dmp.safe_divide('1000 * cost', 'impressions') }} as {{ dmp.type_double() }})
            as cpm,
        cast({{ dmp.safe_divide('conversions', 'clicks') }} as {{ dmp.type_double() }})
            as conversion_rate,
        cast({{ dmp.safe_divide('revenue - cost', 'cost') }} as {{ dmp.type_double() }}) as roi

    from joined

)

select * from final
