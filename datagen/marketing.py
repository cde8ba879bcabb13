"""What the marketing tools export: campaign touches (who was reached, in which variant) and
the ad networks' daily stats, consistent with the visits the campaigns caused."""

from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from datagen.campaigns import CAMPAIGNS, PAID
from datagen.catalogue import CURRENCY
from datagen.period import Period
from datagen.persons import Devices, Population
from datagen.strings import hex_ids, lookup, take
from datagen.timestamps import DAY_MS, EPOCH_MS_STRING, ISO_UTC, NAIVE_UTC, format_times
from datagen.visits import EmailTouches, Visits

DISPLAY_CTR = 0.03  # of the impressions in our touch log (browsers matched to our cookie)
# Share of display impressions the network can match to our cookie (cookie sync): the report
# counts every impression served, the touch log only the matched ones, so the reported CTR is
# a realistic ~0.1-0.2%.
DISPLAY_MATCH_RATE = 0.04
UNTRACKED_CLICK_SHARE = 0.06  # ad clicks that never show up as a tracked visit (bounce, blockers)
SEARCH_CTR, SOCIAL_CTR = (0.03, 0.07), (0.006, 0.012)
# How each channel is bought (EUR): search per click, social and display per 1,000
# impressions, e-mail per message sent (the e-mail service's price) plus the newsletter's
# making (copy, design, the tool's seat), split over its variants by their sends.
SEARCH_CPC, SOCIAL_CPM, DISPLAY_CPM = (0.8, 2.0), (6.0, 10.0), (4.0, 9.0)
EMAIL_COST_PER_SEND, EMAIL_PRODUCTION_COST = 0.003, 600.0


def _touch_table(
    campaign_id: str,
    channel: str,
    touch_type: str,
    serials: np.ndarray,
    id_key: int,
    variant: pa.Array,
    touch_time: pa.Array,
    customer_id: pa.Array,
    anonymous_id: pa.Array,
) -> pa.Table:
    n = len(serials)
    return pa.table(
        {
            "touch_id": hex_ids("tch-", serials, id_key + 30),
            "campaign_id": pa.repeat(campaign_id, n),
            "variant": variant,
            "channel": pa.repeat(channel, n),
            "touch_type": pa.repeat(touch_type, n),
            "touch_time": touch_time,
            "customer_id": customer_id,
            "anonymous_id": anonymous_id,
        }
    )


def email_touch_tables(
    touches: EmailTouches, population: Population, rng: np.random.Generator, id_key: int
) -> dict[str, pa.Table]:
    """One table per e-mail campaign: a 'sent' touch per recipient with its variant.

    Two mail servers send: one stamps ISO UTC, the other naive UTC.
    """
    tables = {}
    serial = 0
    for index in np.unique(touches.campaign):
        rows = np.flatnonzero(touches.campaign == index)
        rows = rows[np.lexsort((touches.person[rows], touches.touch_ms[rows]))]
        n = len(rows)
        campaign = CAMPAIGNS[index]
        tables[campaign.campaign_id] = _touch_table(
            campaign.campaign_id,
            "email",
            "sent",
            serial + np.arange(n),
            id_key,
            variant=lookup(campaign.variants, touches.variant[rows]),
            touch_time=format_times(
                touches.touch_ms[rows], np.where(rng.random(n) < 0.8, ISO_UTC, NAIVE_UTC)
            ),
            customer_id=take(population.customer_ids, touches.person[rows]),
            anonymous_id=pa.nulls(n, pa.string()),
        )
        serial += n
    return tables


