"""Recommendations find planted tastes, never repeat a purchase, beat popularity on real data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ml.recommend as rec
from ml.recommend import (
    COMPONENTS,
    EVAL_COLUMNS,
    MODELS,
    RECOMMENDATION_COLUMNS,
    HybridChoice,
    RecommenderConfig,
    choose_hybrid,
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
    # Measured: popularity 0.067; ease 0.307, user_cf 0.292, item_knn 0.290, item_cf 0.290,
    # als 0.260, content 0.208, history 0.186; hybrid 0.294 (item_knn, undecayed).
    for model in ("item_cf", "item_knn", "ease", "als", "user_cf", "hybrid"):
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
    hybrid = recommend(interactions, products, model="hybrid", persons=everyone)
    # Popularity under the time decay the hybrid chose (recent or all-time best-sellers).
    decay = RecommenderConfig(half_life_share=hybrid.attrs["hybrid_choice"]["half_life_share"])
    popular = recommend(interactions, products, "popularity", persons=everyone, config=decay)
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


ITEM_ITEM_MODELS = ("item_cf", "item_knn", "ease")


def test_no_product_is_its_own_neighbour(planted):
    """Every item-item model has a zero diagonal, so a product the person has comes back
    only through other products: one nobody else touched, viewed by a person who did
    nothing else, is no candidate (under the purchase rule nothing excludes it)."""
    interactions, products = planted
    loner = pd.DataFrame(
        {
            "person_id": ["loner"] * 3,
            "product_id": ["sku_lonely"] * 3,
            "event_type": ["product_view", "product_view", "add_to_cart"],
            "occurred_at": interactions["occurred_at"].max() - pd.to_timedelta([3, 2, 1], "D"),
        }
    )
    events = pd.concat([interactions, loner], ignore_index=True)
    config = RecommenderConfig(exclude="purchased")
    fitted = rec._fit(rec._clean(events), products, None, config)
    for model in ("item_cf", "item_knn"):
        assert not rec._item_similarity(fitted, model).diagonal().any(), model
    assert not np.diag(rec._ease(fitted)).any()
    for model in ITEM_ITEM_MODELS:
        recs = recommend(events, products, model=model, persons=["loner"], config=config)
        assert "sku_lonely" not in set(recs["product_id"]), model
    # Showing it again is the explicit job of `history`, the person's own products.
    again = recommend(events, products, model="history", persons=["loner"], config=config)
    assert again["product_id"].iloc[0] == "sku_lonely"


def test_the_seen_rule_never_returns_a_product_the_person_interacted_with(planted):
    interactions, products = planted
    seen = interactions[["person_id", "product_id"]].drop_duplicates()
    for model in ("item_knn", "ease", "als", "history", "hybrid"):
        recs = recommend(
            interactions, products, model=model, config=RecommenderConfig(exclude="seen")
        )
        assert recs.attrs["exclude"] == "seen"
        assert recs.merge(seen).empty, model
        assert (recs.groupby("person_id").size() == 10).all(), model


def test_auto_rule_excludes_seen_products_where_nobody_comes_back(planted):
    """A ratings log (one 'view' per person and product, never repeated) makes 'auto' the
    seen rule; the planted shop, where persons buy what they viewed, the purchase rule."""
    interactions, products = planted
    ratings = interactions.drop_duplicates(["person_id", "product_id"]).assign(event_type="view")
    recs = recommend(ratings, products, model="ease")
    assert recs.attrs["exclude"] == "seen"
    assert recs.merge(ratings[["person_id", "product_id"]]).empty
    assert recommend(interactions, products, model="ease").attrs["exclude"] == "purchased"
    assert temporal_split(ratings, holdout_days=10).exclude == "seen"


def test_time_decay_is_relative_to_the_data_span(planted):
    """The same history over a day or over two years decays alike: the lists are equal."""
    interactions, products = planted
    start = interactions["occurred_at"].min()
    offsets = interactions["occurred_at"] - start
    span = offsets.max()
    lists = []
    for length in (pd.Timedelta(days=1), pd.Timedelta(days=730)):
        stretched = interactions.assign(occurred_at=start + offsets / span * length)
        lists.append(recommend(stretched, products, model="item_knn"))
    pd.testing.assert_frame_equal(lists[0], lists[1], check_exact=False, rtol=1e-9)
    # The oldest event keeps 1/16 of its weight by default, never next to nothing.
    events = rec._clean(interactions)
    half_life = rec._half_life(events, events["occurred_at"].max(), RecommenderConfig())
    assert half_life == pytest.approx(span / pd.Timedelta(days=1) * rec.HALF_LIFE_SHARE)


def _blend_case(persons: int, complementary: bool) -> tuple[dict, dict]:
    """Validation data for two components over three candidates (relevant, a, b).

    Complementary: each component puts its own distractor first and the relevant product
    second, so each alone scores 1/log2(3) and an even blend ranks the relevant one first.
    Otherwise: the first component ranks the relevant product first, the second never."""
    first = np.tile([0.9, 1.0, 0.0] if complementary else [1.0, 0.5, 0.0], (persons, 1))
    second = np.tile([0.9, 0.0, 1.0] if complementary else [0.0, 0.5, 1.0], (persons, 1))
    data = {
        "truth": np.tile([1.0, 0.0, 0.0], (persons, 1)),
        "invalid": np.zeros((persons, 3), dtype=bool),
        "idcg": np.ones(persons),
        "item_knn": first.astype(np.float32),
        "ease": second.astype(np.float32),
    }
    alone = 1 / np.log2(3) if complementary else 1.0
    ndcg = {
        "item_knn": np.full(persons, alone),
        "ease": np.full(persons, 1 / np.log2(3) if complementary else 0.5),
    }
    return ndcg, data


def _settled(persons: int, complementary: bool, minimum: int = 200) -> HybridChoice:
    ndcg, data = _blend_case(persons, complementary)
    means = {part: float(ndcg[part].mean()) if part in ndcg else 0.0 for part in COMPONENTS}
    choice = HybridChoice({"item_knn": 1.0}, "item_knn", "", "purchased", persons, means)
    rec._settle_blend(choice, ndcg, data, RecommenderConfig(min_tune_persons=minimum))
    return choice


def test_the_hybrid_blends_only_when_the_blend_beats_its_best_component_with_confidence():
    blend = _settled(400, complementary=True)
    assert blend.chosen == "blend" and set(blend.weights) == {"item_knn", "ease"}
    assert blend.gain_ci[0] > 0
    assert blend.blend_ndcg > max(blend.validation_ndcg.values())
    # The same evidence from too few persons: no blend is tuned, the best component stays.
    few = _settled(150, complementary=True)
    assert few.chosen == "item_knn" and few.weights == {"item_knn": 1.0}
    assert "too few" in few.reason
    # A blend that adds nothing (the grid holds each component alone): the component stays.
    dominated = _settled(400, complementary=False)
    assert dominated.chosen == "item_knn" and dominated.weights == {"item_knn": 1.0}
    assert "does not exclude 0" in dominated.reason


def test_the_hybrid_never_picks_a_blend_below_its_best_component_on_validation(planted):
    interactions, products = planted
    for minimum in (0, 10**6):
        config = RecommenderConfig(min_tune_persons=minimum)
        choice = choose_hybrid(interactions, products, config=config)
        best = max(choice.validation_ndcg, key=choice.validation_ndcg.get)
        assert set(choice.validation_ndcg) == set(COMPONENTS)
        assert choice.validation_persons > 0 and choice.reason
        if choice.chosen == "blend":
            assert choice.blend_ndcg > choice.validation_ndcg[best]
            assert choice.gain_ci[0] > 0
        else:
            assert choice.chosen == best and choice.weights == {best: 1.0}
    # What recommend() serves is that choice.
    recs = recommend(interactions, products)
    assert recs.attrs["hybrid_choice"]["weights"] == recs.attrs["hybrid_weights"]


def _tea_shop(products_table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Persons who buy tea; 'mug' is a kitchen product and, second, a tea one, unbought."""
    teas = [f"tea{i}" for i in range(4)]
    rows = [
        (
            f"p{person}",
            tea,
            "purchase",
            pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(hours=h),
        )
        for person in range(5)
        for h, tea in enumerate(teas)
    ]
    rows += [
        ("q0", "pan", "purchase", pd.Timestamp("2024-03-02", tz="UTC")),
        ("q0", "pot", "purchase", pd.Timestamp("2024-03-03", tz="UTC")),
    ]
    interactions = pd.DataFrame(rows, columns=list(rec.INTERACTION_COLUMNS))
    catalogue = {"pan": ["kitchen"], "pot": ["kitchen"], "mug": ["kitchen", "tea"]}
    catalogue |= {tea: ["tea"] for tea in teas}
    catalogue |= {f"other{i}": ["garden"] for i in range(12)}
    if products_table == "lists":
        products = pd.DataFrame(
            {"product_id": list(catalogue), "category": list(catalogue.values())}
        )
    else:  # several rows per product
        products = pd.DataFrame(
            [(product, value) for product, values in catalogue.items() for value in values],
            columns=["product_id", "category"],
        )
    return interactions, products


