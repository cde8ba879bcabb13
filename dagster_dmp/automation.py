"""How the graph runs by itself: micro-batches when files land, the models and the report
every hour, a full refresh every night. Runs are queued one at a time (dagster.yaml): DuckDB
has one writer. The profiles' freshness policy is on their asset (assets/warehouse.py)."""

import hashlib
import json

import dagster as dg

from dagster_dmp import settings
from dagster_dmp.assets.ml.inputs import PERSON_IDENTIFIERS, PERSON_INTERESTS, PERSON_PROFILES
from dagster_dmp.assets.serving import PROFILE_SNAPSHOT
from dagster_dmp.assets.warehouse import warehouse_models
from ingestion.channels import CHANNELS, landing_fingerprints
from ingestion.pipeline import RAW_DATASET

# The sensor and the schedules start switched on when DMP_AUTOMATION=on (`make ui` sets it);
# otherwise an operator turns them on in the UI, so a test instance never runs on its own.
SENSOR_STATUS, SCHEDULE_STATUS = (
    (dg.DefaultSensorStatus.RUNNING, dg.DefaultScheduleStatus.RUNNING)
    if settings.automation_on()
    else (dg.DefaultSensorStatus.STOPPED, dg.DefaultScheduleStatus.STOPPED)
)


def _models_upstream_of(*marts: dg.AssetKey) -> set[dg.AssetKey]:
    """The dbt models the marts are built from, the marts included."""
    found, todo = set(), list(marts)
    while todo:
        key = todo.pop()
        if key in warehouse_models.keys and key not in found:
            found.add(key)
            todo.extend(warehouse_models.asset_deps[key])
    return found


# The models behind what `dmp serve` reads: the micro-batch builds only these; the campaign,
# product and report marts catch up every hour.
SERVING_MODELS = _models_upstream_of(PERSON_PROFILES, PERSON_IDENTIFIERS, PERSON_INTERESTS)

# The micro-batch is what keeps profiles minutes behind the collector: every channel's new
# files, then the dbt models behind the served profiles without their tests (the tests take
# longer than the models and run every hour in refresh_everything). The ingestion checks stay:
# they are cheap and catch an unreadable file at once. Its last step publishes the profiles
# `dmp serve` reads.
refresh_warehouse = dg.define_asset_job(
    "refresh_warehouse",
    selection=dg.AssetSelection.groups("ingestion")
    | dg.AssetSelection.assets(*SERVING_MODELS).without_checks()
    | dg.AssetSelection.assets(PROFILE_SNAPSHOT),
    description=(
        "Micro-batch: ingest the files that landed, build the dbt models behind the served "
        "profiles incrementally and publish the profile snapshot (the other marts, dbt tests, "
        "ML and the report run hourly in refresh_everything)."
    ),
)

refresh_everything = dg.define_asset_job(
    "refresh_everything",
    selection=dg.AssetSelection.all(),
    description=(
        "Ingest what landed, build and test the warehouse incrementally, retrain the ML assets "
        "and rewrite the report."
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

UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def micro_batch_request(changed_folders: list[str], run_key: str) -> dg.RunRequest:
    """Ingest only the channels whose files changed, then the dbt models behind the served
    profiles (no dbt tests), then publish the profile snapshot."""
    channels = [CHANNELS[folder] for folder in changed_folders]
    return dg.RunRequest(
        run_key=run_key,
        asset_selection=[
            *(
                dg.AssetKey([RAW_DATASET, table])
                for channel in channels
                for table in (channel.table, channel.quarantine_table, channel.files_table)
            ),
            *SERVING_MODELS,
            PROFILE_SNAPSHOT,
        ],
        asset_check_keys=[
            dg.AssetCheckKey(
                dg.AssetKey([RAW_DATASET, channel.files_table]), "landing_files_readable"
            )
            for channel in channels
        ],
        tags={"dmp/channels": ",".join(changed_folders)},
    )


@dg.sensor(
    job=refresh_warehouse,
    minimum_interval_seconds=3,
    default_status=SENSOR_STATUS,
    description=(
        "Every 3 s: when landing files changed (the collector or an export added one) and no "
        "micro-batch is queued or running, launch refresh_warehouse for the channels whose "
        "files changed. Files that land during a run wait for the next one, so runs never pile "
        "up; the cursor holds each channel's file fingerprint, so a change is acted on once."
    ),
)
def new_landing_files(context: dg.SensorEvaluationContext):
    fingerprints = landing_fingerprints(settings.landing_dir())
    acted_on = json.loads(context.cursor) if context.cursor else {}
    changed = [folder for folder, print_ in fingerprints.items() if acted_on.get(folder) != print_]
    if not changed:
        return dg.SkipReason("no new or changed landing files")
    unfinished = context.instance.get_runs_count(
        dg.RunsFilter(job_name=refresh_warehouse.name, statuses=UNFINISHED)
    )
    if unfinished:
        return dg.SkipReason("new landing files wait for the micro-batch in progress to finish")
    cursor = json.dumps(fingerprints, sort_keys=True)
    context.update_cursor(cursor)
    return micro_batch_request(changed, run_key=hashlib.sha256(cursor.encode()).hexdigest())


hourly_refresh = dg.ScheduleDefinition(
    name="hourly_refresh",
    job=refresh_everything,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    default_status=SCHEDULE_STATUS,
    description=(
        "Every hour at :15: the dbt tests, the ML assets and the report catch up with the "
        "micro-batches."
    ),
)

nightly_full_refresh = dg.ScheduleDefinition(
    name="nightly_full_refresh",
    job=full_refresh_everything,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=SCHEDULE_STATUS,
    description="03:00 UTC: rebuild everything from scratch (late data, drift).",
)

jobs = [refresh_warehouse, refresh_everything, full_refresh_everything]
schedules = [hourly_refresh, nightly_full_refresh]
sensors = [new_landing_files]
