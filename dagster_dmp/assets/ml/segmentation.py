"""Segments: groups of persons a marketer can name and act on."""

import dagster as dg

from dagster_dmp.assets.ml.inputs import PERSON_PROFILES
from dagster_dmp.resources import WarehouseResource
from ml.segmentation import FEATURES, segment_profiles

PERSON_SEGMENTS = dg.AssetKey(["ml", "person_segments"])


@dg.asset(
    key=PERSON_SEGMENTS,
    deps=[PERSON_PROFILES],
    group_name="ml",
    kinds={"scikit-learn", "duckdb"},
    description=(
        "k-means segments of persons on log-scaled recency, frequency, monetary value and "
        "engagement; k chosen by silhouette; names say what sets each centroid apart. "
        "Also writes `ml.segment_summary`."
    ),
)
def person_segments(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        profiles = con.sql(
            f"select person_id, {', '.join(FEATURES)} from marts.person_profiles order by person_id"
        ).df()
        result = segment_profiles(profiles)
        con.execute("create schema if not exists ml")
        con.register("assignments", result.assignments)
        con.register("summary", result.summary)
        con.execute("create or replace table ml.person_segments as select * from assignments")
        con.execute("create or replace table ml.segment_summary as select * from summary")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(result.assignments),
            "k": result.k,
            "silhouette": dg.MetadataValue.float(result.silhouette),
            "segments": dg.MetadataValue.md(result.summary.round(2).to_markdown(index=False)),
        }
    )


@dg.asset_check(
    asset=PERSON_SEGMENTS, description="Every profiled person is in exactly one segment."
)
def every_profile_segmented(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        unsegmented, duplicated = con.execute(
            """
            select
                count(*) filter (where s.person_id is null),
                (select count(*) - count(distinct person_id) from ml.person_segments)
            from marts.person_profiles as p
            left join ml.person_segments as s on s.person_id = p.person_id
            """
        ).fetchone()
    return dg.AssetCheckResult(
        passed=unsegmented == 0 and duplicated == 0,
        metadata={"unsegmented_persons": unsegmented, "duplicated_persons": duplicated},
    )
