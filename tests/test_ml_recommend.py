"""Recommendations find planted tastes, never repeat a purchase, beat popularity on real data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.recommend import (
    EVAL_COLUMNS,
    MODELS,
    RECOMMENDATION_COLUMNS,
    RecommenderConfig,
    evaluate,
    recommend,
    temporal_split,
)

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
GROUPS, PER_GROUP, PER_CATEGORY = 6, 100, 30
EVENT_MIX = {
    "product_view": 0.55,
    "page_view": 0.05,
    "add_to_wishlist": 0.05,
    "add_to_cart": 0.15,
    "purchase": 0.2,
}


def _planted(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each group of persons shops one category (85% of events), favouring one brand in it."""
    rng = np.random.default_rng(seed)
    n_products = GROUPS * PER_CATEGORY
    products = pd.DataFrame(
        {
            "product_id": [f"sku{i:04d}" for i in range(n_products)],
            "category": [f"cat{i // PER_CATEGORY}" for i in range(n_products)],
            "brand": [None if i % 10 == 0 else f"brand{i % 3}" for i in range(n_products)],
        }
    )
    appeal = rng.lognormal(0.0, 1.0, PER_CATEGORY)  # some products simply sell better
    appeal /= appeal.sum()
    persons = np.repeat(np.arange(GROUPS * PER_GROUP), rng.poisson(20, GROUPS * PER_GROUP) + 3)
    group = persons // PER_GROUP
    category = np.where(
        rng.random(len(persons)) < 0.85, group, rng.integers(0, GROUPS, len(persons))
    )
    product = category * PER_CATEGORY + rng.choice(PER_CATEGORY, len(persons), p=appeal)
    interactions = pd.DataFrame(
        {
            "person_id": [f"p{person:04d}" for person in persons],
            "product_id": products["product_id"].to_numpy()[product],
            "event_type": rng.choice(list(EVENT_MIX), len(persons), p=list(EVENT_MIX.values())),
            "occurred_at": pd.Timestamp("2024-03-01", tz="UTC")
            + pd.to_timedelta(rng.uniform(0, 60, len(persons)), unit="D"),
        }
    )
    return interactions, products


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _planted()


@pytest.fixture(scope="module")
def planted_eval(planted) -> pd.DataFrame:
    interactions, products = planted
    return evaluate(interactions, products, holdout_days=10, ks=(5, 10))


def _ndcg10(scores: pd.DataFrame) -> dict[str, float]:
    at10 = scores.loc[(scores["metric"] == "ndcg") & (scores["k"] == 10)]
    return dict(zip(at10["model"], at10["value"], strict=True))


def test_models_that_learn_tastes_beat_popularity_on_planted_groups(planted_eval):
    assert tuple(planted_eval.columns) == EVAL_COLUMNS
    assert set(planted_eval["model"]) == set(MODELS)
    assert set(planted_eval["metric"]) == {"precision", "recall", "ndcg", "coverage"}
    assert planted_eval["value"].between(0, 1).all()
    ndcg = _ndcg10(planted_eval)
    # Measured: popularity 0.065; item_cf 0.297, user_cf 0.296, hybrid 0.296, content 0.204.
    for model in ("item_cf", "user_cf", "hybrid"):
        assert ndcg[model] >= 3.0 * ndcg["popularity"], (model, ndcg)
    assert ndcg["content"] >= 2.0 * ndcg["popularity"], ndcg
    coverage = planted_eval.query("metric == 'coverage' and k == 10").set_index("model")["value"]
    assert coverage["hybrid"] > 3 * coverage["popularity"], "personal lists reach more products"


@pytest.mark.parametrize("model", MODELS)
def test_lists_are_complete_ranked_and_never_repeat_a_purchase(planted, model):
    interactions, products = planted
    recs = recommend(interactions, products, model=model, n=10)
    assert tuple(recs.columns) == RECOMMENDATION_COLUMNS
    assert recs["rank"].dtype == "int64" and recs["score"].dtype == "float64"
    assert recs["person_id"].nunique() == interactions["person_id"].nunique()
    ranks = recs.groupby("person_id")["rank"].agg(list)
    assert all(ranks.map(lambda rank: rank == list(range(1, 11)))), "ranks 1..10 per person"
    assert not recs.duplicated(["person_id", "product_id"]).any()
    assert (recs.groupby("person_id")["score"].diff().dropna() <= 0).all(), "best first"
    bought = interactions.loc[interactions["event_type"] == "purchase", ["person_id", "product_id"]]
    assert recs.merge(bought.drop_duplicates()).empty, "a purchased product came back"


