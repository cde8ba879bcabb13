"""The profile snapshot `dmp serve` and `dmp profile` read: published at the end of every run
that built what it reads (serving/snapshot.py). It runs only when its upstream steps in the
run succeeded, so a failed run leaves the last good snapshot serving."""

import dagster as dg

from dagster_dmp.assets.audiences import AUDIENCE_MEMBERS
from dagster_dmp.assets.ml.inputs import (
    PERSON_IDENTIFIERS,
    PERSON_INTERESTS,
    PERSON_PROFILES,
    PERSON_SEGMENTS,
)
from dagster_dmp.assets.ml.propensity import PROPENSITY_SCORES
from dagster_dmp.assets.ml.recommendations import RECOMMENDATIONS
from dagster_dmp.assets.ml.value import CUSTOMER_VALUE
from dagster_dmp.resources import WarehouseResource
from serving.snapshot import publish

PROFILE_SNAPSHOT = dg.AssetKey(["serving", "profile_snapshot"])


@dg.asset(
    key=PROFILE_SNAPSHOT,
    deps=[
        PERSON_PROFILES,
        PERSON_IDENTIFIERS,
        PERSON_INTERESTS,
        PERSON_SEGMENTS,
        PROPENSITY_SCORES,
        CUSTOMER_VALUE,
        RECOMMENDATIONS,
        AUDIENCE_MEMBERS,
    ],
    group_name="activation",
    kinds={"duckdb"},
    description=(
        "A read-only copy of every person's profile (identifiers, RFM, interests, segment, "
        "scores, recommendations, audiences, consent), published as a DuckDB file of its own "
        "beside the warehouse (DMP_SERVING_DIR, default <warehouse folder>/serving) and swapped "
        "in atomically: `dmp serve` and `dmp profile` read it, never the warehouse, so reads "
        "and runs never wait for each other. Keeps the last two snapshots."
    ),
)
def profile_snapshot(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    manifest = publish(warehouse.database, warehouse.serving, label=context.run.run_id[:8])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": manifest.persons,
            "snapshot": dg.MetadataValue.path(str(warehouse.serving / manifest.snapshot)),
        }
    )
