"""Lookalikes of the best customers: who else resembles them."""

import dagster as dg

from dagster_dmp.assets.ml.inputs import PERSON_PROFILES
from dagster_dmp.resources import WarehouseResource
from ml.lookalike import find_lookalikes

LOOKALIKES = dg.AssetKey(["ml", "lookalikes"])
SEED_SEGMENT = "champions"  # marts.person_profiles.rfm_segment of the seed audience
TOP_N = 1000
FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "engagement_score",
    "sessions",
    "web_events",
    "app_events",
    "social_engagements",
    "price_index",
)


@dg.asset(
    key=LOOKALIKES,
    deps=[PERSON_PROFILES],
    group_name="ml",
    kinds={"scikit-learn", "duckdb"},
    description=(
        f"The {TOP_N} persons outside the '{SEED_SEGMENT}' RFM segment who look most like it "
        "(a seed-versus-rest logistic model on scaled profile features); seed_auc in the "
        "metadata says how well the features tell the seed apart (0.5 = not at all). "
        "Audiences (issue 7) reuse `ml.lookalike.find_lookalikes` with any seed."
    ),
)
def lookalikes(warehouse: WarehouseResource) -> dg.MaterializeResult:
    profiles = warehouse.read_frame(
        f"select person_id, rfm_segment, {', '.join(FEATURES)} from marts.person_profiles"
        " order by person_id"
    )
    seed = profiles.loc[profiles["rfm_segment"] == SEED_SEGMENT, "person_id"]
    # Never active is the most lapsed a person can be, not a typical recency.
    profiles["recency_days"] = profiles["recency_days"].fillna(profiles["recency_days"].max() + 1)
    result = find_lookalikes(profiles.drop(columns="rfm_segment"), seed, top_n=TOP_N)
    ranking = result.ranking.assign(seed_audience=f"rfm_segment = {SEED_SEGMENT}")
    warehouse.replace_tables({"ml.lookalikes": ranking})
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(ranking),
            "seed_size": result.seed_size,
            "seed_auc": dg.MetadataValue.float(result.seed_auc),
            "what_makes_a_lookalike": dg.MetadataValue.md(
                result.coefficients.sort_values().round(3).to_frame().to_markdown()
            ),
        }
    )
