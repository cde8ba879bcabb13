"""The graph runs by itself: the landing sensor fires once per change of the landing files,
the nightly schedule asks for a full refresh, and all of it is in the Definitions."""

import gzip

import dagster as dg
import pytest

from dagster_dmp.automation import (
    full_refresh_everything,
    new_landing_files,
    nightly_full_refresh,
)


@pytest.fixture
def landing(tmp_path, monkeypatch):
    monkeypatch.setenv("DMP_LANDING_DIR", str(tmp_path))
    (tmp_path / "web_events").mkdir()
    return tmp_path


def _land(landing, name: str) -> None:
    with gzip.open(landing / "web_events" / name, "wt") as handle:
        handle.write('{"event_id": "e1"}\n')


def _evaluate(cursor):
    context = dg.build_sensor_context(cursor=cursor)
    return new_landing_files.evaluate_tick(context)


def test_the_sensor_fires_once_per_change_of_the_landing_files(landing):
    _land(landing, "web_events_1.jsonl.gz")
    first = _evaluate(None)
    assert len(first.run_requests) == 1 and first.cursor

    again = _evaluate(first.cursor)
    assert again.run_requests == [] and again.skip_message

    (landing / "web_events" / ".collector_x.tmp").write_text("not a landing file yet")
    assert _evaluate(first.cursor).run_requests == [], "temp files are not landing files"

    _land(landing, "collector_2.jsonl.gz")
    changed = _evaluate(first.cursor)
    assert len(changed.run_requests) == 1
    assert changed.cursor != first.cursor
    assert changed.run_requests[0].run_key == changed.cursor


def test_the_nightly_schedule_runs_the_full_refresh_job():
    assert nightly_full_refresh.cron_schedule == "0 3 * * *"
    assert nightly_full_refresh.job_name == full_refresh_everything.name
    config = full_refresh_everything.config
    assert config["ops"]["warehouse_models"]["config"]["full_refresh"] is True


def test_jobs_schedules_sensors_and_the_profiles_freshness_policy_are_defined():
    from dagster_dmp.definitions import defs

    repository = defs.get_repository_def()
    assert {"refresh_everything", "full_refresh_everything"} <= set(repository.job_names)
    assert repository.has_schedule_def("nightly_full_refresh")
    assert repository.has_sensor_def("new_landing_files")
    profiles = repository.asset_graph.get(dg.AssetKey(["marts", "person_profiles"]))
    assert profiles.freshness_policy is not None
