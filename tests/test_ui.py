"""`dagster dev` serves the whole graph, and a materialisation launched through it succeeds."""

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

from dagster_dmp.settings import REPO_ROOT

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


@pytest.fixture
def dagster_ui(pipeline_run, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
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


def test_ui_shows_graph_and_materialises(dagster_ui):
    port = dagster_ui
    nodes = _graphql(port, "{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
    assert {
        "raw/web_events",
        "marts/person_profiles",
        "ml/person_segments",
        "reports/marketing_report",
    } <= keys
    assert {node["groupName"] for node in nodes} >= {"ingestion", "warehouse", "ml", "reports"}

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
    run_id = launched["run"]["runId"]

    deadline = time.monotonic() + 240
    status = None
    while time.monotonic() < deadline:
        status = _graphql(
            port, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}'
        )["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
