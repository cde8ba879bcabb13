"""One function per figure: a tidy DataFrame in, a plotnine plot out, one shared theme."""

import pandas as pd
import plotnine as p9
from mizani.transforms import pseudo_log_trans
from plotnine.composition import Compose

from reports.timeseries import DAYS_OF_WEEK

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


# One fixed colour per segment id in every segment figure (Okabe-Ito first: colour-blind
# safe); segment 0 (no recorded activity) is grey. More segments than colours cycle.
SEGMENT_COLOURS = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#882255",
    "#44AA99",
    "#332288",
    "#999933",
]
NO_ACTIVITY_COLOUR = "#AAAAAA"
COHORT_GRAINS = {"week": "Weekly cohorts", "month": "Monthly cohorts"}
FUNNEL_STEPS = {
    "visit": "Visit",
    "product_view": "Product view",
    "add_to_cart": "Add to cart",
    "order": "Order",
}


def segment_label(segment_id: int, segment_name: str) -> str:
    return f"{segment_id}. {segment_name}"


def segment_colour(segment_id: int) -> str:
    if segment_id <= 0:
        return NO_ACTIVITY_COLOUR
    return SEGMENT_COLOURS[(segment_id - 1) % len(SEGMENT_COLOURS)]


def _segment_palette(segments: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """Segment labels in segment order and the colour of each."""
    ordered = segments.drop_duplicates("segment_id").sort_values("segment_id")
    labels = [segment_label(i, n) for i, n in zip(ordered["segment_id"], ordered["segment_name"])]
    return labels, dict(zip(labels, map(segment_colour, ordered["segment_id"])))


def segment_fill(segments: pd.DataFrame) -> p9.scale_fill_manual:
    """The segment palette keyed by segment label, legend in segment order."""
    labels, values = _segment_palette(segments)
    return p9.scale_fill_manual(values=values, breaks=labels)


def segment_line_colour(segments: pd.DataFrame) -> p9.scale_colour_manual:
    """The same palette for lines and points."""
    labels, values = _segment_palette(segments)
    return p9.scale_colour_manual(values=values, breaks=labels)


def _theme(width: float = 9, height: float = 4.5) -> p9.theme:
    return p9.theme_minimal(base_size=11) + p9.theme(
        figure_size=(width, height),
        legend_position="bottom",
        plot_title=p9.element_text(weight="bold"),
        strip_text=p9.element_text(weight="bold"),
    )


def _thousands(values) -> list[str]:
    return [f"{value:,.0f}" for value in values]


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
        + p9.scale_y_continuous(labels=_thousands)
        + p9.labs(
            title=f"Daily {measure} by channel",
            x="Date",
            y=f"{measure.capitalize()} per day",
            colour="Channel",
        )
        + _theme()
    )


def activity_decomposition(decomposition: pd.DataFrame, measure: str = "events") -> p9.ggplot:
    """The observed daily series with its 7-day trend on top: the direction without the
    weekly zig-zag."""
    data = decomposition.assign(date=lambda frame: pd.to_datetime(frame["date"]))
    long = data.melt(id_vars="date", value_vars=["observed", "trend"], var_name="series")
    long["series"] = long["series"].map(
        {"observed": f"{measure.capitalize()} that day", "trend": "Trend (centred 7-day mean)"}
    )
    return (
        p9.ggplot(long.dropna(), p9.aes("date", "value", colour="series", size="series"))
        + p9.geom_line()
        + p9.scale_colour_manual(values=["#9ecae1", "#08519c"])
        + p9.scale_size_manual(values=[0.7, 1.6])
        + p9.scale_y_continuous(labels=_thousands)
        + p9.labs(
            title=f"Daily {measure}, all channels (bots excluded): observed and trend",
            x="Date",
            y=f"{measure.capitalize()} per day",
            colour="",
            size="",
        )
        + _theme()
    )


