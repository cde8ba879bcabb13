"""The dbt project as Dagster sees it (kept alone so `dagster-dbt project prepare-and-package` can load it)."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from dagster_dbt import DbtProject

from dagster_dmp.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)


def ensure_dbt_manifest(progress: Callable[[str], None] | None = None) -> None:
    """dagster-dbt loads dbt's manifest when the definitions load: parse the project when the
    manifest is missing (a fresh clone) or older than the dbt files it describes."""
    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    sources = [
        path
        for folder in ("models", "macros", "tests")
        for path in (DBT_PROJECT_DIR / folder).rglob("*")
        if path.is_file()
    ] + [DBT_PROJECT_DIR / "dbt_project.yml"]
    newest_source = max(path.stat().st_mtime for path in sources)
    if manifest.exists() and manifest.stat().st_mtime >= newest_source:
        return
    if progress:
        progress("parsing the dbt project (its manifest is missing or older than its files)")
    dbt = Path(sys.executable).with_name("dbt")
    parsed = subprocess.run(
        [str(dbt), "parse", "--quiet"],
        cwd=DBT_PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if parsed.returncode != 0:
        output = (parsed.stdout + parsed.stderr).strip().splitlines()
        raise RuntimeError(f"dbt parse failed: {output[-1] if output else parsed.returncode}")
