"""The marketing report: figures and tables from the marts and ML outputs."""

import calendar
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg
import duckdb
import pandas as pd

from dagster_dmp.assets.audiences import AUDIENCE_MEMBERS, OVERLAP_TABLE, REACH_TABLE
from dagster_dmp.assets.ml.experiments import AB_TEST_RESULTS
from dagster_dmp.assets.ml.inputs import PERSON_INTERESTS, PERSON_PROFILES, PERSON_SEGMENTS
from dagster_dmp.assets.ml.lookalikes import LOOKALIKES
from dagster_dmp.assets.ml.optimise import BUDGET_ALLOCATION
from dagster_dmp.assets.ml.propensity import PROPENSITY_SCORES
from dagster_dmp.assets.ml.quality import read_notes
from dagster_dmp.assets.ml.recommendations import RECOMMENDATIONS
from dagster_dmp.assets.ml.value import CUSTOMER_VALUE
from dagster_dmp.resources import WarehouseResource, markdown_figures
from ingestion.channels import CHANNELS
from ingestion.landing import DAMAGED, EMPTY, LOADED, UNREADABLE
from ingestion.ledger import landing_problems
from ingestion.pipeline import RAW_DATASET
from ml.recommend import CONFIDENCE
from reports.changes import describe_changes, load_headline, save_headline
from reports.timeseries import (
    DAYS_OF_WEEK,
    MIN_DAYS,
    decompose_weekly,
    partial_last_day,
    weekly_pattern,
)
from reports.writer import Section, write_report

if TYPE_CHECKING:
    import plotnine as p9
    from plotnine.composition import Compose

QUARANTINE_TABLES = [channel.quarantine_table for channel in CHANNELS.values()]
FILES_TABLES = [channel.files_table for channel in CHANNELS.values()]
DAILY_ACTIVITY = dg.AssetKey(["marts", "daily_activity"])
CHANNEL_FUNNEL = dg.AssetKey(["marts", "channel_funnel"])
CAMPAIGN_PERFORMANCE_TOTALS = dg.AssetKey(["marts", "campaign_performance_totals"])
COHORT_RETENTION = dg.AssetKey(["marts", "cohort_retention"])
ACTIVITY_PERIODS = dg.AssetKey(["marts", "person_activity_periods"])
FUNNEL_STEPS = dg.AssetKey(["marts", "person_funnel_steps"])
INTEREST_MIX_CATEGORIES = 10  # the rest is "other"
HEATMAP_COHORTS = 12  # latest cohorts per grain in the heatmap; the CSV has them all

# Each segment's cohorts in the rows of marts.cohort_retention: its persons from
# person_activity_periods, the periods (and whether the data covers them) from the mart's
# cohorts of all persons. The segments are computed after dbt, so the split happens here.
SEGMENT_COHORTS_SQL = """
    with

    periods as (
        select
            periods.cohort_grain,
            periods.cohort_period,
            periods.activity_period,
            segments.segment_id,
            segments.segment_name
        from marts.person_activity_periods as periods
        inner join ml.person_segments as segments
            on periods.person_id = segments.person_id
    ),

    -- one row per person, grain and period: rows count persons
    retained as (
        select
            cohort_grain,
            segment_id,
            any_value(segment_name) as segment_name,
            cohort_period,
            activity_period,
            count(*) as retained_persons
        from periods
        group by cohort_grain, segment_id, cohort_period, activity_period
    ),

    cohorts as (
        select
            cohort_grain,
            segment_id,
            segment_name,
            cohort_period,
            retained_persons as cohort_persons
        from retained
        where activity_period = cohort_period
    )

    select
        cohorts.cohort_grain,
        cohorts.segment_id,
        cohorts.segment_name,
        cohorts.cohort_period,
        cells.periods_since_first_seen,
        cells.activity_period,
        cells.period_is_complete,
        cohorts.cohort_persons,
        coalesce(retained.retained_persons, 0) as retained_persons
    from cohorts
    inner join marts.cohort_retention as cells
        on cells.cohort_dimension = 'all'
        and cells.cohort_grain = cohorts.cohort_grain
        and cells.cohort_period = cohorts.cohort_period
    left join retained
        on retained.cohort_grain = cohorts.cohort_grain
        and retained.segment_id = cohorts.segment_id
        and retained.cohort_period = cohorts.cohort_period
        and retained.activity_period = cells.activity_period
"""

