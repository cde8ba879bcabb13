"""The marketing report: figures and tables from the marts and ML outputs."""

import dagster as dg

from dagster_dmp.assets.ml import PERSON_SEGMENTS
from dagster_dmp.resources import WarehouseResource
from ingestion.channels import CHANNELS
from ingestion.pipeline import RAW_DATASET
from reports import figures
from reports.writer import Section, write_report

QUARANTINE_TABLES = [channel.quarantine_table for channel in CHANNELS.values()]


@dg.asset(
    key=dg.AssetKey(["reports", "marketing_report"]),
    deps=[
        PERSON_SEGMENTS,
        dg.AssetKey(["marts", "daily_activity"]),
        dg.AssetKey(["marts", "campaign_performance"]),
        *[dg.AssetKey([RAW_DATASET, table]) for table in QUARANTINE_TABLES],
    ],
    group_name="reports",
    kinds={"plotnine", "html"},
    description="reports/output/index.html: activity, segments, campaigns and data quality, with the CSV behind every table.",
)
def marketing_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        daily = con.sql(
            "select activity_date, channel, events, active_persons, orders, revenue "
            "from marts.daily_activity order by activity_date, channel"
        ).df()
        segments = con.sql(
            "select segment_id, segment_name, persons, mean_monetary, mean_frequency, "
            "mean_recency_days, mean_engagement_score from ml.segment_summary order by segment_id"
        ).df()
        campaigns = con.sql(
            """
            select
                campaign_id,
                any_value(campaign_name) as campaign_name,
                any_value(channel) as channel,
                sum(impressions) as impressions,
                sum(clicks) as clicks,
                sum(cost) as cost,
                sum(conversions) as conversions,
                sum(revenue) as revenue,
                sum(clicks) / nullif(sum(impressions), 0) as ctr,
                sum(cost) / nullif(sum(clicks), 0) as cpc,
                (sum(revenue) - sum(cost)) / nullif(sum(cost), 0) as roi
            from marts.campaign_performance
            group by campaign_id
            order by campaign_id
            """
        ).df()
        quarantine = con.sql(
            " union all ".join(
                f"select channel, reason, count(*) as records from {RAW_DATASET}.{table} group by all"
                for table in QUARANTINE_TABLES
            )
            + " order by records desc"
        ).df()
    persons = int(segments["persons"].sum())
    summary = (
        f"{persons:,} persons in {len(segments)} segments; "
        f"{int(daily['events'].sum()):,} events and {int(daily['orders'].sum()):,} orders "
        f"from {daily['activity_date'].min()} to {daily['activity_date'].max()}; "
        f"{int(quarantine['records'].sum()):,} input records quarantined."
    )
    index = write_report(
        warehouse.reports,
        title="DMP marketing report",
        summary=summary,
        sections=[
            Section(
                "activity",
                "Activity by channel",
                "Events per day and channel (bots excluded).",
                daily,
                figures.activity_trend(daily),
            ),
            Section(
                "segments",
                "Customer segments",
                "Segment sizes and their average recency (days), frequency (orders), value and engagement.",
                segments,
                figures.segment_sizes(segments),
            ),
            Section(
                "campaigns",
                "Campaign performance",
                "Totals per campaign over the period; conversions are orders tagged with the campaign.",
                campaigns,
            ),
            Section(
                "data_quality",
                "Quarantined input",
                "Records that failed validation at ingestion, by channel and reason.",
                quarantine,
            ),
        ],
    )
    context.log.info(f"Report written to {index}")
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(index)), "summary": summary}
    )
