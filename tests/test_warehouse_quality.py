"""What leaves the warehouse: no clear-text PII past staging, dbt docs build, everything described.

The PII scan reads every text column of the `marts` and `ml` schemas. Two independent checks:
- patterns: an e-mail address, or a phone number as people write one (a leading `+`, a
  trunk `0` or an `(area)` code followed by separated digit groups, or 555-123-4567), with
  9-15 digits in all. A bare run of digits, a hex hash (sha256), an id such as
  `p_6b56...`/`dev-dceb...`/`ord-000123456789`, a uuid or a timestamp is not a phone.
- the known values: no clear e-mail of the generator's truth and no phone the CRM sent (its
  last 9 digits, separators ignored) appears inside any value, whatever its pattern.
The scanner is shown to fire on values planted in a throw-away DuckDB file.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from dagster_dmp.settings import DBT_PROJECT_DIR

PII_FREE_SCHEMAS = ("marts", "ml")

EMAIL = re.compile(r"[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE = re.compile(
    r"""
    (?<![\w+\-./])                                 # not inside an id, hash, uuid or number
    (?:
        \+\d[\d\ ().\-/]{6,}\d                     # international: +49 30 1234567, +4930...
      | \(\d{2,5}\)[\ .\-/]?\d[\d\ .\-/]{4,}\d     # (030) 1234-5678
      | 0\d{1,4}[\ .\-/]\d[\d\ .\-/]{4,}\d         # trunk 0 and a separator: 030 12345678
      | \d{3}[\ .\-]\d{3}[\ .\-]\d{4}              # 555-123-4567
    )
    (?![\w:]|[\-./]\w)                             # not followed by more id, or a clock time
    """,
    re.VERBOSE,
)
PHONE_DIGITS = range(9, 16)
PHONE_TAIL_DIGITS = 9


def clear_pii_kind(text: str) -> str | None:
    """'email' or 'phone' when the text holds one in clear, else None."""
    if EMAIL.search(text):
        return "email"
    for match in PHONE.finditer(text):
        if sum(char.isdigit() for char in match.group()) in PHONE_DIGITS:
            return "phone"
    return None


def _text_columns(con, schemas) -> list[tuple[str, str, str]]:
    """Every column that can hold text, lists and structs of text included (cast to text)."""
    return con.execute(
        """
        select table_schema, table_name, column_name
        from information_schema.columns
        where table_schema in (select unnest($1::varchar[]))
          and (data_type like '%VARCHAR%' or data_type = 'JSON')
        order by all
        """,
        [list(schemas)],
    ).fetchall()


def _distinct_text(schema: str, table: str, column: str) -> str:
    return (
        f'select distinct cast("{column}" as varchar) as value '
        f'from "{schema}"."{table}" where "{column}" is not null'
    )


def _masked(text: str) -> str:
    """Enough of a value to find it again, not enough to leak it into a CI log."""
    return text[:3] + re.sub(r"[A-Za-z0-9]", "*", text[3:12]) + ("..." if len(text) > 12 else "")


def scan_for_clear_pii(con, schemas=PII_FREE_SCHEMAS) -> dict[str, str]:
    """`schema.table.column` -> what was found there (kind, count and one masked example)."""
    findings = {}
    for schema, table, column in _text_columns(con, schemas):
        hits: dict[str, list[str]] = {}
        for (value,) in con.execute(_distinct_text(schema, table, column)).fetchall():
            kind = clear_pii_kind(value)
            if kind:
                hits.setdefault(kind, []).append(value)
        if hits:
            findings[f"{schema}.{table}.{column}"] = "; ".join(
                f"{len(values)} {kind} value(s), e.g. {_masked(values[0])!r}"
                for kind, values in sorted(hits.items())
            )
    return findings


def find_known_values(
    con, needles: list[str], schemas=PII_FREE_SCHEMAS, strip: str | None = None
) -> dict[str, int]:
    """`schema.table.column` -> how many of `needles` occur inside its (lower-cased) values.

    `strip` is a regex of characters removed from the values first (phone separators).
    """
    value = "lower(value)" if strip is None else f"regexp_replace(lower(value), '{strip}', '', 'g')"
    findings = {}
    for schema, table, column in _text_columns(con, schemas):
        found = con.execute(
            f"""
            with
                needles as (select unnest($1::varchar[]) as needle),
                column_values as ({_distinct_text(schema, table, column)})
            select count(distinct needle)
            from column_values
            join needles on contains({value}, needle)
            """,
            [needles],
        ).fetchone()[0]
        if found:
            findings[f"{schema}.{table}.{column}"] = found
    return findings


def _truth_emails(landing: Path) -> list[str]:
    truth = pd.read_parquet(landing / "_truth" / "identities.parquet")
    emails = truth.loc[truth["identifier_type"] == "email", "identifier_value"]
    return sorted(set(emails.str.strip().str.lower()))


def _phone_tails(phones) -> list[str]:
    digits = (re.sub(r"\D", "", phone) for phone in phones)
    return sorted({number[-PHONE_TAIL_DIGITS:] for number in digits if len(number) >= 9})


PHONE_SEPARATORS = r"[\s().+/-]"


@pytest.fixture
def con(pipeline_run):
    """Per test, so no handle is open while `dbt docs generate` opens the file for writing."""
    connection = duckdb.connect(str(pipeline_run.duckdb_path), read_only=True)
    yield connection
    connection.close()


# --- the scanner itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "anna.schmidt@example.com",
        " Anna.Schmidt@Example.COM  ",
        "write to j+dmp@mail.example.co.uk please",
    ],
)
def test_scanner_flags_emails(text):
    assert clear_pii_kind(text) == "email"


@pytest.mark.parametrize(
    "text",
    [
        "+49 7775054991",  # the generator's CRM format
        "+1 6841642243",
        "+4915112345678",
        "+44 (0)20 7946 0958",
        "(030) 1234-5678",
        "030 12345678",
        "0151/12345678",
        "tel. 06 12 34 56 78",
        "555-123-4567",
    ],
)
def test_scanner_flags_phone_numbers(text):
    assert clear_pii_kind(text) == "phone"


@pytest.mark.parametrize(
    "text",
    [
        hashlib.sha256(b"anna.schmidt@example.com").hexdigest(),
        hashlib.sha256(b"4915112345678").hexdigest(),
        "p_6b566218c19b894c",
        "dev-dceba40d61fb49dc",
        "anon-3d4e200fafd5df44",
        "@ines_visser254",
        "cmp-005",
        "ord-000123456789",
        "123456789012",
        "123e4567-e89b-12d3-a456-426614174000",
        "00000000-0000-0000-0000-000000000000",
        "2024-01-15 10:30:00",
        "2024-01-15T10:30:00+01:00",
        "01.02.2024 10:30",
        "1.5e+10",
        "[0.25, 0.5, 1.0]",
        "Frequent buyers, big spenders",
    ],
)
def test_scanner_ignores_hashes_ids_and_dates(text):
    assert clear_pii_kind(text) is None


def test_scanner_finds_planted_pii_only_in_the_scanned_schemas(tmp_path):
    planted_email = "Anna.Schmidt@Example.com"
    with duckdb.connect(str(tmp_path / "planted.duckdb")) as planted:
        for schema in ("marts", "ml", "staging"):
            planted.execute(f"create schema {schema}")
        planted.execute(
            """
            create table marts.people as
            select * from (values
                ('p_6b566218c19b894c', sha256('anna.schmidt@example.com'), null),
                ('p_0c84774f486112c6', '@ines_visser254', ' Anna.Schmidt@Example.com ')
            ) as t(person_id, identifier, contact)
            """
        )
        planted.execute(
            """
            create table ml.notes as
            select 1 as segment_id, ['lapsed', 'call +44 20 7946 0958'] as remarks,
                   '2024-01-15T10:30:00+01:00' as scored_at
            """
        )
        planted.execute("create table staging.crm as select 'x@example.com' as email")
        findings = scan_for_clear_pii(planted)
        known = find_known_values(planted, [planted_email.lower(), "nobody@example.org"])
        phones = find_known_values(
            planted, _phone_tails(["+44 20 7946 0958"]), strip=PHONE_SEPARATORS
        )

    assert set(findings) == {"marts.people.contact", "ml.notes.remarks"}
    assert "1 email value(s)" in findings["marts.people.contact"]
    assert "1 phone value(s)" in findings["ml.notes.remarks"]
    assert planted_email not in findings["marts.people.contact"]  # masked in the message
    assert known == {"marts.people.contact": 1}
    assert phones == {"ml.notes.remarks": 1}


# --- the warehouse ------------------------------------------------------------------------------


def test_no_clear_email_or_phone_pattern_in_marts_or_ml(con):
    assert len(_text_columns(con, PII_FREE_SCHEMAS)) > 5, "nothing to scan"
    assert scan_for_clear_pii(con) == {}


def test_no_known_email_in_marts_or_ml(con, pipeline_run):
    emails = _truth_emails(pipeline_run.landing)
    assert emails
    # They did reach the marts, hashed: so their absence in clear text means something.
    hashed = con.execute(
        """
        select count(*) from marts.person_identifiers
        where identifier_type = 'email_sha256'
          and identifier_value in (select unnest($1::varchar[]))
        """,
        [[hashlib.sha256(email.encode()).hexdigest() for email in emails]],
    ).fetchone()[0]
    assert hashed > 0
    assert find_known_values(con, emails) == {}


def test_no_known_phone_in_marts_or_ml(con):
    phones = [row[0] for row in con.execute("select phone from raw.crm_customers").fetchall()]
    tails = _phone_tails(phone for phone in phones if phone)
    assert tails, "the CRM sent no phone numbers"
    assert find_known_values(con, tails, strip=PHONE_SEPARATORS) == {}


# --- dbt docs and descriptions ------------------------------------------------------------------


@pytest.fixture(scope="module")
def dbt_docs(pipeline_run, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`dbt docs generate` on the test warehouse; target and logs in tmp, not dbt_project/."""
    out = tmp_path_factory.mktemp("dbt_docs")
    completed = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "docs",
            "generate",
            "--target-path",
            str(out / "target"),
            "--log-path",
            str(out / "logs"),
        ],
        cwd=DBT_PROJECT_DIR,
        env={**os.environ, "DMP_DUCKDB_PATH": str(pipeline_run.duckdb_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    return completed, out / "target"


def _docs_json(dbt_docs, name: str) -> dict:
    completed, target = dbt_docs
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads((target / name).read_text())


def _models(manifest: dict) -> dict[str, dict]:
    return {
        unique_id: node
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] == "model"
    }


def _marts(manifest: dict) -> dict[str, dict]:
    return {uid: node for uid, node in _models(manifest).items() if node["fqn"][1] == "marts"}


def test_dbt_docs_generate_catalogs_every_mart(dbt_docs):
    catalog = _docs_json(dbt_docs, "catalog.json")
    manifest = _docs_json(dbt_docs, "manifest.json")
    assert catalog["errors"] is None
    marts = _marts(manifest)
    assert {"person_identifiers", "person_profiles", "campaign_performance", "daily_activity"} <= {
        node["name"] for node in marts.values()
    }
    for unique_id, node in marts.items():
        assert unique_id in catalog["nodes"], f"{node['name']} is not in catalog.json"
        entry = catalog["nodes"][unique_id]
        assert entry["metadata"]["schema"] == "marts"
        assert set(entry["columns"]) == set(node["columns"]), node["name"]
    assert (dbt_docs[1] / "index.html").exists()


def test_every_model_has_a_description(dbt_docs):
    manifest = _docs_json(dbt_docs, "manifest.json")
    undescribed = sorted(
        node["name"] for node in _models(manifest).values() if not node["description"].strip()
    )
    assert not undescribed, f"models without a description: {', '.join(undescribed)}"


def test_every_mart_column_has_a_description(dbt_docs):
    manifest = _docs_json(dbt_docs, "manifest.json")
    catalog = _docs_json(dbt_docs, "catalog.json")
    undescribed = sorted(
        f"{node['name']}.{column}"
        for unique_id, node in _marts(manifest).items()
        for column in catalog["nodes"][unique_id]["columns"]
        if not node["columns"].get(column, {}).get("description", "").strip()
    )
    assert not undescribed, (
        f"{len(undescribed)} mart columns without a description: {', '.join(undescribed)}"
    )


def test_exposures_name_the_marts_their_dagster_assets_read(dbt_docs):
    """Every ML, audience, serving and report asset is an exposure that depends on exactly the
    dbt models the asset reads directly, and those are marts: nothing reads below them."""
    from dagster_dmp.assets.warehouse import WarehouseTranslator
    from dagster_dmp.definitions import defs

    manifest = _docs_json(dbt_docs, "manifest.json")
    graph = defs.resolve_asset_graph()
    translator = WarehouseTranslator()
    exposures = manifest["exposures"].values()
    consumers = {
        key
        for key in graph.get_all_asset_keys()
        if key.path[0] in ("ml", "audiences", "serving", "reports")
    }
    assert {dg.AssetKey(exposure["meta"]["dagster_asset_key"]) for exposure in exposures} == (
        consumers
    )
    dbt_layers = ("staging", "intermediate", "marts")
    for exposure in exposures:
        declared = {
            translator.get_asset_key(manifest["nodes"][unique_id])
            for unique_id in exposure["depends_on"]["nodes"]
        }
        asset = graph.get(dg.AssetKey(exposure["meta"]["dagster_asset_key"]))
        upstream = {parent for parent in asset.parent_keys if parent.path[0] in dbt_layers}
        assert declared == upstream, exposure["name"]
        assert {key.path[0] for key in declared} == {"marts"}, exposure["name"]