def weekly_seasonality(pattern: pd.DataFrame, measure: str = "events") -> p9.ggplot:
    """How far each weekday sits above or below the trend, on average."""
    data = pattern.assign(
        day_of_week=lambda frame: pd.Categorical(
            frame["day_of_week"], categories=DAYS_OF_WEEK, ordered=True
        ),
        direction=lambda frame: (frame["seasonal"] >= 0).map({True: "above", False: "below"}),
        label=lambda frame: [
            f"{value:+,.0f}" + ("" if pd.isna(pct) else f"\n({pct:+.0f}%)")
            for value, pct in zip(frame["seasonal"], frame["seasonal_pct"])
        ],
        label_y=lambda frame: frame["seasonal"].where(frame["seasonal"] >= 0, 0),
    )
    return (
        p9.ggplot(data, p9.aes("day_of_week", "seasonal", fill="direction"))
        + p9.geom_col(width=0.7, show_legend=False)
        + p9.geom_text(p9.aes(y="label_y", label="label"), va="bottom", size=9, nudge_y=0)
        + p9.geom_hline(yintercept=0, colour="#444444")
        + p9.scale_fill_manual(values={"above": "#2171b5", "below": "#cb181d"})
        + p9.scale_y_continuous(expand=(0.1, 0, 0.25, 0), labels=_thousands)
        + p9.labs(
            title=f"Weekly rhythm: {measure} per day above or below the trend, by weekday",
            x="Day of the week",
            y=f"{measure.capitalize()} per day vs trend",
        )
        + _theme()
    )


def channel_funnel(funnel: pd.DataFrame) -> p9.ggplot:
    """Share of each channel's visitors who get through every step up to this one; bars
    labelled with the persons behind them."""
    data = funnel.assign(
        step=lambda frame: pd.Categorical(
            frame["step"].map(FUNNEL_STEPS), categories=list(FUNNEL_STEPS.values()), ordered=True
        ),
        pct=lambda frame: frame["share_of_visitors"] * 100,
        label=lambda frame: [f"{persons:,}" for persons in frame["persons"]],
    )
    dodge = p9.position_dodge(width=0.8)
    return (
        p9.ggplot(data, p9.aes("step", "pct", fill="channel"))
        + p9.geom_col(position=dodge, width=0.75)
        + p9.geom_text(p9.aes(label="label", group="channel"), position=dodge, va="bottom", size=8)
        + p9.scale_fill_manual(values=CHANNEL_COLOURS)
        + p9.scale_y_continuous(limits=(0, 108), breaks=range(0, 101, 20), expand=(0, 0))
        + p9.labs(
            title="Channel funnel: visitors reaching each step (labels: persons)",
            x="Funnel step (each includes every earlier step on the same channel)",
            y="Share of the channel's visitors (%)",
            fill="Channel",
        )
        + _theme()
    )


def segment_funnel(funnel: pd.DataFrame) -> p9.ggplot:
    """Share of each segment's visitors of a channel who get through every step up to this
    one: where each segment drops out."""
    data = funnel.assign(
        step=lambda frame: pd.Categorical(
            frame["step"].map(FUNNEL_STEPS), categories=list(FUNNEL_STEPS.values()), ordered=True
        ),
        pct=lambda frame: frame["share_of_visitors"] * 100,
        segment=lambda frame: [
            segment_label(i, n) for i, n in zip(frame["segment_id"], frame["segment_name"])
        ],
    )
    return (
        p9.ggplot(data, p9.aes("step", "pct", colour="segment", group="segment"))
        + p9.geom_line(size=0.9)
        + p9.geom_point(size=2.5)
        + segment_line_colour(funnel)
        + p9.scale_y_continuous(limits=(0, 100), breaks=range(0, 101, 20))
        + p9.facet_wrap("channel", nrow=1, labeller=lambda channel: f"Channel: {channel}")
        + p9.guides(colour=p9.guide_legend(ncol=3))
        + p9.labs(
            title="Funnel by segment: each segment's visitors reaching each step",
            x="Funnel step (each includes every earlier step on the same channel)",
            y="Share of the segment's visitors (%)",
            colour="Segment",
        )
        + _theme(11, 5.5)
    )


def _every_period(limits: tuple[float, float]) -> list[int]:
    """A tick at every whole period: periods since first seen are counts."""
    return list(range(int(limits[1]) + 1))


