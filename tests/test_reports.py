"""The marketing report: its pure pieces (weekly decomposition, what changed) on known inputs,
and the real report of the session pipeline: every section's figure and table, the summary of
what changed, and a second run that reports the change."""

import json
import shutil
from html.parser import HTMLParser

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_ranges import assert_report_values_in_range

from reports.changes import HEADLINE_FILE, describe_changes, load_headline, save_headline
from reports.timeseries import DAYS_OF_WEEK, decompose_weekly, partial_last_day, weekly_pattern

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLANTED_WEEK = [10.0, -5.0, -20.0, 0.0, 5.0, 40.0, -30.0]  # Monday first, sums to 0

# Sections the generated data must fill; each has a figure.
FIGURE_SECTIONS = [
    "activity",
    "activity_trend",
    "weekly_pattern",
    "funnel",
    "funnel_segments",
    "retention",
    "retention_segments",
    "campaigns",
    "rfm",
    "segment_map",
    "segments",
    "interest_mix",
    "recommendations",
    "ab_tests",
    "budget",
]


def _synthetic(days: int, noise: float, seed: int = 3) -> tuple[pd.Series, np.ndarray]:
    """A linear trend plus the planted week (from a Monday), plus Gaussian noise."""
    dates = pd.date_range("2026-03-02", periods=days, freq="D")  # a Monday
    trend = 500 + 4.0 * np.arange(days)
    weekly = np.array([PLANTED_WEEK[day] for day in dates.day_of_week])
    noise_values = np.random.default_rng(seed).normal(0, noise, days)
    return pd.Series(trend + weekly + noise_values, index=dates.date), trend


def test_decomposition_recovers_a_planted_trend_and_week_exactly():
    series, trend = _synthetic(days=56, noise=0)
    parts = decompose_weekly(series)
    assert len(parts) == 56
    assert parts["trend"].iloc[:3].isna().all() and parts["trend"].iloc[-3:].isna().all()
    # A centred 7-day mean of a straight line plus a zero-sum week is the line itself.
    np.testing.assert_allclose(parts["trend"].iloc[3:-3], trend[3:-3], atol=1e-9)
    np.testing.assert_allclose(weekly_pattern(parts)["seasonal"], PLANTED_WEEK, atol=1e-9)
    np.testing.assert_allclose(parts["residual"].iloc[3:-3], 0, atol=1e-9)


def test_decomposition_recovers_the_week_through_noise():
    series, trend = _synthetic(days=84, noise=4.0)
    parts = decompose_weekly(series)
    pattern = weekly_pattern(parts)
    assert list(pattern["day_of_week"]) == DAYS_OF_WEEK
    assert pattern["seasonal"].sum() == pytest.approx(0, abs=1e-9)
    # 11 or 12 values per weekday: the mean's error is about 4 / sqrt(11) ~ 1.2.
    np.testing.assert_allclose(pattern["seasonal"], PLANTED_WEEK, atol=4.0)
    np.testing.assert_allclose(parts["trend"].iloc[3:-3], trend[3:-3], atol=5.0)
    observed = parts["trend"] + parts["seasonal"] + parts["residual"]
    np.testing.assert_allclose(observed.iloc[3:-3], parts["observed"].iloc[3:-3])
    assert pattern.set_index("day_of_week")["seasonal_pct"]["Sat"] == pytest.approx(
        40 / parts["trend"].mean() * 100, abs=1.5
    )


def test_decomposition_counts_missing_days_as_zero_and_rejects_bad_series():
    series, _ = _synthetic(days=29, noise=0)  # Monday to Monday
    without_sundays = series[[day.weekday() != 6 for day in series.index]]
    parts = decompose_weekly(without_sundays)
    assert len(parts) == 29
    assert (parts.loc[parts["day_of_week"] == "Sun", "observed"] == 0).all()
    assert weekly_pattern(parts).set_index("day_of_week")["seasonal"].idxmin() == "Sun"
    with pytest.raises(ValueError, match="at least 14"):
        decompose_weekly(series.iloc[:13])
    with pytest.raises(ValueError, match="repeats"):
        decompose_weekly(pd.concat([series, series.iloc[:1]]))


