"""What the ML assets do when the data cannot support a model, and how their metrics are judged.

One mechanism for every ML asset (`fits_what_it_can`): a model step that raises
`ml.frames.ModelFitError` (too few persons, one class, no holdout, no purchases) never fails
the run. The asset writes what it can (`attempt` runs one step and says why it could not), or,
when nothing can be fitted, its tables empty with their columns; either way its metadata carries
`note: not evaluated: <reason>`, and `ml.model_notes` (asset, note) keeps the note for the
report and the checks. Any other error is a bug or bad input and still fails the asset.

Each asset writes its holdout metrics to an `ml.*_eval` table (model, metric, value); the
floor check reads them back, so it judges what was stored. A metric below its floor is a
warning unless the operator makes that check blocking (DMP_BLOCKING_CHECKS).
"""

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import dagster as dg
import duckdb
import pandas as pd

from dagster_dmp.assets.severity import failed_check_severity
from dagster_dmp.resources import WarehouseResource
from ml.frames import ModelFitError

MODEL_NOTES = "ml.model_notes"
NOT_EVALUATED = "not evaluated"
EVAL_COLUMNS = {"model": "string", "metric": "string", "value": "float64"}

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Floor:
    table: str  # ml.<asset>_eval with columns model, metric, value
    model: str
    metric: str
    minimum: float
    why: str
    # The evidence behind the metric (a row of the same table and model): below min_evidence
    # the check abstains with a warning instead of judging noise.
    evidence_metric: str | None = None
    min_evidence: float = 0.0


def not_evaluated(reason: str) -> str:
    """The note an asset carries when (part of) its model could not be fitted or evaluated."""
    return f"{NOT_EVALUATED}: {reason}"


def attempt(step: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> tuple[_T | None, str]:
    """Run one model step: (its result, "") or, when the data cannot support it, (None, why).
    Lets an asset fall back (lists without evaluation, a model without tuning) and say so."""
    try:
        return step(*args, **kwargs), ""
    except ModelFitError as error:
        return None, str(error)


def fits_what_it_can(
    asset_key: dg.AssetKey, empty: dict[str, dict[str, str]]
) -> Callable[[Callable[_P, dg.MaterializeResult]], Callable[_P, dg.MaterializeResult]]:
    """Decorate an ML asset's function (beneath `@dg.asset`; it takes `warehouse`).

    A `ModelFitError` escaping the body writes `empty` (table -> column -> pandas dtype) and
    notes why; a result whose metadata has a `note` is noted as it is; a result without one
    clears the asset's earlier note. Other exceptions propagate: they are bugs to see."""

    def decorate(body: Callable[_P, dg.MaterializeResult]) -> Callable[_P, dg.MaterializeResult]:
        signature = inspect.signature(body)

        @functools.wraps(body)
        def run(*args: _P.args, **kwargs: _P.kwargs) -> dg.MaterializeResult:
            warehouse = signature.bind(*args, **kwargs).arguments["warehouse"]
            try:
                result = body(*args, **kwargs)
            except ModelFitError as error:
                result = too_little_data(warehouse, empty, not_evaluated(str(error)))
            note = (result.metadata or {}).get("note")
            record_note(warehouse, asset_key, getattr(note, "value", note))
            return result

        return run

    return decorate


def record_note(warehouse: WarehouseResource, asset_key: dg.AssetKey, note: str | None) -> None:
    """Replace the asset's row in ml.model_notes (none when it was fitted and evaluated)."""
    asset = asset_key.to_user_string()
    with warehouse.connect() as con:
        con.execute("begin")
        con.execute("create schema if not exists ml")
        con.execute(
            f"create table if not exists {MODEL_NOTES} (asset varchar not null, note varchar not null)"
        )
        con.execute(f"delete from {MODEL_NOTES} where asset = ?", [asset])
        if note:
            con.execute(f"insert into {MODEL_NOTES} values (?, ?)", [asset, str(note)])
        con.execute("commit")


def read_notes(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """asset, note of every ML asset that could not fit or evaluate all of its model (an empty
    frame before any ML asset ran)."""
    schema, table = MODEL_NOTES.split(".")
    exists = con.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?",
        [schema, table],
    ).fetchone()[0]
    if not exists:
        return pd.DataFrame({"asset": pd.Series(dtype="string"), "note": pd.Series(dtype="string")})
    return con.execute(f"select asset, note from {MODEL_NOTES} order by asset").df()


def metric_floor_check(asset_key: dg.AssetKey, floor: Floor) -> dg.AssetChecksDefinition:
    """`floor.model`'s `floor.metric` in `floor.table` >= minimum: a WARN when it is not, an
    ERROR (failing `dmp run`) when the check is named in DMP_BLOCKING_CHECKS."""
    name = f"{floor.model}_{floor.metric}_above_floor"

    @dg.asset_check(
        asset=asset_key,
        name=name,
        description=(
            f"{floor.model} {floor.metric} >= {floor.minimum:g}: {floor.why} (a warning unless "
            "DMP_BLOCKING_CHECKS names it)"
        ),
        blocking=False,
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            stored = con.execute(
                f"select metric, value from {floor.table} where model = ?", [floor.model]
            ).df()
            notes = read_notes(con)
        stored = stored.set_index("metric")["value"]
        value = float(stored.get(floor.metric, float("nan")))
        note = notes.loc[notes["asset"] == asset_key.to_user_string(), "note"]
        abstain = None
        if math.isnan(value):
            abstain = note.iloc[0] if len(note) else f"no {floor.metric} stored"
        elif floor.evidence_metric is not None:
            evidence = float(stored.get(floor.evidence_metric, 0.0))
            if evidence < floor.min_evidence:
                abstain = (
                    f"{floor.evidence_metric} = {evidence:g} < {floor.min_evidence:g}, too "
                    f"little to tell {floor.metric} from noise"
                )
        if abstain is not None:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"value": value, "floor": floor.minimum},
                description=f"not judged: {abstain}",
            )
        severity = failed_check_severity(asset_key, name)
        blocking = severity == dg.AssetCheckSeverity.ERROR
        return dg.AssetCheckResult(
            passed=bool(value >= floor.minimum),
            severity=severity,
            metadata={"value": value, "floor": floor.minimum, "blocking": blocking},
            description=f"{floor.metric} = {value:.4f} (floor {floor.minimum:g})",
        )

    return _check


def too_little_data(
    warehouse: WarehouseResource, columns: dict[str, dict[str, str]], reason: str
) -> dg.MaterializeResult:
    """Write each table empty (with its columns and their pandas dtypes, so readers such as
    the audience rules still see typed columns) and say why: a dataset without what a model
    needs (no campaigns, no repeat buyers) gets an honest empty output, not a failed run. The
    metric checks then abstain."""
    warehouse.replace_tables(
        {
            table: pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in types.items()})
            for table, types in columns.items()
        }
    )
    return dg.MaterializeResult(metadata={"dagster/row_count": 0, "note": reason})
