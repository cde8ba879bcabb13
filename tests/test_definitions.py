"""The Dagster definitions load, validate, and form one lineage graph."""

import filecmp
import subprocess
import sys
from pathlib import Path

import dagster as dg

from dagster_dmp.project import ensure_dbt_manifest

REPORT = dg.AssetKey(["reports", "marketing_report"])


def _definitions() -> dg.Definitions:
    ensure_dbt_manifest()
    from dagster_dmp.definitions import defs

    return defs


def test_dagster_definitions_validate():
    ensure_dbt_manifest()
    dagster = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "dagster_dmp.definitions"],
        capture_output=True,
        check=False,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]


def test_every_raw_table_reaches_the_report_through_dbt():
    graph = _definitions().resolve_asset_graph()
    raw_keys = [key for key in graph.get_all_asset_keys() if key.path[0] == "raw"]
    assert len(raw_keys) == 24  # 8 channels x (table + quarantine + file ledger)
    ancestors = dg.AssetSelection.assets(REPORT).upstream().resolve(graph)
    for key in raw_keys:
        assert key in ancestors, f"{key.to_user_string()} does not reach the report"
    for key in raw_keys:
        if key.path[1].startswith(("quarantine_", "landing_files_")):
            continue
        downstream = dg.AssetSelection.assets(key).downstream(depth=1).resolve(graph) - {key}
        assert any(child.path[0] == "staging" for child in downstream), (
            f"{key.to_user_string()} feeds no dbt staging model"
        )


def test_assets_are_grouped_by_layer():
    graph = _definitions().resolve_asset_graph()
    groups = {
        graph.get(key).group_name
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }
    assert groups == {"ingestion", "warehouse", "ml", "activation", "reports"}


# What each layer is built with, as the UI's kind tags show it (one asset may name more).
LAYER_KINDS = {
    "ingestion": {"dlt", "duckdb"},
    "warehouse": {"dbt", "duckdb"},
    "ml": {"duckdb"},
    "activation": {"duckdb"},
    "reports": {"plotnine", "html"},
}


def test_every_asset_has_a_description_a_layer_and_kinds():
    specs = _definitions().resolve_all_asset_specs()
    assert len(specs) > 60
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.description and spec.description.strip(), f"{name} has no description"
        assert spec.group_name in LAYER_KINDS, f"{name} is in group {spec.group_name!r}"
        assert LAYER_KINDS[spec.group_name] <= spec.kinds, f"{name} has kinds {spec.kinds}"
        if spec.group_name == "ml":
            assert len(spec.kinds) >= 2, f"{name} does not say which library models it"


def test_a_dbt_invocation_neither_asks_dbt_its_version_nor_sets_up_an_adapter(
    monkeypatch, tmp_path
):
    """The two fixed costs DbtResource removes (~4 s of every build) stay removed: if a
    dagster-dbt upgrade renames what it overrides, this fails."""
    import dagster_dbt.core.resource

    from dagster_dmp.resources import build_resources

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"dagster-dbt ran {args}")

    monkeypatch.setattr(dagster_dbt.core.resource, "check_output", no_subprocess)
    ensure_dbt_manifest()
    invocation = build_resources()["dbt"].cli(
        ["ls", "--resource-type", "model"], target_path=tmp_path
    )
    assert invocation.wait().is_successful()
    assert invocation.adapter is None
    assert invocation.cli_version.major == 1


def test_a_build_that_does_not_parse_keeps_the_parse_state_of_the_one_before(tmp_path, monkeypatch):
    """dbt writes its parse state only when it parses; the kept state must then stay the one
    parsed for this warehouse's profile, not become the project's (parsed for another warehouse
    path), or every second build parses the project again."""
    from dagster_dmp.assets.warehouse import (
        PARTIAL_PARSE_FILE,
        keep_parse_state,
        restore_parse_state,
    )
    from dagster_dmp.project import DBT_PROJECT_DIR
    from dagster_dmp.resources import build_resources

    ensure_dbt_manifest()
    project_state = DBT_PROJECT_DIR / "target" / PARTIAL_PARSE_FILE
    assert project_state.is_file()
    database = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("DMP_DUCKDB_PATH", str(database))  # a profile the project never parsed
    dbt = build_resources()["dbt"]
    parsed_again = []
    for build in range(3):
        target_path = tmp_path / f"target_{build}"
        kept = restore_parse_state(database, target_path)
        invocation = dbt.cli(["ls", "--resource-type", "model"], target_path=target_path)
        assert invocation.wait().is_successful()
        keep_parse_state(target_path / PARTIAL_PARSE_FILE, kept)
        log = (target_path / "dbt.log").read_text()
        parsed_again.append("Unable to do partial parsing" in log)
        same = filecmp.cmp(kept, project_state, shallow=False)
        assert not same, f"build {build} kept the project's parse state"
    assert parsed_again == [True, False, False]