def display_impressions(
    visits: Visits, devices: Devices, period: Period, rng: np.random.Generator
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per display campaign: (browser rows, epoch ms) of its impressions.

    Every tracked click had an impression on that browser shortly before; the others were
    seen on random browsers and not clicked. Networks report only browsers they matched to our
    cookie (cookie sync on our site), so every impressed browser visits the site.
    """
    impressions = {}
    visiting = np.unique(visits.device)
    browsers = visiting[~devices.is_app[visiting]]
    for index in (i for i in PAID if CAMPAIGNS[i].channel == "display"):
        landed = np.flatnonzero(visits.campaign == index)
        first, stop = CAMPAIGNS[index].active_days(period.days)
        n_unclicked = round(len(landed) * (1 / DISPLAY_CTR - 1))
        device = np.concatenate([visits.device[landed], rng.choice(browsers, n_unclicked)])
        time_ms = np.concatenate(
            [
                visits.start_ms[landed] - rng.integers(5_000, 30 * 60_000, len(landed)),
                period.draw_times(rng, period.draw_days(rng, n_unclicked, first, stop)),
            ]
        )
        order = np.lexsort((device, time_ms))
        impressions[index] = (device[order], time_ms[order])
    return impressions


def display_touch_tables(
    impressions: dict[int, tuple[np.ndarray, np.ndarray]],
    devices: Devices,
    id_key: int,
    first_serial: int,
) -> dict[str, pa.Table]:
    """One table per display campaign: an 'impression' touch per ad shown, keyed by cookie."""
    tables = {}
    serial = first_serial
    for index, (device, time_ms) in impressions.items():
        n = len(device)
        tables[CAMPAIGNS[index].campaign_id] = _touch_table(
            CAMPAIGNS[index].campaign_id,
            "display",
            "impression",
            serial + np.arange(n),
            id_key,
            variant=pa.nulls(n, pa.string()),
            touch_time=format_times(time_ms, np.full(n, EPOCH_MS_STRING)),
            customer_id=pa.nulls(n, pa.string()),
            anonymous_id=take(devices.ids, device),
        )
        serial += n
    return tables


def ad_stats_tables(
    visits: Visits,
    touches: EmailTouches,
    impressions: dict[int, tuple[np.ndarray, np.ndarray]],
    period: Period,
    rng: np.random.Generator,
) -> dict[str, pa.Table]:
    """Daily report rows per network: campaign x variant x day with impressions, clicks, cost."""
    visit_day = (visits.start_ms - period.start_ms) // DAY_MS
    rows: list[dict] = []
    for index, campaign in enumerate(CAMPAIGNS):
        first, stop = campaign.active_days(period.days)
        if campaign.is_email:
            rows += _email_rows(index, touches, first, period)
            continue
        days = np.arange(first, stop)
        tracked = np.bincount(visit_day[visits.campaign == index], minlength=period.days)[days]
        clicks = tracked + rng.binomial(tracked, UNTRACKED_CLICK_SHARE)
        if campaign.channel == "display":
            shown_day = (impressions[index][1] - period.start_ms) // DAY_MS
            matched = np.bincount(shown_day, minlength=period.days)[days]
            impressions_per_day = np.round(matched / DISPLAY_MATCH_RATE).astype(np.int64)
            cost = impressions_per_day / 1000 * rng.uniform(*DISPLAY_CPM, len(days))
        else:
            ctr = rng.uniform(
                *(SEARCH_CTR if campaign.channel == "search" else SOCIAL_CTR), len(days)
            )
            impressions_per_day = np.round((clicks + 0.5) / ctr).astype(np.int64)
            cost = (
                clicks * rng.uniform(*SEARCH_CPC, len(days))
                if campaign.channel == "search"
                else impressions_per_day / 1000 * rng.uniform(*SOCIAL_CPM, len(days))
            )
        rows += [
            _stats_row(
                index,
                None,
                period.start + timedelta(days=int(day)),
                impressions_per_day[k],
                clicks[k],
                cost[k],
            )
            for k, day in enumerate(days)
        ]
    tables = {}
    for network in sorted({campaign.network for campaign in CAMPAIGNS}):
        selected = sorted(
            (r for r in rows if r["network"] == network),
            key=lambda r: (r["report_date"], r["campaign_id"], r["variant"] or ""),
        )
        tables[network] = pa.Table.from_pylist(selected, schema=_STATS_SCHEMA)
    return tables


def _email_rows(index: int, touches: EmailTouches, send_day: int, period: Period) -> list[dict]:
    """From the send day through the conversion week: sends on the send day, clicks as they come."""
    campaign = CAMPAIGNS[index]
    ours = touches.campaign == index
    all_sends = max(int(ours.sum()), 1)
    rows = []
    for code, variant in enumerate(campaign.variants):
        in_variant = ours & (touches.variant == code)
        sends = int(in_variant.sum())
        send_cost = sends * EMAIL_COST_PER_SEND + EMAIL_PRODUCTION_COST * sends / all_sends
        click_day = (touches.response_ms[in_variant & touches.clicked] - period.start_ms) // DAY_MS
        clicks = np.bincount(click_day, minlength=period.days)
        for day in range(send_day, min(send_day + 8, period.days)):
            sent_today = sends if day == send_day else 0
            rows.append(
                _stats_row(
                    index,
                    variant,
                    period.start + timedelta(days=day),
                    sent_today,
                    clicks[day],
                    send_cost if day == send_day else 0.0,
                )
            )
    return rows


def _stats_row(
    index: int, variant: str | None, day: date, impressions: int, clicks: int, cost: float
) -> dict:
    campaign = CAMPAIGNS[index]
    return {
        "report_date": str(day),
        "network": campaign.network,
        "campaign_id": campaign.campaign_id,
        "campaign_name": campaign.name,
        "channel": campaign.channel,
        "variant": variant,
        "impressions": int(impressions),
        "clicks": int(clicks),
        "cost": round(float(cost), 2),
        "currency": CURRENCY,
    }


_STATS_SCHEMA = pa.schema(
    [
        ("report_date", pa.string()),
        ("network", pa.string()),
        ("campaign_id", pa.string()),
        ("campaign_name", pa.string()),
        ("channel", pa.string()),
        ("variant", pa.string()),
        ("impressions", pa.int64()),
        ("clicks", pa.int64()),
        ("cost", pa.float64()),
        ("currency", pa.string()),
    ]
)
