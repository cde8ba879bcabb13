"""Social engagements keyed by handle: persona-driven interests, some on campaign posts."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datagen.campaigns import CAMPAIGNS
from datagen.catalogue import CATEGORIES
from datagen.events import Records
from datagen.period import Period
from datagen.personas import PERSONAS
from datagen.persons import Population
from datagen.shopping import ProductChooser
from datagen.strings import concat, hex_ids, json_lines, json_string, lookup, take
from datagen.timestamps import EPOCH_MS, ISO_UTC, ISO_UTC_MS, format_times
from datagen.visits import Visits

NETWORKS = ("instagram", "tiktok", "x")
NETWORK_SHARES = np.array([0.5, 0.32, 0.18])
NETWORK_TIME_FORMATS = np.array([ISO_UTC, EPOCH_MS, ISO_UTC_MS])  # each network's export habit
MAIN_NETWORK_SHARE = 0.75
ACTIONS = ("like", "comment", "share", "follow", "click")
ACTION_SHARES = np.array([0.55, 0.12, 0.08, 0.05, 0.2])
CLICK = ACTIONS.index("click")
CAMPAIGN_POST_SHARE = 0.3  # engagements on a network with a running campaign that hit its posts
POSTS_PER_CATEGORY, POSTS_PER_CAMPAIGN = 40, 5
SOCIAL_CAMPAIGNS = tuple(i for i, c in enumerate(CAMPAIGNS) if c.channel == "social")
CAMPAIGN_NETWORK = np.array(  # the network a social campaign runs on (its utm_source)
    [NETWORKS.index(c.utm_source) if c.channel == "social" else -1 for c in CAMPAIGNS]
)


def social_records(
    population: Population,
    visits: Visits,
    chooser: ProductChooser,
    period: Period,
    rng: np.random.Generator,
    id_key: int,
) -> tuple[Records, np.ndarray]:
    """Organic engagements of persons with a handle, plus the click before each paid-social visit.

    Returns the records and the persons whose handle they show.
    """
    with_handle = np.flatnonzero(population.has_handle)
    rate = np.array([p.social_per_day for p in PERSONAS])[population.persona[with_handle]]
    person = np.repeat(with_handle, rng.poisson(rate * period.days))
    n = len(person)
    day = period.draw_days(rng, n)
    main_network = rng.choice(len(NETWORKS), len(population), p=NETWORK_SHARES)
    network = np.where(
        rng.random(n) < MAIN_NETWORK_SHARE,
        main_network[person],
        rng.choice(len(NETWORKS), n, p=NETWORK_SHARES),
    )
    campaign = np.full(n, -1)
    for index in SOCIAL_CAMPAIGNS:
        first, stop = CAMPAIGNS[index].active_days(period.days)
        hits = (network == CAMPAIGN_NETWORK[index]) & (day >= first) & (day < stop)
        campaign[hits & (rng.random(n) < CAMPAIGN_POST_SHARE)] = index
    clicked = np.flatnonzero(
        np.isin(visits.campaign, SOCIAL_CAMPAIGNS) & population.has_handle[visits.person]
    )
    click_campaign = visits.campaign[clicked]
    person = np.concatenate([person, visits.person[clicked]])
    time_ms = np.concatenate(
        [
            period.draw_times(rng, day),
            visits.start_ms[clicked] - rng.integers(2_000, 60_000, len(clicked)),
        ]
    )
    campaign = np.concatenate([campaign, click_campaign])
    network = np.concatenate([network, CAMPAIGN_NETWORK[click_campaign]])
    action = np.concatenate(
        [rng.choice(len(ACTIONS), n, p=ACTION_SHARES), np.full(len(clicked), CLICK)]
    )
    order = np.lexsort((np.arange(len(person)), time_ms))
    person, time_ms, campaign, network, action = (
        a[order] for a in (person, time_ms, campaign, network, action)
    )
    total = len(person)
    on_campaign = campaign >= 0
    category = np.where(
        on_campaign,
        np.array([c.category_index for c in CAMPAIGNS])[np.maximum(campaign, 0)],
        chooser.categories(person, rng),
    )
    category_names = lookup(CATEGORIES, category)
    organic_post = concat(
        lookup(NETWORKS, network),
        "_",
        category_names,
        "_",
        pa.array(rng.integers(0, POSTS_PER_CATEGORY, total)).cast(pa.string()),
    )
    campaign_ids = lookup([c.campaign_id for c in CAMPAIGNS], campaign)
    campaign_post = concat(
        campaign_ids,
        "_post_",
        pa.array(rng.integers(1, POSTS_PER_CAMPAIGN + 1, total)).cast(pa.string()),
    )
    fields = [
        ("engagement_id", json_string(hex_ids("eng-", np.arange(total), id_key + 20))),
        ("network", json_string(lookup(NETWORKS, network))),
        ("handle", json_string(take(population.handles_as_written, person))),
        ("action", json_string(lookup(ACTIONS, action))),
        ("event_time", format_times(time_ms, NETWORK_TIME_FORMATS[network], quoted=True)),
        ("post_id", json_string(pc.if_else(pa.array(on_campaign), campaign_post, organic_post))),
        ("campaign_id", json_string(campaign_ids)),
        ("category", json_string(category_names)),
    ]
    return Records(json_lines(fields), time_ms, 0, 0), person
