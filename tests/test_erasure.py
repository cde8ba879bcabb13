"""`dmp forget`: after it, no table, export or report file holds the person's id or any of
their identifiers (clear, hashed or as exported), and loading the same landing zone again into
a new warehouse does not bring them back."""

import hashlib
import shutil

import dagster as dg
import duckdb
import pytest
from conftest import copy_of_small_warehouse, materialise_everything

from dmp_cli.commands import main
from privacy.erasure import AUDIT_TABLE, scan

pytestmark = pytest.mark.long_running


@pytest.fixture
def warehouse(small_warehouse_template, tmp_path, monkeypatch):
    monkeypatch.setenv("DMP_PRIVACY_SALT", "a-test-salt-of-some-length")
    paths = copy_of_small_warehouse(small_warehouse_template, tmp_path)
    for name, path in paths.items():
        monkeypatch.setenv(name, str(path))
    return paths


def _exported_person(database) -> tuple[str, set[str]]:
    """A consented member of an ads audience with an e-mail: their clear e-mail, and every
    trace of them to look for (person id, identifiers, identifiers as exported)."""
    with duckdb.connect(str(database), read_only=True) as con:
        person_id, email = con.execute(
            """
            select m.person_id, any_value(trim(c.email))
            from audiences.audience_members as m
            join marts.person_profiles as p using (person_id)
            join marts.person_identifiers as i using (person_id)
            join raw.crm_customers as c
                on sha256(lower(trim(c.email))) = i.identifier_value
                and i.identifier_type = 'email_sha256'
            where p.consent_ads
            group by m.person_id
            order by count(*) desc, m.person_id
            limit 1
            """
        ).fetchone()
        identifiers = con.execute(
            "select identifier_type, identifier_value from marts.person_identifiers"
            " where person_id = ?",
            [person_id],
        ).fetchall()
    needles = {person_id, email.lower()} | {value for _, value in identifiers}
    needles |= {
        hashlib.sha256(value.strip().lower().encode()).hexdigest()
        for kind, value in identifiers
        if kind == "device_id"
    }
    return email, needles


def test_a_forgotten_person_leaves_no_trace_and_does_not_come_back(warehouse, tmp_path):
    database = warehouse["DMP_DUCKDB_PATH"]
    folders = [tmp_path / "exports", tmp_path / "reports"]
    email, needles = _exported_person(database)
    before = scan(database, folders, needles)
    assert any("marts.person_profiles" in trace for trace in before)
    assert any("exports" in trace for trace in before), "the person was delivered before"
    assert main(["profile", "--email", email]) == 0, "served before"

    assert main(["forget", "--email", email.upper()]) == 0
    assert main(["profile", "--email", email]) == 1, "not served after"
    assert scan(database, folders, needles) == []
    with duckdb.connect(str(database), read_only=True) as con:
        (removed,) = con.execute(f"select removed from {AUDIT_TABLE}").fetchone()
        audit = con.execute(f"select * from {AUDIT_TABLE}").df().to_csv()
        persons = con.execute("select count(*) from marts.person_profiles").fetchone()[0]
    assert "raw.crm_customers" in removed and "raw.web_events" in removed
    assert not any(needle in audit.lower() for needle in needles)
    assert persons > 250, "everyone else is still there"

    # The landing zone still holds the person; loading it again and rebuilding the warehouse
    # must not bring them back (ML, audiences and reports read only the marts).
    database.unlink()
    shutil.rmtree(database.parent / f".{database.stem}_dlt")
    rebuilt = materialise_everything(
        warehouse["DMP_LANDING_DIR"], tmp_path, dg.AssetSelection.groups("ingestion", "warehouse")
    )
    assert rebuilt.result.success
    assert scan(database, folders, needles) == []
    with duckdb.connect(str(database), read_only=True) as con:
        suppressed = con.execute(
            "select sum(suppressed_lines) from raw.landing_files_web_events"
        ).fetchone()[0]
    assert suppressed > 0
