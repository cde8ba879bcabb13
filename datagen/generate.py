"""generate(): the whole synthetic landing zone plus its ground truth, deterministically.

First the world is simulated (persons, devices, visits, events, campaign responses), then
each channel is rendered from it and written; every channel reports the owners of the
identifiers it shows, which becomes the identity truth.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from datagen.campaigns import CAMPAIGNS
from datagen.catalogue import Catalogue, build_catalogue
from datagen.crm import CustomerPlan, crm_tables, plan_customers
from datagen.dirt import RATES
from datagen.events import (
    Events,
    Records,
    app_records,
    bot_count,
    bot_records,
    expand_visits,
    web_records,
)
from datagen.jsonl_channel import write_jsonl_channel
from datagen.marketing import (
    ad_stats_tables,
    display_impressions,
    display_touch_tables,
    email_touch_tables,
)
from datagen.orders import build_orders
from datagen.period import Period
from datagen.personas import PERSONA_NAMES
from datagen.persons import Devices, Population, bot_cookie_ids, build_devices, build_population
from datagen.shopping import ProductChooser
from datagen.social import social_records
from datagen.streams import stream
from datagen.truth import Sightings, ab_truth_table, identities_table, personas_table
from datagen.visits import (
    EmailTouches,
    StoreConversions,
    Visits,
    email_campaigns,
    plan_visits,
    with_logins,
)
from datagen.writer import write_csv, write_parquet

MAX_PERSONS = 5_000_000
MAX_DAYS = 3_660
CHANNEL_FOLDERS = (
    "web_events",
    "app_events",
    "social",
    "ad_campaigns",
    "crm_customers",
    "orders",
    "products",
    "campaign_touches",
)
# What generate() writes, so a rerun first removes its own older output (and nothing else).
OUTPUT_PATTERNS = (
    "web_events/web_events_*.jsonl.gz",
    "app_events/app_events_*.jsonl.gz",
    "social/social_engagements_*.jsonl.gz",
    "orders/orders_*.parquet",
    "crm_customers/crm_customers_*.csv",
    "products/products.csv",
    "ad_campaigns/ad_stats_*.csv",
    "campaign_touches/touches_*.csv",
    "_truth/identities.parquet",
    "_truth/personas.parquet",
    "_truth/ab_truth.parquet",
    "_truth/manifest.json",
)
MALFORMED_NOTE = (
    "malformed_lines counts every line that is not a JSON object: truncated_json (a cut-off copy of a "
    "real line) and binary_garbage are invalid JSON, empty_line is an empty line"
)


@dataclass(frozen=True)
class World:
    """Everything that happened, before any channel writes it down."""

    seed: int
    id_key: int  # keys the id scrambles, so another seed gives other ids
    period: Period
    catalogue: Catalogue
    population: Population
    devices: Devices
    chooser: ProductChooser
    customers: CustomerPlan
    visits: Visits
    events: Events
    email_touches: EmailTouches
    store_conversions: StoreConversions

    def rng(self, name: str) -> np.random.Generator:
        return stream(self.seed, name)


def generate(
    persons: int,
    days: int,
    seed: int,
    out_dir: Path,
    start_date: date = date(2026, 9, 1),
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write every landing channel and `_truth/` into `out_dir`; return the manifest.

    The same arguments always give byte-identical files: every random draw comes from `seed`,
    files are gzipped without a timestamp and rows are written in a fixed order.
    """
    _check_arguments(persons, days, seed, start_date)
    say = progress or (lambda message: None)
    out_dir = Path(out_dir)
    _remove_previous_output(out_dir)
    for folder in (*CHANNEL_FOLDERS, "_truth"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    say(f"simulating {persons:,} persons over {days} days")
    world = _simulate(persons, Period(start_date, days), seed)
    sightings = Sightings()
    say(f"web and app events from {len(world.visits):,} visits")
    channels, bots = _write_events(world, out_dir, sightings)
    say("social engagements")
    social, handle_owners = social_records(
        world.population,
        world.visits,
        world.chooser,
        world.period,
        world.rng("social"),
        world.id_key,
    )
    sightings.add("social_handle", handle_owners)
    channels["social"] = _jsonl_entry(social, out_dir, "social", "social_engagements", world)
    say("orders, CRM customers and the product catalogue")
    channels["orders"] = _write_orders(world, out_dir, sightings)
    channels["crm_customers"] = _write_crm(world, out_dir, sightings)
    write_csv(out_dir / "products/products.csv", world.catalogue.table())
    channels["products"] = _entry(["products/products.csv"], len(world.catalogue))
    say("campaign touches and ad-network stats")
    channels.update(_write_marketing(world, out_dir, sightings))
    say("ground truth")
    manifest = _manifest(world, channels, bots)
    _write_truth(world, sightings, manifest, out_dir / "_truth")
    say(
        f"wrote {sum(entry['records_written'] for entry in channels.values()):,} records into {out_dir}"
    )
    return manifest


def _simulate(persons: int, period: Period, seed: int) -> World:
    def rng(name: str) -> np.random.Generator:
        return stream(seed, name)

    id_key = int(rng("identifier-key").integers(0, 2**62))
    catalogue = build_catalogue(rng("catalogue"))
    population = build_population(persons, period.start_ms, rng("persons"), id_key)
    devices = build_devices(population, rng("devices"), id_key)
    chooser = ProductChooser.build(population, catalogue, rng("preferences"))
    customers = plan_customers(population, period, rng("crm-plan"))
    everyday = plan_visits(population, devices, period, rng("visits"))
    email_visits, touches, store_conversions = email_campaigns(
        customers, population, devices, period, rng("email")
    )
    visits = with_logins(Visits.concat(everyday, email_visits), devices, rng("logins"))
    return World(
        seed=seed,
        id_key=id_key,
        period=period,
        catalogue=catalogue,
        population=population,
        devices=devices,
        chooser=chooser,
        customers=customers,
        visits=visits,
        events=expand_visits(visits, chooser, rng("events")),
        email_touches=touches,
        store_conversions=store_conversions,
    )


def _write_events(world: World, out_dir: Path, sightings: Sightings) -> tuple[dict, dict]:
    """web_events (persons and bots) and app_events; returns their entries and the bots' summary."""
    visits, events = world.visits, world.events
    in_app = visits.is_app[events.visit]
    web, app = events.subset(np.flatnonzero(~in_app)), events.subset(np.flatnonzero(in_app))
    for subset, identifier_type in ((web, "anonymous_id"), (app, "device_id")):
        sightings.add(identifier_type, visits.device[subset.visit])
        sightings.add("user_id", visits.person[subset.visit[subset.logged_in]])
    common = (visits, world.population, world.devices, world.catalogue, world.period)
    person_web = web_records(web, *common, world.rng("web"), world.id_key)
    bot_ids = bot_cookie_ids(world.devices, bot_count(len(world.population)), world.id_key)
    bots = bot_records(
        bot_ids, world.period, world.catalogue, world.rng("bots"), world.id_key, len(web.visit)
    )
    channels = {
        "web_events": _jsonl_entry(
            Records.concat(person_web, bots), out_dir, "web_events", "web_events", world
        ),
        "app_events": _jsonl_entry(
            app_records(app, *common, world.rng("app"), world.id_key),
            out_dir,
            "app_events",
            "app_events",
            world,
        ),
    }
    return channels, {
        "count": len(bot_ids),
        "anonymous_ids": bot_ids.to_pylist(),
        "events": len(bots.time_ms),
    }


def _write_orders(world: World, out_dir: Path, sightings: Sightings) -> dict:
    """One Parquet file per calendar month of order time."""
    orders = build_orders(
        world.events,
        world.visits,
        world.store_conversions,
        world.population,
        world.catalogue,
        world.chooser,
        world.period,
        world.rng("orders"),
    )
    sightings.add("customer_id", orders.shows_customer_id)
    sightings.add("user_id", orders.shows_user_id)
    sightings.add("email", orders.shows_email)
    files = []
    for month in sorted(set(orders.month)):
        files.append(f"orders/orders_{month.replace('-', '')}.parquet")
        write_parquet(out_dir / files[-1], orders.table.filter(pa.array(orders.month == month)))
    return _entry(
        files,
        orders.table.num_rows,
        impossible_values={
            "quantity_negative": orders.negative_quantities,
            "unit_price_not_positive": orders.non_positive_prices,
        },
    )


def _write_crm(world: World, out_dir: Path, sightings: Sightings) -> dict:
    """The full export of the day before the period, and a delta export of its last day."""
    customers, population, period = world.customers, world.population, world.period
    crm = crm_tables(customers, population, period, world.rng("crm"))
    sightings.add("customer_id", customers.person)
    sightings.add("email", customers.person)
    sightings.add("user_id", customers.person[population.has_login[customers.person]])
    sightings.add("social_handle", crm.shows_handle)
    files = [f"crm_customers/crm_customers_full_{period.start - timedelta(days=1):%Y%m%d}.csv"]
    write_csv(out_dir / files[0], crm.full)
    if crm.delta.num_rows:
        last_day = period.start + timedelta(days=period.days - 1)
        files.append(f"crm_customers/crm_customers_delta_{last_day:%Y%m%d}.csv")
        write_csv(out_dir / files[1], crm.delta)
    return _entry(
        files,
        crm.full.num_rows + crm.delta.num_rows,
        unique_records=crm.full.num_rows,
        impossible_values={"birth_year": crm.impossible_birth_years},
        missing_values={"birth_year": crm.missing_birth_years},
    )


def _write_marketing(world: World, out_dir: Path, sightings: Sightings) -> dict:
    """campaign_touches (one file per campaign) and ad_campaigns (one file per network)."""
    touches = world.email_touches
    impressions = display_impressions(
        world.visits, world.devices, world.period, world.rng("display")
    )
    for browsers, _ in impressions.values():
        sightings.add("anonymous_id", browsers)
    sightings.add("customer_id", touches.person)
    touch_tables = email_touch_tables(touches, world.population, world.rng("touches"), world.id_key)
    touch_tables.update(
        display_touch_tables(impressions, world.devices, world.id_key, len(touches.person))
    )
    stats = ad_stats_tables(world.visits, touches, impressions, world.period, world.rng("ad-stats"))
    entries = {}
    for channel, tables, prefix in (
        ("campaign_touches", touch_tables, "touches"),
        ("ad_campaigns", stats, "ad_stats"),
    ):
        files = [f"{channel}/{prefix}_{key}.csv" for key in sorted(tables)]
        for name, key in zip(files, sorted(tables)):
            write_csv(out_dir / name, tables[key])
        entries[channel] = _entry(files, sum(table.num_rows for table in tables.values()))
    return entries


def _write_truth(world: World, sightings: Sightings, manifest: dict, truth_dir: Path) -> None:
    write_parquet(
        truth_dir / "identities.parquet",
        identities_table(sightings, world.population, world.devices),
    )
    write_parquet(truth_dir / "personas.parquet", personas_table(world.population))
    write_parquet(truth_dir / "ab_truth.parquet", ab_truth_table())
    (truth_dir / "manifest.json").write_text(
        json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
    )


def _manifest(world: World, channels: dict, bots: dict) -> dict:
    period = world.period
    return {
        "generator": "datagen",
        "parameters": {
            "persons": len(world.population),
            "days": period.days,
            "seed": world.seed,
            "start_date": period.start.isoformat(),
            "end_date": (period.start + timedelta(days=period.days - 1)).isoformat(),
        },
        "persons": len(world.population),
        "personas": {
            name: int((world.population.persona == k).sum()) for k, name in enumerate(PERSONA_NAMES)
        },
        "bots": bots,
        "campaigns": [
            _campaign_entry(index, world.email_touches) for index in range(len(CAMPAIGNS))
        ],
        "dirt_rates": RATES,
        "malformed_lines_note": MALFORMED_NOTE,
        "channels": {folder: channels[folder] for folder in CHANNEL_FOLDERS},
    }


def _check_arguments(persons: int, days: int, seed: int, start_date: date) -> None:
    """Fail early, naming the argument, rather than deep inside numpy (ValueError, as documented)."""
    for name, value, low, high in (
        ("persons", persons, 1, MAX_PERSONS),
        ("days", days, 1, MAX_DAYS),
        ("seed", seed, 0, 2**63 - 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")  # noqa: TRY004
        if not low <= value <= high:
            raise ValueError(f"{name} must be between {low:,} and {high:,}, got {value:,}")
    if isinstance(start_date, datetime) or not isinstance(start_date, date):
        raise ValueError(f"start_date must be a datetime.date, got {start_date!r}")  # noqa: TRY004
    if not 2002 <= start_date.year <= 2080:  # epoch ms keep 13 digits; 2099 stays impossible
        raise ValueError(
            f"start_date must be in the years 2002..2080, got {start_date.isoformat()}"
        )


def _remove_previous_output(out_dir: Path) -> None:
    """A rerun with fewer days must not leave the last run's extra weekly files behind."""
    for pattern in OUTPUT_PATTERNS:
        for path in out_dir.glob(pattern):
            path.unlink()


def _entry(
    files: list[str],
    records: int,
    unique_records: int | None = None,
    impossible_values: dict[str, int] | None = None,
    missing_values: dict[str, int] | None = None,
) -> dict:
    """A channel's manifest entry; every channel has these keys."""
    return {
        "files": files,
        "records_written": records,
        "unique_records": records if unique_records is None else unique_records,
        "duplicates_injected": 0,
        "malformed_lines": 0,
        "impossible_values": impossible_values or {},
        "missing_values": missing_values or {},
    }


def _jsonl_entry(records: Records, out_dir: Path, folder: str, prefix: str, world: World) -> dict:
    """Write a JSON-lines channel; its entry adds lines_written and malformed_lines_by_kind."""
    written = write_jsonl_channel(
        records, out_dir / folder, prefix, world.period, world.rng(f"{folder}-files")
    )
    impossible = (
        {"event_time_year_2099": records.impossible_times} if records.impossible_times else {}
    )
    missing = {"category": records.missing_categories} if records.missing_categories else {}
    return {
        **_entry(
            written["files"],
            written["records_written"],
            written["unique_records"],
            impossible,
            missing,
        ),
        **written,
    }


def _campaign_entry(index: int, touches: EmailTouches) -> dict:
    """The campaign as planted; for e-mail also recipients and realised conversions per variant."""
    campaign = CAMPAIGNS[index]
    entry = {
        "campaign_id": campaign.campaign_id,
        "name": campaign.name,
        "channel": campaign.channel,
        "network": campaign.network,
        "category": campaign.category,
    }
    if campaign.is_email:
        ours = touches.campaign == index
        entry["variants"] = {
            variant: {
                "true_conversion_rate": rate,
                "recipients": int((ours & (touches.variant == code)).sum()),
                "converted": int((ours & (touches.variant == code) & touches.converts).sum()),
            }
            for code, (variant, rate) in enumerate(
                zip(campaign.variants, campaign.true_conversion_rates)
            )
        }
    return entry
