"""Product recommendations per person, with an offline evaluation against a baseline."""

from dataclasses import replace

import dagster as dg
import pandas as pd
from threadpoolctl import threadpool_limits

from dagster_dmp.assets.ml.inputs import (
    ACTIVITIES,
    ORDER_LINES,
    ORDERS,
    PERSON_PRODUCT_INTERACTIONS_SQL,
    PERSON_PROFILES,
    PERSONS_SQL,
    PRODUCTS,
    PRODUCTS_SQL,
)
from dagster_dmp.assets.ml.quality import (
    Floor,
    attempt,
    fits_what_it_can,
    metric_floor_check,
    not_evaluated,
)
from dagster_dmp.resources import WarehouseResource, markdown_preview
from ml.frames import ModelFitError
from ml.recommend import RecommenderConfig, evaluate, recommend, temporal_split

RECOMMENDATIONS = dg.AssetKey(["ml", "recommendations"])
TOP_N = 10
LIFT_FLOOR = Floor(
    table="ml.recommendation_eval",
    model="hybrid",
    metric="ndcg_lift_over_popularity",
    minimum=1.0,
    why="personalised lists that rank worse than best-sellers are not worth showing",
    evidence_metric="test_pairs",
    min_evidence=50,
)
EMPTY = {
    "ml.recommendations": {
        "person_id": "string",
        "rank": "int64",
        "product_id": "string",
        "score": "float64",
    },
    "ml.recommendation_eval": {
        "model": "string",
        "metric": "string",
        "k": "int64",
        "value": "float64",
    },
}


@dg.asset(
    key=RECOMMENDATIONS,
    deps=[ACTIVITIES, ORDERS, ORDER_LINES, PRODUCTS, PERSON_PROFILES],
    group_name="ml",
    kinds={"scipy", "duckdb"},
    description=(
        f"Top {TOP_N} products per profiled person from implicit feedback (event type weights, "
        "time decay): a hybrid of item- and user-based collaborative filtering, category/brand "
        "content affinity and popularity, blend weights tuned on the latest history; "
        "purchased products excluded; persons without history get the best-sellers. "
        "`ml.recommendation_eval` holds precision, recall, NDCG and catalogue coverage at "
        "5/10/20 for every model on a temporal holdout (the last fifth of the days). Without "
        "a holdout (nobody seen before it came back) the lists are still written, the blend "
        "tuned as the latest history allows, and the metadata says what was not evaluated."
    ),
)
@fits_what_it_can(RECOMMENDATIONS, EMPTY)
def recommendations(warehouse: WarehouseResource) -> dg.MaterializeResult:
    interactions = warehouse.read_frame(PERSON_PRODUCT_INTERACTIONS_SQL)
    if interactions.empty:
        raise ModelFitError("no product views, carts or purchases by known persons to learn from")
    products = warehouse.read_frame(PRODUCTS_SQL)
    persons = warehouse.read_frame(PERSONS_SQL)["person_id"]
    span_days = (interactions["occurred_at"].max() - interactions["occurred_at"].min()).days
    holdout_days = float(min(14, max(2, span_days // 5)))
    with threadpool_limits(limits=1):
        evaluation, why = attempt(evaluate, interactions, products, holdout_days=holdout_days)
        # Not evaluated: recommend() tunes the blend itself (the defaults when it cannot).
        weights = None if evaluation is None else evaluation.attrs["hybrid_weights"]
        lists = recommend(
            interactions,
            products,
            model="hybrid",
            n=TOP_N,
            persons=persons,
            config=replace(RecommenderConfig(), hybrid_weights=weights),
        )
    test_pairs = len(temporal_split(interactions, holdout_days).test)
    if evaluation is None:
        return _without_evaluation(warehouse, lists, holdout_days, test_pairs, why)
    ndcg = evaluation[(evaluation["metric"] == "ndcg") & (evaluation["k"] == TOP_N)]
    ndcg = ndcg.set_index("model")["value"]
    summary = pd.DataFrame(
        {
            "model": ["hybrid", "hybrid"],
            "metric": ["ndcg_lift_over_popularity", "test_pairs"],
            "k": [TOP_N, TOP_N],
            "value": [ndcg["hybrid"] / ndcg["popularity"], float(test_pairs)],
        }
    )
    warehouse.replace_tables(
        {
            "ml.recommendations": lists,
            "ml.recommendation_eval": pd.concat([evaluation, summary], ignore_index=True),
        }
    )
    return dg.MaterializeResult(
        metadata={
            **_lists_metadata(lists, holdout_days, test_pairs, weights),
            "ndcg_at_10": dg.MetadataValue.md(ndcg.round(4).to_frame("ndcg@10").to_markdown()),
            "evaluation": dg.MetadataValue.md(
                evaluation[evaluation["k"] == TOP_N]
                .pivot(index="model", columns="metric", values="value")
                .round(4)
                .to_markdown()
            ),
        }
    )


def _without_evaluation(
    warehouse: WarehouseResource,
    lists: pd.DataFrame,
    holdout_days: float,
    test_pairs: int,
    why: str,
) -> dg.MaterializeResult:
    """The lists, and an eval table holding only the (too few) test pairs: the floor abstains."""
    evidence = pd.DataFrame(
        {"model": ["hybrid"], "metric": ["test_pairs"], "k": [TOP_N], "value": [float(test_pairs)]}
    )
    warehouse.replace_tables({"ml.recommendations": lists, "ml.recommendation_eval": evidence})
    weights = lists.attrs.get("hybrid_weights", {})
    return dg.MaterializeResult(
        metadata={
            **_lists_metadata(lists, holdout_days, test_pairs, weights),
            "note": not_evaluated(why),
        }
    )


def _lists_metadata(
    lists: pd.DataFrame, holdout_days: float, test_pairs: int, weights: dict
) -> dict[str, object]:
    return {
        "dagster/row_count": len(lists),
        "preview": markdown_preview(lists.sort_values(["person_id", "rank"])),
        "persons": int(lists["person_id"].nunique()),
        "holdout_days": holdout_days,
        "test_pairs": test_pairs,
        "hybrid_weights": dg.MetadataValue.json(weights),
    }


recommendation_lift_floor = metric_floor_check(RECOMMENDATIONS, LIFT_FLOOR)
