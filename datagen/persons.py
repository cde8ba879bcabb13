"""Persons, their persona, demographics and every identifier they may show in a channel.

Identifiers are unique by construction (bijective scrambles of serial numbers, or the
person's number inside an e-mail / handle), so the ground truth never has to guess.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datagen.personas import PERSONA_NAMES, PERSONAS, interest_matrix
from datagen.strings import concat, hex_ids, lookup, numbered_ids, with_nulls
from datagen.timestamps import EPOCH_MS, EPOCH_MS_STRING, ISO_OFFSET, ISO_UTC, ISO_UTC_MS, NAIVE_UTC

FIRST_NAMES = (
    "anna",
    "ben",
    "clara",
    "david",
    "emma",
    "felix",
    "greta",
    "hugo",
    "ines",
    "jonas",
    "karla",
    "leon",
    "mia",
    "noah",
    "olga",
    "paul",
    "rosa",
    "sami",
    "tara",
    "ugo",
    "vera",
    "will",
    "xenia",
    "yusuf",
    "zoe",
    "lucia",
    "marco",
    "nina",
    "omar",
    "pia",
)
LAST_NAMES = (
    "schmidt",
    "muller",
    "dubois",
    "martin",
    "garcia",
    "rossi",
    "jansen",
    "silva",
    "novak",
    "weber",
    "fischer",
    "moreau",
    "bianchi",
    "lopez",
    "devries",
    "kowalski",
    "meyer",
    "leroy",
    "romano",
    "torres",
    "bakker",
    "costa",
    "wagner",
    "petit",
    "ricci",
    "navarro",
    "visser",
    "santos",
    "keller",
    "laurent",
)
EMAIL_DOMAINS = ("mailbox.test", "inbox.example", "post.example", "webmail.example")
# (country, UTC offset in minutes in autumn, share, cities)
COUNTRIES = (
    ("DE", 120, 0.33, ("Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt")),
    ("FR", 120, 0.15, ("Paris", "Lyon", "Marseille")),
    ("NL", 120, 0.10, ("Amsterdam", "Rotterdam", "Utrecht")),
    ("ES", 120, 0.10, ("Madrid", "Barcelona", "Valencia")),
    ("IT", 120, 0.10, ("Milan", "Rome", "Turin")),
    ("AT", 120, 0.05, ("Vienna", "Graz")),
    ("GB", 60, 0.07, ("London", "Manchester")),
    ("PT", 60, 0.06, ("Lisbon", "Porto")),
    ("US", -240, 0.04, ("New York", "Boston")),
)
BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:130.0) Gecko/20100101 Firefox/130.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
)
BROWSER_SHARES = np.array([0.3, 0.08, 0.1, 0.08, 0.2, 0.14, 0.07, 0.03])
# The web tracker's versions each write event_time their own way.
WEB_TIME_FORMATS = np.array([ISO_UTC_MS, ISO_UTC, NAIVE_UTC, EPOCH_MS, ISO_OFFSET, EPOCH_MS_STRING])
WEB_TIME_FORMAT_SHARES = np.array([0.45, 0.18, 0.14, 0.12, 0.07, 0.04])
# (platform, app version, share within platform, event_time format of that client version)
APP_CLIENTS = (
    ("ios", "5.3.1", 0.5, ISO_OFFSET),
    ("ios", "5.2.0", 0.35, ISO_OFFSET),
    ("ios", "4.8.2", 0.15, EPOCH_MS),
    ("android", "5.3.0", 0.5, ISO_UTC_MS),
    ("android", "5.1.4", 0.25, ISO_UTC_MS),
    ("android", "4.9.2", 0.25, EPOCH_MS_STRING),
)
# Identity is planted so that the channels can tell it: every browser and install of a login
# holder logs in at least once, persons without a login use one browser and no app (the app
# needs an account), and only CRM customers connect a social handle (the CRM shows it). What
# still cannot be linked is real: a guest's checkout e-mail and a store customer's browser.
LOGIN_ID_SHARE = 0.8  # persons with a web/app login (and so a CRM customer record)
STORE_ONLY_SHARE = 0.25  # of persons without login: known to the CRM through a store loyalty card
COOKIE_COUNT_SHARES = (0.55, 0.3, 0.15)  # 1, 2 or 3 browsers of a login holder
SIGNUP_YEARS = 3
# How much more or less than its persona a person buys: gamma with mean 1, so some buy often
# and many rarely, as in every shop's data (CDNOW's fitted BG/NBD shape is r = 0.24). This is
# what makes next period's spend predictable from past purchases.
BUYING_PROPENSITY_SHAPE = 0.8


@dataclass(frozen=True)
class Population:
    """One entry per person (arrays of length n) plus the string identifiers."""

    person_ids: pa.Array
    persona: np.ndarray
    interests: np.ndarray  # (n, categories), rows sum to 1
    activity: np.ndarray  # visits per day
    buying_propensity: np.ndarray  # multiplies the persona's purchase rates; mean 1
    country: np.ndarray
    city: pa.Array
    utc_offset_minutes: np.ndarray
    gender: np.ndarray  # 0 f, 1 m, 2 x, -1 not given
    birth_year: np.ndarray
    has_login: np.ndarray
    is_customer: np.ndarray
    has_handle: np.ndarray
    signup_ms: np.ndarray
    user_ids: pa.Array  # null without login
    customer_ids: pa.Array  # null when not a customer
    emails: pa.Array  # canonical: lower case, no spaces
    handles: pa.Array  # canonical: lower case with @, null without handle
    handles_as_written: pa.Array  # the case the person chose on the social network

    def __len__(self) -> int:
        return len(self.persona)


@dataclass(frozen=True)
class Devices:
    """Browsers (cookies) and app installs; a person's rows are contiguous."""

    owner: np.ndarray
    is_app: np.ndarray
    ids: pa.Array  # anonymous_id for browsers, device_id for app installs
    logs_in: np.ndarray
    time_format: np.ndarray
    client: np.ndarray  # BROWSERS index for browsers, APP_CLIENTS index for installs

    def rows_of(self, is_app: bool, n_persons: int) -> tuple[np.ndarray, np.ndarray]:
        """Per person: first row and count of its browsers (or installs)."""
        kind = self.is_app == is_app
        counts = np.bincount(self.owner[kind], minlength=n_persons)
        first = np.searchsorted(self.owner * 2 + self.is_app, np.arange(n_persons) * 2 + is_app)
        return first, counts