def cohort_retention(retention: pd.DataFrame) -> p9.ggplot:
    """The cohort triangle: each row a cohort (its first period, persons), each column the
    periods since, the share still active in the cell; one panel per grain. An asterisk marks
    a period the data stops in early (its share can still grow)."""
    data = retention.assign(
        grain=lambda frame: pd.Categorical(
            frame["cohort_grain"].map(COHORT_GRAINS),
            categories=[COHORT_GRAINS[g] for g in COHORT_GRAINS if g in set(frame["cohort_grain"])],
        ),
        cohort=lambda frame: [
            f"{period:%Y-%m-%d} ({persons:,})"
            for period, persons in zip(
                pd.to_datetime(frame["cohort_period"]), frame["cohort_persons"]
            )
        ],
        label=lambda frame: [
            f"{rate:.0%}" + ("" if complete else "*")
            for rate, complete in zip(frame["retention_rate"], frame["period_is_complete"])
        ],
        ink=lambda frame: (frame["retention_rate"] > 0.55).map({True: "white", False: "#222222"}),
    )
    order = data.sort_values(["cohort_grain", "cohort_period"], ascending=False)["cohort"]
    data["cohort"] = pd.Categorical(data["cohort"], categories=list(order.drop_duplicates()))
    rows = data.groupby("cohort_grain")["cohort_period"].nunique().sum()
    return (
        p9.ggplot(data, p9.aes("periods_since_first_seen", "cohort", fill="retention_rate"))
        + p9.geom_tile(colour="white", size=0.8)
        + p9.geom_text(p9.aes(label="label", colour="ink"), size=8)
        + p9.scale_colour_identity()
        + p9.scale_fill_gradient(low="#f7fbff", high="#08519c", limits=(0, 1), guide=None)
        + p9.scale_x_continuous(breaks=_every_period, expand=(0, 0))
        + p9.facet_wrap("grain", ncol=1, scales="free")
        + p9.labs(
            title="Cohort retention: share of each cohort active again n periods after first seen",
            x="Periods (weeks or months) since first seen",
            y="Cohort: first period (persons)",
            caption="* the data stops within this period: its share can still grow.",
        )
        + _theme(11, min(12.5, 0.32 * rows + 2.6))
        + p9.theme(panel_grid=p9.element_blank())
    )


def retention_curves(curves: pd.DataFrame, segments: pd.DataFrame) -> p9.ggplot | Compose | None:
    """Weekly retention pooled over the cohorts, by first-seen channel and by segment: which
    entry channel and which segment keep coming back."""
    weekly = curves[curves["cohort_grain"] == "week"].assign(
        pct=lambda frame: frame["retention_rate"] * 100
    )
    panels = []
    by_channel = weekly[weekly["cohort_dimension"] == "first_seen_channel"]
    if len(by_channel):
        panels.append(
            p9.ggplot(by_channel, p9.aes("periods_since_first_seen", "pct", colour="cohort_value"))
            + p9.geom_line(size=0.9)
            + p9.geom_point(size=2.5)
            + p9.scale_colour_manual(values=CHANNEL_COLOURS)
            + p9.labs(
                title="Weekly retention by first-seen channel (all cohorts pooled)",
                x="Weeks since first seen",
                y="Still active (%)",
                colour="First seen on",
            )
        )
    by_segment = weekly[weekly["cohort_dimension"] == "segment"]
    if len(by_segment):
        panels.append(
            p9.ggplot(by_segment, p9.aes("periods_since_first_seen", "pct", colour="cohort_value"))
            + p9.geom_line(size=0.9)
            + p9.geom_point(size=2.5)
            + segment_line_colour(segments)
            + p9.guides(colour=p9.guide_legend(ncol=3))
            + p9.labs(
                title="Weekly retention by segment (all cohorts pooled)",
                x="Weeks since first seen",
                y="Still active (%)",
                colour="Segment",
            )
        )
    if not panels:
        return None
    panels = [
        panel
        + p9.scale_x_continuous(breaks=_every_period)
        + p9.scale_y_continuous(limits=(0, 100), breaks=range(0, 101, 20))
        + _theme(11, 4.5)
        for panel in panels
    ]
    if len(panels) == 1:
        return panels[0]
    return (panels[0] / panels[1]) + p9.theme(figure_size=(11, 9))