# channel_funnel's counts per segment and channel: sums of person_funnel_steps.
SEGMENT_FUNNEL_SQL = """
    with

    steps as (
        select
            segments.segment_id,
            any_value(segments.segment_name) as segment_name,
            steps.channel,
            steps.step_number,
            steps.step,
            sum(steps.reached_step) as persons,
            sum(steps.did_step) as step_persons
        from marts.person_funnel_steps as steps
        inner join ml.person_segments as segments
            on steps.person_id = segments.person_id
        group by segments.segment_id, steps.channel, steps.step_number, steps.step
    )

    select
        *,
        persons / nullif(
            first_value(persons) over (
                partition by segment_id, channel order by step_number
            ),
            0
        ) as share_of_visitors
    from steps
    order by segment_id, channel, step_number
"""


def _period(daily: pd.DataFrame) -> list[str] | None:
    """First and last day of the data, as ISO dates."""
    if daily.empty:
        return None
    days = pd.to_datetime(daily["activity_date"])
    return [days.min().date().isoformat(), days.max().date().isoformat()]


def _headline(
    totals: dict[str, Any],
    daily: pd.DataFrame,
    segments: pd.DataFrame,
    campaigns: pd.DataFrame,
    files: pd.DataFrame,
) -> dict[str, Any]:
    """The figures the next run compares itself with (reports/changes.py)."""
    from reports import figures

    ranked = campaigns.dropna(subset=["roi"]).sort_values("roi", ascending=False)
    best = (
        {
            "campaign": str(ranked["campaign_name"].iloc[0] or ranked["campaign_id"].iloc[0]),
            "roi": float(ranked["roi"].iloc[0]),
        }
        if len(ranked)
        else None
    )
    return {
        "written_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "period": _period(daily),
        "persons": int(totals["persons"]),
        "active_persons_7d": int(totals["active_persons_7d"]),
        "events": int(daily["events"].sum()),
        "orders": int(daily["orders"].sum()),
        "revenue": round(float(daily["revenue"].sum()), 2),
        "quarantined_lines": int(files["rejected_lines"].sum()),
        "segments": {
            figures.segment_label(int(row.segment_id), row.segment_name): int(row.persons)
            for row in segments.itertuples()
        },
        "best_campaign": best,
    }


def _activity_sections(daily: pd.DataFrame, partial_day: Any = None) -> list[Section]:
    """Activity by channel, then the all-channel series split into trend and weekly rhythm
    (events; orders when the data has no events, as in a shop export).

    A partial last day (reports.timeseries.partial_last_day) stays in the tables but not in
    the figures, where it would look like a drop."""
    from reports import figures

    shown = daily
    note = ""
    if partial_day is not None:
        shown = daily[pd.to_datetime(daily["activity_date"]).dt.date != partial_day]
        note = (
            f" The last day, {partial_day.isoformat()}, is partial (its data stops early in "
            "the day): the figures, the trend and the weekly rhythm leave it out; the table "
            "keeps its count."
        )
    sections = [
        Section(
            "activity",
            "Activity by channel",
            "Events per day and channel (bots excluded)." + note,
            daily,
            figures.activity_trend(shown),
        )
    ]
    measure = "events" if daily["events"].sum() > 0 else "orders"
    per_day = daily.groupby("activity_date")[measure].sum()
    # The trend and weekly rhythm come from the whole days only; a partial last day keeps
    # its observed count in the table (no trend), so the table still adds up.
    is_partial = pd.to_datetime(per_day.index).date == partial_day
    whole_days = per_day[~is_partial]
    days = pd.to_datetime(whole_days.index)
    if whole_days.sum() == 0 or (days.max() - days.min()).days + 1 < MIN_DAYS:
        return sections
    drawn = decompose_weekly(whole_days)
    pattern = weekly_pattern(drawn)
    partial = per_day[is_partial]
    partial_dates = pd.to_datetime(partial.index)
    partial_rows = pd.DataFrame(
        {
            "date": partial_dates.date,
            "day_of_week": [DAYS_OF_WEEK[day] for day in partial_dates.dayofweek],
            "observed": partial.to_numpy(dtype=float),
        }
    )
    decomposition = pd.concat([drawn, partial_rows], ignore_index=True) if len(partial) else drawn
    day_names = dict(zip(DAYS_OF_WEEK, calendar.day_name, strict=True))
    busiest = day_names[pattern.loc[pattern["seasonal"].idxmax(), "day_of_week"]]
    quietest = day_names[pattern.loc[pattern["seasonal"].idxmin(), "day_of_week"]]
    return [
        *sections,
        Section(
            "activity_trend",
            f"Activity trend ({measure}, all channels)",
            f"Daily {measure} of every channel together (bots excluded; a day without any "
            "counts as 0), with the trend: the centred 7-day moving average, which removes "
            "the weekly rhythm (unknown for the first and last 3 days). The table also has the "
            "weekly component and the residual (observed = trend + weekly + residual)." + note,
            decomposition,
            figures.activity_decomposition(drawn, measure),
        ),
        Section(
            "weekly_pattern",
            "Weekly seasonality",
            f"How many {measure} a day each weekday has above or below the trend, on average "
            f"(in % of the mean trend level): {busiest} is the busiest day, {quietest} the "
            "quietest.",
            pattern,
            figures.weekly_seasonality(pattern, measure),
        ),
    ]


