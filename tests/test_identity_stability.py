"""person_id is stable: a re-run gives the same ids, new data never renames a person, and
when two persons merge the older id survives (int_person_ids_assigned). Incremental runs
(events, sessions, profiles) after new and late data give exactly what a full refresh gives."""

import gzip
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from dagster_dmp.settings import DBT_PROJECT_DIR
from ingestion.channels import CHANNELS
from ingestion.pipeline import load_channel

pytestmark = pytest.mark.long_running

DBT = Path(sys.executable).with_name("dbt")
NEW_COOKIE = "aaaa-new-cookie"  # sorts before every generated cookie ("anon-...")
NEW_PERSON_COOKIE = "aaab-brand-new-cookie"
NEW_PERSON_USER = "aaab-brand-new-user"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
ROBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HELD_BACK_WEEK = "20260908"  # the second weekly file of each event channel arrives last
# Everything dbt derives from events, compared between incremental runs and a full refresh.
DERIVED_TABLES = (
    "intermediate.int_events_deduplicated",
    "intermediate.int_event_clients_daily",
    "intermediate.int_identity_edges",
    "intermediate.int_activities_attributed",
    "intermediate.int_events_sessionised",
    "intermediate.int_sessions_aggregated",
    "marts.person_identifiers",
    "marts.person_profiles",
    "marts.daily_activity",
    "marts.campaign_performance",
    "marts.category_association_rules",
)


