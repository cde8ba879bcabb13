"""How the graph runs by itself: micro-batches when files land and a nightly full refresh.
Runs are queued one at a time (dagster.yaml): DuckDB has one writer. The profiles' freshness
policy is on their asset (assets/warehouse.py)."""

import hashlib

import dagster as dg

from dagster_dmp import settings
from ingestion.channels import CHANNELS

# The sensor and the schedule start switched on when DMP_AUTOMATION=on (`make ui` sets it);
# otherwise an operator turns them on in the UI, so a test instance never runs on its own.
SENSOR_STATUS, SCHEDULE_STATUS = (
    (dg.DefaultSensorStatus.RUNNING, dg.DefaultScheduleStatus.RUNNING)
    if settings.automation_on()
    else (dg.DefaultSensorStatus.STOPPED, dg.DefaultScheduleStatus.STOPPED)
)

refresh_everything = dg.define_asset_job(
    "refresh_everything",
    selection=dg.AssetSelection.all(),
    description=(
        "Ingest what landed, build the warehouse incrementally, retrain the ML assets and "
        "rewrite the report."
    ),
)

full_refresh_everything = dg.define_asset_job(
    "full_refresh_everything",
    selection=dg.AssetSelection.all(),
    description=(
        "The same, with `dbt build --full-refresh`: picks up events that arrived later than "
        "the incremental lookback window (person ids are kept)."
    ),
    config={"ops": {"warehouse_models": {"config": {"full_refresh": True}}}},
)


def landing_fingerprint() -> str:
    """Name, size and modification time of every landing file the ingestion would read."""
    landing = settings.landing_dir()
    entries = sorted(
        f"{path.relative_to(landing)}:{stat.st_size}:{stat.st_mtime_ns}"
        for channel in CHANNELS.values()
        for path in (landing / channel.folder).glob(channel.pattern)
        if path.is_file() and (stat := path.stat())
    )
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


@dg.sensor(
    job=refresh_everything,
    minimum_interval_seconds=30,
    default_status=SENSOR_STATUS,
    description=(
        "Every 30 s: when the set of landing files changed (the collector or an export added "
        "one), launch refresh_everything. The cursor is a fingerprint of the files, so a "
        "change is acted on once."
    ),
)
def new_landing_files(context: dg.SensorEvaluationContext):
    fingerprint = landing_fingerprint()
    if fingerprint == context.cursor:
        return dg.SkipReason("no new or changed landing files")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=fingerprint)


nightly_full_refresh = dg.ScheduleDefinition(
    name="nightly_full_refresh",
    job=full_refresh_everything,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=SCHEDULE_STATUS,
    description="03:00 UTC: rebuild everything from scratch (late data, drift).",
)

jobs = [refresh_everything, full_refresh_everything]
schedules = [nightly_full_refresh]
sensors = [new_landing_files]