def _headline(**changes) -> dict:
    headline = {
        "written_at": "2026-03-01 10:00 UTC",
        "period": ["2026-01-01", "2026-02-28"],
        "persons": 12_000,
        "active_persons_7d": 3_400,
        "events": 1_234_567,
        "orders": 8_000,
        "revenue": 456_789.5,
        "quarantined_lines": 120,
        "segments": {"1. Big spenders": 1_500, "2. Browsers": 10_500},
        "best_campaign": {"campaign": "Spring Search", "roi": 2.5},
    }
    return headline | changes


def test_a_last_day_that_stops_early_is_partial_and_a_usual_day_is_not():
    full_days = pd.Series(pd.to_datetime(["2026-03-01 23:58", "2026-03-02 23:50"]))
    stopped = pd.concat([full_days, pd.Series(pd.to_datetime(["2026-03-03 00:09"]))])
    assert partial_last_day(stopped) == pd.Timestamp("2026-03-03").date()
    assert partial_last_day(full_days) is None
    # A shop whose days always end around 18:00 keeps its last day.
    shop = pd.Series(pd.to_datetime(["2026-03-01 18:02", "2026-03-02 17:55", "2026-03-03 17:40"]))
    assert partial_last_day(shop) is None
    assert partial_last_day(pd.Series(pd.to_datetime(["2026-03-03 00:09"]))) is None


def test_first_run_says_it_is_the_first():
    (line,) = describe_changes(_headline(), None)
    assert "first run" in line and "2026-01-01 to 2026-02-28" in line


def test_changes_are_signed_with_thousands_separators():
    current = _headline(
        period=["2026-01-01", "2026-03-07"],
        persons=13_250,
        events=1_200_000,
        revenue=460_000.0,
        segments={"1. Big spenders": 1_600, "3. Newcomers": 1_650},
        best_campaign={"campaign": "Autumn Social", "roi": 3.1},
    )
    text = "\n".join(describe_changes(current, _headline()))
    assert "previous run of 2026-03-01 10:00 UTC" in text
    assert "Persons: 13,250 (+1,250, +10.4%; was 12,000)." in text
    assert "Events: 1,200,000 (-34,567, -2.8%; was 1,234,567)." in text
    assert "Revenue (currency units): 460,000.00 (+3,210.50, +0.7%; was 456,789.50)." in text
    assert "Completed orders: 8,000 (no change)." in text
    assert "1. Big spenders 1,600 (+100, +6.7%)" in text
    assert "3. Newcomers 1,650 (new)" in text
    assert "Segments no longer found: 2. Browsers." in text
    assert "Autumn Social (ROI +310%), previously Spring Search (ROI +250%)" in text


def test_unchanged_figures_are_said_to_be_unchanged():
    lines = describe_changes(_headline(written_at="later"), _headline())
    assert lines[0].endswith("none of the headline figures changed.")
    assert "Best campaign by ROI: still Spring Search (ROI +250%); no change." in lines


def test_headline_round_trips_and_a_broken_file_reads_as_a_first_run(tmp_path):
    assert load_headline(tmp_path) is None
    save_headline(tmp_path, _headline())
    assert load_headline(tmp_path) == _headline()
    assert [path.name for path in tmp_path.iterdir()] == [HEADLINE_FILE]
    (tmp_path / HEADLINE_FILE).write_text("{not json", encoding="utf-8")
    assert load_headline(tmp_path) is None


class _Report(HTMLParser):
    """Section ids (h2), image sources and links of index.html, and its text."""

    def __init__(self):
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "h2":
            self.sections.append(attributes["id"])
        if tag == "img":
            self.images.append(attributes["src"])
        if tag == "a":
            self.links.append(attributes["href"])

    def handle_data(self, data):
        self.text.append(data)


