"""Where the DMP keeps its files; every path can be overridden by the environment."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"


def duckdb_path() -> Path:
    return Path(os.environ.get("DMP_DUCKDB_PATH", REPO_ROOT / "data" / "dmp.duckdb")).resolve()


def landing_dir() -> Path:
    return Path(os.environ.get("DMP_LANDING_DIR", REPO_ROOT / "data" / "landing")).resolve()


def reports_dir() -> Path:
    return Path(os.environ.get("DMP_REPORTS_DIR", REPO_ROOT / "reports" / "output")).resolve()


def audiences_dir() -> Path:
    """The audience definitions (audiences/*.yml)."""
    return Path(os.environ.get("DMP_AUDIENCES_DIR", REPO_ROOT / "audiences")).resolve()


def privacy_dir() -> Path:
    """The suppression list of erased persons and the erasure audit (hashed, salted)."""
    return Path(os.environ.get("DMP_PRIVACY_DIR", REPO_ROOT / "data" / "privacy")).resolve()


def destinations_dir() -> Path:
    """Where audiences are delivered to (destinations/*.yml)."""
    return Path(os.environ.get("DMP_DESTINATIONS_DIR", REPO_ROOT / "destinations")).resolve()


def exports_dir() -> Path:
    """The delivered audience files."""
    return Path(os.environ.get("DMP_EXPORTS_DIR", REPO_ROOT / "data" / "exports")).resolve()


def serving_dir(database: Path | None = None) -> Path:
    """The published snapshots serving reads (serving/snapshot.py), beside the warehouse."""
    default = (database or duckdb_path()).parent / "serving"
    return Path(os.environ.get("DMP_SERVING_DIR", default)).resolve()


def logs_dir() -> Path:
    """Each `dmp` run's full log (Dagster's events at DEBUG), beside the warehouse."""
    return Path(os.environ.get("DMP_LOGS_DIR", duckdb_path().parent / "logs")).resolve()


def duckdb_config() -> dict[str, str | int]:
    """DuckDB's resources for the heavy work (ingestion, loading, dbt), sized for a laptop:
    DMP_DUCKDB_MEMORY_LIMIT (default 2GB; past it DuckDB spills to disk),
    DMP_DUCKDB_THREADS (default: every core) and DMP_DUCKDB_TEMP_DIR, where it spills
    (default: `duckdb_tmp/` beside the warehouse)."""
    return {
        "memory_limit": os.environ.get("DMP_DUCKDB_MEMORY_LIMIT", "2GB"),
        "threads": int(os.environ.get("DMP_DUCKDB_THREADS", os.cpu_count() or 1)),
        "temp_directory": str(duckdb_temp_dir()),
    }


def ingest_duckdb_config() -> dict[str, str | int]:
    """Ingestion's DuckDB resources: as duckdb_config, with a memory limit of its own,
    DMP_INGEST_MEMORY_LIMIT (default 768MB). A load opens two DuckDB instances (the work
    connection that reads and checks the files, dlt's connection to the warehouse). On 10M
    events `dmp run --select group:ingestion` peaked at 2.18 GB with 1GB and at 1.87 GB
    with 768MB, equally fast (bench/results/ingest.md)."""
    return {**duckdb_config(), "memory_limit": os.environ.get("DMP_INGEST_MEMORY_LIMIT", "768MB")}


def duckdb_temp_dir() -> Path:
    default = duckdb_path().parent / "duckdb_tmp"
    return Path(os.environ.get("DMP_DUCKDB_TEMP_DIR", default)).resolve()


ENGINES = ("duckdb", "spark")


def engine() -> str:
    """DMP_ENGINE: the engine dbt builds the warehouse on, `duckdb` (default) or `spark`. It
    picks the dbt target, where raw data goes for dbt and how Python reads the marts; the
    asset graph is the same on both."""
    name = os.environ.get("DMP_ENGINE", "duckdb").strip().lower() or "duckdb"
    if name not in ENGINES:
        raise ValueError(
            f"DMP_ENGINE={os.environ['DMP_ENGINE']!r} is not an engine: use one of {', '.join(ENGINES)}"
        )
    return name


def dbt_target() -> str:
    """The output of dbt_project/profiles.yml for the engine: Spark is local unless
    DMP_SPARK_HOST names a cluster's Thrift server."""
    if engine() == "duckdb":
        return "dev"
    return "spark_cluster" if os.environ.get("DMP_SPARK_HOST") else "spark"


def spark_dir() -> Path:
    """DMP_SPARK_DIR: everything local Spark keeps (the lake of raw Parquet, the warehouse of
    built tables, the Derby metastore)."""
    return Path(os.environ.get("DMP_SPARK_DIR", REPO_ROOT / "data" / "spark")).resolve()


def lake_dir() -> Path:
    """The raw tables as Parquet for Spark, one folder per table under `raw/` (dlt writes it)."""
    return spark_dir() / "lake"


def spark_warehouse_dir() -> Path:
    """Where Spark stores the tables dbt builds (`<schema>.db/<table>/`)."""
    return spark_dir() / "warehouse"


def dbt_threads() -> int:
    """DMP_DBT_THREADS: models dbt builds at once (default 2)."""
    return int(os.environ.get("DMP_DBT_THREADS", "2"))


def export_duckdb_path() -> None:
    """dbt reads the warehouse path and its resource settings from the environment (see
    dbt_project/profiles.yml): pin them to the same values."""
    os.environ["DMP_DUCKDB_PATH"] = str(duckdb_path())
    config = duckdb_config()
    os.environ["DMP_DUCKDB_MEMORY_LIMIT"] = str(config["memory_limit"])
    os.environ["DMP_DUCKDB_THREADS"] = str(config["threads"])
    os.environ["DMP_DUCKDB_TEMP_DIR"] = str(config["temp_directory"])
    os.environ["DMP_DBT_THREADS"] = str(dbt_threads())
    os.environ["DMP_SPARK_DIR"] = str(spark_dir())


def api_urls(folders: list[str]) -> dict[str, str]:
    """`DMP_API_<CHANNEL>_URL` (e.g. DMP_API_CRM_CUSTOMERS_URL) turns on an API pull."""
    return {
        folder: os.environ[f"DMP_API_{folder.upper()}_URL"]
        for folder in folders
        if os.environ.get(f"DMP_API_{folder.upper()}_URL")
    }


def api_lookback_hours() -> float:
    return float(os.environ.get("DMP_API_LOOKBACK_HOURS", "72"))


def automation_on() -> bool:
    """DMP_AUTOMATION=on starts the landing sensor and the nightly schedule switched on."""
    return os.environ.get("DMP_AUTOMATION", "off").lower() in {"on", "1", "true", "yes"}


def blocking_checks() -> frozenset[str]:
    """DMP_BLOCKING_CHECKS: comma-separated quality checks whose failure is an ERROR that
    fails the run (`best_auc_above_floor`, or `ml/propensity_scores:best_auc_above_floor`),
    or `all`; every other quality floor only warns."""
    names = os.environ.get("DMP_BLOCKING_CHECKS", "").split(",")
    return frozenset(name.strip() for name in names if name.strip())
