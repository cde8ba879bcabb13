"""Materialise assets in-process for the command line: one line per step, the rest in a file.

Dagster logs every event at DEBUG (some 1,750 lines for the demo); a person at a terminal
needs one line per step (its time, the rows it wrote, its checks), the problems, and where
the full log is. The run holds the warehouse lock from start to end (warehouse_lock.py).
"""

import logging
import os
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from dagster_dmp import settings
from dagster_dmp.warehouse_lock import warehouse_lock
from ingestion.landing import LOADED
from ingestion.ledger import LandingProblem, landing_problems

Progress = Callable[[str], None]
_JOB = "dmp_run"
_DBT_OP = "warehouse_models"  # the @dbt_assets op (assets/warehouse.py)
_MAX_PROBLEM_LINES = 12


@dataclass
class RunOutcome:
    success: bool
    seconds: float
    log_path: Path
    failed_steps: dict[str, str] = field(default_factory=dict)  # step -> first error line
    checks: list[Any] = field(default_factory=list)  # AssetCheckEvaluation
    landing_problems: list[LandingProblem] = field(default_factory=list)  # files read this run

    def failed_checks(self, severity: dg.AssetCheckSeverity) -> list[Any]:
        return [c for c in self.checks if not c.passed and c.severity == severity]

    def failed_blocking_checks(self) -> list[Any]:
        """The failed checks of ERROR severity: they fail the run for its caller."""
        return self.failed_checks(dg.AssetCheckSeverity.ERROR)


def run_assets(
    selection: str = "*",
    run_config: Mapping[str, Any] | None = None,
    holder: str = "dmp run",
    wait: bool = True,
    progress: Progress = print,
    full_refresh: bool = False,
) -> RunOutcome:
    """Materialise `selection` (Dagster's syntax) with every check, holding the warehouse.
    `full_refresh`: the dbt models, when selected, are built with `--full-refresh`."""
    from dagster_dmp.project import ensure_dbt_manifest

    database = settings.duckdb_path()
    with warehouse_lock(database, holder, wait=wait, on_wait=progress):
        progress(f"materialising '{selection}' into {database}")
        ensure_dbt_manifest(progress)
        from dagster_dmp.definitions import all_asset_checks, all_assets
        from dagster_dmp.resources import build_resources

        log_path = _log_path()
        log = logging.FileHandler(log_path)
        log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        steps = _StepLines(progress)
        started, started_at = time.perf_counter(), datetime.now(UTC)
        try:
            # dagster-dbt echoes dbt's own log to stdout: into the file with the rest.
            with (
                _warnings_to(log),
                open(log_path, "a") as echoed,
                redirect_stdout(echoed),
                _instance() as instance,
            ):
                job = dg.Definitions(
                    assets=all_assets,
                    asset_checks=all_asset_checks,
                    jobs=[dg.define_asset_job(_JOB, selection=selection)],
                    resources=build_resources(),
                ).resolve_job_def(_JOB)
                if not job.asset_layer.selected_asset_keys:
                    raise ValueError(f"the selection {selection!r} matches no asset")
                run_config = _with_full_refresh(run_config, job) if full_refresh else run_config
                # A logger runs only when the run config names it.
                result = job.with_logger_defs({"dmp": _run_logger(log, steps)}).execute_in_process(
                    run_config={**(run_config or {}), "loggers": {"dmp": {}}},
                    instance=instance,
                    raise_on_error=False,
                )
        finally:
            log.close()
        return RunOutcome(
            success=result.success,
            seconds=time.perf_counter() - started,
            log_path=log_path,
            failed_steps=steps.failures,
            checks=list(result.get_asset_check_evaluations()),
            landing_problems=_landing_problems(database, started_at),
        )


def _with_full_refresh(
    run_config: Mapping[str, Any] | None, job: dg.JobDefinition
) -> Mapping[str, Any] | None:
    """Dagster refuses config for an op the job does not run: only a job that builds the dbt
    models gets `full_refresh`."""
    if not any(node.name == _DBT_OP for node in job.nodes):
        return run_config
    ops = {**(run_config or {}).get("ops", {}), _DBT_OP: {"config": {"full_refresh": True}}}
    return {**(run_config or {}), "ops": ops}


def summarise(outcome: RunOutcome, progress: Progress) -> None:
    """The landing files with problems and the checks that did not pass, one line each (most
    severe first), and the totals."""
    files = [p for p in outcome.landing_problems if p.status != LOADED or p.unexpected_columns]
    for problem in files[:_MAX_PROBLEM_LINES]:
        progress(f"landing file {problem.source_file}: {problem.reason}")
    if len(files) > _MAX_PROBLEM_LINES:
        progress(
            f"... and {len(files) - _MAX_PROBLEM_LINES} more landing files with problems "
            "(raw.landing_files_* and the report list them all)"
        )
    rejected = [p for p in outcome.landing_problems if p.rejected_lines]
    if rejected:
        lines = sum(p.rejected_lines for p in rejected)
        progress(
            f"{lines:,} lines of {len(rejected)} landing files rejected to quarantine "
            "(raw.quarantine_*; the report counts them by reason)"
        )
    errors = outcome.failed_blocking_checks()
    warned = outcome.failed_checks(dg.AssetCheckSeverity.WARN)
    for check in [*errors, *warned][:_MAX_PROBLEM_LINES]:
        description = f": {_first_line(check.description)}" if check.description else ""
        progress(
            f"{check.severity.value.lower()}: {check.asset_key.to_user_string()}:"
            f"{check.check_name}{description}"
        )
    hidden = len(errors) + len(warned) - _MAX_PROBLEM_LINES
    if hidden > 0:
        progress(f"... and {hidden} more in the log")
    passed = len(outcome.checks) - len(errors) - len(warned)
    steps = "" if outcome.success else f", {len(outcome.failed_steps)} step(s) failed"
    progress(
        f"done in {outcome.seconds:.1f}s{steps}; checks: {passed} passed, {len(warned)} "
        f"warning(s), {len(errors)} error(s); full log: {outcome.log_path}"
    )


