"""`dagster dev` as an operator meets it, in headless Chromium: the whole lineage in its four
groups, dbt tests and our own rules as asset checks, the jobs, the sensor and the schedule;
a materialisation launched by clicking in the UI and one launched over GraphQL both succeed.
Screenshots of every page land in pytest's temporary folder (see tests/browser.py)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import Page, chromium, screenshots_dir

from dagster_dmp.settings import REPO_ROOT

LAYERS = ["ingestion", "warehouse", "ml", "activation", "reports"]
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""
ASSET_CHECKS = """
{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""
REPOSITORY = """
{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
    ... on RepositoryLocation { repositories {
        name jobs { name } sensors { name } schedules { name } } } } } } } }
"""
RUN_IDS = "{ runsOrError { ... on Runs { results { runId } } } }"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


CONFIRM_SHOWN = (
    "[...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Confirm')"
)


def _new_runs(port: int, before: set[str], timeout: float = 120) -> set[str]:
    """The ids of the runs launched since `before` was listed, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        runs = {run["runId"] for run in _graphql(port, RUN_IDS)["runsOrError"]["results"]}
        if runs - before or time.monotonic() > deadline:
            return runs - before
        time.sleep(1)


def _wait_for_run(port: int, run_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = _graphql(
            port, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}'
        )["runOrError"]["status"]
        if status in FINISHED:
            break
        time.sleep(2)
    return status


@pytest.fixture(scope="module")
def dagster_ui(pipeline_run, tmp_path_factory):
    """`dagster dev` (webserver + daemon) on the session's warehouse, with the project's
    dagster.yaml in a fresh DAGSTER_HOME, as `make ui` runs it."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DMP_LANDING_DIR": str(pipeline_run.landing),
        "DMP_DUCKDB_PATH": str(pipeline_run.duckdb_path),
        "DMP_REPORTS_DIR": str(pipeline_run.reports),
    }
    dagster = Path(sys.executable).with_name("dagster")
    process = subprocess.Popen(
        [str(dagster), "dev", "-m", "dagster_dmp.definitions", "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _graphql(port, "{ version }")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("dagster dev did not come up within 120 s")
                time.sleep(1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Page:
    with chromium(tmp_path_factory.mktemp("chromium"), width=1600, height=1000) as page:
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = screenshots_dir(tmp_path_factory)
    print(f"Dagster UI screenshots: {folder}/ui_*.png")
    return folder


def test_ui_shows_the_lineage_in_its_groups(dagster_ui, browser, screenshots):
    port = dagster_ui
    browser.goto(f"http://127.0.0.1:{port}/asset-groups")
    browser.wait_for_text(*LAYERS, "Materialize all")
    # One box per group with its number of assets, once their statuses are in.
    browser.wait_for(
        "!document.body.innerText.includes('fetching statuses')", what="the groups' statuses"
    )
    browser.settle()
    browser.screenshot(screenshots / "ui_lineage.png", full_page=False)
    browser.goto(f"http://127.0.0.1:{port}/assets")
    # The catalog renders only the rows in view (alphabetical: intermediate models first).
    browser.wait_for(
        "(document.body.innerText.match(/(intermediate|marts|ml|raw|staging) \\/ /g) || [])"
        ".length >= 10",
        what="the asset catalog's rows",
    )
    browser.settle()
    browser.screenshot(screenshots / "ui_catalog.png", full_page=False)

    nodes = _graphql(port, "{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
    assert {
        "raw/web_events",
        "marts/person_profiles",
        "ml/person_segments",
        "reports/marketing_report",
    } <= keys
    assert {node["groupName"] for node in nodes} == set(LAYERS)


def test_ui_shows_dbt_tests_and_our_rules_as_asset_checks(dagster_ui, browser, screenshots):
    from dagster_dmp.definitions import all_asset_checks, defs

    port = dagster_ui
    shown = {
        ("/".join(node["assetKey"]["path"]), check["name"])
        for node in _graphql(port, ASSET_CHECKS)["assetNodes"]
        for check in node["assetChecksOrError"].get("checks", [])
    }
    defined = {
        (key.asset_key.to_user_string(), key.name)
        for key in defs.resolve_asset_graph().asset_check_keys
    }
    ours = {
        (key.asset_key.to_user_string(), key.name)
        for check in all_asset_checks
        for key in check.check_keys
    }
    assert shown == defined
    assert len(ours) >= 13 and ours <= shown
    dbt_tests = shown - ours
    assert len(dbt_tests) > 100
    assert ("marts/person_profiles", "unique_person_profiles_person_id") in dbt_tests

    browser.goto(f"http://127.0.0.1:{port}/assets/marts/person_profiles?view=checks")
    browser.wait_for_text("unique_person_profiles_person_id", "not_null_person_profiles_person_id")
    browser.settle()
    browser.screenshot(screenshots / "ui_checks_dbt.png", full_page=False)
    browser.goto(f"http://127.0.0.1:{port}/assets/ml/propensity_scores?view=checks")
    browser.wait_for_text("best_auc_above_floor")
    browser.settle()
    browser.screenshot(screenshots / "ui_checks_ml.png", full_page=False)


def test_ui_lists_the_jobs_sensor_and_schedule(dagster_ui, browser, screenshots):
    port = dagster_ui
    location = _graphql(port, REPOSITORY)["workspaceOrError"]["locationEntries"][0]
    (repository,) = location["locationOrLoadError"]["repositories"]
    assert {"refresh_everything", "full_refresh_everything"} <= {
        job["name"] for job in repository["jobs"]
    }
    assert "new_landing_files" in {sensor["name"] for sensor in repository["sensors"]}
    assert "nightly_full_refresh" in {schedule["name"] for schedule in repository["schedules"]}

    browser.goto(f"http://127.0.0.1:{port}/automation")
    browser.wait_for_text("new_landing_files", "nightly_full_refresh", "Standard sensor", "03:00")
    browser.settle()
    browser.screenshot(screenshots / "ui_automation.png", full_page=False)
    browser.goto(f"http://127.0.0.1:{port}/jobs")
    browser.wait_for_text("refresh_everything", "full_refresh_everything")
    browser.settle()
    browser.screenshot(screenshots / "ui_jobs.png", full_page=False)


def test_a_materialisation_launched_from_the_ui_succeeds(dagster_ui, browser, screenshots):
    """Click "Materialize" on the report's page, as an operator would, and watch the run."""
    port = dagster_ui
    before = {run["runId"] for run in _graphql(port, RUN_IDS)["runsOrError"]["results"]}
    browser.goto(f"http://127.0.0.1:{port}/assets/reports/marketing_report")
    browser.wait_for_text("Materialize")
    browser.click("button", text="Materialize")
    # A fresh instance has no record of the upstream assets (the session built them
    # in-process), so the UI asks for confirmation first. On a loaded machine a click that
    # lands while the dialog is still opening is lost: click again while it stays open.
    # The run itself is the proof, not the "Launched run" toast, which can come and go
    # between two polls of the page.
    launched: set[str] = set()
    deadline = time.monotonic() + 180
    while not launched and time.monotonic() < deadline:
        if browser.evaluate(CONFIRM_SHOWN):
            browser.click("button", text="Confirm")
        launched = _new_runs(port, before, timeout=15)
    assert len(launched) == 1, f"{len(launched)} runs launched by the click"
    (run_id,) = launched
    browser.screenshot(screenshots / "ui_launched.png", full_page=False)
    assert _wait_for_run(port, run_id) == "SUCCESS"
    browser.goto(f"http://127.0.0.1:{port}/runs/{run_id}")
    browser.wait_for_text("Success", "reports__marketing_report", "RUN_SUCCESS")
    browser.settle()
    browser.screenshot(screenshots / "ui_run.png", full_page=False)


def test_a_materialisation_launched_over_graphql_succeeds(dagster_ui):
    port = dagster_ui
    locations = _graphql(
        port, "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
    )
    location = locations["workspaceOrError"]["locationEntries"][0]["name"]
    params = {
        "selector": {
            "repositoryLocationName": location,
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [
                {"path": ["ml", "person_segments"]},
                {"path": ["reports", "marketing_report"]},
            ],
            "assetCheckSelection": [],
        },
        "runConfigData": {},
    }
    launched = _graphql(port, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    assert _wait_for_run(port, launched["run"]["runId"]) == "SUCCESS"
