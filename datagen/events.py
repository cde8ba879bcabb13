"""Web and app events: visits expanded into event sequences, plus bot traffic, as JSON lines."""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datagen.campaigns import CAMPAIGNS
from datagen.catalogue import CATEGORIES, SEARCH_TERMS, Catalogue
from datagen.dirt import RATES, impossible_year_shift_ms, pick
from datagen.period import Period
from datagen.persons import APP_CLIENTS, BROWSERS, Devices, Population
from datagen.shopping import ProductChooser
from datagen.strings import concat, hex_ids, json_lines, json_string, lookup, take, with_nulls
from datagen.timestamps import DAY_MS, ISO_UTC, format_times
from datagen.visits import DIRECT, REFERRERS, Visits

ENTRY, PAGE, PRODUCT_VIEW, SEARCH, LOGIN, CART, PURCHASE = range(7)
BROWSE_ROLES = np.array([PAGE, PRODUCT_VIEW, SEARCH])
BROWSE_ROLE_SHARES = np.array([0.3, 0.55, 0.15])
WEB_EVENT_TYPES = (
    "page_view",
    "page_view",
    "product_view",
    "search",
    "login",
    "add_to_cart",
    "purchase",
)
APP_EVENT_TYPES = (
    "app_open",
    "screen_view",
    "product_view",
    "screen_view",
    "login",
    "add_to_cart",
    "purchase",
)
APP_SCREENS = ("home", "category", "product", "search", "login", "cart", "checkout")
FOCUS_SHARE = 0.65  # product views in the visit's focus category, the rest by general interest
GAP_MEDIAN_MS, GAP_SIGMA = 25_000, 0.9  # seconds to minutes between events of a visit
GAP_MIN_MS, GAP_MAX_MS = 1_000, 15 * 60_000
BOT_AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "PriceCrawler/1.4 (+https://pricecrawler.example/about)",
    "Mozilla/5.0 (compatible; shop-spider/0.9)",
)
BOT_ACTIVE_DAY_SHARE = 0.2
DECLARED_BOT_PAGES_PER_DAY = 400
STEALTH_BOT_PAGES_PER_DAY = 250  # a normal browser string, but no person reads 250 pages a day
PERSONS_PER_BOT = 2000


@dataclass(frozen=True)
class Events:
    """One entry per event of a person, in visit order."""

    visit: np.ndarray
    role: np.ndarray
    time_ms: np.ndarray
    product: np.ndarray  # catalogue row, -1 for none
    logged_in: np.ndarray

    def subset(self, rows: np.ndarray) -> "Events":
        return Events(
            self.visit[rows],
            self.role[rows],
            self.time_ms[rows],
            self.product[rows],
            self.logged_in[rows],
        )


@dataclass(frozen=True)
class Records:
    """A channel's JSON lines before duplicates and malformed lines, with when each happened."""

    lines: pa.Array
    time_ms: np.ndarray
    impossible_times: int
    missing_categories: int

    @staticmethod
    def concat(*parts: "Records") -> "Records":
        return Records(
            lines=pa.concat_arrays([part.lines for part in parts]),
            time_ms=np.concatenate([part.time_ms for part in parts]),
            impossible_times=sum(part.impossible_times for part in parts),
            missing_categories=sum(part.missing_categories for part in parts),
        )


def expand_visits(visits: Visits, chooser: ProductChooser, rng: np.random.Generator) -> Events:
    """Lay out each visit: entry, browsing, the login (if any), carts, the purchase (if any)."""
    total = visits.n_browse + visits.login + visits.n_cart + visits.purchase
    visit = np.repeat(np.arange(len(visits)), total)
    first = np.cumsum(total) - total
    position = np.arange(len(visit)) - first[visit]
    has_login = visits.login[visit]
    login_position = visits.login_position[visit]
    is_login = has_login & (position == login_position)
    browse_index = position - (has_login & (position > login_position))
    n_browse = visits.n_browse[visit]
    browse_role = np.where(
        browse_index == 0, ENTRY, BROWSE_ROLES[rng.choice(3, len(visit), p=BROWSE_ROLE_SHARES)]
    )
    role = np.where(
        is_login,
        LOGIN,
        np.where(
            browse_index < n_browse,
            browse_role,
            np.where(browse_index < n_browse + visits.n_cart[visit], CART, PURCHASE),
        ),
    )
    gaps = np.clip(
        rng.lognormal(np.log(GAP_MEDIAN_MS), GAP_SIGMA, len(visit)), GAP_MIN_MS, GAP_MAX_MS
    ).astype(np.int64)
    gaps[position == 0] = 0
    elapsed = np.cumsum(gaps)
    time_ms = visits.start_ms[visit] + elapsed - elapsed[first][visit]
    person = visits.person[visit]
    focus = visits.focus_category[visit]
    product = np.full(len(visit), -1)
    views = np.flatnonzero(role == PRODUCT_VIEW)
    category = np.where(
        rng.random(len(views)) < FOCUS_SHARE, focus[views], chooser.categories(person[views], rng)
    )
    product[views] = chooser.products(person[views], category, rng)
    # The first cart line is the product last viewed in the visit; further lines are new picks.
    last_view = np.maximum.accumulate(np.where(role == PRODUCT_VIEW, np.arange(len(visit)), -1))
    carts = np.flatnonzero(role == CART)
    first_cart = first[visit[carts]] + n_browse[carts] + has_login[carts]
    inherits = (carts == first_cart) & (last_view[carts] >= first[visit[carts]])
    fresh = chooser.products(person[carts], focus[carts], rng)
    product[carts] = np.where(inherits, product[np.maximum(last_view[carts], 0)], fresh)
    purchases = np.flatnonzero(role == PURCHASE)
    product[purchases] = product[
        first[visit[purchases]] + n_browse[purchases] + has_login[purchases]
    ]
    return Events(visit, role, time_ms, product, has_login & (position >= login_position))


