"""datagen: deterministic, self-consistent landing data whose dirt is counted exactly.

Everything is checked by reading the written files back, the way ingestion will.
"""

import gzip
import json
import re
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from datagen import generate

SMALL = {"persons": 300, "days": 21, "seed": 11}
EVENT_KEYS = {"web_events": "event_id", "app_events": "event_id", "social": "engagement_id"}
TIME_FORMATS = {
    "iso_utc": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"),
    "iso_utc_ms": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"),
    "iso_offset": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"),
    "naive_utc": re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"),
    "epoch_ms_string": re.compile(r"\d{13}"),
}


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("landing")
    generate(out_dir=out, **SMALL)
    return out


@pytest.fixture(scope="module")
def manifest(landing) -> dict:
    return json.loads((landing / "_truth" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def truth(landing) -> pd.DataFrame:
    return pd.read_parquet(landing / "_truth" / "identities.parquet")


def _lines(landing: Path, channel: str) -> list[bytes]:
    lines = []
    for path in sorted((landing / channel).glob("*.jsonl.gz")):
        lines += gzip.decompress(path.read_bytes()).split(b"\n")[:-1]
    return lines


def _records(landing: Path, channel: str) -> pd.DataFrame:
    """Every valid JSON object of the channel, re-sent duplicates included."""
    rows = []
    for line in _lines(landing, channel):
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return pd.DataFrame(rows)


def _csv(landing: Path, channel: str) -> pd.DataFrame:
    return pd.concat(
        [
            pd.read_csv(path, dtype=str, keep_default_na=False)
            for path in sorted((landing / channel).glob("*.csv"))
        ]
    )


def _time_format(value) -> str:
    if isinstance(value, int):
        return "epoch_ms"
    return next(name for name, pattern in TIME_FORMATS.items() if pattern.fullmatch(value))


def _epoch_ms(value) -> int:
    """Any documented timestamp format as UTC epoch milliseconds (naive means UTC)."""
    if isinstance(value, int) or value.isdigit():
        return int(value)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


def _events(landing: Path, manifest: dict) -> pd.DataFrame:
    """Web and app events of persons (no bots), each once, with the real time."""
    web = _records(landing, "web_events")
    web = web[~web["anonymous_id"].isin(manifest["bots"]["anonymous_ids"])]
    events = pd.concat([web, _records(landing, "app_events")]).drop_duplicates("event_id")
    events["time_ms"] = events["event_time"].map(_epoch_ms)
    return events


def _all_files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_same_arguments_give_identical_bytes(landing, tmp_path):
    summary = generate(out_dir=tmp_path, **SMALL)
    assert _all_files(tmp_path) == _all_files(landing)
    assert summary == json.loads((landing / "_truth" / "manifest.json").read_text())


def test_another_seed_gives_other_data(landing, tmp_path):
    generate(out_dir=tmp_path, **{**SMALL, "seed": SMALL["seed"] + 1})
    ours, theirs = _all_files(landing), _all_files(tmp_path)
    assert ours.keys() == theirs.keys()
    assert all(ours[name] != theirs[name] for name in ours if name != "_truth/ab_truth.parquet")


def test_rerun_with_fewer_days_leaves_no_stale_files(tmp_path):
    generate(persons=20, days=15, seed=1, out_dir=tmp_path)
    summary = generate(persons=20, days=6, seed=1, out_dir=tmp_path)
    written = {name for channel in summary["channels"].values() for name in channel["files"]}
    on_disk = {name for name in _all_files(tmp_path) if not name.startswith("_truth/")}
    assert on_disk == written


def test_manifest_lists_every_channel_and_its_files(landing, manifest):
    assert set(manifest["channels"]) == {
        "web_events",
        "app_events",
        "social",
        "ad_campaigns",
        "crm_customers",
        "orders",
        "products",
        "campaign_touches",
    }
    for entry in manifest["channels"].values():
        assert entry["files"] and all((landing / name).is_file() for name in entry["files"])
    assert manifest["parameters"] == {**SMALL, "start_date": "2026-09-01", "end_date": "2026-09-21"}
    assert len(manifest["channels"]["web_events"]["files"]) == 3  # one per week


@pytest.mark.parametrize("channel", EVENT_KEYS)
def test_malformed_lines_and_duplicates_are_counted_exactly(landing, manifest, channel):
    entry = manifest["channels"][channel]
    lines = _lines(landing, channel)
    records = _records(landing, channel)
    assert len(lines) == entry["lines_written"]
    assert len(lines) - len(records) == entry["malformed_lines"] > 0
    assert lines.count(b"") == entry["malformed_lines_by_kind"]["empty_line"] > 0
    assert sum(entry["malformed_lines_by_kind"].values()) == entry["malformed_lines"]
    assert len(records) == entry["records_written"]
    ids = Counter(records[EVENT_KEYS[channel]])
    assert len(ids) == entry["unique_records"]
    assert sum(count - 1 for count in ids.values()) == entry["duplicates_injected"] > 0


def test_duplicates_repeat_the_line_byte_for_byte_sometimes_in_another_file(landing, manifest):
    versions: dict[str, set[bytes]] = {}
    files: dict[str, set[str]] = {}
    for name in manifest["channels"]["web_events"]["files"]:
        for line in gzip.decompress((landing / name).read_bytes()).split(b"\n")[:-1]:
            try:
                event_id = json.loads(line)["event_id"]
            except ValueError:
                continue
            versions.setdefault(event_id, set()).add(line)
            files.setdefault(event_id, set()).add(name)
    assert all(len(lines) == 1 for lines in versions.values())
    assert any(len(names) > 1 for names in files.values())


def test_every_file_ends_with_a_valid_record(landing, manifest):
    """Readers that strip trailing blank lines would otherwise miscount the empty ones."""
    for channel in EVENT_KEYS:
        for name in manifest["channels"][channel]["files"]:
            last_line = gzip.decompress((landing / name).read_bytes()).split(b"\n")[-2]
            assert isinstance(json.loads(last_line), dict)


def test_truth_lists_exactly_the_identifiers_the_channels_show(landing, manifest, truth):
    web = _records(landing, "web_events")
    web = web[~web["anonymous_id"].isin(manifest["bots"]["anonymous_ids"])]
    app = _records(landing, "app_events")
    crm = _csv(landing, "crm_customers")
    orders = pd.read_parquet(landing / "orders")
    touches = _csv(landing, "campaign_touches")
    handles = [*_records(landing, "social")["handle"], *crm["social_handle"]]
    shown = {
        "anonymous_id": {*web["anonymous_id"], *touches["anonymous_id"]},
        "device_id": set(app["device_id"]),
        "user_id": {
            *web["user_id"].dropna(),
            *app["user_id"].dropna(),
            *crm["user_id"],
            *orders["user_id"].dropna(),
        },
        "customer_id": {
            *crm["customer_id"],
            *orders["customer_id"].dropna(),
            *touches["customer_id"],
        },
        "email": {email.strip().lower() for email in [*crm["email"], *orders["email"].dropna()]},
        "social_handle": {"@" + handle.lower().lstrip("@") for handle in handles if handle},
    }
    shown = {(kind, value) for kind, values in shown.items() for value in values if value}
    assert set(zip(truth["identifier_type"], truth["identifier_value"])) == shown
    assert not truth.duplicated(["identifier_type", "identifier_value"]).any()


def test_raw_emails_vary_but_share_one_canonical_form(landing, truth):
    raw = [
        *_csv(landing, "crm_customers")["email"],
        *pd.read_parquet(landing / "orders")["email"].dropna(),
    ]
    assert any(email != email.strip() for email in raw)
    assert any(email.strip() != email.strip().lower() for email in raw)
    canonical = truth.loc[truth["identifier_type"] == "email", "identifier_value"]
    assert (canonical == canonical.str.strip().str.lower()).all()


def test_personas_cover_every_person(landing, manifest, truth):
    personas = pd.read_parquet(landing / "_truth" / "personas.parquet")
    assert len(personas) == personas["true_person_id"].nunique() == SMALL["persons"]
    assert set(truth["true_person_id"]) == set(personas["true_person_id"])
    assert set(personas["persona"]) == set(manifest["personas"]) and len(manifest["personas"]) == 5


def test_personas_differ_in_what_they_look_at(landing, manifest, truth):
    events = _events(landing, manifest)
    owner = dict(zip(truth["identifier_value"], truth["true_person_id"]))
    personas = pd.read_parquet(landing / "_truth" / "personas.parquet").set_index("true_person_id")[
        "persona"
    ]
    views = events[events["event_type"] == "product_view"].dropna(subset=["category"])
    device = views["anonymous_id"].fillna(views["device_id"])
    shares = pd.crosstab(device.map(owner).map(personas), views["category"], normalize="index")
    assert (
        shares.loc["tech_enthusiast", "electronics"]
        > 0.4
        > shares.loc["fashion_lover", "electronics"]
    )
    assert shares.loc["fashion_lover", "fashion"] > 0.3 > shares.loc["home_maker", "fashion"]


def test_bots_are_not_persons(landing, manifest, truth):
    bots = set(manifest["bots"]["anonymous_ids"])
    assert len(bots) == manifest["bots"]["count"] >= 2
    assert not bots & set(truth["identifier_value"])
    web = _records(landing, "web_events").drop_duplicates("event_id")
    by_bots = web[web["anonymous_id"].isin(bots)]
    assert len(by_bots) == manifest["bots"]["events"]
    assert by_bots["user_id"].isna().all()
    declared = by_bots["user_agent"].str.contains("bot|crawler|spider", case=False)
    assert declared.any() and not declared.all()
    stealthy = by_bots[~declared]
    per_day = stealthy.groupby([stealthy["anonymous_id"], stealthy["event_time"].str[:10]]).size()
    assert per_day.median() > 100


def test_logged_in_events_follow_a_login_and_history_stays_anonymous(landing, manifest, truth):
    events = _events(landing, manifest)
    events["device"] = events["anonymous_id"].fillna(events["device_id"])
    broken_clock = events["time_ms"] >= _epoch_ms("2099-01-01T00:00:00Z")
    # The events of a device with a year-2099 timestamp cannot be put in order: leave it out.
    events = events[~events["device"].isin(events.loc[broken_clock, "device"])]
    events = events.sort_values(["device", "time_ms"])
    logged_in_before = events["event_type"].eq("login").groupby(events["device"]).cummax()
    assert (events["event_type"].ne("login") | events["user_id"].notna()).all()
    assert not (events["user_id"].notna() & ~logged_in_before).any()
    logging_in = events.groupby("device")["event_type"].apply(
        lambda types: (types == "login").any()
    )
    first_event_anonymous = events.groupby("device").head(1).set_index("device")["user_id"].isna()
    assert first_event_anonymous[logging_in[logging_in].index].mean() > 0.5
    registered = set(truth.loc[truth["identifier_type"] == "user_id", "true_person_id"])
    owner = dict(zip(truth["identifier_value"], truth["true_person_id"]))
    of_registered = logging_in[[owner[device] in registered for device in logging_in.index]]
    assert of_registered.all()  # every browser and install of a login holder logs in
    assert 0.7 < len(registered) / SMALL["persons"] < 0.9


def test_every_timestamp_format_appears(landing, manifest):
    events = _events(landing, manifest)
    assert set(events["event_time"].map(_time_format)) == {*TIME_FORMATS, "epoch_ms"}
    order_times = pd.read_parquet(landing / "orders")["order_time"]
    assert set(order_times.map(_time_format)) == {
        "iso_utc_ms",
        "iso_offset",
        "naive_utc",
        "epoch_ms_string",
    }
    assert len(set(_csv(landing, "crm_customers")["updated_at"].map(_time_format))) >= 3


def test_weekends_are_busier_and_activity_grows(landing, manifest):
    events = _events(landing, manifest)
    day = pd.to_datetime(events["time_ms"], unit="ms").dt.normalize()
    daily = day[day.dt.year < 2099].value_counts().sort_index()
    weekend = daily.index.day_of_week >= 5
    assert daily[weekend].mean() / daily[~weekend].mean() > 1.15
    assert daily.iloc[-7:].sum() > daily.iloc[:7].sum()


def test_impossible_and_missing_values_are_counted(landing, manifest):
    for channel in ("web_events", "app_events"):
        records = _records(landing, channel).drop_duplicates("event_id")
        future = records["event_time"].map(_epoch_ms) >= _epoch_ms("2099-01-01T00:00:00Z")
        entry = manifest["channels"][channel]
        assert future.sum() == entry["impossible_values"]["event_time_year_2099"] > 0
        product_events = records[records["product_id"].notna()]
        assert product_events["category"].isna().sum() == entry["missing_values"]["category"] > 0
    orders = pd.read_parquet(landing / "orders")
    impossible = manifest["channels"]["orders"]["impossible_values"]
    assert (orders["quantity"] < 0).sum() == impossible["quantity_negative"] > 0
    assert (orders["unit_price"] <= 0).sum() == impossible["unit_price_not_positive"] > 0
    birth_year = _csv(landing, "crm_customers")["birth_year"]
    assert (
        birth_year.isin(["1850", "2090"]).sum()
        == manifest["channels"]["crm_customers"]["impossible_values"]["birth_year"]
    )


def test_orders_carry_the_identifiers_their_channel_knows(landing):
    orders = pd.read_parquet(landing / "orders")
    assert orders["status"].value_counts(normalize=True)["completed"] > 0.85
    known = orders[["customer_id", "user_id", "email"]].notna()
    store, app, web = (orders["channel"] == channel for channel in ("store", "app", "web"))
    assert known[store].eq([True, False, False]).all().all()
    assert known[app].eq([True, True, False]).all().all()
    assert known[web]["email"].all()
    guest = web & known["customer_id"].eq(False)
    assert guest.any() and not known[guest]["user_id"].any()


def test_ab_variants_are_randomised_with_the_planted_rates(landing, manifest, truth):
    ab_truth = pd.read_parquet(landing / "_truth" / "ab_truth.parquet")
    touches = _csv(landing, "campaign_touches")
    sent = touches[touches["touch_type"] == "sent"]
    assert set(zip(sent["campaign_id"], sent["variant"])) == set(
        zip(ab_truth["campaign_id"], ab_truth["variant"])
    )
    assert sorted(ab_truth.groupby("campaign_id").size()) == [2, 2, 3]
    assert ab_truth.groupby("campaign_id")["true_conversion_rate"].nunique().max() > 1
    planted = {c["campaign_id"]: c["variants"] for c in manifest["campaigns"] if "variants" in c}
    for row in ab_truth.itertuples():
        assert (
            planted[row.campaign_id][row.variant]["true_conversion_rate"]
            == row.true_conversion_rate
        )
    # Each converted recipient ordered with the campaign's tag within 7 days of the send.
    owner = dict(zip(truth["identifier_value"], truth["true_person_id"]))
    orders = pd.read_parquet(landing / "orders").dropna(subset=["campaign_id"])
    orders["person"] = [
        owner.get(customer) or owner.get(user) or owner.get((email or "").strip().lower())
        for customer, user, email in orders[["customer_id", "user_id", "email"]].itertuples(
            index=False
        )
    ]
    orders["time_ms"] = orders["order_time"].map(_epoch_ms)
    sent = sent.assign(
        person=sent["customer_id"].map(owner), time_ms=sent["touch_time"].map(_epoch_ms)
    )
    joined = sent.merge(orders, on=["campaign_id", "person"], suffixes=("_touch", "_order"))
    delay = joined["time_ms_order"] - joined["time_ms_touch"]
    assert ((delay > 0) & (delay <= 7 * 86_400_000)).all()
    converted = (
        joined.drop_duplicates(["campaign_id", "person"]).groupby(["campaign_id", "variant"]).size()
    )
    for (campaign_id, variant), count in converted.items():
        assert planted[campaign_id][variant]["converted"] == count


def test_paid_clicks_arrive_as_tagged_visits(landing, manifest):
    stats = _csv(landing, "ad_campaigns")
    web = _records(landing, "web_events").drop_duplicates("event_id")
    landings = web.dropna(subset=["utm_campaign"]).groupby("utm_campaign").size()
    clicks = stats.assign(clicks=stats["clicks"].astype(int)).groupby("campaign_id")["clicks"].sum()
    paid = [c["campaign_id"] for c in manifest["campaigns"] if c["channel"] != "email"]
    for campaign_id in paid:
        assert 0.8 * clicks[campaign_id] <= landings.get(campaign_id, 0) <= clicks[campaign_id]
    tagged = pd.read_parquet(landing / "orders")["campaign_id"].dropna()
    assert set(tagged) <= {c["campaign_id"] for c in manifest["campaigns"]} and set(paid) & set(
        tagged
    )


@pytest.mark.parametrize(
    "arguments",
    [
        {"persons": 0},
        {"days": 0},
        {"seed": -1},
        {"persons": 2.5},
        {"persons": True},
        {"start_date": datetime(2026, 9, 1)},
        {"start_date": "2026-09-01"},
        {"start_date": date(1999, 1, 1)},
    ],
)
def test_bad_arguments_are_refused(tmp_path, arguments):
    with pytest.raises(ValueError, match=next(iter(arguments))):
        generate(out_dir=tmp_path, **{**SMALL, **arguments})
    assert not any(tmp_path.iterdir())
