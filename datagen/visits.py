"""Visits (sessions) to the web shop and the app: who, when, on which browser or install,
where from, and whether the visitor logs in and buys. events.py expands them into events.
"""

from dataclasses import dataclass, fields, replace

import numpy as np

from datagen.campaigns import CAMPAIGNS, EMAIL, PAID, paid_activity
from datagen.crm import CustomerPlan
from datagen.period import HOUR_MS, Period
from datagen.personas import PERSONAS
from datagen.persons import Devices, Population
from datagen.streams import cumulative_weights, sample_rows
from datagen.timestamps import DAY_MS

DIRECT, ORGANIC_SEARCH, ORGANIC_SOCIAL, REFERRAL, CAMPAIGN = range(5)
WEB_SOURCE_SHARES = np.array([0.42, 0.25, 0.08, 0.05, 0.20])  # app visits are always direct
ORGANIC_REFERRERS = (
    "www.google.com",
    "www.bing.com",
    "duckduckgo.com",
    "l.instagram.com",
    "www.tiktok.com",
    "t.co",
    "www.dealfinder.example",
    "blog.homeideas.example",
)
SOURCE_REFERRERS = {ORGANIC_SEARCH: (0, 1, 2), ORGANIC_SOCIAL: (3, 4, 5), REFERRAL: (6, 7)}
# Referrer codes: organic hosts first, then one per campaign (None for e-mail: no referrer).
REFERRERS = ORGANIC_REFERRERS + tuple(campaign.referrer for campaign in CAMPAIGNS)
VISIT_LOGIN_SHARE = 0.3  # visits of a logging-in browser that log in without buying
MAX_PURCHASE_CHANCE = 0.9  # even the keenest buyer leaves some visits empty-handed
CHECKOUT_LOGIN_SHARE = 0.8  # web purchases by a logging-in browser made logged in (else guest)
ABANDONED_CART_SHARE = 0.12
CAMPAIGN_PURCHASE_LIFT = 1.3
WITHOUT_LOGIN_PURCHASE_FACTOR = 0.6  # persons without an account buy less often (guest checkout)
INTEREST_BASELINE = 0.15  # paid campaigns reach everyone a little, the interested much more
EMAIL_TARGET_SHARE = 0.85  # of e-mailable customers put on a campaign's send list
EMAIL_CLICK_SHARE = 0.07  # of non-converting recipients who click through without buying
CONVERSION_WINDOW_MS = 7 * DAY_MS
VISIT_MARGIN_MS = 4 * HOUR_MS
SEND_HOUR_MS = 8 * HOUR_MS


@dataclass(frozen=True)
class Visits:
    """One entry per visit."""

    person: np.ndarray
    device: np.ndarray  # row in Devices
    is_app: np.ndarray
    start_ms: np.ndarray
    n_browse: np.ndarray  # page, product and search events (the first is the entry)
    focus_category: np.ndarray
    source: np.ndarray
    referrer: np.ndarray  # index into REFERRERS, -1 for none
    campaign: np.ndarray  # index into CAMPAIGNS, -1 for none
    purchase: np.ndarray
    n_cart: np.ndarray  # add_to_cart events; in a purchase visit, the order lines
    checkout_login: np.ndarray  # logs in to buy, if the browser ever logs in
    login: np.ndarray
    login_position: np.ndarray  # index of the login event in the visit

    def __len__(self) -> int:
        return len(self.person)

    @staticmethod
    def concat(*parts: "Visits") -> "Visits":
        return Visits(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Visits)}
        )


@dataclass(frozen=True)
class EmailTouches:
    """Who each e-mail campaign reached, with the variant and what the recipient did."""

    campaign: np.ndarray
    variant: np.ndarray
    person: np.ndarray
    touch_ms: np.ndarray
    converts: np.ndarray
    response_ms: np.ndarray  # when a responder visits the shop or the store
    clicked: np.ndarray  # came to the web shop through the newsletter link


@dataclass(frozen=True)
class StoreConversions:
    """E-mail conversions of loyalty-card-only customers, redeemed in a store with the coupon."""

    person: np.ndarray
    time_ms: np.ndarray
    campaign: np.ndarray


def _persona_values(population: Population, attribute: str, persons: np.ndarray) -> np.ndarray:
    return np.array([getattr(p, attribute) for p in PERSONAS])[population.persona[persons]]


