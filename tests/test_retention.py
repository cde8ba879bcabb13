"""Cohort retention and the funnel by segment on the session's demo warehouse: the mart
cohort_retention equals an independent pandas computation from the attributed activities, the
report's by-segment tables add up to the marts, and the heatmap is in the report."""

import duckdb
import numpy as np
import pandas as pd
import pytest

KEYS = ["cohort_grain", "cohort_dimension", "cohort_value", "cohort_period"]
CELL = [*KEYS, "periods_since_first_seen"]


def _periods(moments: pd.Series, grain: str) -> pd.Series:
    """First day of the week (Monday) or month of each moment."""
    freq = "W-SUN" if grain == "week" else "M"
    return moments.dt.to_period(freq).dt.start_time.dt.normalize()


def _periods_between(first: pd.Series, later: pd.Series, grain: str) -> pd.Series:
    if grain == "week":
        return (later - first).dt.days // 7
    return (later.dt.year - first.dt.year) * 12 + later.dt.month - first.dt.month


def _last_day(period: pd.Series, grain: str) -> pd.Series:
    if grain == "week":
        return period + pd.Timedelta(days=6)
    return period + pd.offsets.MonthEnd(0)


def expected_retention(activities: pd.DataFrame, dimensions: dict[str, pd.Series]) -> pd.DataFrame:
    """Cohort retention by pandas alone: every cohort, every period of the data from its own
    on. `dimensions` maps a cohort_dimension to each person's value (indexed by person_id)."""
    as_of = activities["as_of_at"].max().normalize()
    ordered = activities.sort_values(["activity_at", "channel", "activity_kind", "activity_id"])
    first = ordered.groupby("person_id").first()
    frames = []
    for grain in ("week", "month"):
        active = pd.DataFrame(
            {
                "person_id": activities["person_id"],
                "activity_period": _periods(activities["activity_at"], grain),
            }
        ).drop_duplicates()
        active["cohort_period"] = active["person_id"].map(_periods(first["activity_at"], grain))
        data_periods = np.sort(active["activity_period"].unique())
        for dimension, values in dimensions.items():
            cells = active.assign(cohort_value=active["person_id"].map(values)).dropna(
                subset=["cohort_value"]
            )
            retained = cells.groupby(["cohort_value", "cohort_period", "activity_period"]).size()
            sizes = (
                cells[cells["activity_period"] == cells["cohort_period"]]
                .groupby(["cohort_value", "cohort_period"])
                .size()
            )
            rows = [
                (value, cohort, period, size, retained.get((value, cohort, period), 0))
                for (value, cohort), size in sizes.items()
                for period in data_periods
                if period >= cohort
            ]
            table = pd.DataFrame(
                rows,
                columns=[
                    "cohort_value",
                    "cohort_period",
                    "activity_period",
                    "cohort_persons",
                    "retained_persons",
                ],
            ).assign(cohort_grain=grain, cohort_dimension=dimension)
            table["periods_since_first_seen"] = _periods_between(
                table["cohort_period"], table["activity_period"], grain
            )
            table["period_is_complete"] = _last_day(table["activity_period"], grain) <= as_of
            frames.append(table)
    expected = pd.concat(frames, ignore_index=True)
    expected["retention_rate"] = expected["retained_persons"] / expected["cohort_persons"]
    return expected


@pytest.fixture(scope="module")
def warehouse(pipeline_run) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(pipeline_run.duckdb_path), read_only=True) as con:
        return {
            "activities": con.sql(
                "select activity_id, activity_kind, person_id, channel, activity_at, as_of_at"
                " from (select *, max(activity_at) filter (where not is_bot) over () as as_of_at"
                " from intermediate.int_activities_attributed)"
                " where person_id is not null and not is_bot"
            ).df(),
            "retention": con.sql("select * from marts.cohort_retention").df(),
            "segments": con.sql(
                "select person_id, segment_id, segment_name from ml.person_segments"
            ).df(),
            "steps": con.sql("select * from marts.person_funnel_steps").df(),
            "funnel": con.sql("select * from marts.channel_funnel").df(),
        }


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    table = table.assign(
        cohort_period=pd.to_datetime(table["cohort_period"]),
        activity_period=pd.to_datetime(table["activity_period"]),
    )
    return table.sort_values(CELL).reset_index(drop=True)


