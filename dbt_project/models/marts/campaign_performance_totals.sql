{#
    Per campaign over the whole period: campaign_performance's measures summed, with the same
    KPIs (macro campaign_kpis) computed on the sums, so a report reads them instead of
    restating the formulas.
#}

with

campaign_performance as (

    select * from {{ ref('campaign_performance') }}

),

totals as (

    select
        campaign_id,
        max(campaign_name) as campaign_name,
        max(channel) as channel,
        max(currency) as currency,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(cost) as cost,
        sum(conversions) as conversions,
        sum(click_through_conversions) as click_through_conversions,
        sum(view_through_conversions) as view_through_conversions,
        sum(converted_clicks) as converted_clicks,
        sum(revenue) as revenue,
        min(report_date) as first_report_date,
        max(report_date) as last_report_date
    from campaign_performance
    group by 1

),

final as (

    select
        -- ids
        cast(campaign_id as {{ dbt.type_string() }}) as campaign_id,

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
        cast(view_through_conversions as {{ dbt.type_bigint() }}) as view_through_conversions,
        cast(converted_clicks as {{ dbt.type_bigint() }}) as converted_clicks,
        cast(revenue as {{ dmp.type_double() }}) as revenue,
        {{ dmp.campaign_kpis() }},

        -- dates
        cast(first_report_date as date) as first_report_date,
        cast(last_report_date as date) as last_report_date

    from totals

)

select * from final
