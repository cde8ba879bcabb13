"""Trend and weekly seasonality of a daily series (classical additive decomposition)."""

import numpy as np
import pandas as pd

DAYS_OF_WEEK = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
TREND_WINDOW_DAYS = 7
# Two full weeks: the least that gives every weekday a detrended value to average.
MIN_DAYS = 2 * TREND_WINDOW_DAYS


def decompose_weekly(daily: pd.Series) -> pd.DataFrame:
    """Split a daily series into trend + weekly seasonal + residual.

    trend: the centred 7-day moving average, so a whole week's rhythm averages out (unknown
    for the first and last 3 days); seasonal: each weekday's mean of observed - trend,
    shifted to sum to 0 over the week; residual: what is left. Days missing from the index
    count as 0 (no activity that day), so a shop closed on Saturdays shows as such.
    """
    if daily.empty:
        raise ValueError("decompose_weekly: the series has no days")
    index = pd.DatetimeIndex(pd.to_datetime(daily.index)).normalize()
    if index.has_duplicates:
        raise ValueError(f"decompose_weekly: day {index[index.duplicated()][0].date()} repeats")
    observed = (
        pd.Series(daily.to_numpy(dtype=float), index=index)
        .sort_index()
        .reindex(pd.date_range(index.min(), index.max(), freq="D"), fill_value=0.0)
    )
    if len(observed) < MIN_DAYS:
        raise ValueError(f"decompose_weekly: {len(observed)} days, at least {MIN_DAYS} are needed")
    trend = observed.rolling(TREND_WINDOW_DAYS, center=True).mean()
    weekday = observed.index.day_of_week
    weekday_means = (observed - trend).groupby(weekday).mean()
    effects = weekday_means - weekday_means.mean()
    seasonal = pd.Series(effects.reindex(weekday).to_numpy(), index=observed.index)
    return pd.DataFrame(
        {
            "date": observed.index.date,
            "day_of_week": [DAYS_OF_WEEK[day] for day in weekday],
            "observed": observed.to_numpy(),
            "trend": trend.to_numpy(),
            "seasonal": seasonal.to_numpy(),
            "residual": (observed - trend - seasonal).to_numpy(),
        }
    )


def weekly_pattern(decomposition: pd.DataFrame) -> pd.DataFrame:
    """One row per weekday (Monday first): its seasonal effect, absolute and relative to the
    mean trend, so "Saturday: -120 events a day (-15 %)" reads directly."""
    effects = (
        decomposition.groupby("day_of_week", sort=False)["seasonal"]
        .first()
        .reindex(DAYS_OF_WEEK)
        .reset_index()
    )
    mean_trend = decomposition["trend"].mean()
    effects["seasonal_pct"] = effects["seasonal"] / mean_trend * 100 if mean_trend > 0 else np.nan
    return effects


PARTIAL_DAY_SLACK_MINUTES = 60


def partial_last_day(last_activity: pd.Series) -> object | None:
    """The last day when it is partial, else None.

    `last_activity` holds each day's latest activity timestamp (any index). The last day is
    partial when its latest activity comes more than PARTIAL_DAY_SLACK_MINUTES earlier in the
    day than on a typical day (the median over the other days): the data stops mid-day, so
    drawing it would show a drop that is not there. A shop whose days always end at 18:00 is
    not cut; a single day is never partial (nothing to compare with).
    """
    times = pd.to_datetime(last_activity.dropna()).sort_values()
    if len(times) < 2:
        return None
    minute_of_day = times.dt.hour * 60 + times.dt.minute + times.dt.second / 60
    typical = minute_of_day.iloc[:-1].median()
    if minute_of_day.iloc[-1] < typical - PARTIAL_DAY_SLACK_MINUTES:
        return times.iloc[-1].date()
    return None