def _parse(index) -> _Report:
    report = _Report()
    report.feed(index.read_text(encoding="utf-8"))
    return report


def test_every_section_has_its_figure_and_table(pipeline_run):
    folder = pipeline_run.reports
    report = _parse(folder / "index.html")
    assert report.sections[0] == "changes"
    sections = report.sections[1:]
    assert set(FIGURE_SECTIONS) <= set(sections)
    assert {f"{slug}.png" for slug in FIGURE_SECTIONS} <= set(report.images)
    assert report.links == [f"{slug}.csv" for slug in sections]
    for image in report.images:
        path = folder / image
        assert "/" not in image and path.read_bytes()[:8] == PNG_MAGIC, image
        assert path.stat().st_size > 10_000, f"{image} looks empty"
        # Shown at (nearly) its own size on the page (at most 1,200 px wide), so its text
        # keeps the size it was drawn at (11 pt at 110 dpi, about 17 px).
        width, height = Image.open(path).size
        assert 800 <= width <= 1_210 and 300 <= height <= 1_400, f"{image}: {width}x{height}"
    for slug in sections:
        assert len(pd.read_csv(folder / f"{slug}.csv")) > 0, slug
    assert not list(folder.glob("*.tmp*")), "a temporary file was left behind"


def test_campaign_kpis_lie_in_their_possible_range(pipeline_run):
    """Every KPI of the report can be what it claims (rates in [0, 1], costs and cost ratios
    >= 0, conversions split without remainder, ROI = ROAS - 1 >= -1), and the page defines them."""
    campaigns = pd.read_csv(pipeline_run.reports / "campaigns.csv")
    assert campaigns["ctr"].notna().any() and campaigns["roi"].notna().any()
    assert (
        assert_report_values_in_range(pipeline_run.reports) > 500
    )  # ~800-1,100 judged, depending on the run
    text = " ".join(_parse(pipeline_run.reports / "index.html").text)
    for definition in (
        "CTR = clicks / impressions",
        "conversion rate = converted clicks / clicks",
        "CPA = cost / conversions",
        "ROAS = revenue / cost",
    ):
        assert definition in text


def test_first_report_says_so_and_keeps_its_headline(pipeline_run):
    report = _parse(pipeline_run.reports / "index.html")
    text = " ".join(report.text)
    assert "What changed since the last run" in text
    assert "This is the first run of the report" in text
    headline = load_headline(pipeline_run.reports)
    with duckdb.connect(str(pipeline_run.duckdb_path), read_only=True) as con:
        persons, events, orders = con.execute(
            "select (select count(*) from marts.person_profiles),"
            " sum(events), sum(orders) from marts.daily_activity"
        ).fetchone()
        segments = dict(
            con.execute(
                "select segment_id || '. ' || segment_name, persons from ml.segment_summary"
            ).fetchall()
        )
    assert (headline["persons"], headline["events"], headline["orders"]) == (
        persons,
        events,
        orders,
    )
    assert headline["segments"] == segments
    assert headline["best_campaign"]["roi"] > 0


def test_report_tables_match_the_warehouse_and_the_planted_rhythm(pipeline_run):
    """The decomposition adds up to the warehouse's events, and finds what the generator
    planted (datagen/period.py): weekends 1.45 x a weekday, a rising trend."""
    folder = pipeline_run.reports
    trend = pd.read_csv(folder / "activity_trend.csv")
    with duckdb.connect(str(pipeline_run.duckdb_path), read_only=True) as con:
        events = con.execute("select sum(events) from marts.daily_activity").fetchone()[0]
        funnel = con.execute(
            "select channel, step_number, persons, step_persons from marts.channel_funnel"
            " order by channel, step_number"
        ).df()
    assert trend["observed"].sum() == events
    week = pd.read_csv(folder / "weekly_pattern.csv").set_index("day_of_week")
    assert set(week["seasonal"].nlargest(2).index) == {"Sat", "Sun"}
    # Planted: a weekend day is (1.45 - 1.129) / 1.129 = +28% of the weekly mean level.
    assert 12 < week.loc[["Sat", "Sun"], "seasonal_pct"].mean() < 45
    rising = trend["trend"].dropna()
    assert rising.iloc[-3:].mean() > rising.iloc[:3].mean()

    assert set(funnel["channel"]) == {"web", "app"}
    for _, steps in funnel.groupby("channel"):
        assert list(steps["step_number"]) == [1, 2, 3, 4]
        assert steps["persons"].is_monotonic_decreasing
        assert (steps["persons"] <= steps["step_persons"]).all()
        assert steps["persons"].iloc[-1] > 0


