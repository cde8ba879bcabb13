"""Erasure (the right to be forgotten): `dmp forget --email ... | --person-id ...`.

1. Who: the person(s) holding the e-mail (by its hash) or the person id, and every
   identifier the identity graph links to them.
2. Never again: the identifiers go on the suppression list (salted hashes, ingestion/
   suppression.py), so ingestion drops their records from the landing files it reads, today
   and after any rebuild from the landing zone.
3. Gone now: out of the profiles `dmp serve` and `dmp profile` read (a snapshot without them is
   published first), their rows in every raw table and quarantine table, their person id in
   the id memory, dlt's copies of past loads, and their identifiers in every delivered export
   file.
4. Rebuilt: every asset is materialised again with `dbt build --full-refresh`, so staging,
   the identity graph, marts, ML outputs, audiences, exports and the report follow.
5. Checked: every warehouse table and every export and report file is scanned for the
   person id and identifiers (clear, hashed and as exported); the audit row records the
   request (salted hash of what was asked), the time and what was removed.
"""

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

import marts
from activation.exports import IDENTIFIERS, purge
from dagster_dmp import settings
from ingestion.channels import CHANNELS
from ingestion.pipeline import RAW_DATASET, pipelines_dir
from ingestion.suppression import (
    CANONICAL_SQL,
    IDENTIFIER_FIELDS,
    Suppression,
    add_to_suppression,
    load_suppression,
    privacy_salt,
    suppression_key,
)
from serving.snapshot import erase

AUDIT_TABLE = "privacy.erasure_requests"
# Identifiers the warehouse keeps only hashed; the raw data holds them in clear.
HASHED = {"email_sha256", "phone_sha256"}


@dataclass
class Erasure:
    request_id: str
    persons: list[str]
    identifiers: list[tuple[str, str]]
    removed: dict[str, int] = field(default_factory=dict)
    traces: list[str] = field(default_factory=list)


