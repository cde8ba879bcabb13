"""Segments: groups of persons a marketer can name and act on."""

import dagster as dg
from threadpoolctl import threadpool_limits

import marts
from dagster_dmp.assets.ml.inputs import (
    PERSON_BEHAVIOUR,
    PERSON_INTERESTS,
    PERSON_ORDERS,
    PERSON_SEGMENTS,
    person_orders,
)
from dagster_dmp.assets.ml.quality import EVAL_COLUMNS, attempt, fits_what_it_can, not_evaluated
from dagster_dmp.resources import WarehouseResource, markdown_preview
from ml.segmentation import (
    BEHAVIOUR_COLUMNS,
    FIT_SIZE,
    SELECTION_SIZE,
    one_segment,
    segment_persons,
)


@dg.asset(
    key=PERSON_SEGMENTS,
    deps=[PERSON_BEHAVIOUR, PERSON_INTERESTS, PERSON_ORDERS],
    group_name="ml",
    kinds={"scipy", "duckdb"},
    description=(
        "Behavioural segments: a latent-class mixture over each person's counts (categories "
        "and price tiers as Dirichlet-multinomials, sessions and events per session as negative "
        "binomials, app use and discount share as binomials); k chosen by ICL on a sample; "
        "segment 1 has the most revenue per person; names say which categories and traits "
        "set each segment apart; persons without any activity are segment 0. Order-only data "
        "(under a fifth of the active persons with a web or app session): recency, frequency "
        "and monetary groups instead (new, loyal big spenders, loyal, at risk, lapsed; segment "
        "0 = no completed order). Also writes `ml.segment_summary` (size, revenue, orders, "
        "sessions, channel and price mix, top categories per segment) and "
        "`ml.segmentation_eval` (k and the bootstrap stability: ARI between the segments and "
        "refits on resampled persons). Too few active persons to choose k: all of them are "
        "one segment (the metadata says so)."
    ),
)
@fits_what_it_can(
    PERSON_SEGMENTS,
    {
        "ml.person_segments": {
            "person_id": "string",
            "segment_id": "int64",
            "segment_name": "string",
            "probability": "float64",
        },
        "ml.segmentation_eval": EVAL_COLUMNS,
    },
)
def person_segments(warehouse: WarehouseResource) -> dg.MaterializeResult:
    behaviour = warehouse.read_mart(marts.PERSON_BEHAVIOUR, ["person_id", *BEHAVIOUR_COLUMNS])
    interests = warehouse.read_mart(
        marts.PERSON_INTERESTS, ["person_id", "category", "weighted_activities"]
    )
    orders = person_orders(warehouse)
    with threadpool_limits(limits=1):
        result, why = attempt(segment_persons, behaviour, interests, orders)
    if result is None:
        result = one_segment(behaviour, interests)
    evaluation = result.evaluation()
    warehouse.replace_tables(
        {
            "ml.person_segments": result.assignments,
            "ml.segment_summary": result.summary,
            "ml.segmentation_eval": evaluation,
        }
    )
    figures = evaluation.set_index("metric")["value"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(result.assignments),
            "preview": markdown_preview(result.assignments),
            "k": result.k,
            "fit_samples": (
                f"k chosen on at most {SELECTION_SIZE:,} active persons, the model refined on at "
                f"most {FIT_SIZE:,} (seeded samples); every person assigned"
            ),
            "method": result.method,
            "bootstrap_stability_ari": dg.MetadataValue.float(
                float(figures.get("bootstrap_stability_ari", float("nan")))
            ),
            "segments": dg.MetadataValue.md(
                result.summary[["segment_id", "segment_name", "persons", "revenue_per_person"]]
                .round(2)
                .to_markdown(index=False)
            ),
            "model_selection": dg.MetadataValue.md(result.selection.round(1).to_markdown()),
            **(
                {"note": not_evaluated(f"one segment of every active person: {why}")} if why else {}
            ),
        }
    )


@dg.asset_check(
    asset=PERSON_SEGMENTS, description="Every profiled person is in exactly one segment."
)
def every_profile_segmented(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        unsegmented, duplicated = con.execute(
            f"""
            select
                count(*) filter (where s.person_id is null),
                (select count(*) - count(distinct person_id) from ml.person_segments)
            from {marts.PERSON_PROFILES} as p
            left join ml.person_segments as s on s.person_id = p.person_id
            """
        ).fetchone()
    return dg.AssetCheckResult(
        passed=unsegmented == 0 and duplicated == 0,
        metadata={"unsegmented_persons": unsegmented, "duplicated_persons": duplicated},
    )