def _pooled_retention(cohorts: pd.DataFrame) -> pd.DataFrame:
    """Retention n periods after first seen over every cohort the data covers that far (to
    the end of the period): each cohort weighs by its persons."""
    covered = cohorts[cohorts["period_is_complete"]]
    keys = ["cohort_grain", "cohort_dimension", "cohort_value", "periods_since_first_seen"]
    pooled = covered.groupby(keys, as_index=False).agg(
        cohorts=("cohort_period", "nunique"),
        cohort_persons=("cohort_persons", "sum"),
        retained_persons=("retained_persons", "sum"),
    )
    return pooled.assign(retention_rate=pooled["retained_persons"] / pooled["cohort_persons"])


def _retention_sections(
    retention: pd.DataFrame, segment_cohorts: pd.DataFrame, segments: pd.DataFrame
) -> list[Section]:
    """The cohort heatmap (all persons), then retention pooled over the cohorts by first-seen
    channel and by segment."""
    from reports import figures

    if retention.empty:
        return []
    everyone = retention[retention["cohort_dimension"] == "all"]
    latest = everyone.groupby("cohort_grain")["cohort_period"].transform(
        lambda periods: periods.rank(method="dense", ascending=False)
    )
    by_segment = segment_cohorts.assign(
        cohort_dimension="segment",
        cohort_value=[
            figures.segment_label(int(i), n)
            for i, n in zip(segment_cohorts["segment_id"], segment_cohorts["segment_name"])
        ],
    )
    curves = _pooled_retention(
        pd.concat([retention[retention["cohort_dimension"] != "all"], by_segment])
    )
    return [
        Section(
            "retention",
            "Cohort retention",
            "Persons grouped by the week (from Monday) or month they were first seen in (any "
            "non-bot event, social engagement or order): the share of each cohort active again "
            "1, 2, ... periods later; 100% in its own period. The figure shows the latest "
            f"{HEATMAP_COHORTS} cohorts of each grain; the table has every cohort, also by the "
            "channel each person was first seen on (cohort_dimension first_seen_channel). An "
            "asterisk marks a period the data stops in before its end.",
            retention,
            figures.cohort_retention(everyone[latest <= HEATMAP_COHORTS]),
        ),
        *_with_data(
            "retention_segments",
            "Retention by first-seen channel and by segment",
            "Weekly retention n weeks after first seen, over every cohort the data covers that "
            "far (to the end of the week), each cohort weighing by its persons: by the channel "
            "of the first activity, and by today's segment (ml.person_segments). The table "
            "also has the monthly figures.",
            curves,
            lambda table: figures.retention_curves(table, segments),
        ),
    ]


def _hybrid_sentence(parts: pd.DataFrame, validation_persons: list[tuple]) -> str:
    """What the hybrid (the lists persons get) is, as its asset chose it on validation."""
    if parts.empty:
        return ""
    persons = f" on {validation_persons[0][0]:,.0f} persons" if validation_persons else ""
    if len(parts) == 1:
        return (
            f"The lists persons get (hybrid) come from {parts['model'].iloc[0]} alone, the model "
            f"that validated best{persons} (a blend did not beat it with confidence)."
        )
    mix = ", ".join(f"{model} {weight:.2f}" for model, weight in parts.itertuples(index=False))
    return (
        f"The lists persons get (hybrid) blend {mix}: the blend beat the best single model"
        f"{persons} with {CONFIDENCE:.0%} confidence."
    )