@dataclass
class Warehouse:
    landing: Path
    duckdb_path: Path
    work: Path

    def load_and_build(
        self, full_refresh: bool = False, unit_tests: bool = False, data_tests: bool = True
    ) -> pd.DataFrame:
        """Load every channel, `dbt build` (dbt's unit tests only when asked: they check the
        SQL, not the data, so once per session is enough; without data tests, `dbt run`), and
        return marts.person_identifiers."""
        for channel in CHANNELS.values():
            load_channel(channel, self.landing, self.duckdb_path)
        command = [
            str(DBT),
            "build" if data_tests else "run",
            "--quiet",
            "--target-path",
            str(self.work / "target"),
            "--log-path",
            str(self.work / "logs"),
        ]
        if full_refresh:
            command.append("--full-refresh")
        if data_tests and not unit_tests:
            command += ["--exclude-resource-type", "unit_test"]
        completed = subprocess.run(
            command,
            cwd=DBT_PROJECT_DIR,
            env={**os.environ, "DMP_DUCKDB_PATH": str(self.duckdb_path)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0, completed.stdout[-5000:] + completed.stderr[-2000:]
        with duckdb.connect(str(self.duckdb_path), read_only=True) as connection:
            return connection.sql(
                "select identifier_type, identifier_value, person_id from marts.person_identifiers"
                " order by identifier_type, identifier_value"
            ).df()

    def derived_tables(self) -> dict[str, pd.DataFrame]:
        """Every DERIVED_TABLES table, rows sorted by all columns."""
        with duckdb.connect(str(self.duckdb_path), read_only=True) as connection:
            return {
                table: connection.sql(f"select * from {table} order by all").df()
                for table in DERIVED_TABLES
            }

    def hold_back(self, week: str) -> Path:
        """Move the event files of `week` out of the landing zone; returns where they went."""
        held = self.work / "held_back"
        held.mkdir(parents=True, exist_ok=True)
        for folder, prefix in (
            ("web_events", "web_events"),
            ("app_events", "app_events"),
            ("social", "social_engagements"),
        ):
            path = self.landing / folder / f"{prefix}_{week}.jsonl.gz"
            path.rename(held / path.name)
        return held

    def release(self, held: Path) -> None:
        folders = {"web": "web_events", "app": "app_events", "social": "social"}
        for path in held.iterdir():
            path.rename(self.landing / folders[path.name.split("_")[0]] / path.name)

    def land_late_events(self, name: str, window_day: str, old_day: str) -> None:
        """Late arrivals: new events on `window_day` (inside the lookback), exact re-sends of
        events of `old_day` (long stored), a near-duplicate of a `window_day` event, and two
        app events on `window_day` whose ids are those of stored `old_day` web events (the
        earlier copy wins; raw tables merge on the id per channel, so only a second channel
        can bring an id back)."""
        source = self.landing / "web_events" / "web_events_20260901.jsonl.gz"
        events = []
        with gzip.open(source, "rt", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # the generator's planted malformed lines
        iso = [e for e in events if str(e.get("event_time", "")).endswith("Z")]
        in_window = [e for e in iso if e["event_time"].startswith(window_day)][:20]
        old = [e for e in iso if e["event_time"].startswith(old_day)][:5]
        assert len(in_window) == 20 and len(old) == 5, "too few events to make late arrivals"
        late = [
            {**event, "event_id": f"{name}-{number}", "event_time": _later(event, 600)}
            for number, event in enumerate(in_window[:19])
        ]
        retry = {
            **in_window[19],
            "event_id": f"{name}-retry",
            "event_time": _later(in_window[19], 1),
        }
        lines = [json.dumps(event) for event in [*late, *old, retry]]
        path = self.landing / "web_events" / f"web_events_zz_{name}.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        app_source = self.landing / "app_events" / "app_events_20260901.jsonl.gz"
        with gzip.open(app_source, "rt", encoding="utf-8", errors="replace") as handle:
            # written on window_day: in UTC within a day of it, inside the context day at worst
            app_events = [
                event
                for event in map(_json_object, handle)
                if str(event.get("event_time", "")).startswith(window_day)
            ][:2]
        assert len(app_events) == 2, "too few app events to reuse stored ids"
        colliding = [  # ten minutes on: not near-duplicates of the events they copy
            {
                **event,
                "event_id": stored["event_id"],
                "event_time": (
                    pd.Timestamp(event["event_time"]) + pd.Timedelta(minutes=10)
                ).isoformat(),
            }
            for event, stored in zip(app_events, old)
        ]
        path = self.landing / "app_events" / f"app_events_zz_{name}.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write("\n".join(json.dumps(event) for event in colliding) + "\n")

    def land_web_logins(
        self, name: str, logins: list[tuple[str, str | None]], user_agent: str = BROWSER
    ) -> None:
        """A new web landing file: each (cookie, user_id) logs in once."""
        lines = [
            json.dumps(
                {
                    "event_id": f"{name}-{number}",
                    "event_type": "login",
                    "event_time": f"2026-09-07T12:{number:02d}:00Z",
                    "anonymous_id": cookie,
                    "user_id": user_id,
                    "page_url": "/login",
                    "user_agent": user_agent,
                }
            )
            for number, (cookie, user_id) in enumerate(logins)
        ]
        path = self.landing / "web_events" / f"web_events_zz_{name}.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


def _json_object(line: str) -> dict:
    """The line's JSON object; {} for the generator's planted malformed lines."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _later(event: dict, seconds: int) -> str:
    at = pd.Timestamp(event["event_time"]) + pd.Timedelta(seconds=seconds)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _person_of(identifiers: pd.DataFrame, identifier_type: str, value: str) -> str:
    rows = identifiers[
        (identifiers.identifier_type == identifier_type) & (identifiers.identifier_value == value)
    ]
    assert len(rows) == 1, f"{identifier_type}:{value} is not in person_identifiers"
    return rows.person_id.iloc[0]


def _simple_persons(identifiers: pd.DataFrame) -> pd.DataFrame:
    """Persons with exactly one user_id and at least one cookie: one row each, by person_id."""
    counts = identifiers.pivot_table(
        index="person_id", columns="identifier_type", values="identifier_value", aggfunc="count"
    ).fillna(0)
    simple = counts[(counts.get("user_id", 0) == 1) & (counts.get("anonymous_id", 0) >= 1)]
    first = (
        identifiers[identifiers.person_id.isin(simple.index)]
        .groupby(["person_id", "identifier_type"])
        .identifier_value.min()
        .unstack()
    )
    return first[["user_id", "anonymous_id"]].sort_index()


@pytest.fixture(scope="module")
def stages(tmp_path_factory) -> dict:
    """Build once, re-build, add a smaller cookie and a new person, then merge persons. The
    data tests run on the first build and on the incremental build compared with a full
    refresh at the end; the id-only rebuilds and the full refresh skip them."""
    from datagen import generate

    root = tmp_path_factory.mktemp("identity_stability")
    warehouse = Warehouse(root / "landing", root / "warehouse" / "dmp.duckdb", root / "dbt")
    generate(persons=200, days=14, seed=5, out_dir=warehouse.landing)
    held = warehouse.hold_back(HELD_BACK_WEEK)
    result: dict = {"first": warehouse.load_and_build(unit_tests=True)}
    result["again"] = warehouse.load_and_build(data_tests=False)

    simple = _simple_persons(result["first"])
    assert len(simple) >= 5, "the generated data has too few simple persons"
    grown = simple.iloc[0]
    result["grown"] = grown
    warehouse.land_web_logins(
        "smaller_cookie",
        [(NEW_COOKIE, grown.user_id), (NEW_PERSON_COOKIE, NEW_PERSON_USER)],
    )
    result["grown_again"] = warehouse.load_and_build(data_tests=False)

    # Merges: two persons of the first run (same age: the smaller id survives), and the
    # person minted in the second run with a first-run person whose id sorts after it (the
    # older, larger id survives).
    new_person_id = _person_of(result["grown_again"], "user_id", NEW_PERSON_USER)
    rest = simple.iloc[1:]
    first_a, first_b = rest.index[0], rest.index[1]
    older = rest[(rest.index > new_person_id) & ~rest.index.isin([first_a, first_b])].index[0]
    result.update(
        same_age=(rest.loc[first_a], rest.loc[first_b]),
        new_person_id=new_person_id,
        older=rest.loc[older],
    )
    warehouse.land_web_logins(
        "merges",
        [
            (rest.loc[first_b].anonymous_id, rest.loc[first_a].user_id),
            (NEW_PERSON_COOKIE, rest.loc[older].user_id),
        ],
    )
    # In the same run, a cookie turns bot (a robot user agent) and another is shared by four
    # users (too many links): both leave the identity graph, and the events they sent long
    # ago lose their person.
    turned_bot, shared, other_users = simple.iloc[-1], simple.iloc[-2], simple.iloc[-5:-2]
    assert not {*simple.index[-5:]} & {first_a, first_b, older}, "too few simple persons"
    warehouse.land_web_logins("bot", [(turned_bot.anonymous_id, None)], user_agent=ROBOT)
    warehouse.land_web_logins(
        "shared", [(shared.anonymous_id, user_id) for user_id in other_users.user_id]
    )
    result.update(turned_bot=turned_bot, shared=shared)
    result["merged"] = warehouse.load_and_build(data_tests=False)

    # A week of new events plus late ones: new events inside the lookback window, re-sends of
    # events stored long ago, a near-duplicate. Then the same data rebuilt from scratch.
    warehouse.release(held)
    warehouse.land_late_events("late", window_day="2026-09-06", old_day="2026-09-01")
    result["more_days"] = warehouse.load_and_build()
    result["incremental_tables"] = warehouse.derived_tables()
    result["refreshed"] = warehouse.load_and_build(full_refresh=True, data_tests=False)
    result["refreshed_tables"] = warehouse.derived_tables()
    return result


def test_rebuild_on_the_same_data_gives_the_same_ids(stages):
    pd.testing.assert_frame_equal(stages["first"], stages["again"])


def test_a_smaller_new_identifier_joins_without_renaming(stages):
    before, after = stages["first"], stages["grown_again"]
    grown_person = _person_of(before, "user_id", stages["grown"].user_id)
    # The new cookie sorts first, so a min-key id would have renamed this person.
    assert f"anonymous_id:{NEW_COOKIE}" < f"anonymous_id:{stages['grown'].anonymous_id}"
    assert _person_of(after, "anonymous_id", NEW_COOKIE) == grown_person

    kept = before.merge(after, on=["identifier_type", "identifier_value"], suffixes=("", "_now"))
    assert len(kept) == len(before)
    renamed = kept[kept.person_id != kept.person_id_now]
    assert renamed.empty, renamed.head()


def test_a_merge_keeps_the_older_id(stages):
    before, after = stages["grown_again"], stages["merged"]
    person_a, person_b = stages["same_age"]
    # Both first seen in the first run: the smaller id survives, the other disappears.
    survivor, loser = sorted([person_a.name, person_b.name])
    for person in (person_a, person_b):
        assert _person_of(after, "user_id", person.user_id) == survivor
    assert loser not in set(after.person_id)
    assert (
        (after[after.person_id == survivor].shape[0])
        == (before[before.person_id.isin([survivor, loser])].shape[0])
    )

    # A first-run person merged with the second run's new person keeps its own, larger id.
    older = stages["older"]
    assert older.name > stages["new_person_id"]
    assert _person_of(after, "user_id", NEW_PERSON_USER) == older.name
    assert _person_of(after, "anonymous_id", NEW_PERSON_COOKIE) == older.name
    assert stages["new_person_id"] not in set(after.person_id)

    # Nobody else changed.
    involved = {survivor, loser, older.name, stages["new_person_id"]}
    untouched = before[~before.person_id.isin(involved)].merge(
        after, on=["identifier_type", "identifier_value"], suffixes=("", "_now")
    )
    assert (untouched.person_id == untouched.person_id_now).all()


def test_a_first_run_gives_md5_of_the_smallest_key(stages):
    """Without a memory (first run) the ids are those of the data alone."""
    identifiers = stages["first"].assign(
        node_key=lambda frame: frame.identifier_type + ":" + frame.identifier_value
    )
    smallest = identifiers.groupby("person_id").node_key.min()
    expected = smallest.map(lambda key: "p_" + hashlib.md5(key.encode()).hexdigest()[:16])
    assert (expected.index == expected.values).all()


def test_a_full_refresh_keeps_every_person_id(stages):
    """The id memory is state: --full-refresh rebuilds everything around it."""
    pd.testing.assert_frame_equal(stages["more_days"], stages["refreshed"])


@pytest.mark.parametrize("table", DERIVED_TABLES)
def test_incremental_runs_equal_a_full_refresh(stages, table):
    incremental, refreshed = stages["incremental_tables"][table], stages["refreshed_tables"][table]
    assert len(refreshed) > 0, f"{table} is empty"
    pd.testing.assert_frame_equal(incremental, refreshed, check_exact=False, rtol=1e-9)


def test_late_events_inside_the_lookback_are_placed_and_resends_dropped(stages):
    events = stages["incremental_tables"]["intermediate.int_events_deduplicated"]
    late = events[events.event_id.str.startswith("late-")]
    assert sorted(late.event_id) == sorted(f"late-{number}" for number in range(19))
    assert (late.event_date.astype(str) == "2026-09-06").all()
    # app events reusing stored web ids are not taken again: the stored copy came first
    assert not events.event_id.duplicated().any()


def test_a_bot_and_a_shared_cookie_leave_the_graph(stages):
    before, after = stages["grown_again"], stages["merged"]
    for planted in (stages["turned_bot"], stages["shared"]):
        assert (before.identifier_value == planted.anonymous_id).any()
        assert not (after.identifier_value == planted.anonymous_id).any()


def test_more_days_rename_no_existing_person(stages):
    """A week of new data: an identifier seen before keeps its person, or joins a person that
    already existed (a merge keeps the older id); no existing identifier gets a new id."""
    before, after = stages["merged"], stages["more_days"]
    kept = before.merge(after, on=["identifier_type", "identifier_value"], suffixes=("", "_now"))
    assert len(kept) == len(before), "an identifier disappeared"
    moved = kept[kept.person_id != kept.person_id_now]
    assert moved.person_id_now.isin(set(before.person_id)).all(), moved.head()
    assert len(after) > len(before), "the new week brought no new identifiers"


def test_channels_that_arrive_after_the_first_build_are_loaded_incrementally(tmp_path):
    """A warehouse first built from the CRM and orders alone, then given web, app and social
    data: the incremental run loads every event, as a full refresh does (the lookback window
    of a model that stores no events yet is every day)."""
    from datagen import generate

    warehouse = Warehouse(tmp_path / "landing", tmp_path / "warehouse" / "dmp.duckdb", tmp_path)
    generate(persons=60, days=7, seed=3, out_dir=warehouse.landing)
    later = tmp_path / "later"
    later.mkdir()
    for folder in ("web_events", "app_events", "social"):
        (warehouse.landing / folder).rename(later / folder)
        (warehouse.landing / folder).mkdir()
    warehouse.load_and_build(data_tests=False)
    for folder in ("web_events", "app_events", "social"):
        (warehouse.landing / folder).rmdir()
        (later / folder).rename(warehouse.landing / folder)
    warehouse.load_and_build(data_tests=False)
    incremental = warehouse.derived_tables()
    warehouse.load_and_build(full_refresh=True, data_tests=False)
    refreshed = warehouse.derived_tables()
    assert len(refreshed["intermediate.int_events_sessionised"]) > 300
    for table in DERIVED_TABLES:
        pd.testing.assert_frame_equal(
            incremental[table], refreshed[table], check_exact=False, rtol=1e-9, obj=table
        )