def _browser_of(
    devices: Devices, persons: np.ndarray, n_persons: int, rng: np.random.Generator
) -> np.ndarray:
    """A browser of each person; the first is the main one and is used most."""
    first, count = devices.rows_of(False, n_persons)
    return first[persons] + (rng.random(len(persons)) ** 1.5 * count[persons]).astype(np.int64)


def plan_visits(
    population: Population, devices: Devices, period: Period, rng: np.random.Generator
) -> Visits:
    """Everyday visits: counts by activity level, days by the period's rhythm, sources and purchases."""
    n_persons = len(population)
    counts = np.maximum(rng.poisson(population.activity * period.days), 1)
    person = np.repeat(np.arange(n_persons), counts)
    n = len(person)
    day = period.draw_days(rng, n)
    app_first, app_count = devices.rows_of(True, n_persons)
    is_app = (app_count[person] > 0) & (
        rng.random(n) < _persona_values(population, "app_share", person)
    )
    app_device = app_first[person] + (rng.random(n) ** 1.5 * app_count[person]).astype(np.int64)
    device = np.where(is_app, app_device, _browser_of(devices, person, n_persons, rng))
    source = np.where(is_app, DIRECT, rng.choice(len(WEB_SOURCE_SHARES), n, p=WEB_SOURCE_SHARES))
    campaign = np.full(n, -1)
    paid = np.flatnonzero(source == CAMPAIGN)
    paid_categories = [CAMPAIGNS[index].category_index for index in PAID]
    weights = paid_activity(period.days)[day[paid]] * (
        INTEREST_BASELINE + population.interests[person[paid]][:, paid_categories]
    )
    reachable = weights.sum(axis=1) > 0
    chosen = sample_rows(cumulative_weights(weights), np.arange(len(paid)), rng)
    campaign[paid[reachable]] = np.array(PAID)[chosen[reachable]]
    source[paid[~reachable]] = DIRECT
    referrer = np.full(n, -1)
    for organic_source, hosts in SOURCE_REFERRERS.items():
        rows = np.flatnonzero(source == organic_source)
        referrer[rows] = rng.choice(hosts, len(rows))
    has_campaign = campaign >= 0
    referrer[has_campaign] = len(ORGANIC_REFERRERS) + campaign[has_campaign]
    focus = sample_rows(cumulative_weights(population.interests), person, rng)
    campaign_categories = np.array([c.category_index for c in CAMPAIGNS])
    focus[has_campaign] = campaign_categories[campaign[has_campaign]]
    purchase_chance = (
        _persona_values(population, "purchase_rate", person)
        * population.buying_propensity[person]
        * np.where(has_campaign, CAMPAIGN_PURCHASE_LIFT, 1.0)
        * np.where(population.has_login[person], 1.0, WITHOUT_LOGIN_PURCHASE_FACTOR)
    )
    app_can_sell = ~is_app | devices.logs_in[device]  # the app sells only to logged-in users
    purchase = (rng.random(n) < np.minimum(purchase_chance, MAX_PURCHASE_CHANCE)) & app_can_sell
    return Visits(
        person=person,
        device=device,
        is_app=is_app,
        start_ms=period.draw_times(rng, day),
        n_browse=1 + rng.poisson(_persona_values(population, "browse_events", person) - 1),
        focus_category=focus,
        source=source,
        referrer=referrer,
        campaign=campaign,
        purchase=purchase,
        n_cart=_cart_sizes(population, person, purchase, rng),
        checkout_login=purchase & (is_app | (rng.random(n) < CHECKOUT_LOGIN_SHARE)),
        login=np.zeros(n, bool),
        login_position=np.zeros(n, np.int64),
    )


