"""Audience deliveries: only consented persons, hashed identifiers, diffs against the last
delivery, nothing written when nothing changed, every file atomic and checksummed."""

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from activation.exports import (
    Destination,
    DestinationError,
    deliver,
    exported_identifiers,
    load_destinations,
    members_query,
    parse_destinations,
)
from dagster_dmp.settings import REPO_ROOT

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADS = Destination("ads_test", "ads", "csv", ("email_sha256",), ("fans",))


def _members(*values: str) -> pd.DataFrame:
    return pd.DataFrame({"identifier_type": "email_sha256", "identifier_value": list(values)})


def _read(path: Path) -> set[str]:
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    return set(frame["identifier_value"])


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_a_delivery_writes_a_diff_only_when_members_change(tmp_path, file_format):
    destination = Destination("dest", "ads", file_format, ("email_sha256",), ("fans",))
    first = deliver(_members("a", "b", "c"), destination, "fans", tmp_path, AT)
    assert (first.rows, first.added, first.removed) == (3, 3, 0)
    folder = tmp_path / "dest" / "fans"
    assert _read(folder / f"members.{file_format}") == {"a", "b", "c"}

    again = deliver(_members("c", "b", "a"), destination, "fans", tmp_path, AT + timedelta(1))
    assert not again.changed and (again.added, again.removed) == (0, 0)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["deliveries"]) == 1, "an unchanged audience writes no new delivery"

    later = AT + timedelta(days=2)
    changed = deliver(_members("b", "c", "d"), destination, "fans", tmp_path, later)
    assert (changed.rows, changed.added, changed.removed) == (3, 1, 1)
    stamp = later.strftime("%Y%m%dT%H%M%S%fZ")
    assert _read(folder / "changes" / f"{stamp}.added.{file_format}") == {"d"}
    assert _read(folder / "changes" / f"{stamp}.removed.{file_format}") == {"a"}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [d["removed"] for d in manifest["deliveries"]] == [0, 1]
    for name, digest in manifest["deliveries"][-1]["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file is left behind"


def test_device_ids_leave_hashed_and_e_mails_as_the_warehouse_hashed_them():
    rows = pd.DataFrame(
        {
            "identifier_type": ["device_id", "email_sha256"],
            "identifier_value": ["ABC-123", "f" * 64],
        }
    )
    out = exported_identifiers(rows).set_index("identifier_type")["identifier_value"]
    assert out["device_id_sha256"] == hashlib.sha256(b"abc-123").hexdigest()
    assert out["email_sha256"] == "f" * 64


def test_destination_definitions_are_checked_with_every_problem_named():
    text = """
destinations:
  - name: ads
    purpose: print
    format: xlsx
    identifiers: [email, email_sha256]
    audiences: [fans, nobody]
  - name: tool
    purpose: email
"""
    with pytest.raises(DestinationError) as error:
        parse_destinations(text, "demo.yml", {"fans"})
    problems = "\n".join(error.value.problems)
    assert "demo.yml: destination 'ads': purpose must be one of ads, email" in problems
    assert "format must be one of csv, parquet" in problems
    assert "unknown identifier 'email'" in problems
    assert "unknown audience 'nobody'" in problems
    assert "destination 'tool': missing 'format'" in problems


def test_the_demo_destinations_load():
    audiences = {"likely_fashion_buyers", "likely_fashion_buyer_lookalikes", "recent_fashion_fans"}
    destinations = load_destinations(REPO_ROOT / "destinations", audiences)
    assert {d.purpose for d in destinations} == {"ads", "email"}


@pytest.fixture(scope="module")
def identities(pipeline_run) -> pd.DataFrame:
    """Every exportable identifier as it leaves, with its person's consent."""
    with duckdb.connect(str(pipeline_run.duckdb_path), read_only=True) as con:
        rows = con.execute(
            """
            select i.person_id, i.identifier_type, i.identifier_value, p.consent_ads,
                p.consent_email
            from marts.person_identifiers as i
            join marts.person_profiles as p using (person_id)
            where i.identifier_type in ('email_sha256', 'phone_sha256', 'device_id')
            """
        ).df()
    exported = exported_identifiers(rows[["identifier_type", "identifier_value"]].copy())
    rows["exported_value"] = [
        hashlib.sha256(v.strip().lower().encode()).hexdigest() if t == "device_id" else v
        for t, v in zip(rows["identifier_type"], rows["identifier_value"])
    ]
    assert set(exported["identifier_value"]) == set(rows["exported_value"])
    return rows


def test_no_person_without_consent_is_in_any_delivery_for_that_purpose(pipeline_run, identities):
    exports = pipeline_run.reports.parent / "exports"
    with duckdb.connect(str(pipeline_run.duckdb_path), read_only=True) as con:
        members = con.execute("select audience, person_id from audiences.audience_members").df()
    checked = 0
    for manifest_path in exports.glob("*/*/manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        consent = {"ads": "consent_ads", "email": "consent_email"}[manifest["purpose"]]
        snapshot = next(manifest_path.parent.glob("members.*"))
        delivered = _read(snapshot)
        persons = identities[identities["exported_value"].isin(delivered)]
        assert persons[consent].all(), f"{snapshot}: a person without {consent}"
        audience = members[members["audience"] == manifest["audience"]]
        refused = identities[
            identities["person_id"].isin(audience["person_id"]) & ~identities[consent]
        ]
        assert not (set(refused["exported_value"]) & delivered)
        checked += len(refused)
    assert checked >= 10, "the test data has members without consent to leave out"


def test_a_consent_withdrawal_is_exactly_the_next_removals(pipeline_run, identities, tmp_path):
    database = tmp_path / "copy.duckdb"
    shutil.copy(pipeline_run.duckdb_path, database)
    exports = tmp_path / "exports"
    shutil.copytree(pipeline_run.reports.parent / "exports", exports)
    audiences = {"likely_fashion_buyers", "likely_fashion_buyer_lookalikes", "recent_fashion_fans"}
    ads = next(
        d for d in load_destinations(REPO_ROOT / "destinations", audiences) if d.purpose == "ads"
    )
    audience = ads.audiences[0]
    snapshot = exports / ads.name / audience / f"members.{ads.format}"
    delivered = _read(snapshot)
    persons = identities[identities["exported_value"].isin(delivered)]
    withdrawn = sorted(persons["person_id"].unique())[:3]
    assert len(withdrawn) == 3
    with duckdb.connect(str(database)) as con:
        con.execute(
            "update marts.person_profiles set consent_ads = false where person_id in (?, ?, ?)",
            withdrawn,
        )
        rows = con.execute(*members_query(ads)).df()
    members = exported_identifiers(rows[rows["audience"] == audience])
    delivery = deliver(members, ads, audience, exports, datetime.now(UTC))
    expected = set(identities.loc[identities["person_id"].isin(withdrawn), "exported_value"])
    expected &= delivered
    removed = next(name for name in delivery.files if ".removed." in name)
    assert _read(exports / ads.name / audience / removed) == expected
    assert delivery.removed == len(expected)
    assert delivery.added == 0

    unchanged = deliver(members, ads, audience, exports, datetime.now(UTC))
    assert not unchanged.changed
