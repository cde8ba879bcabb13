"""One small real warehouse per test session: generated data -> dlt -> dbt -> ML -> report."""

import hashlib
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from filelock import FileLock

from dagster_dmp.project import ensure_dbt_manifest

SMALL = {"persons": 300, "days": 21, "seed": 11}


@dataclass
class RecordedRun:
    """A finished in-process run as its events, read back from disk: what the tests read of
    `dg.materialize`'s result, so every xdist worker sees the one build of the small warehouse."""

    all_events: list[dg.DagsterEvent]

    EVENTS_FILE = "run_events.json"

    @classmethod
    def save(cls, result: dg.ExecuteInProcessResult, folder: Path) -> None:
        (folder / cls.EVENTS_FILE).write_text(dg.serialize_value(list(result.all_events)))

    @classmethod
    def load(cls, folder: Path) -> "RecordedRun":
        return cls(dg.deserialize_value((folder / cls.EVENTS_FILE).read_text(), list))

    @property
    def success(self) -> bool:
        return any(
            event.event_type_value == dg.DagsterEventType.RUN_SUCCESS.value
            for event in self.all_events
        )

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        return [event for event in self.all_events if event.is_step_materialization]

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        return [
            event.event_specific_data
            for event in self.all_events
            if event.event_type_value == dg.DagsterEventType.ASSET_CHECK_EVALUATION.value
        ]


@dataclass
class PipelineRun:
    landing: Path
    duckdb_path: Path
    reports: Path
    result: dg.ExecuteInProcessResult | RecordedRun


def hash_email(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def truth_identities(landing: Path) -> pd.DataFrame:
    """The planted identities, e-mails hashed as the identity graph stores them."""
    truth = pd.read_parquet(landing / "_truth" / "identities.parquet")
    is_email = truth["identifier_type"] == "email"
    truth.loc[is_email, "identifier_value"] = truth.loc[is_email, "identifier_value"].map(
        hash_email
    )
    truth.loc[is_email, "identifier_type"] = "email_sha256"
    return truth


def free_port() -> int:
    """A loopback port nobody listens on, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Test modules on the session's pipeline run, and those on a copy of its warehouse (by their
# text: fixtures are not known before the workers collect).
_MODULE_TEXTS = {
    f"tests/{path.name}": path.read_text() for path in Path(__file__).parent.glob("test_*.py")
}
_PIPELINE_MODULES = {module for module, text in _MODULE_TEXTS.items() if "pipeline_run" in text}
_TEMPLATE_MODULES = {
    module for module, text in _MODULE_TEXTS.items() if "small_warehouse_template" in text
}


def _scope(nodeid: str) -> str:
    module = nodeid.split("::")[0]
    return "pipeline_run" if module in _PIPELINE_MODULES else module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest work first, so the short tests fill the end of the run on both workers:
    the session's pipeline run (it builds the shared warehouse), then the modules marked
    long_running that build their own, then those that wait for the shared one, then the rest.
    Every worker sorts the same way: xdist needs the same order everywhere."""

    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        if _scope(item.nodeid) == "pipeline_run":
            return 0
        if item.get_closest_marker("long_running") is None:
            return 3
        return 2 if module in _TEMPLATE_MODULES else 1

    items.sort(key=rank)


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Under xdist, a module's tests run on one worker (its fixtures are built once), and so do
    all the modules on the session's pipeline run (built once, not once per worker). Scopes
    go out in the collection's order (pytest_collection_modifyitems), not by test count."""
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndPipelineRun(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    config.option.loadscopereorder = False
    return ModulesAndPipelineRun(config, log)


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory) -> Path:
    from datagen import generate

    landing = tmp_path_factory.mktemp("landing")
    generate(out_dir=landing, **SMALL)
    return landing


def materialise_everything(
    landing: Path, root: Path, selection: dg.AssetSelection | None = None
) -> PipelineRun:
    """Every asset and check (or only `selection`), in-process, into a warehouse under `root`
    fed from `landing`."""
    paths = {
        "DMP_LANDING_DIR": landing,
        "DMP_DUCKDB_PATH": root / "warehouse" / "dmp.duckdb",
        "DMP_REPORTS_DIR": root / "reports",
        "DMP_EXPORTS_DIR": root / "exports",
        "DMP_PRIVACY_DIR": root / "privacy",
    }
    saved = {name: os.environ.get(name) for name in paths}
    os.environ.update({name: str(path) for name, path in paths.items()})
    try:
        ensure_dbt_manifest()
        from dagster_dmp.definitions import all_asset_checks, all_assets
        from dagster_dmp.resources import build_resources

        result = dg.materialize(
            [*all_assets, *all_asset_checks],
            selection=selection,
            resources=build_resources(),
            raise_on_error=False,
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return PipelineRun(
        landing=landing,
        duckdb_path=paths["DMP_DUCKDB_PATH"],
        reports=paths["DMP_REPORTS_DIR"],
        result=result,
    )


@pytest.fixture(scope="session")
def small_warehouse_template(tmp_path_factory, worker_id) -> Path:
    """One warehouse built from the small landing zone for the whole session, shared by the
    xdist workers (the first to need it builds it, under a file lock): tests that change a
    warehouse work on a copy (`copy_of_small_warehouse`), not on a build of their own."""
    base = tmp_path_factory.getbasetemp()
    template = (base if worker_id == "master" else base.parent) / "small_warehouse"
    with FileLock(f"{template}.lock"):
        if not (template / "built").exists():
            from datagen import generate

            shutil.rmtree(template, ignore_errors=True)
            generate(out_dir=template / "landing", **SMALL)
            run = materialise_everything(template / "landing", template)
            assert run.result.success, "the small warehouse did not build"
            RecordedRun.save(run.result, template)
            (template / "built").touch()
    return template


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory, small_warehouse_template) -> PipelineRun:
    """The session's full run of every asset and check on the small landing zone: a copy of
    the shared warehouse (tests may write to it) with the events of the run that built it."""
    paths = copy_of_small_warehouse(small_warehouse_template, tmp_path_factory.mktemp("pipeline"))
    return PipelineRun(
        landing=paths["DMP_LANDING_DIR"],
        duckdb_path=paths["DMP_DUCKDB_PATH"],
        reports=paths["DMP_REPORTS_DIR"],
        result=RecordedRun.load(small_warehouse_template),
    )


def copy_of_small_warehouse(template: Path, root: Path) -> dict[str, Path]:
    """A copy of the built template under `root` (landing zone, warehouse with dlt's state and
    the serving snapshots, reports, exports): the DMP_* settings that point at it."""
    shutil.copytree(
        template,
        root,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("built", RecordedRun.EVENTS_FILE),
    )
    return {
        "DMP_LANDING_DIR": root / "landing",
        "DMP_DUCKDB_PATH": root / "warehouse" / "dmp.duckdb",
        "DMP_REPORTS_DIR": root / "reports",
        "DMP_EXPORTS_DIR": root / "exports",
        "DMP_PRIVACY_DIR": root / "privacy",
    }
