"""The graph runs by itself: the landing sensor launches one micro-batch per change of the
landing files, for the channels that changed, never while one is unfinished; the schedules ask
for the hourly refresh and the nightly full refresh; all of it is in the Definitions."""

import gzip

import dagster as dg
import pytest

from dagster_dmp.assets.warehouse import warehouse_models
from dagster_dmp.automation import (
    full_refresh_everything,
    hourly_refresh,
    new_landing_files,
    nightly_full_refresh,
    refresh_everything,
    refresh_warehouse,
)


@pytest.fixture
def landing(tmp_path, monkeypatch):
    monkeypatch.setenv("DMP_LANDING_DIR", str(tmp_path))
    for folder in ("web_events", "app_events"):
        (tmp_path / folder).mkdir()
    return tmp_path


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _land(landing, folder: str, name: str) -> None:
    with gzip.open(landing / folder / name, "wt") as handle:
        handle.write('{"event_id": "e1"}\n')


def _evaluate(instance, cursor):
    context = dg.build_sensor_context(cursor=cursor, instance=instance)
    return new_landing_files.evaluate_tick(context)


def _raw_keys(request: dg.RunRequest) -> set[str]:
    return {key.to_user_string() for key in request.asset_selection if key.path[0] == "raw"}


def test_the_sensor_fires_once_per_change_for_the_channels_that_changed(landing, instance):
    _land(landing, "web_events", "web_events_1.jsonl.gz")
    first = _evaluate(instance, None)
    assert len(first.run_requests) == 1 and first.cursor
    request = first.run_requests[0]
    assert _raw_keys(request) == {
        "raw/web_events",
        "raw/quarantine_web_events",
        "raw/landing_files_web_events",
    }
    models = set(request.asset_selection) & set(warehouse_models.keys)
    served = {"marts/person_profiles", "marts/person_identifiers", "marts/person_interests"}
    assert served | {"intermediate/int_events_deduplicated", "staging/stg_web__events"} <= {
        key.to_user_string() for key in models
    }, "the micro-batch builds the served marts and what they are built from"
    assert "marts/campaign_performance" not in {key.to_user_string() for key in models}, (
        "marts the served profiles do not read wait for the hourly run"
    )
    assert [key.name for key in request.asset_check_keys] == ["landing_files_readable"], (
        "the micro-batch runs the ingestion check, not the dbt tests"
    )

    again = _evaluate(instance, first.cursor)
    assert again.run_requests == [] and again.skip_message

    (landing / "web_events" / ".collector_x.tmp").write_text("not a landing file yet")
    assert _evaluate(instance, first.cursor).run_requests == [], "temp files are not landing files"

    _land(landing, "app_events", "collector_2.jsonl.gz")
    changed = _evaluate(instance, first.cursor)
    assert len(changed.run_requests) == 1 and changed.cursor != first.cursor
    assert _raw_keys(changed.run_requests[0]) == {
        "raw/app_events",
        "raw/quarantine_app_events",
        "raw/landing_files_app_events",
    }


def test_files_landing_during_a_micro_batch_wait_for_the_next_one(landing, instance):
    _land(landing, "web_events", "collector_1.jsonl.gz")
    first = _evaluate(instance, None)
    instance.add_run(
        dg.DagsterRun(
            job_name=refresh_warehouse.name,
            run_id="in-progress",
            status=dg.DagsterRunStatus.STARTED,
        )
    )
    _land(landing, "web_events", "collector_2.jsonl.gz")
    waiting = _evaluate(instance, first.cursor)
    assert waiting.run_requests == [] and "in progress" in waiting.skip_message
    assert waiting.cursor in (None, first.cursor), "the change is not consumed while it waits"

    instance.report_run_failed(instance.get_run_by_id("in-progress"))
    resumed = _evaluate(instance, first.cursor)
    assert len(resumed.run_requests) == 1


def test_the_schedules_run_the_hourly_and_the_full_refresh_jobs():
    assert hourly_refresh.job_name == refresh_everything.name
    assert nightly_full_refresh.cron_schedule == "0 3 * * *"
    assert nightly_full_refresh.job_name == full_refresh_everything.name
    config = full_refresh_everything.config
    assert config["ops"]["warehouse_models"]["config"]["full_refresh"] is True


def test_jobs_schedules_sensors_and_the_profiles_freshness_policy_are_defined():
    from dagster_dmp.definitions import defs

    repository = defs.get_repository_def()
    assert {"refresh_warehouse", "refresh_everything", "full_refresh_everything"} <= set(
        repository.job_names
    )
    assert repository.has_schedule_def("nightly_full_refresh")
    assert repository.has_schedule_def("hourly_refresh")
    assert repository.has_sensor_def("new_landing_files")
    profiles = repository.asset_graph.get(dg.AssetKey(["marts", "person_profiles"]))
    assert profiles.freshness_policy is not None