def test_lists_follow_the_planted_category(planted):
    interactions, products = planted
    recs = recommend(interactions, products, model="hybrid", n=10)
    category = recs["product_id"].map(products.set_index("product_id")["category"])
    own = "cat" + (recs["person_id"].str[1:].astype(int) // PER_GROUP).astype(str)
    assert (category == own).mean() > 0.9  # measured 0.9998; the groups shop it 85% of the time


def test_a_person_without_history_gets_the_most_popular_products(planted):
    interactions, products = planted
    everyone = [*interactions["person_id"].unique()[:5], "newcomer"]
    popular = recommend(interactions, products, model="popularity", persons=everyone)
    hybrid = recommend(interactions, products, model="hybrid", persons=everyone)
    assert set(hybrid["person_id"]) == set(everyone)
    newcomer = hybrid.loc[hybrid["person_id"] == "newcomer", "product_id"].tolist()
    assert newcomer == popular.loc[popular["person_id"] == "newcomer", "product_id"].tolist()
    most_engaged = interactions.groupby("product_id")["person_id"].nunique().nlargest(15).index
    assert len(set(newcomer) & set(most_engaged)) >= 8
    assert len(newcomer) == 10


def test_same_data_same_lists_whatever_the_row_order_or_time_zone(planted):
    interactions, products = planted
    first = recommend(interactions, products, model="hybrid")
    assert first.attrs["hybrid_weights"], "the blend used is reported"
    shuffled = interactions.sample(frac=1.0, random_state=7).reset_index(drop=True)
    shuffled["occurred_at"] = shuffled["occurred_at"].dt.tz_localize(None)  # naive = UTC
    second = recommend(shuffled, products.sample(frac=1.0, random_state=3), model="hybrid")
    pd.testing.assert_frame_equal(first, second)


def test_small_chunks_change_nothing(planted):
    interactions, products = planted
    weights = {"item_cf": 1.0, "user_cf": 0.5, "content": 0.2, "popularity": 0.1}
    whole = RecommenderConfig(hybrid_weights=weights)
    pieces = RecommenderConfig(hybrid_weights=weights, chunk_cells=2_000)  # 3 persons a chunk
    for model in ("item_cf", "user_cf", "hybrid"):
        pd.testing.assert_frame_equal(
            recommend(interactions, products, model=model, config=whole),
            recommend(interactions, products, model=model, config=pieces),
        )


def test_neighbours_in_latent_space_still_find_the_groups(planted):
    interactions, products = planted
    # exact_budget=0 forces the seeded-SVD path that large data takes; a small pool too.
    latent = RecommenderConfig(exact_budget=0, person_dims=16, neighbour_pool=300)
    scores = evaluate(
        interactions, products, 10, ks=(10,), models=["popularity", "user_cf"], config=latent
    )
    ndcg = _ndcg10(scores)
    assert ndcg["user_cf"] >= 3.0 * ndcg["popularity"], ndcg  # measured 0.291 vs 0.065


def test_temporal_split_tests_later_new_purchases_of_known_persons(planted):
    interactions, _ = planted
    split = temporal_split(interactions, holdout_days=10)
    assert split.train["occurred_at"].max() < split.cutoff
    assert split.cutoff == interactions["occurred_at"].max() - pd.Timedelta(days=10)
    assert set(split.test["person_id"]) <= set(split.train["person_id"])
    bought = split.train.loc[split.train["event_type"] == "purchase", ["person_id", "product_id"]]
    assert split.test.merge(bought.drop_duplicates()).empty
    # Without purchases the strongest interaction present becomes the target.
    no_sales = interactions.loc[interactions["event_type"] != "purchase"]
    carts = temporal_split(no_sales, holdout_days=10)
    later = no_sales.loc[no_sales["occurred_at"] >= carts.cutoff]
    expected = later.loc[later["event_type"] == "add_to_cart", ["person_id", "product_id"]]
    expected = expected.loc[expected["person_id"].isin(carts.train["person_id"])]
    assert len(carts.test) == len(expected.drop_duplicates()) > 0


def test_missing_column_is_a_clear_error(planted):
    interactions, products = planted
    with pytest.raises(ValueError, match="occurred_at"):
        recommend(interactions.drop(columns="occurred_at"), products)
    with pytest.raises(ValueError, match="event_type"):
        evaluate(interactions.drop(columns="event_type"))
    with pytest.raises(ValueError, match="unknown model"):
        recommend(interactions, model="deep_magic")


def _real(folder: str) -> Path:
    path = REAL_DATA / folder
    if not path.is_dir():
        pytest.skip(f"real dataset not found: {path}")
    return path


def test_online_retail_hybrid_beats_popularity():
    """UCI Online Retail: invoice lines as purchases, a 30-day holdout (2011-11-09 onwards).

    A line counts when it has a customer, a positive quantity, is not a cancellation (invoice
    'C...') and is a product (stock code starting with five digits; POST, M, BANK CHARGES...
    are not). There are no categories: a product's category is the last word of its most
    common description (the product type noun: HOLDER, LANTERN, MUG, ...), no brand.
    """
    raw = pd.read_csv(
        _real("online_retail_uci") / "online_retail.csv.gz",
        usecols=["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "CustomerID"],
        dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": "Int64"},
        parse_dates=["InvoiceDate"],
    )
    kept = (
        raw["CustomerID"].notna()
        & (raw["Quantity"] > 0)
        & ~raw["InvoiceNo"].str.startswith("C")
        & raw["StockCode"].str.match(r"^\d{5}")
    )
    lines = raw.loc[kept]
    interactions = pd.DataFrame(
        {
            "person_id": lines["CustomerID"].astype(str),
            "product_id": lines["StockCode"].str.upper(),
            "event_type": "purchase",
            "occurred_at": lines["InvoiceDate"],
        }
    )
    described = raw.dropna(subset=["Description"]).assign(
        product_id=lambda frame: frame["StockCode"].str.upper()
    )
    description = described.groupby("product_id")["Description"].agg(lambda d: d.mode().iloc[0])
    products = pd.DataFrame(
        {
            "product_id": description.index,
            "category": description.str.strip().str.split().str[-1].to_numpy(),
        }
    )
    scores = evaluate(interactions, products, holdout_days=30, ks=(10,))
    ndcg = _ndcg10(scores)
    # Measured: popularity 0.0555, hybrid 0.1017 (1.83x; tuned to user_cf alone, 0.1017;
    # item_cf 0.0654, content 0.0417). Floors with a safety gap:
    assert ndcg["hybrid"] >= 1.4 * ndcg["popularity"], ndcg
    assert ndcg["user_cf"] >= 1.4 * ndcg["popularity"], ndcg


def test_taobao_hybrid_beats_popularity():
    """Taobao UserBehavior (814 users, 9 days): the last 2 days are the holdout.

    Buys are few (about 400 new buyer-product pairs in two days), so the target is the next
    strong interactions: buy, cart or fav (about 2,200 pairs from 570 persons), the intent a
    recommender is there to trigger; page views are too cheap to count as success.
    """
    raw = pd.read_csv(
        _real("taobao_user_behavior_subset") / "UserBehavior_first814users.csv.gz",
        header=None,
        names=["user_id", "item_id", "category_id", "behavior_type", "timestamp"],
    )
    interactions = pd.DataFrame(
        {
            "person_id": raw["user_id"].astype(str),
            "product_id": raw["item_id"].astype(str),
            "event_type": raw["behavior_type"],
            "occurred_at": pd.to_datetime(raw["timestamp"], unit="s", utc=True),
        }
    )
    products = pd.DataFrame(
        {"product_id": raw["item_id"].astype(str), "category": raw["category_id"].astype(str)}
    ).drop_duplicates("product_id")
    scores = evaluate(
        interactions, products, holdout_days=2, ks=(10,), test_events={"buy", "cart", "fav"}
    )
    ndcg = _ndcg10(scores)
    # Measured: popularity 0.0024 (55k products, 814 persons: nothing is popular), hybrid
    # 0.0386 (16x; item_cf 0.035, content 0.006, user_cf 0.003). Floors with a safety gap:
    assert ndcg["hybrid"] >= 5 * ndcg["popularity"], ndcg
    assert ndcg["hybrid"] >= 0.02, ndcg
