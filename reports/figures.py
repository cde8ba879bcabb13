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
