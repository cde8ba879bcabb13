"""The marketing report: figures and tables from the marts and ML outputs."""

import dagster as dg

from dagster_dmp.assets.ml.experiments import AB_TEST_RESULTS
from dagster_dmp.assets.ml.inputs import PERSON_SEGMENTS
from dagster_dmp.assets.ml.optimise import BUDGET_ALLOCATION
from dagster_dmp.assets.ml.recommendations import RECOMMENDATIONS
from dagster_dmp.resources import WarehouseResource
from ingestion.channels import CHANNELS
from ingestion.pipeline import RAW_DATASET
from reports import figures
from reports.writer import Section, write_report

QUARANTINE_TABLES = [channel.quarantine_table for channel in CHANNELS.values()]
FILES_TABLES = [channel.files_table for channel in CHANNELS.values()]


@dg.asset(
    key=dg.AssetKey(["reports", "marketing_report"]),
    deps=[
        PERSON_SEGMENTS,
        RECOMMENDATIONS,
        AB_TEST_RESULTS,
        BUDGET_ALLOCATION,
        dg.AssetKey(["marts", "daily_activity"]),
        dg.AssetKey(["marts", "campaign_performance"]),
        *[dg.AssetKey([RAW_DATASET, table]) for table in (*QUARANTINE_TABLES, *FILES_TABLES)],
    ],
    group_name="reports",
    kinds={"plotnine", "html"},
    description=(
        "reports/output/index.html: activity, segments, campaigns, recommendation quality, A/B "
        "tests, budget allocation and data quality, with the CSV behind every table."
    ),
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
            "select segment_id, segment_name, persons, revenue_per_person, orders_per_person, "
            "sessions_per_person, app_session_share, discount_share, top_categories "
            "from ml.segment_summary order by segment_id"
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
        problems = " union all ".join(
            f"select channel, unnest(string_split(reason, '; ')) as problem from {RAW_DATASET}.{table}"
            for table in QUARANTINE_TABLES
        )
        # One row per kind of problem: the value quoted in a reason is cut off, so
        # "quantity: implausible value -1" and "... -3" count together.
        quarantine = con.sql(
            f"""
            select
                channel,
                regexp_replace(problem, '(implausible value|not a [A-Z]+:|unreadable file:) .*', '\\1')
                    as reason,
                count(*) as records
            from ({problems})
            group by all
            order by records desc
            """
        ).df()
        recommendation_eval = con.sql(
            "select model, metric, k, value from ml.recommendation_eval"
            " where metric in ('ndcg', 'precision', 'recall', 'coverage') and k = 10"
            " order by model, metric"
        ).df()
        ab_tests = con.sql(
            "select campaign_id, variant, users, conversions, conversion_rate, ci_low, ci_high,"
            " lift, p_value from ml.ab_test_results order by campaign_id, variant"
        ).df()
        budget = con.sql(
            "select segment_id, channel, spend, expected_conversions, expected_revenue"
            " from ml.budget_allocation order by segment_id, channel"
        ).df()
        files = con.sql(
            " union all ".join(
                f"select channel, count(*) as files, "
                f"count(*) filter (where status = 'unreadable') as unreadable_files, "
                f"sum(lines) as lines, sum(loaded_lines) as loaded_lines, "
                f"sum(duplicate_lines) as duplicate_lines, sum(rejected_lines) as rejected_lines, "
                f"string_agg(distinct unexpected_columns, ', ') as unexpected_columns "
                f"from {RAW_DATASET}.{table} group by channel"
                for table in FILES_TABLES
            )
            + " order by channel"
        ).df()
    persons = int(segments["persons"].sum())
    summary = (
        f"{persons:,} persons in {len(segments)} segments; "
        f"{int(daily['events'].sum()):,} events and {int(daily['orders'].sum()):,} orders "
        f"from {daily['activity_date'].min()} to {daily['activity_date'].max()}; "
        f"{int(files['rejected_lines'].sum()):,} input lines quarantined."
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
                "Segment sizes with revenue, orders and sessions per person, app and discount "
                "shares and top categories (a latent-class model over each person's behaviour).",
                segments,
                figures.segment_sizes(segments),
            ),
            Section(
                "campaigns",
                "Campaign performance",
                "Totals per campaign over the period; conversions are completed orders credited "
                "to the campaign (its tag, else the last touch within 7 days).",
                campaigns,
            ),
            *[
                section
                for section in (
                    Section(
                        "recommendations",
                        "Recommendation quality",
                        "Offline evaluation on the latest days held out: precision, recall, NDCG "
                        "and catalogue coverage of the top 10 for each model against popularity.",
                        recommendation_eval,
                        figures.recommendation_quality(recommendation_eval)
                        if len(recommendation_eval)
                        else None,
                    ),
                    Section(
                        "ab_tests",
                        "A/B tests",
                        "Each e-mail variant against its campaign's control: conversion rate with "
                        "its 95% interval, lift and p-value.",
                        ab_tests,
                        figures.ab_results(ab_tests) if len(ab_tests) else None,
                    ),
                    Section(
                        "budget",
                        "Budget allocation",
                        "Next week's budget split over segment x channel to maximise expected "
                        "profit (response curves from campaign history, solved to optimality).",
                        budget,
                        figures.budget_allocation(budget) if (budget["spend"] > 0).any() else None,
                    ),
                )
                if len(section.table)
            ],
            Section(
                "landing_files",
                "Landing files",
                "Files read per channel: lines read, loaded, dropped as a repeat of a record "
                "already read (re-sends), rejected to quarantine; unreadable files; columns the "
                "channel schema does not declare (kept, not dropped).",
                files,
            ),
            Section(
                "data_quality",
                "Quarantined input",
                "Problems found at ingestion, by channel and kind: rejected records (malformed, "
                "missing required fields, oversized, control characters) and loaded records "
                "with a value that does not cast or is implausible.",
                quarantine,
            ),
        ],
    )
    context.log.info(f"Report written to {index}")
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(index)), "summary": summary}
    )
