"""Orders (one row per order line): online purchases from the visits, store purchases of
loyalty-card customers, and coupons redeemed in store after an e-mail campaign."""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from datagen.campaigns import CAMPAIGNS
from datagen.catalogue import CATEGORIES, CURRENCY, Catalogue
from datagen.dirt import RATES, as_typed_emails, pick
from datagen.events import CART, Events
from datagen.period import HOUR_MS, Period
from datagen.personas import PERSONAS
from datagen.persons import Population
from datagen.shopping import ProductChooser
from datagen.strings import lookup, numbered_ids, take, with_nulls
from datagen.timestamps import (
    DAY_MS,
    EPOCH_MS_STRING,
    ISO_OFFSET,
    ISO_UTC_MS,
    NAIVE_UTC,
    format_times,
)
from datagen.visits import StoreConversions, Visits

WEB, APP, STORE = range(3)
CHANNELS = ("web", "app", "store")
STATUSES = ("completed", "cancelled", "refunded")
STATUS_SHARES = (0.94, 0.035, 0.025)
DISCOUNTS = np.array([0.1, 0.2, 0.3])
STORE_OPENING_HOUR, STORE_CLOSING_HOUR = 9, 20  # local time
GROCERY = CATEGORIES.index("grocery")


@dataclass(frozen=True)
class _Orders:
    """Order-level facts and their lines (lines grouped by order, in order)."""

    person: np.ndarray
    time_ms: np.ndarray
    channel: np.ndarray
    logged_in: np.ndarray
    campaign: np.ndarray
    line_order: np.ndarray  # order index per line
    line_product: np.ndarray


@dataclass(frozen=True)
class OrderLines:
    """The order lines table, the persons whose ids it shows, and the dirt planted in it."""

    table: pa.Table
    month: np.ndarray  # per row, 'YYYY-MM' of the order's real time, for splitting into files
    shows_customer_id: np.ndarray  # persons
    shows_user_id: np.ndarray
    shows_email: np.ndarray
    negative_quantities: int
    non_positive_prices: int


def _first_of_runs(keys: np.ndarray) -> np.ndarray:
    """True where a run of equal consecutive keys starts."""
    starts = np.ones(len(keys), bool)
    starts[1:] = keys[1:] != keys[:-1]
    return starts


def _online_orders(events: Events, visits: Visits) -> _Orders:
    """A purchase visit's order holds its add_to_cart products, placed at the purchase event."""
    buying_visits = np.flatnonzero(visits.purchase)
    lines = np.flatnonzero((events.role == CART) & visits.purchase[events.visit])
    purchase_time = np.zeros(len(visits), np.int64)
    ends = np.cumsum(np.bincount(events.visit, minlength=len(visits))) - 1
    purchase_time[buying_visits] = events.time_ms[ends[buying_visits]]
    return _Orders(
        person=visits.person[buying_visits],
        time_ms=purchase_time[buying_visits],
        channel=np.where(visits.is_app[buying_visits], APP, WEB),
        logged_in=visits.login[buying_visits],
        campaign=visits.campaign[buying_visits],
        line_order=np.searchsorted(buying_visits, events.visit[lines]),
        line_product=events.product[lines],
    )


def _store_orders(
    person: np.ndarray,
    time_ms: np.ndarray,
    campaign: np.ndarray,
    population: Population,
    chooser: ProductChooser,
    rng: np.random.Generator,
) -> _Orders:
    """Basket by interests; a coupon order's first line is from the campaign's category."""
    extra = np.array([p.extra_lines for p in PERSONAS])[population.persona[person]]
    n_lines = 1 + rng.poisson(extra)
    line_order = np.repeat(np.arange(len(person)), n_lines)
    line_person = person[line_order]
    category = chooser.categories(line_person, rng)
    first_line = _first_of_runs(line_order)
    coupon_category = np.array([c.category_index for c in CAMPAIGNS])[
        np.maximum(campaign[line_order], 0)
    ]
    category = np.where(first_line & (campaign[line_order] >= 0), coupon_category, category)
    return _Orders(
        person,
        time_ms,
        np.full(len(person), STORE),
        np.zeros(len(person), bool),
        campaign,
        line_order,
        chooser.products(line_person, category, rng),
    )