def _choice(rng: np.random.Generator, shares: Sequence[float], size: int) -> np.ndarray:
    """Indices drawn with probability proportional to `shares`."""
    shares = np.asarray(shares, dtype=float)
    return rng.choice(len(shares), size=size, p=shares / shares.sum())


def build_population(n: int, start_ms: int, rng: np.random.Generator, id_key: int) -> Population:
    """Draw n persons; persona shares, demographics and identifiers as documented above."""
    start_year = int(np.datetime64(start_ms, "ms").astype("datetime64[Y]").astype(int)) + 1970
    persona = _choice(rng, [p.share for p in PERSONAS], n)
    concentration = 40.0  # high: persons stay close to their persona's interests
    interests = rng.gamma(interest_matrix()[persona] * concentration)
    interests /= interests.sum(axis=1, keepdims=True)
    activity = np.array([p.visits_per_day for p in PERSONAS])[persona] * rng.lognormal(
        -0.1, 0.45, n
    )
    country = _choice(rng, [c[2] for c in COUNTRIES], n)
    city_names = [city for c in COUNTRIES for city in c[3]]
    cities_per_country = np.array([len(c[3]) for c in COUNTRIES])
    first_city = np.cumsum(cities_per_country) - cities_per_country
    city = first_city[country] + (rng.random(n) * cities_per_country[country]).astype(int)
    has_login = rng.random(n) < LOGIN_ID_SHARE
    is_customer = has_login | (rng.random(n) < STORE_ONLY_SHARE)
    has_handle = is_customer & (
        rng.random(n) < np.array([p.social_share for p in PERSONAS])[persona]
    )
    signup_ms = start_ms - rng.integers(1, SIGNUP_YEARS * 365 * 86_400_000, n)
    customer_rank = np.empty(n, dtype=np.int64)
    customer_rank[
        np.argsort(np.where(is_customer, signup_ms, np.iinfo(np.int64).max), kind="stable")
    ] = np.arange(n)
    first, last = rng.integers(0, len(FIRST_NAMES), n), rng.integers(0, len(LAST_NAMES), n)
    first_names, last_names = lookup(FIRST_NAMES, first), lookup(LAST_NAMES, last)
    # Distinct numbers make e-mails and handles unique; separate shuffles keep them from
    # linking a handle to an e-mail (or to the person number) by the number alone.
    number = pa.array(rng.permutation(n) + 1).cast(pa.string())
    handle_number = pa.array(rng.permutation(n) + 1).cast(pa.string())
    local_part = pc.choose(
        pa.array(rng.integers(0, 3, n)),
        concat(first_names, ".", last_names, number),
        concat(first_names, last_names, number),
        concat(pc.utf8_slice_codeunits(first_names, 0, 1), last_names, number),
    )
    handles = with_nulls(concat("@", first_names, "_", last_names, handle_number), ~has_handle)
    return Population(
        person_ids=numbered_ids("person_", np.arange(1, n + 1), max(6, len(str(n)))),
        persona=persona,
        interests=interests,
        activity=activity,
        country=country,
        city=lookup(city_names, city),
        utc_offset_minutes=np.array([c[1] for c in COUNTRIES])[country],
        gender=np.array([0, 1, 2, -1])[_choice(rng, [0.47, 0.44, 0.03, 0.06], n)],
        birth_year=start_year - np.clip(np.round(rng.normal(43, 13, n)), 18, 90).astype(np.int64),
        has_login=has_login,
        is_customer=is_customer,
        has_handle=has_handle,
        signup_ms=signup_ms,
        user_ids=with_nulls(hex_ids("u_", np.arange(n), id_key + 1), ~has_login),
        customer_ids=with_nulls(
            numbered_ids("C", customer_rank + 1, max(7, len(str(n)))), ~is_customer
        ),
        emails=concat(
            local_part, "@", lookup(EMAIL_DOMAINS, rng.integers(0, len(EMAIL_DOMAINS), n))
        ),
        handles=handles,
        handles_as_written=pc.if_else(
            pa.array(rng.random(n) < 0.4), pc.utf8_title(handles), handles
        ),
        # Drawn last so every earlier draw (and the truth built on it) stays as it was.
        buying_propensity=rng.gamma(BUYING_PROPENSITY_SHAPE, 1.0 / BUYING_PROPENSITY_SHAPE, n),
    )