def _time_literals(
    true_ms: np.ndarray,
    time_format: np.ndarray,
    offsets: np.ndarray,
    period: Period,
    rng: np.random.Generator,
) -> tuple[pa.Array, int]:
    """event_time as JSON, a few of them in the year 2099 (a broken device clock)."""
    sent_ms = true_ms.copy()
    broken = pick(rng, np.arange(len(true_ms)), RATES["event_time_year_2099"])
    sent_ms[broken] += impossible_year_shift_ms(period.start)
    return format_times(sent_ms, time_format, offsets, quoted=True), len(broken)


def _category_literals(
    product: np.ndarray, catalogue: Catalogue, rng: np.random.Generator
) -> tuple[pa.Array, int]:
    """category as JSON for product events, sent as null for a few of them."""
    has_product = product >= 0
    names = lookup(
        CATEGORIES, np.where(has_product, catalogue.category[np.maximum(product, 0)], -1)
    )
    missing = pick(rng, np.flatnonzero(has_product), RATES["missing_category"])
    mask = np.zeros(len(product), bool)
    mask[missing] = True
    return pc.if_else(pa.array(mask), "null", json_string(names)), len(missing)


def _product_ids(product: np.ndarray, catalogue: Catalogue) -> pa.Array:
    return take(catalogue.product_ids, product)


def web_records(
    events: Events,
    visits: Visits,
    population: Population,
    devices: Devices,
    catalogue: Catalogue,
    period: Period,
    rng: np.random.Generator,
    id_key: int,
) -> Records:
    """raw.web_events lines of persons' browsers."""
    visit = events.visit
    person, device, role = visits.person[visit], visits.device[visit], events.role
    n = len(visit)
    product_ids = _product_ids(events.product, catalogue)
    focus_names = lookup(CATEGORIES, visits.focus_category[visit])
    term = visits.focus_category[visit] * 5 + rng.integers(0, 5, n)
    terms = lookup(
        [t for category in CATEGORIES for t in SEARCH_TERMS[category]],
        np.where(role == SEARCH, term, -1),
    )
    page_kind = rng.choice([0, 1, 2], n, p=[0.15, 0.7, 0.15])
    url_choice = np.select(
        [
            role == ENTRY,
            role == PAGE,
            (role == PRODUCT_VIEW) | (role == CART),
            role == SEARCH,
            role == LOGIN,
        ],
        [np.where(visits.source[visit] == DIRECT, 0, 1), page_kind, 3, 4, 5],
        6,
    )
    page_url = pc.choose(
        pa.array(url_choice),
        pa.scalar("/"),
        concat("/c/", focus_names),
        pa.scalar("/deals"),
        concat("/p/", product_ids),
        concat("/search?q=", pc.replace_substring(terms, " ", "+")),
        pa.scalar("/login"),
        pa.scalar("/checkout/confirmation"),
    )
    entry = role == ENTRY
    campaign = np.where(entry, visits.campaign[visit], -1)
    time_literals, impossible = _time_literals(
        events.time_ms,
        devices.time_format[device],
        population.utc_offset_minutes[person],
        period,
        rng,
    )
    categories, missing = _category_literals(events.product, catalogue, rng)
    fields = [
        ("event_id", json_string(hex_ids("evt-", np.arange(n), id_key + 10))),
        ("event_type", json_string(lookup(WEB_EVENT_TYPES, role))),
        ("event_time", time_literals),
        ("anonymous_id", json_string(take(devices.ids, device))),
        ("user_id", json_string(with_nulls(take(population.user_ids, person), ~events.logged_in))),
        ("page_url", json_string(page_url)),
        ("product_id", json_string(product_ids)),
        ("category", categories),
        ("search_query", json_string(terms)),
        ("referrer", json_string(lookup(REFERRERS, np.where(entry, visits.referrer[visit], -1)))),
        ("utm_source", json_string(lookup([c.utm_source for c in CAMPAIGNS], campaign))),
        ("utm_medium", json_string(lookup([c.utm_medium for c in CAMPAIGNS], campaign))),
        ("utm_campaign", json_string(lookup([c.campaign_id for c in CAMPAIGNS], campaign))),
        ("user_agent", json_string(lookup(BROWSERS, devices.client[device]))),
    ]
    return Records(json_lines(fields), events.time_ms, impossible, missing)


