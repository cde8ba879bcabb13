{#
    Per campaign and day: delivery and cost from the ad networks' reports (all variants and
    networks summed) and the orders attributed to the campaign.
    Attribution (int_orders_attributed): a conversion is a completed order credited to the
    campaign (its own coupon / utm tag, else the person's last campaign touch within var
    attribution_window_days), counted on the order's UTC date; revenue is those orders'
    revenue. click_through_conversions are those that follow a tracked click on the campaign
    (the credited touch, or for a tagged order the click its checkout came from),
    view_through_conversions the rest (an e-mail sent, a display ad seen, a social engagement,
    a coupon without a click). converted_clicks counts, on the click's UTC date, the tracked clicks
    credited with at least one order: the numerator of conversion_rate. Days with conversions
    but no report row have zero delivery and cost.
    The KPIs (ctr, cpc, cpm, conversion_rate, cpa, roas, roi) come from macro campaign_kpis.
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
        sum(case when last_touch_kind = 'click' then 1 else 0 end) as click_through_conversions,
        sum(revenue) as revenue
    from orders
    group by 1, 2

),

converting_clicks as (

    select distinct
        attributed_campaign_id as campaign_id,
        person_id,
        last_touched_at
    from orders
    where last_touch_kind = 'click'

),

daily_converted_clicks as (

    select
        campaign_id,
        cast(last_touched_at as date) as report_date,
        count(*) as converted_clicks
    from converting_clicks
    group by 1, 2

),

campaign_days as (

    select campaign_id, report_date from daily_stats
    union
    select campaign_id, report_date from daily_conversions
    union
    select campaign_id, report_date from daily_converted_clicks

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
        coalesce(daily_conversions.click_through_conversions, 0) as click_through_conversions,
        coalesce(daily_converted_clicks.converted_clicks, 0) as converted_clicks,
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
    left join daily_converted_clicks
        on campaign_days.campaign_id = daily_converted_clicks.campaign_id
        and campaign_days.report_date = daily_converted_clicks.report_date

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
        cast(click_through_conversions as {{ dbt.type_bigint() }}) as click_through_conversions,
        cast(conversions - click_through_conversions as {{ dbt.type_bigint() }})
            as view_through_conversions,
        cast(converted_clicks as {{ dbt.type_bigint() }}) as converted_clicks,
        cast(revenue as {{ dmp.type_double() }}) as revenue,
        {{ dmp.campaign_kpis() }}

    from joined

)

select * from final
