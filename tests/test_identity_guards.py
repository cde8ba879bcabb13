"""Shared devices and placeholder ids never merge different people."""

import gzip
import json
import shutil

import dagster as dg
import duckdb
import pytest
from conftest import materialise_everything, truth_identities

KIOSK = "dev-store-kiosk"
KIOSK_LOGINS = 150
PLACEHOLDER_LOGINS = 50


@pytest.fixture(scope="module")
def guarded_run(tmp_path_factory, small_landing):
    """The small landing zone plus a store kiosk that 150 people log in on, and 50 cookies
    whose login arrives with the placeholder user id 'unknown': ingested and built."""
    root = tmp_path_factory.mktemp("guards")
    landing = root / "landing"
    shutil.copytree(small_landing, landing)
    truth = truth_identities(landing)
    user_ids = sorted(truth.loc[truth.identifier_type == "user_id", "identifier_value"])[
        :KIOSK_LOGINS
    ]
    kiosk_lines = [
        json.dumps(
            {
                "event_id": f"kiosk-{number}",
                "event_type": "login",
                "event_time": f"2026-09-10T{10 + number // 60:02d}:{number % 60:02d}:00Z",
                "device_id": KIOSK,
                "user_id": user_id,
                "platform": "android",
            }
        )
        for number, user_id in enumerate(user_ids)
    ]
    cookies = (
        truth[truth.identifier_type == "anonymous_id"]
        .drop_duplicates("true_person_id")
        .identifier_value.head(PLACEHOLDER_LOGINS)
    )
    placeholder_lines = [
        json.dumps(
            {
                "event_id": f"placeholder-{number}",
                "event_type": "login",
                "event_time": "2026-09-11T09:00:00Z",
                "anonymous_id": cookie,
                "user_id": "unknown",
            }
        )
        for number, cookie in enumerate(cookies)
    ]
    for folder, lines in (("app_events", kiosk_lines), ("web_events", placeholder_lines)):
        with gzip.open(landing / folder / f"zz_planted_{folder}.jsonl.gz", "wt") as handle:
            handle.write("\n".join(lines) + "\n")
    # Identities are settled once the warehouse is built: ML and reports add nothing here.
    return materialise_everything(
        landing, root, selection=dg.AssetSelection.groups("ingestion", "warehouse")
    )


def test_no_person_mixes_two_true_people(guarded_run):
    truth = truth_identities(guarded_run.landing)
    with duckdb.connect(str(guarded_run.duckdb_path), read_only=True) as con:
        predicted = con.execute(
            "select identifier_type, identifier_value, person_id from marts.person_identifiers"
        ).df()
    joined = truth.merge(predicted, on=["identifier_type", "identifier_value"])
    true_people_per_person = joined.groupby("person_id")["true_person_id"].nunique()
    assert true_people_per_person.max() == 1, true_people_per_person[true_people_per_person > 1]


def test_the_kiosk_and_the_placeholder_are_excluded_and_reported(guarded_run):
    assert guarded_run.result.success
    with duckdb.connect(str(guarded_run.duckdb_path), read_only=True) as con:
        excluded = dict(
            con.execute(
                "select node_key, exclusion_reason from intermediate.int_identifiers_excluded"
            ).fetchall()
        )
        in_graph = con.execute(
            "select count(*) from marts.person_identifiers where identifier_value in (?, 'unknown')",
            [KIOSK],
        ).fetchone()[0]
    assert excluded[f"device_id:{KIOSK}"] == "too_many_links"
    assert excluded["user_id:unknown"] == "placeholder"
    assert in_graph == 0