def _with_data(
    slug: str,
    title: str,
    text: str,
    table: pd.DataFrame,
    figure: Callable[[pd.DataFrame], "p9.ggplot | Compose | None"],
) -> list[Section]:
    """The section, or nothing when its table is empty (a dataset without campaigns, events
    or A/B tests still gets a report)."""
    if table.empty:
        return []
    return [Section(slug, title, text, table, figure(table))]


def _not_built(con: duckdb.DuckDBPyConnection, keys: Iterable[dg.AssetKey]) -> list[str]:
    """The upstream tables and views of the other groups (dbt, ML, audiences) missing from
    the warehouse, e.g. when only the report is selected on a new warehouse."""
    existing = {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select schema_name, table_name from duckdb_tables()"
            " union all select schema_name, view_name from duckdb_views()"
        ).fetchall()
    }
    relations = (".".join(key.path) for key in keys if key.path[0] != RAW_DATASET)
    return sorted(relation for relation in relations if relation not in existing)


@dg.asset(
    key=dg.AssetKey(["reports", "marketing_report"]),
    deps=[
        PERSON_SEGMENTS,
        RECOMMENDATIONS,
        AB_TEST_RESULTS,
        BUDGET_ALLOCATION,
        PROPENSITY_SCORES,
        CUSTOMER_VALUE,
        LOOKALIKES,
        DAILY_ACTIVITY,
        CHANNEL_FUNNEL,
        CAMPAIGN_PERFORMANCE_TOTALS,
        COHORT_RETENTION,
        ACTIVITY_PERIODS,
        FUNNEL_STEPS,
        PERSON_PROFILES,
        PERSON_INTERESTS,
        AUDIENCE_MEMBERS,
        *[dg.AssetKey([RAW_DATASET, table]) for table in (*QUARANTINE_TABLES, *FILES_TABLES)],
    ],
    group_name="reports",
    kinds={"plotnine", "html"},
    description=(
        "reports/output/index.html: what changed since the last run, activity with its trend "
        "and weekly seasonality, channel funnel (also by segment), cohort retention (by "
        "first-seen channel and segment), campaign KPIs, RFM grid, segment map, sizes, "
        "value and interest mix, recommendation quality, A/B tests, budget allocation, "
        "propensity reliability and data quality, with the CSV behind every figure and table. Keeps the headline figures in "
        "headline.json beside it for the next run's comparison."
    ),
)
def marketing_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    from reports import figures

    with warehouse.connect(read_only=True) as con:
        not_built = _not_built(con, context.assets_def.dependency_keys)
        if not_built:
            raise dg.Failure(
                f"the report reads {', '.join(not_built)}, not built yet: materialise them "
                "first (`dmp run` builds everything)"
            )
        daily = con.sql(
            "select activity_date, channel, events, active_persons, orders, revenue "
            "from marts.daily_activity order by activity_date, channel"
        ).df()
        funnel = con.sql(
            "select channel, step_number, step, persons, step_persons, share_of_visitors,"
            " conversion_from_previous_step from marts.channel_funnel"
            " order by channel, step_number"
        ).df()
        funnel_segments = con.sql(SEGMENT_FUNNEL_SQL).df()
        retention = con.sql(
            "select cohort_grain, cohort_dimension, cohort_value, cohort_period,"
            " periods_since_first_seen, activity_period, period_is_complete, cohort_persons,"
            " retained_persons, retention_rate from marts.cohort_retention"
            " order by cohort_grain desc, cohort_dimension, cohort_value, cohort_period,"
            " periods_since_first_seen"
        ).df()
        segment_cohorts = con.sql(SEGMENT_COHORTS_SQL).df()
        segments = con.sql(
            "select segment_id, segment_name, persons, revenue_per_person, orders_per_person, "
            "sessions_per_person, app_session_share, discount_share, top_categories "
            "from ml.segment_summary order by segment_id"
        ).df()
        # The KPIs are defined once, in dbt (macro campaign_kpis); the report only reads them.
        campaigns = con.sql(
            """
            select
                campaign_id, campaign_name, channel, currency,
                impressions, clicks, cost,
                conversions, click_through_conversions, view_through_conversions,
                converted_clicks, revenue,
                ctr, cpc, cpm, conversion_rate, cpa, roas, roi
            from marts.campaign_performance_totals
            order by campaign_id
            """
        ).df()
        # Each day's latest activity: tells a partial last day (the data stops mid-day).
        last_activity = con.sql(
            "select activity_date, max(last_activity_at) as last_activity_at"
            " from marts.daily_activity group by activity_date order by activity_date"
        ).df()
        rfm = con.sql(
            """
            select
                r_score,
                f_score,
                count(*) as persons,
                avg(monetary) as mean_monetary,
                sum(monetary) as monetary,
                avg(recency_days) as mean_recency_days,
                avg(frequency) as mean_frequency
            from marts.person_profiles
            where r_score is not null and f_score is not null
            group by r_score, f_score
            order by r_score desc, f_score desc
            """
        ).df()
        totals = (
            con.sql(
                """
                select
                    count(*) as persons,
                    count(*) filter (
                        where cast(last_seen_at as date) > as_of_date - 7
                    ) as active_persons_7d
                from marts.person_profiles
                """
            )
            .df()
            .iloc[0]
            .to_dict()
        )
        # Interest is the time-decayed score of person_interests (the one top_interest
        # ranks). Beyond the top categories overall the rest is one "other" column, so a
        # catalogue of thousands of categories (Taobao) still gives a readable grid.
        interests = con.sql(
            f"""
            with

            scored as (
                select
                    segments.segment_id,
                    segments.segment_name,
                    interests.person_id,
                    interests.category,
                    interests.interest_score
                from marts.person_interests as interests
                inner join ml.person_segments as segments
                    on interests.person_id = segments.person_id
            ),

            category_ranks as (
                select
                    category,
                    row_number() over (order by sum(interest_score) desc, category)
                        as category_rank
                from scored
                group by category
            ),

            grouped as (
                select
                    scored.*,
                    case
                        when category_ranks.category_rank <= {INTEREST_MIX_CATEGORIES}
                            then scored.category
                        else 'other'
                    end as category_group
                from scored
                inner join category_ranks
                    on scored.category = category_ranks.category
            )

            select
                segment_id,
                any_value(segment_name) as segment_name,
                category_group as category,
                count(distinct person_id) as persons,
                sum(interest_score) as interest_score,
                sum(interest_score)
                    / sum(sum(interest_score)) over (partition by segment_id) as interest_share
            from grouped
            group by segment_id, category_group
            order by segment_id, category_group
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
                regexp_replace(
                    problem,
                    '(implausible value|not a [A-Z]+:|unreadable file:|file damaged after line) .*',
                    '\\1'
                )
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
        hybrid_parts = con.sql(
            "select model, value from ml.recommendation_eval"
            " where metric = 'hybrid_weight' and value > 0 order by value desc, model"
        ).df()
        validation_persons = con.sql(
            "select value from ml.recommendation_eval"
            " where model = 'hybrid' and metric = 'validation_persons'"
        ).fetchall()
        ab_tests = con.sql(
            "select campaign_id, variant, users, conversions, conversion_rate, ci_low, ci_high,"
            " lift, p_value from ml.ab_test_results order by campaign_id, variant"
        ).df()
        budget = con.sql(
            "select segment_id, channel, spend, expected_conversions, expected_revenue"
            " from ml.budget_allocation order by segment_id, channel"
        ).df()
        propensity_calibration = con.sql(
            "select model, bin, persons, mean_predicted, observed_rate"
            " from ml.propensity_calibration order by model, bin"
        ).df()
        propensity_eval = con.sql("select model, metric, value from ml.propensity_eval").df()
        model_notes = read_notes(con)
        reach_history = con.sql(
            f"select audience, as_of_date, members, persons from {REACH_TABLE}"
            " order by audience, as_of_date"
        ).df()
        overlap = con.sql(
            f"select audience, other_kind, other, both_members, share_of_audience"
            f" from {OVERLAP_TABLE} order by audience, other_kind, other"
        ).df()
        files = con.sql(
            " union all ".join(
                f"select channel, count(*) as files, "
                f"count(*) filter (where status = '{UNREADABLE}') as unreadable_files, "
                f"count(*) filter (where status = '{DAMAGED}') as damaged_files, "
                f"count(*) filter (where status = '{EMPTY}') as empty_files, "
                f"sum(lines) as lines, sum(loaded_lines) as loaded_lines, "
                f"sum(duplicate_lines) as duplicate_lines, sum(rejected_lines) as rejected_lines, "
                f"string_agg(distinct unexpected_columns, ', ') as unexpected_columns "
                f"from {RAW_DATASET}.{table} group by channel"
                for table in FILES_TABLES
            )
            + " order by channel"
        ).df()
        damaged = pd.DataFrame(
            [
                {
                    "file": problem.source_file,
                    "status": problem.status,
                    "lines": problem.lines,
                    "loaded_lines": problem.loaded_lines,
                    "reason": problem.reason,
                }
                for problem in landing_problems(con)
                if problem.status != LOADED or problem.unexpected_columns
            ],
            columns=["file", "status", "lines", "loaded_lines", "reason"],
        )
    latest_reach = reach_history[reach_history["as_of_date"] == reach_history["as_of_date"].max()]
    currencies = campaigns["currency"].dropna().unique()
    currency = currencies[0] if len(currencies) == 1 else "currency units"
    budget = budget.merge(segments[["segment_id", "segment_name"]], on="segment_id", how="left")
    active_segments = segments[segments["persons"] > 0]
    headline = _headline(totals, daily, segments, campaigns, files)
    first_day, last_day = headline["period"] or ("-", "-")
    summary = (
        f"{headline['persons']:,} persons in {len(segments)} segments; "
        f"{headline['events']:,} events and {headline['orders']:,} completed orders "
        f"from {first_day} to {last_day}; "
        f"{headline['quarantined_lines']:,} input lines quarantined."
    )
    changes = describe_changes(headline, load_headline(warehouse.reports))
    sections = [
        *_activity_sections(daily, partial_last_day(last_activity["last_activity_at"])),
        *_with_data(
            "funnel",
            "Channel funnel",
            "Persons on each channel with events who reached each step: visit (any event), "
            "product view, add to cart, then a completed order placed on that channel; a step "
            "counts the persons who also reached every earlier step there (step_persons: all "
            "who did the step). Bots excluded, whole period.",
            funnel,
            figures.channel_funnel,
        ),
        *_with_data(
            "funnel_segments",
            "Funnel by segment",
            "The channel funnel of each segment: the share of the segment's visitors of a "
            "channel who reached each step and every earlier one there (persons), with "
            "step_persons, all who did the step. Segments as in the segment sections below.",
            funnel_segments,
            figures.segment_funnel,
        ),
        *_retention_sections(retention, segment_cohorts, segments),
        *_with_data(
            "campaigns",
            "Campaign KPIs",
            "Totals per campaign over the period. Conversions are completed orders credited "
            "to the campaign (its coupon or checkout tag, else the person's last touch within "
            "7 days): click-through when they follow a tracked click on the campaign, "
            "view-through otherwise (an e-mail sent, a display ad seen, a social engagement, "
            "a coupon). "
            "Definitions (one place: the dbt macro campaign_kpis; a ratio is empty when its "
            "denominator is 0): CTR = clicks / impressions (e-mails sent for e-mail); "
            "CPC = cost / clicks; CPM = cost per 1,000 impressions; conversion rate = "
            "converted clicks / clicks, the share of clicks followed by an order credited to "
            "that click (click-through, so at most 100%); CPA = cost / conversions; "
            "ROAS = revenue / cost; ROI = (revenue - cost) / cost = ROAS - 1. "
            "E-mail costs only its sending (a few thousandths per message) while last-touch "
            "credit includes orders recipients might have placed anyway, hence its very high "
            "ROI.",
            campaigns,
            lambda table: figures.campaign_kpis(table, currency),
        ),
        *_with_data(
            "rfm",
            "RFM grid",
            "Persons per recency score (5 = bought or was active most recently) and frequency "
            "score (completed orders; 1 = none or fewest), quintiles over all persons, with "
            "their mean revenue (monetary). Top right: the best customers; bottom right: good "
            "customers slipping away.",
            rfm,
            figures.rfm_grid,
        ),
        *_with_data(
            "segment_map",
            "Segment map",
            "Each segment placed by sessions per person (engagement) and revenue per person "
            "(value); bubble area = persons, number = segment. The same colour stands for the "
            "same segment in every segment figure.",
            active_segments,
            figures.segment_map,
        ),
        *_with_data(
            "segments",
            "Customer segments: sizes and value",
            "Persons, revenue and revenue per person of each segment, with orders and sessions "
            "per person, app and discount shares and top categories in the table (a latent-class "
            "model over each person's behaviour; segment 0 has no recorded activity).",
            segments,
            figures.segment_sizes,
        ),
        *_with_data(
            "interest_mix",
            "Interest mix by segment",
            "Each segment's interest split over the categories: the share of the segment's "
            "time-decayed interest score (product views, carts, purchases and social "
            "engagements, recent ones weighing more) that falls in each category.",
            interests,
            figures.interest_mix,
        ),
        *_with_data(
            "audience_reach",
            "Audiences: reach",
            "Members of each audience defined in audiences/*.yml, per data day (recomputed "
            "when the data of a day changes).",
            reach_history,
            figures.audience_reach,
        ),
        *_with_data(
            "audiences",
            "Audiences: overlap",
            "The share of each audience (latest data day) that is also in every other audience "
            "and segment; the table lists the pairs with members in common.",
            overlap,
            lambda table: figures.audience_overlap(table, latest_reach),
        ),
        *_with_data(
            "recommendations",
            "Recommendation quality",
            "Offline evaluation on the latest days held out: precision, recall, NDCG and "
            "catalogue coverage of the top 10 for each model against the popularity baseline. "
            + _hybrid_sentence(hybrid_parts, validation_persons),
            recommendation_eval,
            figures.recommendation_quality,
        ),
        *_with_data(
            "ab_tests",
            "A/B tests",
            "Each e-mail variant against its campaign's control: conversion rate with its 95% "
            "interval, lift and p-value.",
            ab_tests,
            figures.ab_results,
        ),
        *_with_data(
            "budget",
            "Budget allocation",
            "Next week's budget split over segment x channel to maximise expected profit "
            "(response curves from campaign history, solved to optimality).",
            budget,
            lambda table: figures.budget_allocation(table) if (table["spend"] > 0).any() else None,
        ),
        *_with_data(
            "propensity_reliability",
            "Purchase propensity: does a probability mean what it says?",
            "Persons of the holdout (never used for training or calibration) in 10 equal-count "
            "bins of each model's calibrated probability of ordering within the label window: "
            "mean predicted probability against the share who did order. On the dashed "
            "diagonal a score of 30% means 30 of 100 such persons buy. Brier score = mean "
            "squared error of the probability (lower is better); ECE = the persons-weighted "
            "mean gap between predicted and observed over 10 equal-width probability bins "
            "(0 is perfect; sampling noise alone gives about 0.01 on a thousand persons).",
            propensity_calibration,
            lambda table: figures.propensity_reliability(table, propensity_eval),
        ),
        *_with_data(
            "model_notes",
            "Models: what the data could not support",
            "Models this data could not (fully) fit or evaluate, and why. Their tables hold "
            "what could be computed, possibly nothing; a quality check without a metric to "
            "judge abstains.",
            model_notes,
            lambda table: None,
        ),
        Section(
            "landing_files",
            "Landing files",
            "Files read per channel: lines read, loaded, dropped as a repeat of a record "
            "already read (re-sends), rejected to quarantine; unreadable, damaged (read up to "
            "the damage) and empty files; columns the channel schema does not declare (not "
            "loaded).",
            files,
        ),
        *_with_data(
            "landing_problems",
            "Landing files with problems",
            "Each file that could not be read to its end, held no data, or carried columns its "
            "channel does not declare: what was loaded of it and why the rest was not. The "
            "other files of its channel loaded as usual.",
            damaged,
            lambda table: None,
        ),
        Section(
            "data_quality",
            "Quarantined input",
            "Problems found at ingestion, by channel and kind: rejected records (malformed, "
            "missing required fields, oversized, control characters) and loaded records "
            "with a value that does not cast or is implausible.",
            quarantine,
        ),
    ]
    index = write_report(
        warehouse.reports,
        title="DMP marketing report",
        summary=summary,
        sections=sections,
        changes=changes,
    )
    # Only once the report is complete: a failed run leaves the last good baseline.
    save_headline(warehouse.reports, headline)
    context.log.info(f"Report written to {index}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(index)),
            "summary": summary,
            "changes": dg.MetadataValue.md("\n".join(f"- {line}" for line in changes)),
            "figures": sum(section.figure is not None for section in sections),
            "figure_previews": markdown_figures(
                (section.title, warehouse.reports / f"{section.slug}.png")
                for section in sections
                if section.figure is not None
            ),
            "sections": len(sections),
        }
    )