def test_a_second_run_reports_what_changed(pipeline_run, tmp_path):
    """Copy the warehouse and the report folder, drop the last day of activity (as if the
    previous run had seen one day more) and the funnel, and materialise the report again."""
    from dagster_dmp.assets.reports import marketing_report
    from dagster_dmp.resources import WarehouseResource

    database = tmp_path / "dmp.duckdb"
    shutil.copyfile(pipeline_run.duckdb_path, database)
    folder = tmp_path / "reports"
    shutil.copytree(pipeline_run.reports, folder)
    before = json.loads((folder / HEADLINE_FILE).read_text(encoding="utf-8"))
    with duckdb.connect(str(database)) as con:
        last_day, events, orders = con.execute(
            "select activity_date, sum(events), sum(orders) from marts.daily_activity"
            " where activity_date = (select max(activity_date) from marts.daily_activity)"
            " group by activity_date"
        ).fetchone()
        con.execute("delete from marts.daily_activity where activity_date = ?", [last_day])
        con.execute("delete from marts.channel_funnel")  # as on data without events
    warehouse = WarehouseResource(
        duckdb_path=str(database),
        landing_dir=str(tmp_path),
        reports_dir=str(folder),
        privacy_dir=str(tmp_path),
    )
    result = dg.materialize([marketing_report], resources={"warehouse": warehouse})
    assert result.success

    report = _parse(folder / "index.html")
    assert "funnel" not in report.sections
    assert not (folder / "funnel.png").exists() and not (folder / "funnel.csv").exists()
    assert {path.name for path in folder.glob("*.png")} == set(report.images)
    text = " ".join(report.text)
    assert "first run" not in text
    assert f"Compared with the previous run of {before['written_at']}" in text
    assert f"Events: {before['events'] - events:,} ({-events:+,}, " in text
    assert f"Completed orders: {before['orders'] - orders:,} ({-orders:+,}, " in text
    assert f"Persons: {before['persons']:,} (no change)." in text
    after = load_headline(folder)
    assert after["events"] == before["events"] - events
    assert after["period"][1] < before["period"][1]


def test_the_report_names_the_tables_it_lacks_on_a_warehouse_without_them(pipeline_run, tmp_path):
    """Only the report selected on a warehouse whose audiences were never built: it fails
    saying which upstream tables are missing, not with a database error."""
    from dagster_dmp.assets.reports import marketing_report
    from dagster_dmp.resources import WarehouseResource

    database = tmp_path / "dmp.duckdb"
    shutil.copyfile(pipeline_run.duckdb_path, database)
    with duckdb.connect(str(database)) as con:
        con.execute("drop schema audiences cascade")
    warehouse = WarehouseResource(
        duckdb_path=str(database),
        landing_dir=str(tmp_path),
        reports_dir=str(tmp_path / "reports"),
        privacy_dir=str(tmp_path),
    )
    result = dg.materialize(
        [marketing_report], resources={"warehouse": warehouse}, raise_on_error=False
    )
    assert not result.success
    failure = result.failure_data_for_node("reports__marketing_report").error.message
    assert "the report reads audiences.audience_members, not built yet" in failure, failure
    assert not (tmp_path / "reports" / "index.html").exists()
