"""Real time with nobody at the controls: the Dagster daemon runs the landing sensor, the
sensor launches micro-batches, and events posted to `dmp collect` reach marts.person_profiles.
Bad requests are refused with a reason and never reach the warehouse."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import free_port

from dagster_dmp.settings import REPO_ROOT
from serving import profiles
from serving.snapshot import opened

BIN = Path(sys.executable).parent
WRITE_KEY = "realtime-test-key"


def _post(port: int, body, key: str | None = WRITE_KEY) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/web",
        data=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {key}"} if key else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _micro_batches(home: Path) -> list[dg.RunRecord]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_run_records(dg.RunsFilter(job_name="refresh_warehouse"))


def _wait_for_micro_batch(home: Path, created_after: float, timeout: float) -> dg.RunRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in _micro_batches(home):
            if record.create_timestamp.timestamp() > created_after and record.end_time:
                return record
        time.sleep(2)
    raise AssertionError(f"no micro-batch created after {created_after} ended within {timeout} s")


@pytest.fixture
def live_stack(small_landing, tmp_path, monkeypatch):
    """A landing zone with a few days of data, the collector, and the daemon with only the
    landing sensor switched on, as `make ui` runs it; nothing has been materialised yet."""
    landing = tmp_path / "landing"
    shutil.copytree(small_landing, landing)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the instance's storage path reads it
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DMP_LANDING_DIR": str(landing),
        "DMP_DUCKDB_PATH": str(tmp_path / "dmp.duckdb"),
        "DMP_REPORTS_DIR": str(tmp_path / "reports"),
        "DMP_WRITE_KEYS": f"web:{WRITE_KEY}",
        "DMP_AUTOMATION": "off",
    }
    # The sensor is switched on before the daemon starts: two processes creating the
    # instance's SQLite storage at once can collide.
    started = subprocess.run(
        [BIN / "dagster", "sensor", "start", "new_landing_files"]
        + ["-m", "dagster_dmp.definitions"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    port = free_port()
    processes = [
        subprocess.Popen(
            command,
            env=env,
            cwd=REPO_ROOT,
            stdout=(tmp_path / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, command in (
            ("collector", [BIN / "dmp", "collect", "--port", str(port)]),
            ("daemon", [BIN / "dagster-daemon", "run", "-m", "dagster_dmp.definitions"]),
        )
    ]
    try:
        yield port, home, tmp_path / "dmp.duckdb"
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_posted_events_reach_the_profiles_without_anyone_launching_a_run(live_stack):
    port, home, database = live_stack
    # The sensor's first tick finds every channel's files: the first micro-batch loads them.
    first = _wait_for_micro_batch(home, created_after=0, timeout=300)
    assert first.dagster_run.status == dg.DagsterRunStatus.SUCCESS

    visitor = f"anon-{uuid.uuid4().hex[:16]}"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    events = [
        {
            "event_id": f"evt-rt-{number}-{uuid.uuid4().hex[:8]}",
            "event_type": "page_view",
            "event_time": now,
            "anonymous_id": visitor,
            # different pages: the same page twice within 2 s is a near-duplicate
            "page_url": f"/c/page-{number}",
        }
        for number in range(3)
    ]
    bad = {"event_id": "evt-rt-bad", "event_type": "page_view", "anonymous_id": visitor}
    status, answer = _post(port, [*events, bad])
    assert status == 200 and answer["accepted"] == 3
    assert [item["index"] for item in answer["rejected"]] == [3], answer
    acked_at = time.time()

    refused = [
        _post(port, events, key=None),
        _post(port, events, key="not-a-key"),
        _post(port, b"{not json"),
        _post(port, [events[0]] * 1001),
    ]
    assert [code for code, _ in refused] == [401, 401, 400, 413]
    assert all(answer.get("error") for _, answer in refused), refused
    assert _post(port, [])[0] == 400, "the collector keeps serving after refusals"

    second = _wait_for_micro_batch(home, created_after=acked_at - 1, timeout=300)
    assert second.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert second.dagster_run.tags.get("dagster/sensor_name") == "new_landing_files"
    assert second.dagster_run.tags.get("dmp/channels") == "web_events"
    # The dbt builds keep their parse state beside the warehouse for the next build, whether
    # it tests every row (the first micro-batch, on an empty warehouse) or a slice (the second).
    assert database.with_name("dmp.dbt_parse.msgpack").is_file()

    with duckdb.connect(str(database), read_only=True) as con:
        web_events, as_of = con.execute(
            """
            select profiles.web_events, profiles.last_seen_at
            from marts.person_profiles as profiles
            join marts.person_identifiers as identifiers using (person_id)
            where identifiers.identifier_type = 'anonymous_id'
                and identifiers.identifier_value = ?
            """,
            [visitor],
        ).fetchone()
        stray = con.execute(
            "select count(*) from raw.web_events where event_id = 'evt-rt-bad'"
        ).fetchone()[0]
    assert web_events == 3
    assert as_of is not None
    assert stray == 0, "a rejected event never reaches the warehouse"

    # The micro-batch's last step published the profiles serving reads.
    with opened(database.parent / "serving") as (manifest, con):
        person_id = profiles.find_person(con, "anonymous_id", visitor)
        served = profiles.profile(con, person_id)
    assert manifest.label == second.dagster_run.run_id[:8]
    assert served["engagement"]["web_events"] == 3
