"""Lookalikes of the best customers: who else resembles them."""

import dagster as dg
import pandas as pd

import marts
from dagster_dmp.assets.ml.inputs import PERSON_BEHAVIOUR, PERSON_INTERESTS, PERSON_PROFILES
from dagster_dmp.assets.ml.quality import fits_what_it_can
from dagster_dmp.resources import WarehouseResource, markdown_preview
from ml.frames import ModelFitError
from ml.lookalike import EVALUATION_SIZE, find_lookalikes

LOOKALIKES = dg.AssetKey(["ml", "lookalikes"])
SEED_SEGMENT = "champions"  # marts.person_profiles.rfm_segment of the seed audience
TOP_N = 1000

# Value and activity (profile) plus taste (behaviour shares): profile features alone cannot
# tell what a person likes, and planted personas differ mostly in that (bench/ml_quality.py:
# 44-77% precision with profile features alone, 91-98% with both).
FEATURES_SQL = f"""
    select
        profiles.person_id,
        profiles.rfm_segment,
        profiles.recency_days,
        profiles.frequency,
        profiles.monetary,
        profiles.engagement_score,
        profiles.sessions,
        profiles.web_events,
        profiles.app_events,
        profiles.social_engagements,
        profiles.price_index,
        behaviour.app_sessions / nullif(behaviour.sessions, 0) as app_session_share,
        behaviour.events / nullif(behaviour.sessions, 0) as events_per_session,
        behaviour.discounted_order_lines / nullif(behaviour.order_lines, 0) as discount_share,
        behaviour.store_orders / nullif(behaviour.orders, 0) as store_order_share,
        behaviour.budget_tier_interactions / nullif(tiers.total, 0) as budget_tier_share,
        behaviour.premium_tier_interactions / nullif(tiers.total, 0) as premium_tier_share
    from {marts.PERSON_PROFILES} as profiles
    left join {marts.PERSON_BEHAVIOUR} as behaviour
        on profiles.person_id = behaviour.person_id
    left join (
        select
            person_id,
            budget_tier_interactions + mid_tier_interactions + premium_tier_interactions as total
        from {marts.PERSON_BEHAVIOUR}
    ) as tiers
        on profiles.person_id = tiers.person_id
    order by profiles.person_id
"""


def lookalike_features(warehouse: WarehouseResource) -> pd.DataFrame:
    """One row per person: profile features, behaviour shares and category interest shares."""
    features = warehouse.read_frame(FEATURES_SQL)
    # Never active is the most lapsed a person can be, not a typical recency.
    features["recency_days"] = features["recency_days"].fillna(features["recency_days"].max() + 1)
    counts = warehouse.read_mart(
        marts.PERSON_INTERESTS, ["person_id", "category", "weighted_activities"]
    ).pivot_table(index="person_id", columns="category", values="weighted_activities", fill_value=0)
    shares = counts.div(counts.sum(axis=1), axis=0).add_prefix("interest_share_")
    return features.merge(shares, left_on="person_id", right_index=True, how="left")


@dg.asset(
    key=LOOKALIKES,
    deps=[PERSON_PROFILES, PERSON_BEHAVIOUR, PERSON_INTERESTS],
    group_name="ml",
    kinds={"scikit-learn", "duckdb"},
    description=(
        f"The {TOP_N} persons outside the '{SEED_SEGMENT}' RFM segment who look most like it: "
        "a seed-versus-rest logistic model on scaled profile features (recency, frequency, "
        "spend, engagement, activity, price index) and taste (category interest shares, price "
        "tier, app, discount and store shares). seed_auc in the metadata says how well the "
        "features tell the seed apart (0.5 = not at all). Audiences reuse "
        "`ml.lookalike.find_lookalikes` with any seed."
    ),
)
@fits_what_it_can(
    LOOKALIKES,
    {
        "ml.lookalikes": {
            "person_id": "string",
            "rank": "int64",
            "score": "float64",
            "seed_audience": "string",
        }
    },
)
def lookalikes(warehouse: WarehouseResource) -> dg.MaterializeResult:
    features = lookalike_features(warehouse)
    seed = features.loc[features["rfm_segment"] == SEED_SEGMENT, "person_id"]
    if seed.empty:
        raise ModelFitError(f"nobody is in '{SEED_SEGMENT}' to find lookalikes of")
    result = find_lookalikes(features.drop(columns="rfm_segment"), seed, top_n=TOP_N)
    ranking = result.ranking.assign(seed_audience=f"rfm_segment = {SEED_SEGMENT}")
    warehouse.replace_tables({"ml.lookalikes": ranking})
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(ranking),
            "preview": markdown_preview(ranking.sort_values("rank")),
            "seed_size": result.seed_size,
            "seed_auc": dg.MetadataValue.float(result.seed_auc),
            "seed_auc_measured_on": (
                f"{min(len(features), EVALUATION_SIZE):,} persons (a seeded sample of at most "
                f"{EVALUATION_SIZE:,}), 5 folds"
            ),
            "what_makes_a_lookalike": dg.MetadataValue.md(
                result.coefficients.sort_values().round(3).to_frame().to_markdown()
            ),
        }
    )