def build_devices(population: Population, rng: np.random.Generator, id_key: int) -> Devices:
    """A login holder has 1-3 browsers and 0-2 app installs by persona; others one browser."""
    n = len(population)
    n_cookies = np.where(population.has_login, _choice(rng, COOKIE_COUNT_SHARES, n) + 1, 1)
    install_shares = np.array([p.app_installs for p in PERSONAS])[population.persona]
    draw = rng.random(n)
    n_installs = population.has_login * (
        (draw > install_shares[:, 0]).astype(int) + (draw > install_shares[:, :2].sum(axis=1))
    )
    owner = np.concatenate(
        [np.repeat(np.arange(n), n_cookies), np.repeat(np.arange(n), n_installs)]
    )
    is_app = np.concatenate([np.zeros(n_cookies.sum(), bool), np.ones(n_installs.sum(), bool)])
    order = np.lexsort((is_app, owner))
    owner, is_app = owner[order], is_app[order]
    n_devices = len(owner)
    ios_share = np.where(
        population.persona[owner] == PERSONA_NAMES.index("tech_enthusiast"), 0.6, 0.45
    )
    platform_is_ios = rng.random(n_devices) < ios_share
    ios_client = _choice(rng, [c[2] for c in APP_CLIENTS[:3]], n_devices)
    android_client = 3 + _choice(rng, [c[2] for c in APP_CLIENTS[3:]], n_devices)
    app_client = np.where(platform_is_ios, ios_client, android_client)
    browser = _choice(rng, BROWSER_SHARES, n_devices)
    client = np.where(is_app, app_client, browser)
    app_format = np.array([c[3] for c in APP_CLIENTS])[app_client]
    web_format = WEB_TIME_FORMATS[_choice(rng, WEB_TIME_FORMAT_SHARES, n_devices)]
    cookie_serial = np.cumsum(~is_app) - 1
    install_serial = np.cumsum(is_app) - 1
    ids = pc.if_else(
        pa.array(is_app),
        hex_ids("dev-", install_serial, id_key + 2),
        hex_ids("anon-", cookie_serial, id_key + 3),
    )
    return Devices(
        owner=owner,
        is_app=is_app,
        ids=ids,
        logs_in=population.has_login[owner],
        time_format=np.where(is_app, app_format, web_format),
        client=client,
    )


def bot_cookie_ids(devices: Devices, n_bots: int, id_key: int) -> pa.Array:
    """Bot cookies come from the same id space as persons' cookies, after the last of them."""
    first_free = int((~devices.is_app).sum())
    return hex_ids("anon-", np.arange(first_free, first_free + n_bots), id_key + 3)
