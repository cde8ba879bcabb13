"""Quality floors of the ML assets, and the asset check that holds a metric to its floor.

Each asset writes its holdout metrics to an `ml.*_eval` table (model, metric, value); the
check reads them back, so it judges what was stored, and fails when a metric falls below
its floor (or above its ceiling, for errors).
"""

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from dagster_dmp.resources import WarehouseResource


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


def metric_floor_check(asset_key: dg.AssetKey, floor: Floor) -> dg.AssetChecksDefinition:
    """An ERROR-severity check: `floor.model`'s `floor.metric` in `floor.table` >= minimum."""

    @dg.asset_check(
        asset=asset_key,
        name=f"{floor.model}_{floor.metric}_above_floor",
        description=f"{floor.model} {floor.metric} >= {floor.minimum:g}: {floor.why}",
        blocking=False,
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        stored = warehouse.read_frame(
            f"select metric, value from {floor.table} where model = '{floor.model}'"
        ).set_index("metric")["value"]
        value = float(stored.get(floor.metric, float("nan")))
        if floor.evidence_metric is not None:
            evidence = float(stored.get(floor.evidence_metric, 0.0))
            if evidence < floor.min_evidence:
                return dg.AssetCheckResult(
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"value": value, "floor": floor.minimum, "evidence": evidence},
                    description=(
                        f"not judged: {floor.evidence_metric} = {evidence:g} < "
                        f"{floor.min_evidence:g}, too little to tell {floor.metric} from noise"
                    ),
                )
        return dg.AssetCheckResult(
            passed=bool(value >= floor.minimum),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"value": value, "floor": floor.minimum},
            description=f"{floor.metric} = {value:.4f} (floor {floor.minimum:g})",
        )

    return _check


def too_little_data(
    warehouse: WarehouseResource, columns: dict[str, dict[str, str]], reason: str
) -> dg.MaterializeResult:
    """Write each table empty (with its columns and their pandas dtypes, so readers such as
    the audience rules still see typed columns) and say why: a dataset without what a model
    needs (no campaigns, no repeat buyers) gets an honest empty output, not a failed run. The
    metric checks then abstain for lack of evidence."""
    warehouse.replace_tables(
        {
            table: pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in types.items()})
            for table, types in columns.items()
        }
    )
    return dg.MaterializeResult(metadata={"dagster/row_count": 0, "note": reason})


EVAL_COLUMNS = {"model": "string", "metric": "string", "value": "float64"}
