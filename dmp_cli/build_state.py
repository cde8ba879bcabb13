"""What each `dmp run` built from, so a run with nothing new can stop before it starts.

A run records, in the warehouse it builds (`dmp_runs.assets_built`), the inputs it saw: the
landing files (name, size and modification time per channel folder, as the landing sensor
sees them), the suppression list, the code and definitions that shape the assets (our Python
packages, the dbt project, audiences and destinations) and the DMP_* settings. The next
`dmp run` of the same selection with the same inputs, after a run that succeeded, has nothing
to do; this module decides that without importing Dagster, so the answer costs about a second.

A run is recorded as started before it runs and as succeeded or failed after it: a failed,
killed or interrupted run leaves no success behind it, so the next run rebuilds. The state
lives in the warehouse file, so a new or reset warehouse starts with none. Runs launched from
the UI or by the daemon do not record themselves; they change the warehouse only when files
land, which changes the inputs anyway.
"""

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from dagster_dmp import settings
from ingestion.channels import CHANNELS, landing_fingerprints

SCHEMA = "dmp_runs"
TABLE = f"{SCHEMA}.assets_built"
EVERYTHING = "*"
# Source folders of the repository whose files shape what a run builds.
_CODE_FOLDERS = ("activation", "dagster_dmp", "ingestion", "marts", "ml", "reports", "serving")
_DBT_FOLDERS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")
_DBT_FILES = ("dbt_project.yml", "profiles.yml")
# Settings that never change what a run builds: the API keys of the collector and read API,
# and where each run writes its log.
_IGNORED_SETTINGS = ("DMP_LOGS_DIR",)
_IGNORED_SETTINGS_SUFFIXES = ("_KEYS",)


@dataclass(frozen=True)
class BuildInputs:
    """Everything a run's result depends on, as digests."""

    landing: dict[str, str]  # channel folder -> fingerprint of its files
    landing_files: int
    suppression: str
    code: str
    config: str

    @property
    def data_version(self) -> str:
        """One digest of the landing files and the suppression list."""
        return _digest([json.dumps(self.landing, sort_keys=True), self.suppression])


@dataclass(frozen=True)
class BuiltRun:
    """A recorded `dmp run`."""

    run_id: str
    selection: str
    started_at: datetime
    finished_at: datetime | None
    succeeded: bool | None  # None: started, never finished (killed, interrupted)
    data_version: str
    code_version: str
    config_version: str


def current_inputs() -> BuildInputs:
    landing = settings.landing_dir()
    fingerprints = landing_fingerprints(landing)
    files = sum(
        1
        for channel in CHANNELS.values()
        for path in (landing / channel.folder).glob(channel.pattern)
        if path.is_file()
    )
    return BuildInputs(
        landing=fingerprints,
        landing_files=files,
        suppression=_digest(_stat_entries(settings.privacy_dir())),
        code=_code_version(),
        config=_digest(
            f"{name}={value}"
            for name, value in sorted(os.environ.items())
            if name.startswith("DMP_")
            and name not in _IGNORED_SETTINGS
            and not name.endswith(_IGNORED_SETTINGS_SUFFIXES)
        ),
    )


def up_to_date_run(database: Path, selection: str, inputs: BuildInputs) -> BuiltRun | None:
    """The last run, when it succeeded on these very inputs with this selection (or every
    asset), so a new run would build the same again; else None. A configured API pull
    (DMP_API_<CHANNEL>_URL) can bring new data at any time: then never up to date."""
    if settings.api_urls(list(CHANNELS)) or not database.exists():
        return None
    with duckdb.connect(str(database), read_only=True) as con:
        if not _has_table(con):
            return None
        row = con.execute(
            f"select run_id, selection, started_at, finished_at, succeeded, data_version, "
            f"code_version, config_version from {TABLE} order by started_at desc limit 1"
        ).fetchone()
    if row is None:
        return None
    last = BuiltRun(*row)
    same_inputs = (last.data_version, last.code_version, last.config_version) == (
        inputs.data_version,
        inputs.code,
        inputs.config,
    )
    covers = last.selection in (EVERYTHING, selection)
    return last if last.succeeded and same_inputs and covers else None


def record_start(
    database: Path, run_id: str, selection: str, full: bool, inputs: BuildInputs
) -> None:
    """Note a run as started (not succeeded) before it changes anything."""
    database.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(database)) as con:
        con.execute(f"create schema if not exists {SCHEMA}")
        con.execute(
            f"""
            create table if not exists {TABLE} (
                run_id varchar primary key,
                selection varchar not null,
                full_rebuild boolean not null,
                started_at timestamptz not null,
                finished_at timestamptz,
                succeeded boolean,
                landing_files integer not null,
                landing_fingerprints varchar not null,
                data_version varchar not null,
                code_version varchar not null,
                config_version varchar not null
            )
            """
        )
        con.execute(
            f"insert into {TABLE} values (?, ?, ?, ?, null, null, ?, ?, ?, ?, ?)",
            [
                run_id,
                selection,
                full,
                datetime.now(UTC),
                inputs.landing_files,
                json.dumps(inputs.landing, sort_keys=True),
                inputs.data_version,
                inputs.code,
                inputs.config,
            ],
        )


def record_end(database: Path, run_id: str, succeeded: bool) -> None:
    with duckdb.connect(str(database)) as con:
        con.execute(
            f"update {TABLE} set finished_at = ?, succeeded = ? where run_id = ?",
            [datetime.now(UTC), succeeded, run_id],
        )


def new_run_id() -> str:
    return f"run_{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"


def _has_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            TABLE.split("."),
        ).fetchone()[0]
    )


def _code_version() -> str:
    """A digest of the contents of every source file that shapes the assets (contents, not
    times: a checkout of the same code is the same code)."""
    root, dbt = settings.REPO_ROOT, settings.DBT_PROJECT_DIR
    paths = [
        *(path for folder in _CODE_FOLDERS for path in (root / folder).rglob("*.py")),
        *(path for folder in _DBT_FOLDERS for path in (dbt / folder).rglob("*")),
        *(dbt / name for name in _DBT_FILES),
        *settings.audiences_dir().glob("*.yml"),
        *settings.destinations_dir().glob("*.yml"),
    ]
    hasher = hashlib.sha256()
    for path in sorted(path for path in paths if path.is_file()):
        hasher.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return hasher.hexdigest()


def _stat_entries(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(
        f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}"
        for path in folder.rglob("*")
        if path.is_file() and (stat := path.stat())
    )


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