def _cart_sizes(
    population: Population, person: np.ndarray, purchase: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    lines = 1 + rng.poisson(_persona_values(population, "extra_lines", person))
    abandoned = rng.random(len(person)) < ABANDONED_CART_SHARE
    return np.where(purchase, lines, abandoned.astype(np.int64))


def email_campaigns(
    plan: CustomerPlan,
    population: Population,
    devices: Devices,
    period: Period,
    rng: np.random.Generator,
) -> tuple[Visits, EmailTouches, StoreConversions]:
    """Send each e-mail campaign, randomise recipients into variants, let them convert.

    A recipient converts with the true rate of its variant and then orders within the
    conversion window: online through the newsletter link, or in a store with the coupon
    when it has no online account. Some others click through without buying.
    """
    touches, visit_parts, store_parts = [], [], []
    for index in EMAIL:
        campaign = CAMPAIGNS[index]
        send_day, _ = campaign.active_days(period.days)
        send_ms = period.start_ms + send_day * DAY_MS + SEND_HOUR_MS
        recipients = plan.person[
            plan.emailable_at(send_ms) & (rng.random(len(plan.person)) < EMAIL_TARGET_SHARE)
        ]
        n = len(recipients)
        variant = rng.integers(0, len(campaign.variants), n)
        touch_ms = send_ms + rng.integers(0, 2 * HOUR_MS, n)
        converts = rng.random(n) < np.array(campaign.true_conversion_rates)[variant]
        clicks = ~converts & (rng.random(n) < EMAIL_CLICK_SHARE)
        earliest = touch_ms + 10 * 60_000
        # The visit starts early enough for its purchase to fall inside the window and the period.
        latest = np.maximum(
            np.minimum(touch_ms + CONVERSION_WINDOW_MS, period.end_ms) - VISIT_MARGIN_MS,
            earliest + 1,
        )
        response_ms = earliest + (rng.random(n) * (latest - earliest)).astype(np.int64)
        in_store = converts & ~population.has_login[recipients]
        online = (converts & ~in_store) | clicks
        touches.append(
            EmailTouches(
                np.full(n, index), variant, recipients, touch_ms, converts, response_ms, online
            )
        )
        store_parts.append(
            StoreConversions(
                recipients[in_store], response_ms[in_store], np.full(in_store.sum(), index)
            )
        )
        visit_parts.append(
            _email_visits(
                index,
                recipients[online],
                response_ms[online],
                converts[online],
                population,
                devices,
                rng,
            )
        )
    return (
        Visits.concat(*visit_parts),
        EmailTouches(
            *[np.concatenate([getattr(t, f.name) for t in touches]) for f in fields(EmailTouches)]
        ),
        StoreConversions(
            *[
                np.concatenate([getattr(s, f.name) for s in store_parts])
                for f in fields(StoreConversions)
            ]
        ),
    )


def _email_visits(
    index: int,
    person: np.ndarray,
    start_ms: np.ndarray,
    purchase: np.ndarray,
    population: Population,
    devices: Devices,
    rng: np.random.Generator,
) -> Visits:
    n = len(person)
    return Visits(
        person=person,
        device=_browser_of(devices, person, len(population), rng),
        is_app=np.zeros(n, bool),
        start_ms=start_ms,
        n_browse=1 + rng.poisson(2, n),
        focus_category=np.full(n, CAMPAIGNS[index].category_index),
        source=np.full(n, CAMPAIGN),
        referrer=np.full(n, len(ORGANIC_REFERRERS) + index),
        campaign=np.full(n, index),
        purchase=purchase,
        n_cart=_cart_sizes(population, person, purchase, rng),
        checkout_login=purchase & (rng.random(n) < CHECKOUT_LOGIN_SHARE),
        login=np.zeros(n, bool),
        login_position=np.zeros(n, np.int64),
    )


def with_logins(visits: Visits, devices: Devices, rng: np.random.Generator) -> Visits:
    """Decide which visits log in, and where in the visit.

    Every browser or install that logs in at all does so in at least one of its visits
    (drawn at random, so usually after some anonymous history); purchases log in at checkout.
    """
    n = len(visits)
    order = np.lexsort((rng.random(n), visits.device))
    first_of_device = np.ones(n, bool)
    first_of_device[1:] = visits.device[order][1:] != visits.device[order][:-1]
    forced = np.zeros(n, bool)
    forced[order[first_of_device]] = True
    login = devices.logs_in[visits.device] & (
        forced | (rng.random(n) < VISIT_LOGIN_SHARE) | visits.checkout_login
    )
    position = np.where(
        visits.checkout_login,
        visits.n_browse,
        1 + (rng.random(n) * visits.n_browse).astype(np.int64),
    )
    return replace(visits, login=login, login_position=position)
