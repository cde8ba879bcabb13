"""The one Definitions object: dlt ingestion -> dbt warehouse -> ML -> audiences -> profile
snapshot and report."""

import dagster as dg

from dagster_dmp.assets.audiences import audience_assets, audience_checks
from dagster_dmp.assets.ingestion import ingestion_assets, ingestion_checks
from dagster_dmp.assets.ml import ml_assets, ml_checks
from dagster_dmp.assets.reports import marketing_report
from dagster_dmp.assets.serving import profile_snapshot
from dagster_dmp.assets.warehouse import warehouse_models
from dagster_dmp.automation import jobs, schedules, sensors
from dagster_dmp.resources import build_resources

all_assets = [
    *ingestion_assets,
    warehouse_models,
    *ml_assets,
    *audience_assets,
    profile_snapshot,
    marketing_report,
]
all_asset_checks = [*ingestion_checks, *ml_checks, *audience_checks]

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_asset_checks,
    jobs=jobs,
    schedules=schedules,
    sensors=sensors,
    resources=build_resources(),
    # DuckDB has a single writer: steps of a run execute one at a time in one process.
    executor=dg.in_process_executor,
)
