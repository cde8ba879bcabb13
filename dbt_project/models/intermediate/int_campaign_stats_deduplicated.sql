{#
    One row per report_date x network x campaign_id x variant. A row sent again (the same key
    in a later file) restates the earlier one: the last file and line win.
#}

with

campaign_stats as (

    select * from {{ ref('stg_ad_network__campaign_stats') }}

),

campaign_stats_ranked as (

    select
        *,
        row_number() over (
            partition by report_date, network, campaign_id, coalesce(variant, '')
            order by _source_file desc, _line_number desc
        ) as restatement_rank
    from campaign_stats
    where campaign_id is not null
        and report_date is not null

),

final as (

    select
        -- ids
        campaign_id,
        variant,

        -- attributes
        network,
        campaign_name,
        channel,
        currency,

        -- measures
        impressions,
        clicks,
        cost,

        -- dates
        report_date,

        -- lineage
        _source_file,
        _line_number

    from campaign_stats_ranked
    where restatement_rank = 1

)

select * from final