def forget(
    email: str | None = None,
    person_id: str | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> Erasure:
    if not email and not person_id:
        raise ValueError("name the person: --email or --person-id")
    salt = privacy_salt()
    database = settings.duckdb_path()
    with duckdb.connect(str(database), read_only=True) as con:
        persons, identifiers = _who(con, email, person_id)
        clear = _clear_values(con, identifiers) | ({email.strip().lower()} if email else set())
    erasure = Erasure(uuid.uuid4().hex, sorted(persons), sorted(identifiers))
    # Serving stops showing the person now, not after the rebuild.
    erase(settings.serving_dir(), erasure.persons, label="erasure")
    add_to_suppression(settings.privacy_dir(), salt, identifiers, erasure.request_id)
    suppression = load_suppression(settings.privacy_dir())
    with duckdb.connect(str(database)) as con:
        erasure.removed = _delete_rows(con, suppression, persons, clear)
    for loads in pipelines_dir(database).glob("*/load/loaded"):
        shutil.rmtree(loads)  # dlt keeps the files of past loads; they hold raw records
    exported = {value for _, value in identifiers} | {
        hashlib.sha256(value.strip().lower().encode()).hexdigest()
        for kind, value in identifiers
        if IDENTIFIERS["device_id_sha256"][0] == kind
    }
    erasure.removed["export rows"] = purge(settings.exports_dir(), exported, datetime.now(UTC))
    _rebuild(progress)
    needles = {*persons, *exported, *clear}
    erasure.traces = scan(database, [settings.exports_dir(), settings.reports_dir()], needles)
    _audit(database, erasure, suppression_key(salt, "request", email or person_id))
    return erasure


def _who(
    con: duckdb.DuckDBPyConnection, email: str | None, person_id: str | None
) -> tuple[set[str], set[tuple[str, str]]]:
    email_key = hashlib.sha256(email.strip().lower().encode()).hexdigest() if email else None
    asked = {("email_sha256", email_key)} if email_key else set()
    persons = {
        row[0]
        for row in con.execute(
            f"select distinct person_id from {marts.PERSON_IDENTIFIERS}"
            " where (identifier_type = 'email_sha256' and identifier_value = ?)"
            " or person_id = ?",
            [email_key, person_id],
        ).fetchall()
    }
    linked = con.execute(
        f"select identifier_type, identifier_value from {marts.PERSON_IDENTIFIERS}"
        " where person_id in (select unnest(?::varchar[]))",
        [sorted(persons)],
    ).fetchall()
    return persons, asked | set(linked)


def _clear_values(con: duckdb.DuckDBPyConnection, identifiers: set[tuple[str, str]]) -> set[str]:
    """The identifiers as the raw data spells them: ids as they are, handles without the @,
    e-mails and phones (kept only hashed downstream) found in raw by their hash."""
    clear = {value.lstrip("@") for kind, value in identifiers if kind not in HASHED}
    hashed = sorted(value for kind, value in identifiers if kind in HASHED)
    for folder, fields in IDENTIFIER_FIELDS.items():
        for field_name, kind in fields.items():
            if kind not in HASHED:
                continue
            canonical = CANONICAL_SQL[kind].format(v=field_name)
            clear |= {
                row[0].strip()
                for row in con.execute(
                    f"select distinct {field_name} from {RAW_DATASET}.{CHANNELS[folder].table}"
                    f" where {canonical} in (select unnest(?::varchar[]))",
                    [hashed],
                ).fetchall()
            }
    return {value for value in clear if value}


def _delete_rows(
    con: duckdb.DuckDBPyConnection,
    suppression: Suppression,
    persons: set[str],
    clear: set[str],
) -> dict[str, int]:
    removed: dict[str, int] = {}
    con.register("suppressed_keys", pd.DataFrame({"key": sorted(suppression.keys)}))
    con.execute("begin")
    for channel in CHANNELS.values():
        if channel.folder not in IDENTIFIER_FIELDS:
            continue
        table = f"{RAW_DATASET}.{channel.table}"
        columns = [row[0] for row in con.execute(f"describe {table}").fetchall()]
        match = suppression.match_sql(channel.folder, "suppressed_keys", columns)
        removed[table] = con.execute(f"delete from {table} where {match}").fetchone()[0]
    for channel in CHANNELS.values():
        table = f"{RAW_DATASET}.{channel.quarantine_table}"
        removed[table] = con.execute(
            f"delete from {table}"
            " where len([v for v in ?::varchar[] if contains(lower(record), v)]) > 0",
            [sorted(value.lower() for value in clear)],
        ).fetchone()[0]
    # dlt's staging copies of the last merge load
    for (table,) in con.execute(
        "select table_name from information_schema.tables where table_schema = ?",
        [f"{RAW_DATASET}_staging"],
    ).fetchall():
        con.execute(f'drop table "{RAW_DATASET}_staging"."{table}"')
    removed["intermediate.int_person_ids_assigned"] = con.execute(
        "delete from intermediate.int_person_ids_assigned"
        " where person_id in (select unnest(?::varchar[]))",
        [sorted(persons)],
    ).fetchone()[0]
    con.execute("commit")
    return {table: count for table, count in removed.items() if count}


def _rebuild(progress: Callable[[str], None]) -> None:
    """Every asset again, dbt from scratch: nothing derived keeps a copy."""
    from dagster_dmp.runner import run_assets

    outcome = run_assets(
        run_config={"ops": {"warehouse_models": {"config": {"full_refresh": True}}}},
        holder="dmp forget",
        progress=progress,
    )
    if not outcome.success:
        raise RuntimeError(
            f"the rebuild after the erasure failed in {', '.join(outcome.failed_steps)}"
        )


def scan(database: Path, folders: list[Path], needles: set[str]) -> list[str]:
    """Where any needle still appears: `schema.table.column` of the warehouse (text columns),
    and files under `folders` (parquet read as tables, anything else as text)."""
    needles = {needle.lower() for needle in needles if needle}
    if not needles:
        return []
    found = []
    with duckdb.connect(str(database), read_only=True) as con:
        columns = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns"
            " where data_type = 'VARCHAR' and table_schema not in ('information_schema',"
            " 'pg_catalog')"
        ).fetchall()
        for schema, table, column in columns:
            hit = con.execute(
                f'select count(*) from "{schema}"."{table}"'
                f' where len([v for v in ?::varchar[] if contains(lower("{column}"), v)]) > 0',
                [sorted(needles)],
            ).fetchone()[0]
            if hit:
                found.append(f"{schema}.{table}.{column}: {hit} row(s)")
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")) if Path(folder).is_dir() else []:
            if not path.is_file():
                continue
            text = (
                pd.read_parquet(path).to_csv(index=False)
                if path.suffix == ".parquet"
                else path.read_bytes().decode("utf-8", errors="ignore")
            ).lower()
            if any(needle in text for needle in needles):
                found.append(str(path))
    return found


def _audit(database: Path, erasure: Erasure, request_key: str) -> None:
    with duckdb.connect(str(database)) as con:
        con.execute("create schema if not exists privacy")
        con.execute(
            f"create table if not exists {AUDIT_TABLE} (request_id varchar, request_key varchar,"
            " requested_at timestamp, persons integer, identifiers integer, removed varchar,"
            " traces_left integer)"
        )
        con.execute(
            f"insert into {AUDIT_TABLE} values (?, ?, ?, ?, ?, ?, ?)",
            [
                erasure.request_id,
                request_key,
                datetime.now(UTC).replace(tzinfo=None),
                len(erasure.persons),
                len(erasure.identifiers),
                json.dumps(erasure.removed, sort_keys=True),
                len(erasure.traces),
            ],
        )