def _roi_breaks(limits: tuple[float, float]) -> list[float]:
    """-100%, 0 and powers of ten: readable ticks on the signed-log ROI axis."""
    candidates = [-100, 0, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    return [value for value in candidates if limits[0] <= value <= limits[1]]


def campaign_kpis(
    campaigns: pd.DataFrame, currency: str = "currency units"
) -> p9.ggplot | Compose | None:
    """CTR, CPC, CPM and conversion rate per campaign, one panel per KPI with its unit; ROI
    below on a signed-log axis, because a campaign that costs almost nothing (e-mail) has a
    ROI thousands of times the others' and would flatten them on a linear axis."""
    kpis = {
        "ctr": ("CTR (% of impressions)", 100, "{:.2f}%"),
        "cpc": (f"CPC ({currency} per click)", 1, "{:,.2f}"),
        "cpm": (f"CPM ({currency} per 1,000 impressions)", 1, "{:,.2f}"),
        "conversion_rate": ("Conversion rate (% of clicks)", 100, "{:.1f}%"),
    }
    data = campaigns.assign(
        campaign=lambda frame: frame["campaign_name"].fillna(frame["campaign_id"])
    )
    order = list(data.sort_values(["channel", "campaign"], ascending=False)["campaign"])
    frames = []
    for column, (title, scale, fmt) in kpis.items():
        values = data[column].astype(float) * scale
        frames.append(
            data[["campaign", "channel"]].assign(
                kpi=title,
                value=values,
                label=[" " + fmt.format(value) if pd.notna(value) else "" for value in values],
            )
        )
    long = pd.concat(frames, ignore_index=True).dropna(subset=["value"])
    if long.empty:  # no impressions, clicks or cost reported (a call list): no KPI to draw
        return None
    long["kpi"] = pd.Categorical(long["kpi"], categories=[kpi[0] for kpi in kpis.values()])
    long["campaign"] = pd.Categorical(long["campaign"], categories=order, ordered=True)
    height = 0.3 * len(order) + 1.6  # of each of the two plots, in inches
    rates = (
        p9.ggplot(long, p9.aes("campaign", "value", fill="channel"))
        + p9.geom_col(width=0.7, show_legend=False)
        + p9.geom_text(p9.aes(label="label"), ha="left", size=8)
        + p9.scale_fill_manual(values=CAMPAIGN_CHANNEL_COLOURS, na_value="#7f7f7f")
        + p9.scale_y_continuous(expand=(0, 0, 0.45, 0))
        + p9.coord_flip()
        + p9.facet_wrap("kpi", scales="free_x", nrow=1)
        + p9.labs(
            title="Campaign KPIs over the whole period (unit in each panel's title)",
            x="",
            y="",
        )
        + _theme(11, height)
        + p9.theme(panel_spacing_x=0.03)
    )
    roi = data.dropna(subset=["roi"]).assign(
        campaign=lambda frame: pd.Categorical(frame["campaign"], categories=order, ordered=True),
        pct=lambda frame: frame["roi"] * 100,
        label=lambda frame: [f" {value:+,.0f}% " for value in frame["pct"]],
        hjust=lambda frame: (frame["pct"] < 0).map({True: "right", False: "left"}),
    )
    if roi.empty:  # no campaign reported a cost: no ROI to draw (an empty log axis fails)
        return rates
    returns = (
        p9.ggplot(roi, p9.aes("campaign", "pct", fill="channel"))
        + p9.geom_col(width=0.7)
        + p9.geom_text(p9.aes(label="label", ha="hjust"), size=8)
        + p9.geom_hline(yintercept=0, colour="#444444", size=0.3)
        + p9.scale_fill_manual(values=CAMPAIGN_CHANNEL_COLOURS, na_value="#7f7f7f")
        + p9.scale_y_continuous(
            trans=pseudo_log_trans(sigma=50),
            breaks=_roi_breaks,
            labels=lambda values: [f"{value:+,.0f}%" if value else "0%" for value in values],
            expand=(0.05, 0, 0.25, 0),
        )
        + p9.coord_flip()
        + p9.labs(
            title="ROI = (revenue - cost) / cost",
            x="",
            y="ROI (% of cost; signed-log axis: linear near 0, then x10 per tick)",
            fill="Campaign channel",
        )
        + _theme(11, height)
    )
    return (rates / returns) + p9.theme(figure_size=(11, 2 * height))


def _segment_labels(segments: pd.DataFrame) -> pd.DataFrame:
    """segments with a `segment` label column, ordered by segment id (first at the top)."""
    data = segments.sort_values("segment_id").assign(
        segment=lambda frame: [
            segment_label(i, n) for i, n in zip(frame["segment_id"], frame["segment_name"])
        ]
    )
    data["segment"] = pd.Categorical(
        data["segment"], categories=list(data["segment"])[::-1], ordered=True
    )
    return data


def segment_sizes(segments: pd.DataFrame) -> p9.ggplot:
    """Persons, revenue and revenue per person of every segment side by side: who is big and
    who is worth the most."""
    data = _segment_labels(segments).assign(
        revenue=lambda frame: frame["persons"] * frame["revenue_per_person"].fillna(0)
    )
    panels = {
        "persons": "Persons",
        "revenue": "Revenue (currency units)",
        "revenue_per_person": "Revenue per person (currency units)",
    }
    long = data.melt(
        id_vars=["segment_id", "segment_name", "segment"],
        value_vars=list(panels),
        var_name="measure",
        value_name="value",
    )
    long["value"] = long["value"].fillna(0)
    long["measure"] = pd.Categorical(
        long["measure"].map(panels), categories=list(panels.values()), ordered=True
    )
    long["label"] = _thousands(long["value"])
    return (
        p9.ggplot(long, p9.aes("segment", "value", fill="segment"))
        + p9.geom_col(show_legend=False)
        + p9.geom_text(p9.aes(label="label"), ha="left", nudge_y=0, size=8, format_string=" {}")
        + p9.scale_y_continuous(expand=(0, 0, 0.3, 0), labels=_thousands)
        + segment_fill(segments)
        + p9.coord_flip()
        + p9.facet_wrap("measure", scales="free_x", nrow=1)
        + p9.labs(
            title="Segment sizes and value (behavioural latent classes)",
            x="",
            y="Persons / revenue in currency units over the whole period",
        )
        + _theme(11, 0.6 * len(data) + 1.6)
    )


def segment_map(segments: pd.DataFrame) -> p9.ggplot:
    """Segments placed by engagement (sessions per person) and value (revenue per person),
    bubble area = persons: the top right is worth nurturing, the bottom right converts badly."""
    # Segment 0 (no recorded activity) has no sessions and no revenue: it sits at the origin.
    data = _segment_labels(segments).fillna({"sessions_per_person": 0, "revenue_per_person": 0})
    return (
        p9.ggplot(data, p9.aes("sessions_per_person", "revenue_per_person"))
        + p9.geom_point(p9.aes(size="persons", fill="segment"), colour="#333333", alpha=0.85)
        + p9.geom_text(p9.aes(label="segment_id"), size=10, fontweight="bold", colour="white")
        + segment_fill(segments)
        # Explicit limits from 0: without them plotnine scales the smallest segment to nothing.
        + p9.scale_size_area(max_size=22, limits=(0, data["persons"].max()))
        + p9.scale_x_continuous(expand=(0.15, 0))
        + p9.scale_y_continuous(expand=(0.15, 0), labels=_thousands)
        + p9.guides(fill=p9.guide_legend(ncol=2, override_aes={"size": 6}), size=False)
        + p9.labs(
            title="Segment map: engagement against value (bubble area = persons)",
            x="Sessions per person (whole period)",
            y="Revenue per person (currency units)",
            fill="Segment",
        )
        + _theme(9, 6)
    )


def interest_mix(mix: pd.DataFrame) -> p9.ggplot:
    """Share of each segment's interest per category: what to show each segment."""
    data = mix.assign(
        segment=lambda frame: [
            segment_label(i, n) for i, n in zip(frame["segment_id"], frame["segment_name"])
        ],
        pct=lambda frame: frame["interest_share"] * 100,
    )
    order = data.drop_duplicates("segment_id").sort_values("segment_id")["segment"]
    data["segment"] = pd.Categorical(data["segment"], categories=list(order)[::-1], ordered=True)
    is_other = data["category"] == "other"
    categories = list(
        data[~is_other].groupby("category")["interest_score"].sum().sort_values().index[::-1]
    ) + (["other"] if is_other.any() else [])
    data["category"] = pd.Categorical(data["category"], categories=categories, ordered=True)
    tilted = len(categories) > 8
    data["label"] = [f"{value:.0f}%" for value in data["pct"]]
    data["ink"] = (data["pct"] > data["pct"].max() * 0.55).map({True: "white", False: "#222222"})
    return (
        p9.ggplot(data, p9.aes("category", "segment", fill="pct"))
        + p9.geom_tile(colour="white", size=0.8)
        + p9.geom_text(p9.aes(label="label", colour="ink"), size=9)
        + p9.scale_colour_identity()
        + p9.scale_fill_gradient(low="#f0f4fa", high="#08306b", guide=None)
        + p9.labs(
            title="Interest mix: share (%) of each segment's interest per category",
            x="Category (ordered by total interest)",
            y="",
        )
        + _theme(10, 0.55 * data["segment"].nunique() + 2)
        + p9.theme(
            panel_grid=p9.element_blank(),
            axis_text_x=p9.element_text(
                rotation=30 if tilted else 0, ha="right" if tilted else "center"
            ),
        )
    )


def rfm_grid(grid: pd.DataFrame) -> p9.ggplot:
    """Persons per recency x frequency score, with their mean revenue: the classic RFM map
    (best customers top right, lost ones bottom left). Empty cells stay visible: quintiles
    of few distinct order counts can skip a score."""
    cells = pd.MultiIndex.from_product([range(1, 6), range(1, 6)], names=["r_score", "f_score"])
    data = (
        grid.set_index(["r_score", "f_score"])[["persons", "mean_monetary"]]
        .reindex(cells)
        .reset_index()
    )
    data["persons"] = data["persons"].fillna(0).astype(int)
    data["label"] = [
        f"{persons:,}\navg {monetary:,.0f}" if persons else "no one"
        for persons, monetary in zip(data["persons"], data["mean_monetary"])
    ]
    data["ink"] = (data["persons"] > data["persons"].max() * 0.55).map(
        {True: "white", False: "#222222"}
    )
    return (
        p9.ggplot(data, p9.aes("f_score", "r_score", fill="persons"))
        + p9.geom_tile(colour="white", size=1)
        + p9.geom_text(p9.aes(label="label", colour="ink"), size=10)
        + p9.scale_colour_identity()
        + p9.scale_fill_gradient(low="#f4f9f2", high="#00441b", guide=None)
        + p9.scale_x_continuous(breaks=range(1, 6), expand=(0, 0))
        + p9.scale_y_continuous(breaks=range(1, 6), expand=(0, 0))
        + p9.labs(
            title="RFM grid: persons (darker = more) and their mean revenue (currency units)",
            x="Frequency score (1 = no or fewest completed orders, 5 = most)",
            y="Recency score (1 = longest ago, 5 = most recent)",
        )
        + _theme(9, 6.5)
        + p9.theme(panel_grid=p9.element_blank())
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
    data = allocation[allocation["spend"] > 0].copy()
    names = data.get("segment_name", "Segment")
    data["segment"] = data["segment_id"].astype(str) + ". " + names
    order = data.sort_values("segment_id")["segment"].drop_duplicates()
    data["segment"] = pd.Categorical(data["segment"], categories=list(order)[::-1], ordered=True)
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


def audience_overlap(overlap: pd.DataFrame, reach: pd.DataFrame) -> p9.ggplot:
    """Share of each audience (rows, with its size) found in each other audience and segment
    (columns): who a campaign to one audience also reaches."""
    sizes = dict(zip(reach["audience"], reach["members"]))
    rows = [f"{name} ({sizes[name]:,})" for name in reach["audience"]]
    data = overlap.assign(
        audience=[f"{name} ({sizes[name]:,})" for name in overlap["audience"]],
        other=[
            f"{'segment' if kind == 'segment' else 'audience'}: {other}"
            for kind, other in zip(overlap["other_kind"], overlap["other"])
        ],
        label=[f"{share:.0%}" for share in overlap["share_of_audience"]],
    )
    columns = [
        *sorted({c for c in data["other"] if c.startswith("audience: ")}),
        *sorted({c for c in data["other"] if c.startswith("segment: ")}),
    ]
    cells = pd.MultiIndex.from_product([rows, columns], names=["audience", "other"])
    data = (
        data.set_index(["audience", "other"])[["share_of_audience", "label"]]
        .reindex(cells)
        .reset_index()
        .fillna({"share_of_audience": 0.0, "label": "0%"})
    )
    data["audience"] = pd.Categorical(data["audience"], categories=rows[::-1])
    data["other"] = pd.Categorical(data["other"], categories=columns)
    data["ink"] = (data["share_of_audience"] > 0.55).map({True: "white", False: "#222222"})
    return (
        p9.ggplot(data, p9.aes("other", "audience", fill="share_of_audience"))
        + p9.geom_tile(colour="white", size=1)
        + p9.geom_text(p9.aes(label="label", colour="ink"), size=9)
        + p9.scale_colour_identity()
        + p9.scale_fill_gradient(low="#f3f3fb", high="#3f007d", limits=(0, 1), guide=None)
        + p9.labs(
            title="Audience overlap: share of each audience (members) also in ...",
            x="",
            y="Audience (members)",
        )
        + _theme(11, 1.6 + 0.7 * len(rows))
        + p9.theme(axis_text_x=p9.element_text(rotation=30, ha="right"))
    )


def audience_reach(reach: pd.DataFrame) -> p9.ggplot:
    """Members of each audience per data day: whether an audience grows, shrinks or holds
    (one bar per audience while there is a single day)."""
    data = reach.assign(as_of_date=pd.to_datetime(reach["as_of_date"]))
    days = data["as_of_date"].nunique()
    if days == 1:
        day = f"{data['as_of_date'].iloc[0]:%Y-%m-%d}"
        plot = (
            p9.ggplot(data, p9.aes("audience", "members", fill="audience"))
            + p9.geom_col(show_legend=False)
            + p9.geom_text(
                p9.aes(label="members"), ha="left", nudge_y=data["members"].max() * 0.01, size=10
            )
            + p9.coord_flip()
            + p9.labs(title=f"Audience reach on {day}", x="Audience", y="Members (persons)")
        )
    else:
        plot = (
            p9.ggplot(data, p9.aes("as_of_date", "members", colour="audience"))
            + p9.geom_line()
            + p9.geom_point(size=2.5)
            + p9.scale_x_datetime(date_labels="%Y-%m-%d")
            + p9.labs(
                title="Audience reach: members per data day",
                x="Data day (the profiles' as-of date)",
                y="Members (persons)",
                colour="Audience",
            )
        )
    top = max(int(data["members"].max()), 1) * 1.08
    return plot + p9.scale_y_continuous(labels=_thousands, limits=(0, top)) + _theme(9, 4)


def propensity_reliability(calibration: pd.DataFrame, evaluation: pd.DataFrame) -> p9.ggplot:
    """Reliability curve: mean predicted probability against the observed buyer rate per bin of
    the holdout, one line per model, the diagonal where a calibrated model lies; the Brier score
    and ECE of each model in the caption. `evaluation` is ml.propensity_eval (model, metric,
    value); a model without them is captioned without numbers."""
    scores = evaluation.pivot_table(index="model", columns="metric", values="value")
    best = evaluation.loc[evaluation["model"] == "best"].set_index("metric")["value"]

    def label(model: str) -> str:
        if model not in scores.index or not {"brier", "ece"} <= set(scores.columns):
            return model
        brier, ece = scores.loc[model, "brier"], scores.loc[model, "ece"]
        return f"{model} (Brier {brier:.3f}, ECE {ece:.3f})"

    data = calibration.assign(model=calibration["model"].map(label))
    top = float(max(data["mean_predicted"].max(), data["observed_rate"].max(), 0.05)) * 1.05
    title = "Propensity reliability (holdout)"
    if {"brier", "ece"} <= set(best.index):
        title += f": Brier {best['brier']:.3f}, ECE {best['ece']:.3f}"
    return (
        p9.ggplot(data, p9.aes("mean_predicted", "observed_rate", colour="model"))
        + p9.geom_abline(intercept=0, slope=1, linetype="dashed", colour="#999999")
        + p9.geom_line()
        + p9.geom_point(p9.aes(size="persons"), show_legend={"size": False})
        + p9.scale_x_continuous(labels=_percent, limits=(0, top))
        + p9.scale_y_continuous(labels=_percent, limits=(0, top))
        + p9.scale_size_area(max_size=4)
        + p9.coord_equal()
        + p9.labs(
            title=title,
            x="Mean predicted probability (deciles of each model's scores)",
            y="Observed buyer rate",
            colour="",
            caption="Title: the scoring model. Point area = persons; ECE over 10 equal-width bins.",
        )
        + _theme(width=8, height=6.5)
        + p9.guides(colour=p9.guide_legend(ncol=1))
    )


def _percent(values) -> list[str]:
    return [f"{value:.0%}" for value in values]