def app_records(
    events: Events,
    visits: Visits,
    population: Population,
    devices: Devices,
    catalogue: Catalogue,
    period: Period,
    rng: np.random.Generator,
    id_key: int,
) -> Records:
    """raw.app_events lines of persons' app installs."""
    visit = events.visit
    person, device, role = visits.person[visit], visits.device[visit], events.role
    client = devices.client[device]
    time_literals, impossible = _time_literals(
        events.time_ms,
        devices.time_format[device],
        population.utc_offset_minutes[person],
        period,
        rng,
    )
    categories, missing = _category_literals(events.product, catalogue, rng)
    fields = [
        ("event_id", json_string(hex_ids("aev-", np.arange(len(visit)), id_key + 11))),
        ("event_type", json_string(lookup(APP_EVENT_TYPES, role))),
        ("event_time", time_literals),
        ("device_id", json_string(take(devices.ids, device))),
        ("user_id", json_string(with_nulls(take(population.user_ids, person), ~events.logged_in))),
        ("platform", json_string(lookup([c[0] for c in APP_CLIENTS], client))),
        ("app_version", json_string(lookup([c[1] for c in APP_CLIENTS], client))),
        ("screen_name", json_string(lookup(APP_SCREENS, role))),
        ("product_id", json_string(_product_ids(events.product, catalogue))),
        ("category", categories),
    ]
    return Records(json_lines(fields), events.time_ms, impossible, missing)


def bot_count(persons: int) -> int:
    return max(3, round(persons / PERSONS_PER_BOT))


def bot_records(
    bot_ids: pa.Array,
    period: Period,
    catalogue: Catalogue,
    rng: np.random.Generator,
    id_key: int,
    first_serial: int,
) -> Records:
    """Crawlers that say what they are and scrapers that hide behind a browser string.

    Even bots (declared) name a bot user agent; odd ones send a normal browser string and
    give themselves away only by reading hundreds of pages a day. Neither ever logs in.
    """
    n_bots = len(bot_ids)
    active = rng.random((n_bots, period.days)) < BOT_ACTIVE_DAY_SHARE
    active[np.arange(n_bots), rng.integers(0, period.days, n_bots)] = True
    bot, day = np.nonzero(active)
    declared = bot % 2 == 0
    pages = rng.poisson(np.where(declared, DECLARED_BOT_PAGES_PER_DAY, STEALTH_BOT_PAGES_PER_DAY))
    bot, day, declared = np.repeat(bot, pages), np.repeat(day, pages), np.repeat(declared, pages)
    n = len(bot)
    time_ms = np.sort(period.start_ms + day * DAY_MS + rng.integers(0, DAY_MS, n))
    is_product = rng.random(n) < 0.65
    product = np.where(is_product, rng.integers(0, len(catalogue), n), -1)
    product_ids = _product_ids(product, catalogue)
    categories = lookup(
        CATEGORIES,
        np.where(
            is_product,
            catalogue.category[np.maximum(product, 0)],
            rng.integers(0, len(CATEGORIES), n),
        ),
    )
    agent = np.where(declared, (bot // 2) % len(BOT_AGENTS), -1)
    is_product_array = pa.array(is_product)
    fields = [
        ("event_id", json_string(hex_ids("evt-", first_serial + np.arange(n), id_key + 10))),
        ("event_type", json_string(pc.if_else(is_product_array, "product_view", "page_view"))),
        ("event_time", format_times(time_ms, np.full(n, ISO_UTC), quoted=True)),
        ("anonymous_id", json_string(take(bot_ids, bot))),
        (
            "page_url",
            json_string(
                pc.if_else(is_product_array, concat("/p/", product_ids), concat("/c/", categories))
            ),
        ),
        ("product_id", json_string(product_ids)),
        ("category", json_string(with_nulls(categories, ~is_product))),
        (
            "user_agent",
            json_string(pc.if_else(pa.array(declared), lookup(BOT_AGENTS, agent), BROWSERS[0])),
        ),
    ]
    return Records(json_lines(fields), time_ms, 0, 0)
