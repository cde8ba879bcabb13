"""The dbt project as Dagster sees it (kept alone so `dagster-dbt project prepare-and-package` can load it)."""

from dagster_dbt import DbtProject

from dagster_dmp.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)