def _store_visits(
    population: Population, period: Period, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Loyalty-card customers shopping in store during opening hours (local time)."""
    customers = np.flatnonzero(population.is_customer)
    rate = (
        np.array([p.store_orders_per_month for p in PERSONAS])[population.persona[customers]]
        * population.buying_propensity[customers]
    )
    person = np.repeat(customers, rng.poisson(rate * period.days / 30))
    day = period.draw_days(rng, len(person))
    local_ms = rng.integers(STORE_OPENING_HOUR * HOUR_MS, STORE_CLOSING_HOUR * HOUR_MS, len(person))
    time_ms = (
        period.start_ms + day * DAY_MS + local_ms - population.utc_offset_minutes[person] * 60_000
    )
    return person, time_ms


def build_orders(
    events: Events,
    visits: Visits,
    conversions: StoreConversions,
    population: Population,
    catalogue: Catalogue,
    chooser: ProductChooser,
    period: Period,
    rng: np.random.Generator,
) -> OrderLines:
    """All orders as the shop's order-line export, identifiers set as each channel knows them.

    Logged-in web orders carry customer, login and e-mail; guest web orders only the typed
    e-mail; app orders customer and login; store orders the loyalty card's customer id.
    """
    store_person, store_time = _store_visits(population, period, rng)
    parts = [
        _online_orders(events, visits),
        _store_orders(
            store_person, store_time, np.full(len(store_person), -1), population, chooser, rng
        ),
        _store_orders(
            conversions.person, conversions.time_ms, conversions.campaign, population, chooser, rng
        ),
    ]
    offsets = np.cumsum([0] + [len(part.person) for part in parts[:-1]])
    orders = _Orders(
        *[
            np.concatenate([getattr(part, name) for part in parts])
            for name in ("person", "time_ms", "channel", "logged_in", "campaign")
        ],
        line_order=np.concatenate(
            [part.line_order + offset for part, offset in zip(parts, offsets)]
        ),
        line_product=np.concatenate([part.line_product for part in parts]),
    )
    return _order_lines(orders, population, catalogue, rng)


def _order_lines(
    orders: _Orders, population: Population, catalogue: Catalogue, rng: np.random.Generator
) -> OrderLines:
    n_orders = len(orders.person)
    rank = np.empty(n_orders, np.int64)
    rank[np.lexsort((orders.person, orders.time_ms))] = np.arange(n_orders)
    line_rank = rank[orders.line_order]
    lines = np.lexsort((np.arange(len(line_rank)), line_rank))  # by order number, then basket order
    order_of_line = orders.line_order[lines]
    product = orders.line_product[lines]
    first_line = _first_of_runs(order_of_line)
    line_number = (
        np.arange(len(lines))
        - np.maximum.accumulate(np.where(first_line, np.arange(len(lines)), 0))
        + 1
    )
    person = orders.person[order_of_line]
    channel = orders.channel[order_of_line]
    web_login = (channel == WEB) & orders.logged_in[order_of_line]
    has_customer_id = web_login | (channel != WEB)
    has_user_id = web_login | (channel == APP)
    has_email = channel == WEB
    quantity = 1 + rng.poisson(np.where(catalogue.category[product] == GROCERY, 1.0, 0.15))
    discount_affinity = np.array([p.discount_affinity for p in PERSONAS])[
        population.persona[person]
    ]
    discount = np.where(
        rng.random(len(lines)) < discount_affinity, rng.choice(DISCOUNTS, len(lines)), 0.0
    )
    unit_price = np.round(catalogue.price[product] * (1 - discount), 2)
    negative = pick(rng, np.arange(len(lines)), RATES["negative_quantity"])
    quantity[negative] *= -1
    non_positive = pick(rng, np.arange(len(lines)), RATES["non_positive_price"])
    unit_price[non_positive] = np.where(
        rng.random(len(non_positive)) < 0.5, 0.0, -unit_price[non_positive]
    )
    # The stores run two till systems: one writes naive UTC, the other local time with offset.
    store_system_writes_naive = (rng.random(n_orders) < 0.7)[order_of_line]
    time_format = np.select(
        [channel == WEB, channel == APP, store_system_writes_naive],
        [ISO_UTC_MS, EPOCH_MS_STRING, NAIVE_UTC],
        ISO_OFFSET,
    )
    order_emails = as_typed_emails(take(population.emails, orders.person), rng)
    status = rng.choice(len(STATUSES), n_orders, p=STATUS_SHARES)
    order_time = orders.time_ms[order_of_line]
    table = pa.table(
        {
            "order_id": numbered_ids("ORD-", rank[order_of_line] + 1, 9),
            "line_number": pa.array(line_number, pa.int64()),
            "order_time": format_times(
                order_time, time_format, population.utc_offset_minutes[person]
            ),
            "customer_id": with_nulls(take(population.customer_ids, person), ~has_customer_id),
            "user_id": with_nulls(take(population.user_ids, person), ~has_user_id),
            "email": with_nulls(take(order_emails, order_of_line), ~has_email),
            "channel": lookup(CHANNELS, channel),
            "status": lookup(STATUSES, status[order_of_line]),
            "product_id": take(catalogue.product_ids, product),
            "quantity": pa.array(quantity, pa.int64()),
            "unit_price": pa.array(unit_price, pa.float64()),
            "currency": pa.array(np.full(len(lines), CURRENCY)),
            "campaign_id": lookup(
                [c.campaign_id for c in CAMPAIGNS], orders.campaign[order_of_line]
            ),
        }
    )
    return OrderLines(
        table=table,
        month=order_time.astype("datetime64[ms]").astype("datetime64[M]").astype(str),
        shows_customer_id=person[has_customer_id],
        shows_user_id=person[has_user_id],
        shows_email=person[has_email],
        negative_quantities=len(negative),
        non_positive_prices=len(non_positive),
    )
