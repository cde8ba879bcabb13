"""Product recommendations per person, with an offline evaluation against a baseline."""

from dataclasses import replace

import dagster as dg
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from dagster_dmp.assets.ml.inputs import (
    PERSON_PRODUCT_INTERACTIONS,
    PERSON_PROFILES,
    PRODUCTS,
    person_product_interactions,
    product_catalogue,
    profiled_persons,
)
from dagster_dmp.assets.ml.quality import (
    Floor,
    attempt,
    fits_what_it_can,
    metric_floor_check,
    not_evaluated,
)
from dagster_dmp.resources import WarehouseResource, markdown_preview
from ml.frames import ModelFitError, bulk_start, seeded_sample
from ml.recommend import COMPONENTS, RecommenderConfig, evaluate, recommend, temporal_split

RECOMMENDATIONS = dg.AssetKey(["ml", "recommendations"])
TOP_N = 10
# Persons whose interactions the offline evaluation (and the hybrid's choice within it) fits
# and scores on: a seeded sample of this many when there are more; the lists fit on everyone.
# Evaluating eight models took 57 s of CPU at 45k persons and grows faster than the persons.
EVALUATION_PERSONS = 25_000
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
    deps=[PERSON_PRODUCT_INTERACTIONS, PRODUCTS, PERSON_PROFILES],
    group_name="ml",
    kinds={"scipy", "duckdb"},
    description=(
        f"Top {TOP_N} products per profiled person from implicit feedback (event type weights, "
        "time decay relative to the data's span): the hybrid is the model that validates best "
        "on the latest history among popularity, the person's own history, item-kNN, EASE, "
        "implicit ALS, user- and item-based CF and category/brand content, or a blend of the "
        "best three where it beats that model with confidence; products the person already "
        "has (bought, or any seen where nobody comes back to them) excluded; persons without "
        "history get the best-sellers. `ml.recommendation_eval` holds precision, recall, NDCG "
        "and catalogue coverage at 5/10/20 for every model on a temporal holdout (the last "
        f"fifth of the days; of at most {EVALUATION_PERSONS:,} persons, a seeded sample), "
        "and the hybrid's choice: its weights (`hybrid_weight`), each model's validation "
        "NDCG@10 (`validation_ndcg`) and the validation persons. Without a holdout (nobody "
        "seen before it came back) the lists are still written, the hybrid chosen as the "
        "latest history allows, and the metadata says what was not evaluated."
    ),
)
@fits_what_it_can(RECOMMENDATIONS, EMPTY)
def recommendations(warehouse: WarehouseResource) -> dg.MaterializeResult:
    interactions = person_product_interactions(warehouse)
    if interactions.empty:
        raise ModelFitError("no product views, carts or purchases by known persons to learn from")
    products = product_catalogue(warehouse)
    persons = profiled_persons(warehouse)
    # The span of the bulk of the history: stray early events must not stretch the holdout
    # over all the dense days.
    times = interactions["occurred_at"]
    span_days = (times.max() - bulk_start(times)).days
    holdout_days = float(min(14, max(2, span_days // 5)))
    evaluated = _of_sampled_persons(interactions, EVALUATION_PERSONS)
    with threadpool_limits(limits=1):
        evaluation, why = attempt(evaluate, evaluated, products, holdout_days=holdout_days)
        # The lists use the hybrid the evaluation chose (on its training part, so the figures
        # describe it); not evaluated, recommend() chooses it itself on all the history.
        config = RecommenderConfig()
        choice = None if evaluation is None else evaluation.attrs["hybrid_choice"]
        if choice is not None:
            config = replace(
                config,
                hybrid_weights=choice["weights"],
                half_life_share=choice["half_life_share"],
            )
        lists = recommend(
            interactions, products, model="hybrid", n=TOP_N, persons=persons, config=config
        )
        choice = choice or lists.attrs.get("hybrid_choice", {})
    test_pairs = len(temporal_split(evaluated, holdout_days).test)
    if evaluation is None:
        return _without_evaluation(warehouse, lists, holdout_days, test_pairs, why, choice)
    ndcg = evaluation[(evaluation["metric"] == "ndcg") & (evaluation["k"] == TOP_N)]
    ndcg = ndcg.set_index("model")["value"]
    summary = [("hybrid", "test_pairs", float(test_pairs))]
    # Popularity can find nothing (a long tail nobody shares): then the lift is undefined and
    # not written (the floor check abstains), rather than a division by zero.
    lift_note = "popularity NDCG@10 is 0: the lift over it is undefined, not written"
    if ndcg["popularity"] > 0:
        summary.append(("hybrid", "ndcg_lift_over_popularity", ndcg["hybrid"] / ndcg["popularity"]))
        lift_note = f"{ndcg['hybrid'] / ndcg['popularity']:.2f}x popularity's NDCG@10"
    summary += _choice_rows(choice)
    summary = pd.DataFrame(
        [(model, metric, TOP_N, value) for model, metric, value in summary],
        columns=["model", "metric", "k", "value"],
    )
    warehouse.replace_tables(
        {
            "ml.recommendations": lists,
            "ml.recommendation_eval": pd.concat([evaluation, summary], ignore_index=True),
        }
    )
    return dg.MaterializeResult(
        metadata={
            **_lists_metadata(lists, holdout_days, test_pairs, choice),
            "hybrid_lift": lift_note,
            "ndcg_at_10": dg.MetadataValue.md(ndcg.round(4).to_frame("ndcg@10").to_markdown()),
            "evaluation": dg.MetadataValue.md(
                evaluation[evaluation["k"] == TOP_N]
                .pivot(index="model", columns="metric", values="value")
                .round(4)
                .to_markdown()
            ),
        }
    )


def _of_sampled_persons(interactions: pd.DataFrame, size: int) -> pd.DataFrame:
    """The interactions of a seeded sample of `size` persons (all of them when fewer)."""
    persons = pd.Series(np.sort(interactions["person_id"].dropna().unique()))
    if len(persons) <= size:
        return interactions
    return interactions[interactions["person_id"].isin(seeded_sample(persons, size))]


def _choice_rows(choice: dict) -> list[tuple[str, str, float]]:
    """The hybrid's choice as eval rows: each component's weight in it and validation NDCG@10,
    and the persons validated on."""
    weights = choice.get("weights", {})
    validation = choice.get("validation_ndcg", {})
    rows = [(part, "hybrid_weight", float(weights.get(part, 0.0))) for part in COMPONENTS]
    rows += [(part, "validation_ndcg", float(value)) for part, value in validation.items()]
    rows.append(("hybrid", "validation_persons", float(choice.get("validation_persons", 0))))
    return rows


def _without_evaluation(
    warehouse: WarehouseResource,
    lists: pd.DataFrame,
    holdout_days: float,
    test_pairs: int,
    why: str,
    choice: dict,
) -> dg.MaterializeResult:
    """The lists, and an eval table holding only the (too few) test pairs: the floor abstains."""
    evidence = pd.DataFrame(
        {"model": ["hybrid"], "metric": ["test_pairs"], "k": [TOP_N], "value": [float(test_pairs)]}
    )
    warehouse.replace_tables({"ml.recommendations": lists, "ml.recommendation_eval": evidence})
    return dg.MaterializeResult(
        metadata={
            **_lists_metadata(lists, holdout_days, test_pairs, choice),
            "note": not_evaluated(why),
        }
    )


def _lists_metadata(
    lists: pd.DataFrame, holdout_days: float, test_pairs: int, choice: dict
) -> dict[str, object]:
    return {
        "dagster/row_count": len(lists),
        "preview": markdown_preview(lists.sort_values(["person_id", "rank"])),
        "persons": int(lists["person_id"].nunique()),
        "holdout_days": holdout_days,
        "test_pairs": test_pairs,
        "evaluated_on": (
            f"the interactions of at most {EVALUATION_PERSONS:,} persons (a seeded sample)"
        ),
        "excluded": lists.attrs.get("exclude", ""),
        "hybrid_weights": dg.MetadataValue.json(lists.attrs.get("hybrid_weights", {})),
        "hybrid_choice": choice.get("reason", ""),
        "hybrid_half_life_share": str(choice.get("half_life_share")),
    }


recommendation_lift_floor = metric_floor_check(RECOMMENDATIONS, LIFT_FLOOR)