def _landing_problems(database: Path, since: datetime) -> list[LandingProblem]:
    """The landing files this run read that need a look (a run that ingested nothing has
    none; a warehouse not created yet neither)."""
    if not database.exists():
        return []
    with duckdb.connect(str(database), read_only=True) as con:
        return landing_problems(con, since=since)


def _log_path() -> Path:
    folder = settings.logs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"run_{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.log"


def _instance() -> dg.DagsterInstance:
    """Runs land in the UI's history when DAGSTER_HOME is set (make sets it); else ephemeral."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


@contextmanager
def _warnings_to(log: logging.Handler) -> Iterator[None]:
    """Python warnings raised during the run (Dagster's beta notices, library deprecations)
    go to the run's log file, not the terminal."""
    logger = logging.getLogger("py.warnings")
    logger.addHandler(log)
    logger.propagate = False
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield
    finally:
        logging.captureWarnings(False)
        logger.removeHandler(log)
        logger.propagate = True


class _StepLines(logging.Handler):
    """Turns Dagster's structured events into one line per finished step: its time, the
    rows each asset holds (`dagster/row_count`) and its checks."""

    def __init__(self, progress: Progress):
        super().__init__(level=logging.DEBUG)
        self.progress = progress
        self.started: dict[str, float] = {}
        self.rows: dict[str, dict[str, int | None]] = defaultdict(dict)
        self.checks: dict[str, list[bool]] = defaultdict(list)
        self.failures: dict[str, str] = {}
        self.notes: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_meta", {}).get("dagster_event")
        if event is None or event.step_key is None:
            return
        step = event.step_key
        if event.is_step_start:
            self.started[step] = time.perf_counter()
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            count = materialization.metadata.get("dagster/row_count")
            self.rows[step][materialization.asset_key.to_user_string()] = (
                None if count is None else int(count.value)
            )
            note = materialization.metadata.get("note")  # e.g. "not evaluated: <why>"
            if note is not None:
                self.notes[step] = _first_line(str(note.value))
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            self.checks[step].append(evaluation.passed)
        elif event.is_step_success or event.is_step_failure or event.is_step_skipped:
            line = self._line(step, event)
            if line:
                self.progress(line)

    def _line(self, step: str, event: dg.DagsterEvent) -> str | None:
        seconds = time.perf_counter() - self.started.get(step, time.perf_counter())
        name = step.replace("__", "/")
        if event.is_step_skipped:
            return f"{name}: skipped (an upstream step failed)"
        if event.is_step_failure:
            message = _root_cause(event.step_failure_data.error)
            self.failures[name] = message
            return f"{name}: FAILED after {seconds:.1f}s: {message}"
        rows = self.rows.get(step, {})
        if not rows:
            return None  # a check-only step: its result is in the summary
        parts = [f"{name}: {seconds:.1f}s"]
        if len(rows) <= 3:
            parts.append(", ".join(_rows_text(key, count) for key, count in rows.items()))
        else:
            counted = [count for count in rows.values() if count is not None]
            parts.append(f"{len(rows)} assets, {sum(counted):,} rows in {len(counted)} tables")
        checks = self.checks.get(step, [])
        if checks:
            parts.append(f"{checks.count(True)}/{len(checks)} checks passed")
        if step in self.notes:
            parts.append(self.notes[step])
        return "; ".join(parts)


def _rows_text(asset: str, count: int | None) -> str:
    """'raw/web_events' 12 -> 'web_events 12'; a channel's quarantine and file ledger briefly."""
    table = asset.split("/")[-1]
    if count is None:
        return table
    if table.startswith("quarantine_"):
        return f"{count:,} quarantined"
    if table.startswith("landing_files_"):
        return f"{count:,} file{'' if count == 1 else 's'}"
    return f"{table} {count:,}"


def _run_logger(log: logging.Handler, steps: _StepLines) -> dg.LoggerDefinition:
    """Every Dagster event and message to the `log` file; finished steps to the terminal."""

    @dg.logger(description="the run's full log in a file, one line per step on the terminal")
    def run_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
        del init_context
        logger = logging.getLogger("dmp.run")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.handlers[:] = [log, steps]  # this run's file and lines only
        return logger

    return run_logger


def _root_cause(error: Any) -> str:
    """Dagster wraps an asset's exception ("Error occurred while executing op ..."): name the
    innermost one, the error the asset itself raised."""
    if error is None:
        return "unknown error"
    while error.cause is not None:
        error = error.cause
    return f"{error.cls_name}: {_first_line(error.message.removeprefix(error.cls_name + ': '))}"


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else ""
