"""The dbt project as assets; its tests become asset checks."""

import os
import shutil
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from dagster_dmp.project import dbt_project
from dagster_dmp.resources import WarehouseResource

PARTIAL_PARSE_FILE = "partial_parse.msgpack"
# Once this holds events, builds are incremental and test only the event-heavy models' recent
# days (DMP_TEST_RECENT_SLICE, macro get_where_subquery); a first build tests every row.
EVENTS_MODEL = "intermediate.int_events_deduplicated"


class DbtBuildConfig(dg.Config):
    """full_refresh rebuilds the incremental models from scratch (the daily schedule does;
    the id memory int_person_ids_assigned is state and keeps every person_id)."""

    full_refresh: bool = False


# Profiles should follow the landing zone within minutes (the landing sensor runs every
# 3 s); the UI shows them as degraded after the warn window and failing after the other.
PROFILES_FRESHNESS = dg.FreshnessPolicy.time_window(
    warn_window=timedelta(minutes=15), fail_window=timedelta(hours=1)
)


class WarehouseTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "warehouse"

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.key == dg.AssetKey(["marts", "person_profiles"]):
            return spec.replace_attributes(freshness_policy=PROFILES_FRESHNESS)
        return spec


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=WarehouseTranslator(),
)
def warehouse_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    config: DbtBuildConfig,
):
    # dbt's unit tests check the SQL, not the data: they run where the SQL changes (`dbt build`
    # in dbt_project/, the test suite), not in every production build.
    command = ["build", "--exclude-resource-type", "unit_test"]
    # A selection of models (`dmp run --select ...`) runs the tests whose every parent is
    # selected: dbt's default (eager) also ran relationship tests against models this run
    # never built. dagster-dbt reads the setting from the environment.
    os.environ.setdefault("DBT_INDIRECT_SELECTION", "cautious")
    sliced_tests = (
        not config.full_refresh
        and warehouse.database.exists()
        and bool(warehouse.row_counts([EVENTS_MODEL]).get(EVENTS_MODEL))
    )
    if config.full_refresh:
        command.append("--full-refresh")
    # dagster-dbt hands dbt this process's environment
    os.environ["DMP_TEST_RECENT_SLICE"] = str(sliced_tests).lower()
    target_path = Path(dbt_project.project_dir) / "target" / f"warehouse_models-{context.run_id}"
    parse_state = restore_parse_state(warehouse.database, target_path)
    invocation = dbt.cli(command, context=context, raise_on_error=False, target_path=target_path)
    # Counting rows needs dbt's lock on the DuckDB file released (dagster-dbt's own
    # fetch_row_counts() queries while dbt writes: +90% build time and a lingering lock), so
    # the events are reported when dbt is done, each table model's with its row count.
    events = list(invocation.stream())
    error = invocation.get_error()
    # On Spark the marts reach Python as views over its Parquet, which read the files live:
    # a failed build keeps the last good views (and its own error is what the run reports).
    if warehouse.on_spark and error is None:
        warehouse.attach_spark_marts()
    yield from with_row_counts(events, invocation.manifest, warehouse)
    if error is not None:
        raise error
    keep_parse_state(invocation.target_path / PARTIAL_PARSE_FILE, parse_state)
    # Every invocation writes its own target folder; keep only a failed run's artefacts.
    shutil.rmtree(invocation.target_path, ignore_errors=True)


def kept_parse_state(database: Path) -> Path:
    """Where the last build on this warehouse left dbt's parse state (beside the DuckDB file).
    dbt parses everything again (~6 s at 10M events' machine load) when the profile or the
    vars differ from the build that wrote its state: the warehouse path is in the profile, so
    one state per warehouse; hourly, micro-batch and nightly builds pass the same vars (the
    test slice is an environment variable) and share it."""
    return database.with_name(f"{database.stem}.dbt_parse.msgpack")


def restore_parse_state(database: Path, target_path: Path) -> Path:
    """Puts the kept parse state where dbt reads and writes it, the build's target folder, and
    returns where it is kept. dagster-dbt then leaves out its own copy of the project's state
    (parsed with the default profile). dbt writes the state only when it parses again, so with
    `--partial-parse-file-path` the kept state was overwritten by that copy after every build
    that did not parse, and every second build parsed again (4-6 s)."""
    kept = kept_parse_state(database)
    if kept.is_file():
        target_path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept, target_path / PARTIAL_PARSE_FILE)
    return kept


def keep_parse_state(parse_state: Path, kept: Path) -> None:
    """Keeps a build's parse state for the next build (see kept_parse_state)."""
    if parse_state.is_file():
        staged = kept.with_name(f".{kept.name}.{os.getpid()}")
        shutil.copyfile(parse_state, staged)
        staged.replace(kept)


def with_row_counts(
    events: list[Any], manifest: Mapping[str, Any], warehouse: WarehouseResource
) -> Iterator[Any]:
    """The events with `dagster/row_count` on the outputs of models dbt stores as tables
    (a view's count would run its query)."""
    tables = {}
    for event in events:
        if isinstance(event, dg.Output):
            unique_id = event.metadata.get("unique_id")
            node = manifest["nodes"].get(getattr(unique_id, "value", unique_id), {})
            if node.get("config", {}).get("materialized") in ("table", "incremental"):
                tables[event.output_name] = f"{node['schema']}.{node['alias']}"
    counts = warehouse.row_counts(set(tables.values()))
    for event in events:
        # on Spark the warehouse holds only the marts (views over Spark's tables) to count
        if isinstance(event, dg.Output) and tables.get(event.output_name) in counts:
            count = counts[tables[event.output_name]]
            event = event.with_metadata({**event.metadata, "dagster/row_count": count})
        yield event
