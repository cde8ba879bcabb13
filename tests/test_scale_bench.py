"""bench/scale.py --smoke at a tiny scenario: the contract's stages run through the real
command line and scale.json has the shape CONTRACT.md gives. A smoke test, not a timing."""

import json
import subprocess
import sys

import pytest

from dagster_dmp.settings import REPO_ROOT

pytestmark = pytest.mark.long_running

CONTRACT_STAGES = {"ingest", "dbt_full", "dbt_incremental", "ml", "report"}


def test_a_tiny_scenario_writes_every_stage_to_scale_json(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "scale.py"), "--events", "5000", "--smoke"]
        + ["--out", str(tmp_path), "--results", str(tmp_path / "results")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = json.loads((tmp_path / "scale.json").read_text())
    assert {tuple(sorted(row)) for row in rows} == {
        ("events", "peak_rss_mb", "rows_per_s", "seconds", "stage")
    }
    stages = {row["stage"]: row for row in rows}
    assert CONTRACT_STAGES <= set(stages) and "nothing_new" not in stages
    assert all(row["events"] > 3_000 and row["seconds"] > 0 for row in rows)
    assert all(row["peak_rss_mb"] > 50 for row in rows)  # a Python process at least
    assert stages["dbt_full"]["rows_per_s"] > 0
    # dbt runs in its own process: the dbt stage's tree weighs more than the profile floor's.
    assert stages["dbt_full"]["peak_rss_mb"] > stages["profile_sql_floor"]["peak_rss_mb"]
    run = json.loads((tmp_path / "scale_runs.json").read_text())[0]
    assert run["acceptance"]["incremental_over_full_build"] > 0
    assert (tmp_path / "results" / "scale.md").read_text().count("| ingest |") == 1
    assert (tmp_path / "results" / "scale.png").stat().st_size > 10_000
    assert not list(tmp_path.glob("scale_5000_*"))  # the work folder is removed
