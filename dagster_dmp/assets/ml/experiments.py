"""A/B read-outs of the e-mail campaigns' variants."""

import dagster as dg
import pandas as pd

from dagster_dmp.assets.ml.inputs import (
    CAMPAIGN_TOUCHES,
    EXPERIMENT_OBSERVATIONS_SQL,
    IDENTIFIERS,
    ORDERS,
)
from dagster_dmp.resources import WarehouseResource
from ml.experiments import CONTRACT_COLUMNS, analyse_experiments

AB_TEST_RESULTS = dg.AssetKey(["ml", "ab_test_results"])


@dg.asset(
    key=AB_TEST_RESULTS,
    deps=[CAMPAIGN_TOUCHES, IDENTIFIERS, ORDERS],
    group_name="ml",
    kinds={"scipy", "duckdb"},
    description=(
        "Every e-mail campaign variant against the campaign's control (its first variant): "
        "recipients, conversions (an order with the campaign's tag placed after the send), "
        "conversion rate with its Wilson 95% interval (ci_low, ci_high), absolute and relative "
        "lift with a 95% interval, two-proportion z-test p-value and its Holm adjustment "
        "across the campaign's variants, Welch's t-test on spend per recipient, and the "
        "minimum detectable effect at 80% power."
    ),
)
def ab_test_results(warehouse: WarehouseResource) -> dg.MaterializeResult:
    observations = warehouse.read_frame(EXPERIMENT_OBSERVATIONS_SQL)
    if observations.empty:
        # A dataset without e-mail tests (e.g. an order history): an empty read-out, said so.
        warehouse.replace_tables(
            {"ml.ab_test_results": pd.DataFrame(columns=list(CONTRACT_COLUMNS))}
        )
        return dg.MaterializeResult(
            metadata={"dagster/row_count": 0, "note": "no e-mail sends with a variant"}
        )
    analysis = analyse_experiments(observations, spend="spend")
    warehouse.replace_tables({"ml.ab_test_results": analysis.results})
    shown = analysis.results[
        ["campaign_id", "variant", "users", "conversion_rate", "ci_low", "ci_high", "lift"]
        + ["p_value_holm", "significant", "mde"]
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(analysis.results),
            "campaigns": len(analysis.controls),
            "significant_variants": int(analysis.results["significant"].fillna(False).sum()),
            "results": dg.MetadataValue.md(shown.round(4).to_markdown(index=False)),
        }
    )