def test_cohort_retention_equals_an_independent_pandas_computation(warehouse):
    activities = warehouse["activities"]
    first_channel = (
        activities.sort_values(["activity_at", "channel", "activity_kind", "activity_id"])
        .groupby("person_id")["channel"]
        .first()
    )
    everyone = pd.Series("all", index=first_channel.index)
    expected = _sorted(
        expected_retention(activities, {"all": everyone, "first_seen_channel": first_channel})
    )
    mart = _sorted(warehouse["retention"])
    # Enough to judge: several weekly cohorts, more than one first-seen channel, returns.
    weekly = expected[
        (expected["cohort_grain"] == "week") & (expected["cohort_dimension"] == "all")
    ]
    assert weekly["cohort_period"].nunique() >= 3
    assert first_channel.nunique() >= 2
    assert (weekly.loc[weekly["periods_since_first_seen"] > 0, "retained_persons"] > 0).any()
    assert (expected["retained_persons"] == 0).any(), "no empty cell: zero rows untested"

    columns = [
        *CELL,
        "activity_period",
        "period_is_complete",
        "cohort_persons",
        "retained_persons",
    ]
    pd.testing.assert_frame_equal(
        mart[columns], expected[columns], check_dtype=False, check_exact=True
    )
    np.testing.assert_allclose(mart["retention_rate"], expected["retention_rate"], rtol=1e-12)
    assert mart["retention_rate"].between(0, 1).all()


def test_report_retention_by_segment_equals_pandas(warehouse, pipeline_run):
    """The report's pooled curves: each cohort covered to the end of period n counts, weighed
    by its persons (by segment from ml.person_segments, by first-seen channel from the mart)."""
    from dagster_dmp.assets.reports import _pooled_retention
    from reports.figures import segment_label

    segments = warehouse["segments"]
    labels = pd.Series(
        [segment_label(i, n) for i, n in zip(segments["segment_id"], segments["segment_name"])],
        index=segments["person_id"],
    )
    by_segment = expected_retention(warehouse["activities"], {"segment": labels})
    complete = by_segment[by_segment["period_is_complete"]]
    expected = (
        complete.groupby(["cohort_grain", "cohort_value", "periods_since_first_seen"])[
            ["cohort_persons", "retained_persons"]
        ]
        .sum()
        .reset_index()
    )
    curves = pd.read_csv(pipeline_run.reports / "retention_segments.csv")
    report = (
        curves[curves["cohort_dimension"] == "segment"]
        .sort_values(["cohort_grain", "cohort_value", "periods_since_first_seen"])
        .reset_index(drop=True)
    )
    expected = expected.sort_values(
        ["cohort_grain", "cohort_value", "periods_since_first_seen"]
    ).reset_index(drop=True)
    assert len(expected) > 0 and expected["cohort_value"].nunique() >= 2
    pd.testing.assert_frame_equal(
        report[expected.columns], expected, check_dtype=False, check_exact=True
    )
    np.testing.assert_allclose(
        report["retention_rate"], expected["retained_persons"] / expected["cohort_persons"]
    )
    by_channel = _pooled_retention(
        warehouse["retention"][warehouse["retention"]["cohort_dimension"] == "first_seen_channel"]
    )
    report_channels = curves[curves["cohort_dimension"] == "first_seen_channel"]
    assert len(report_channels) == len(by_channel) > 0
    assert (report_channels["cohorts"] >= 1).all()


def test_funnel_by_segment_adds_up_to_the_channel_funnel(warehouse, pipeline_run):
    steps, funnel = warehouse["steps"], warehouse["funnel"]
    sums = steps.groupby(["channel", "step"])[["reached_step", "did_step"]].sum()
    mart = funnel.set_index(["channel", "step"]).sort_index()
    assert sums.index.equals(mart.index)
    assert (sums["reached_step"] == mart["persons"]).all()
    assert (sums["did_step"] == mart["step_persons"]).all()

    by_segment = pd.read_csv(pipeline_run.reports / "funnel_segments.csv")
    assert by_segment["segment_id"].nunique() >= 2
    # every person with a funnel step has a segment (segment 0 waits for more activity)
    assert set(steps["person_id"]) <= set(warehouse["segments"]["person_id"])
    totals = by_segment.groupby(["channel", "step"])[["persons", "step_persons"]].sum()
    pd.testing.assert_frame_equal(
        totals.sort_index(), mart[["persons", "step_persons"]], check_dtype=False
    )
    for _, segment in by_segment.groupby(["segment_id", "channel"]):
        assert segment.sort_values("step_number")["persons"].is_monotonic_decreasing


def test_report_shows_the_cohort_heatmap(pipeline_run):
    index = (pipeline_run.reports / "index.html").read_text(encoding="utf-8")
    for slug in ("retention", "retention_segments", "funnel_segments"):
        assert f'<h2 id="{slug}">' in index and f'src="{slug}.png"' in index, slug
    table = pd.read_csv(pipeline_run.reports / "retention.csv")
    assert set(table["cohort_dimension"]) == {"all", "first_seen_channel"}
    assert set(table["cohort_grain"]) == {"week", "month"}
