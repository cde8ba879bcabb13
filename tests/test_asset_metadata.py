"""What an operator reads on an asset's page after a run: row counts that match the
warehouse, and a preview of each ML output."""

import base64
import io
import re

import duckdb
import pytest
from PIL import Image

from dagster_dmp.resources import markdown_figures


@pytest.fixture(scope="module")
def materialised(pipeline_run) -> dict[str, dict]:
    """The metadata of every materialisation in the session's full run, by `schema.table`."""
    return {
        ".".join(event.asset_key.path): event.materialization.metadata
        for event in pipeline_run.result.get_asset_materialization_events()
    }


@pytest.fixture(scope="module")
def stored(pipeline_run) -> dict[str, int]:
    """Rows per table in the session's warehouse."""
    with duckdb.connect(str(pipeline_run.duckdb_path), read_only=True) as con:
        tables = con.execute("select schema_name, table_name from duckdb_tables()").fetchall()
        return {
            f"{schema}.{table}": con.execute(
                f'select count(*) from "{schema}"."{table}"'
            ).fetchone()[0]
            for schema, table in tables
        }


def test_raw_and_ml_tables_record_their_row_count(materialised, stored):
    layers = ("raw", "ml")
    tables = [name for name in materialised if name.split(".")[0] in layers]
    assert len([name for name in tables if name.startswith("raw.")]) == 24
    assert len([name for name in tables if name.startswith("ml.")]) == 7
    for name in tables:
        assert "dagster/row_count" in materialised[name], f"{name} has no row count"
        assert materialised[name]["dagster/row_count"].value == stored.get(name, 0), name


def test_dbt_table_models_record_their_row_count(materialised, stored):
    for name in ("marts.person_profiles", "marts.person_identifiers", "marts.daily_activity"):
        assert materialised[name]["dagster/row_count"].value == stored[name] > 0, name
    # Views are not counted: that would run their query.
    staging = [name for name in materialised if name.startswith("staging.")]
    assert staging and all("dagster/row_count" not in materialised[name] for name in staging)


def test_ml_outputs_show_a_preview_without_person_ids(materialised):
    for name in (
        "ml.person_segments",
        "ml.recommendations",
        "ml.propensity_scores",
        "ml.customer_value",
        "ml.lookalikes",
        "ml.budget_allocation",
    ):
        preview = materialised[name].get("preview")
        assert preview is not None, f"{name} has no preview"
        lines = preview.value.splitlines()
        assert lines[0].startswith("|"), f"{name}: not a table"
        assert 3 <= len(lines) <= 12, f"{name}: {len(lines)} lines"
        # Dagster keeps metadata for good: no person id that an erasure could not reach.
        assert "person_id" not in preview.value and "| p_" not in preview.value, name


def test_report_figures_preview_inlines_every_figure(pipeline_run, materialised):
    """The report's page in the UI shows a readable thumbnail of every figure."""
    pngs = sorted(pipeline_run.reports.glob("*.png"))
    shown = materialised["reports.marketing_report"]["figure_previews"].value
    assert shown.count("data:image/png;base64,") == len(pngs)
    markdown = markdown_figures([(path.stem, path) for path in pngs], width=400).value
    uris = re.findall(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert len(uris) == len(pngs) >= 2
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri))) as thumbnail:
            assert thumbnail.width == 400 and thumbnail.height > 100
    assert len(markdown) < 20_000 * len(pngs)