@pytest.mark.parametrize("products_table", ["lists", "rows"])
def test_every_value_of_a_multi_valued_attribute_counts(products_table):
    """A product reachable only through its second category is recommended for it."""
    interactions, products = _tea_shop(products_table)
    recs = recommend(interactions, products, model="content", persons=["p0"])
    assert recs["product_id"].iloc[0] == "mug", recs
    assert recs["score"].iloc[0] > 0
    # Only its first value kept, the mug would be a kitchen product, nothing for tea drinkers.
    first_only = products.assign(
        category=products["category"].map(lambda v: v[0] if isinstance(v, list) else v)
    ).drop_duplicates("product_id")
    lost = recommend(interactions, first_only, model="content", persons=["p0"])
    assert lost.set_index("product_id")["score"].get("mug", 0.0) == 0.0


def _real(folder: str) -> Path:
    path = REAL_DATA / folder
    if not path.is_dir():
        pytest.skip(f"real dataset not found: {path}")
    return path


def test_online_retail_default_holds_up_against_every_model():
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
    # Measured: popularity 0.0375, hybrid 0.1086 (2.9x; a blend of ease 0.75 and als 0.25,
    # half-life a quarter of the span); ease 0.1088, als 0.0943, user_cf 0.0823, item_knn
    # 0.0703, item_cf 0.0573, content 0.0382. The default within 0.01 of the best model:
    assert ndcg["hybrid"] >= max(ndcg[model] for model in COMPONENTS) - 0.01, ndcg
    assert ndcg["hybrid"] >= 2 * ndcg["popularity"], ndcg
    assert ndcg["ease"] >= 2 * ndcg["popularity"], ndcg


def test_taobao_default_holds_up_against_every_model():
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
    # Measured: popularity 0.0023 (55k products, 814 persons: nothing is popular), hybrid
    # 0.0416 (18x; history alone, the products the person viewed: most of the carts and
    # favourites of the next two days were viewed before); history 0.0401, ease 0.0289,
    # item_cf 0.0083, item_knn 0.0074, als 0.0068, content 0.0064, user_cf 0.0027.
    assert ndcg["hybrid"] >= max(ndcg[model] for model in COMPONENTS) - 0.01, ndcg
    assert ndcg["hybrid"] >= 5 * ndcg["popularity"], ndcg
    assert ndcg["hybrid"] >= 0.03, ndcg
