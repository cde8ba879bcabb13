"""ML assets: read the warehouse, run a model from `ml/`, write `ml.*` tables with quality
metadata and checks that hold the metrics to their floors. One module per capability."""

from dagster_dmp.assets.ml.experiments import ab_test_results
from dagster_dmp.assets.ml.lookalikes import lookalikes
from dagster_dmp.assets.ml.optimise import budget_allocation, budget_optimal_within_budget
from dagster_dmp.assets.ml.propensity import propensity_auc_floor, propensity_scores
from dagster_dmp.assets.ml.recommendations import recommendation_lift_floor, recommendations
from dagster_dmp.assets.ml.segmentation import every_profile_segmented, person_segments
from dagster_dmp.assets.ml.value import customer_value, customer_value_r2_floor

ml_assets = [
    person_segments,
    recommendations,
    propensity_scores,
    customer_value,
    ab_test_results,
    lookalikes,
    budget_allocation,
]
ml_checks = [
    every_profile_segmented,
    recommendation_lift_floor,
    propensity_auc_floor,
    customer_value_r2_floor,
    budget_optimal_within_budget,
]
