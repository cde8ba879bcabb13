"""One function per figure: a tidy DataFrame in, a plotnine plot out, one shared theme."""

import pandas as pd
import plotnine as p9

CHANNEL_COLOURS = {
    "web": "#1f77b4",
    "app": "#ff7f0e",
    "social": "#2ca02c",
    "store": "#9467bd",
    "phone": "#8c564b",
}
# Paid channels of campaigns (social shares its colour with the social activity channel).
CAMPAIGN_CHANNEL_COLOURS = {
    "search": "#17becf",
    "social": "#2ca02c",
    "display": "#e377c2",
    "email": "#bcbd22",
}


def _theme() -> p9.theme:
    return p9.theme_minimal(base_size=11) + p9.theme(
        figure_size=(9, 4.5), legend_position="bottom", plot_title=p9.element_text(weight="bold")
    )


def activity_trend(daily_activity: pd.DataFrame) -> p9.ggplot:
    """Daily events per channel (orders when the data has no events, as in a shop export):
    the trend and the weekly rhythm at a glance."""
    measure = "events" if daily_activity["events"].sum() > 0 else "orders"
    with_activity = daily_activity.groupby("channel")[measure].transform("sum") > 0
    data = daily_activity[with_activity].assign(
        activity_date=lambda frame: pd.to_datetime(frame["activity_date"])
    )
    return (
        p9.ggplot(data, p9.aes("activity_date", measure, colour="channel"))
        + p9.geom_line(size=0.8)
        + p9.scale_colour_manual(values=CHANNEL_COLOURS)
        + p9.labs(
            title=f"Daily {measure} by channel",
            x="Date",
            y=f"{measure.capitalize()} per day",
            colour="Channel",
        )
        + _theme()
    )


def segment_sizes(segments: pd.DataFrame) -> p9.ggplot:
    """Persons per segment, labelled with the segment's readable name."""
    data = segments.assign(
        label=segments["segment_id"].astype(str) + ". " + segments["segment_name"]
    ).sort_values("segment_id")
    data["label"] = pd.Categorical(data["label"], categories=data["label"][::-1], ordered=True)
    return (
        p9.ggplot(data, p9.aes("label", "persons"))
        + p9.geom_col(fill="#1f77b4")
        + p9.geom_text(p9.aes(label="persons"), ha="left", nudge_y=0.5, size=9)
        + p9.scale_y_continuous(expand=(0, 0, 0.12, 0))  # room for the count labels
        + p9.coord_flip()
        + p9.labs(title="Customer segments (behavioural latent classes)", x="", y="Persons")
        + _theme()
    )


def recommendation_quality(evaluation: pd.DataFrame, k: int = 10) -> p9.ggplot:
    """NDCG@k of every recommender on the temporal holdout, the popularity baseline in grey."""
    data = evaluation[(evaluation["metric"] == "ndcg") & (evaluation["k"] == k)].copy()
    data["baseline"] = data["model"].eq("popularity").map({True: "baseline", False: "model"})
    data["model"] = pd.Categorical(
        data["model"], categories=data.sort_values("value")["model"], ordered=True
    )
    return (
        p9.ggplot(data, p9.aes("model", "value", fill="baseline"))
        + p9.geom_col()
        + p9.geom_text(p9.aes(label="value"), format_string="{:.3f}", ha="left", nudge_y=0.002)
        + p9.scale_fill_manual(values={"baseline": "#999999", "model": "#1f77b4"})
        + p9.scale_y_continuous(expand=(0, 0, 0.15, 0))
        + p9.coord_flip()
        + p9.labs(
            title=f"Recommendation quality on held-out purchases (NDCG@{k})",
            x="",
            y=f"NDCG@{k} (higher is better)",
            fill="",
        )
        + _theme()
    )


def ab_results(results: pd.DataFrame) -> p9.ggplot:
    """Each variant's conversion rate with its 95% interval, campaign by campaign."""
    data = results.assign(
        rate=results["conversion_rate"] * 100,
        low=results["ci_low"] * 100,
        high=results["ci_high"] * 100,
    )
    return (
        p9.ggplot(data, p9.aes("variant", "rate"))
        + p9.geom_errorbar(p9.aes(ymin="low", ymax="high"), width=0.2, colour="#555555")
        + p9.geom_point(size=3, colour="#d62728")
        + p9.facet_wrap("campaign_id", scales="free_x")
        + p9.labs(
            title="E-mail A/B tests: conversion rate per variant with its 95% interval",
            x="Variant",
            y="Conversion rate (%)",
        )
        + _theme()
    )


def budget_allocation(allocation: pd.DataFrame) -> p9.ggplot:
    """Next week's spend per segment, split by channel."""
    data = allocation[allocation["spend"] > 0].assign(
        segment=lambda frame: "Segment " + frame["segment_id"].astype(str)
    )
    return (
        p9.ggplot(data, p9.aes("segment", "spend", fill="channel"))
        + p9.geom_col()
        + p9.scale_fill_manual(values=CAMPAIGN_CHANNEL_COLOURS, na_value="#7f7f7f")
        + p9.coord_flip()
        + p9.labs(
            title="Optimal budget allocation for next week",
            x="",
            y="Spend (currency units)",
            fill="Channel",
        )
        + _theme()
    )
