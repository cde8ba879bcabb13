"""Product recommendations from implicit feedback: popularity, item/user CF, content, hybrid.

Every model scores a block of persons at a time with sparse algebra, so memory stays bounded by
`RecommenderConfig.chunk_cells` however many persons there are. Products are indexed in
popularity order, which makes "ties go to the more popular product, then the lower id" a
property of the column order rather than an extra sort.
"""

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import product as grid_of

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.utils.extmath import randomized_svd

from ml.frames import ModelFitError

# How much one event says about wanting a product; the log-sum of these is the implicit rating.
EVENT_WEIGHTS: dict[str, float] = {
    "page_view": 0.5,
    "screen_view": 0.5,
    "view": 1.0,
    "pv": 1.0,
    "product_view": 1.0,
    "add_to_wishlist": 3.0,
    "wishlist": 3.0,
    "fav": 3.0,
    "add_to_cart": 4.0,
    "cart": 4.0,
    "purchase": 8.0,
    "buy": 8.0,
    "order": 8.0,
}
DEFAULT_EVENT_WEIGHT = 0.25  # search, login, anything new: a faint signal, never none
PURCHASE_EVENTS = frozenset({"purchase", "buy", "order"})
MODELS = ("popularity", "item_cf", "user_cf", "content", "hybrid")
INTERACTION_COLUMNS = ("person_id", "product_id", "event_type", "occurred_at")
RECOMMENDATION_COLUMNS = ("person_id", "rank", "product_id", "score")  # ml.recommendations
EVAL_COLUMNS = ("model", "metric", "k", "value")  # ml.recommendation_eval
# Used when there is too little recent data to tune the blend on.
DEFAULT_HYBRID_WEIGHTS: dict[str, float] = {
    "item_cf": 1.0,
    "user_cf": 1.0,
    "content": 0.3,
    "popularity": 0.1,
}
# The blends tuning tries, in this order (the first of equal scores wins): how to mix the two
# CFs, how much content and popularity to add, and content alone for catalogues without overlap.
HYBRID_GRID: tuple[dict[str, float], ...] = tuple(
    {"item_cf": item, "user_cf": user, "content": content, "popularity": popular}
    for (item, user), content, popular in grid_of(
        ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0), (1.0, 0.0), (0.0, 1.0)), (0.2, 0.0), (0.1, 0.0)
    )
) + tuple(
    {"item_cf": 0.0, "user_cf": 0.0, "content": 1.0, "popularity": popular}
    for popular in (0.1, 0.0)
)
TUNE_K = 10  # tuning maximises NDCG at this depth
TUNE_CANDIDATES = 100  # per model and person: the products tuning ranks blends within


@dataclass(frozen=True)
class RecommenderConfig:
    half_life_days: float = 30.0
    item_neighbours: int | None = 200  # similar products kept per product; None keeps all
    user_neighbours: int = 50  # most similar persons whose history counts
    neighbour_pool: int = 2000  # the most active persons, where neighbours are looked for
    person_dims: int = 64  # latent dimensions persons are compared in (seeded SVD) ...
    exact_budget: float = 2e8  # ... when exact cosine would take more co-occurrences than this
    attribute_weights: Mapping[str, float] = field(
        default_factory=lambda: {"category": 1.0, "brand": 0.5}
    )
    # None: tuned by NDCG@10 over HYBRID_GRID on the latest `tune_holdout_days` of the data.
    hybrid_weights: Mapping[str, float] | None = None
    tune_holdout_days: float | None = None  # None: the span of the latest 10% of events
    tune_persons: int = 2000  # validation persons (a seeded sample) tuning scores
    seed: int = 42
    chunk_cells: int = 4_000_000  # dense scores held at once (float64: 32 MB, a few copies)


@dataclass
class TemporalSplit:
    train: pd.DataFrame  # every interaction strictly before the cutoff
    test: pd.DataFrame  # person_id, product_id: what train persons went on to do
    cutoff: pd.Timestamp


@dataclass
class _Fitted:
    person_ids: np.ndarray  # sorted
    product_ids: np.ndarray  # most popular first
    ratings: sparse.csr_matrix  # persons x products, log1p of decayed event weights
    purchased: sparse.csr_matrix  # persons x products, 1 where already bought
    popularity: np.ndarray  # per product, max 1
    item_similarity: sparse.csr_matrix | None  # products x products, pruned cosine
    person_space: tuple[np.ndarray | sparse.csr_matrix, np.ndarray] | None  # see _person_space
    attributes: sparse.csr_matrix  # attribute values x products, 0/1
    attribute_block: sparse.csr_matrix  # attribute values x attributes, 0/1
    attribute_weight: np.ndarray  # per attribute
    config: RecommenderConfig


@dataclass
class _Holdout:
    rows: np.ndarray  # test persons' rows in the fitted ratings
    truth: sparse.csr_matrix  # test persons x products, 1 where relevant
    relevant: np.ndarray  # relevant products per test person, also those unknown to training


def recommend(
    interactions: pd.DataFrame,
    products: pd.DataFrame | None = None,
    model: str = "hybrid",
    n: int = 10,
    persons: Iterable[str] | None = None,
    as_of: object = None,
    config: RecommenderConfig | None = None,
) -> pd.DataFrame:
    """Top-n products per person, never one they already bought; no history means popularity.

    `persons` defaults to everyone with interactions; listed persons without any get the most
    popular products. Events after `as_of` (default: the latest event) are ignored.
    """
    _check_models([model])
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    config = config or RecommenderConfig()
    events = _clean(interactions)
    if as_of is not None:
        events = events.loc[events["occurred_at"] <= _utc(as_of)]
    if model == "hybrid" and config.hybrid_weights is None:
        weights = _tune(events, products, config.tune_holdout_days, None, config)
        config = replace(config, hybrid_weights=weights)
    fitted = _fit(events, products, as_of, config)
    wanted = (
        fitted.person_ids
        if persons is None
        else np.unique(np.asarray(list(persons), dtype=object).astype(str))
    )
    position = pd.Index(fitted.person_ids).get_indexer(wanted)
    known, cold = wanted[position >= 0], wanted[position < 0]

    rows = position[position >= 0]
    frames = [
        _long(known[chunk], items, scores, fitted.product_ids)
        for chunk, items, scores in _ranked(fitted, model, rows, n)
    ]
    top = np.arange(min(n, len(fitted.product_ids)))
    cold_items = np.broadcast_to(top, (len(cold), len(top)))
    frames.append(_long(cold, cold_items, fitted.popularity[cold_items], fitted.product_ids))
    result = pd.concat(frames, ignore_index=True)
    result.attrs["hybrid_weights"] = dict(config.hybrid_weights or {})
    return result.sort_values(["person_id", "rank"], ignore_index=True)


def temporal_split(
    interactions: pd.DataFrame,
    holdout_days: float,
    test_events: Collection[str] | None = None,
) -> TemporalSplit:
    """Train on the past, test on what happened in the last `holdout_days`.

    The test set is what train persons did after the cutoff with `test_events` (default:
    purchases; without any purchase after the cutoff, the heaviest event type present), minus
    products they had already bought, because recommendations never repeat a purchase.
    """
    return _split(_clean(interactions), holdout_days, test_events)


def tune_hybrid_weights(
    interactions: pd.DataFrame,
    products: pd.DataFrame | None = None,
    holdout_days: float | None = None,
    test_events: Collection[str] | None = None,
    config: RecommenderConfig | None = None,
) -> dict[str, float]:
    """The HYBRID_GRID blend with the best NDCG@10 on the latest `holdout_days`.

    Which signal carries a catalogue differs (repeat visits on a marketplace, taste neighbours
    at a wholesaler), so the blend is learnt from the data's own recent past. Falls back to
    DEFAULT_HYBRID_WEIGHTS when that past holds nothing to test on.
    """
    return _tune(_clean(interactions), products, holdout_days, test_events, config)


def evaluate(
    interactions: pd.DataFrame,
    products: pd.DataFrame | None = None,
    holdout_days: float = 7.0,
    ks: Iterable[int] = (5, 10, 20),
    models: Iterable[str] = MODELS,
    test_events: Collection[str] | None = None,
    config: RecommenderConfig | None = None,
) -> pd.DataFrame:
    """precision@k, recall@k, ndcg@k and catalogue coverage@k per model on a temporal holdout.

    Metrics average over test persons (train persons with at least one test product); coverage
    is the share of the train catalogue that appears in those persons' top-k lists. The hybrid
    is tuned on the training part only (its own latest `holdout_days`); the weights it used are
    in `result.attrs["hybrid_weights"]`.
    """
    ks, models = sorted(set(ks)), list(models)
    _check_models(models)
    config = config or RecommenderConfig()
    split = _split(_clean(interactions), holdout_days, test_events)
    if split.test.empty:
        raise ModelFitError(
            f"no test interactions in the last {holdout_days:g} days by persons seen before them"
        )
    if "hybrid" in models and config.hybrid_weights is None:
        weights = _tune(split.train, products, holdout_days, test_events, config)
        config = replace(config, hybrid_weights=weights)
    fitted = _fit(split.train, products, split.cutoff, config)
    holdout = _holdout(fitted, split.test)
    discount = 1.0 / np.log2(np.arange(2, max(ks) + 2))
    ideal = np.cumsum(discount)

    records = []
    for model in models:
        ranked = list(_ranked(fitted, model, holdout.rows, max(ks)))
        items = np.vstack([items for _, items, _ in ranked])
        hits = np.vstack([_hits(holdout, chunk, items) for chunk, items, _ in ranked])
        for k in ks:
            found = hits[:, :k].sum(axis=1)
            dcg = hits[:, :k] @ discount[: hits[:, :k].shape[1]]
            idcg = ideal[np.minimum(holdout.relevant, k) - 1]
            shown = np.unique(items[:, :k][items[:, :k] >= 0])
            records += [
                (model, "precision", k, float(np.mean(found / k))),
                (model, "recall", k, float(np.mean(found / holdout.relevant))),
                (model, "ndcg", k, float(np.mean(dcg / idcg))),
                (model, "coverage", k, len(shown) / len(fitted.product_ids)),
            ]
    result = pd.DataFrame.from_records(records, columns=list(EVAL_COLUMNS))
    result = result.astype({"k": "int64", "value": "float64"})
    result.attrs["hybrid_weights"] = dict(config.hybrid_weights or {})
    return result


def _check_models(models: Iterable[str]) -> None:
    unknown = [model for model in models if model not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")


def _clean(interactions: pd.DataFrame) -> pd.DataFrame:
    """Required columns present, ids as strings, event types lower-case, times in UTC."""
    missing = [column for column in INTERACTION_COLUMNS if column not in interactions.columns]
    if missing:
        raise ValueError(
            f"interactions lack the column(s) recommendations need: {', '.join(missing)}"
        )
    events = (
        interactions.loc[:, list(INTERACTION_COLUMNS)]
        .dropna(subset=["person_id", "product_id", "occurred_at"])
        .reset_index(drop=True)
    )
    times = events["occurred_at"]
    text = not pd.api.types.is_datetime64_any_dtype(times)
    return pd.DataFrame(
        {
            "person_id": events["person_id"].astype(str),
            "product_id": events["product_id"].astype(str),
            "event_type": events["event_type"].astype(str).str.strip().str.lower(),
            # Naive times are read as UTC, aware ones converted to it.
            "occurred_at": pd.to_datetime(times, utc=True, format="ISO8601" if text else None),
        }
    )


def _utc(moment: object) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _split(
    events: pd.DataFrame, holdout_days: float, test_events: Collection[str] | None
) -> TemporalSplit:
    cutoff = events["occurred_at"].max() - pd.Timedelta(days=holdout_days)
    train = events.loc[events["occurred_at"] < cutoff].reset_index(drop=True)
    later = events.loc[
        (events["occurred_at"] >= cutoff) & events["person_id"].isin(train["person_id"].unique())
    ]
    if test_events is None:
        if later["event_type"].isin(PURCHASE_EVENTS).any():
            test_events = PURCHASE_EVENTS
        else:
            weights = later["event_type"].map(EVENT_WEIGHTS).fillna(DEFAULT_EVENT_WEIGHT)
            test_events = set(later.loc[weights == weights.max(), "event_type"])
    wanted = {event.strip().lower() for event in test_events}
    test = later.loc[later["event_type"].isin(wanted), ["person_id", "product_id"]]
    bought = train.loc[train["event_type"].isin(PURCHASE_EVENTS), ["person_id", "product_id"]]
    test = (
        test.drop_duplicates()
        .merge(bought.drop_duplicates(), how="left", indicator=True)
        .query("_merge == 'left_only'")
        .drop(columns="_merge")
        .sort_values(["person_id", "product_id"], ignore_index=True)
    )
    return TemporalSplit(train=train, test=test, cutoff=cutoff)


def _tune(
    events: pd.DataFrame,
    products: pd.DataFrame | None,
    holdout_days: float | None,
    test_events: Collection[str] | None,
    config: RecommenderConfig | None,
) -> dict[str, float]:
    """Score every HYBRID_GRID blend in one pass over the validation persons.

    Each model's TUNE_CANDIDATES best products per person are the only candidates, so the
    grid costs a little per blend whatever the catalogue size; a blend's top ten lies among
    them nearly always, and tuning only has to rank the blends, not serve them.
    """
    config = config or RecommenderConfig()
    if events.empty:
        return dict(DEFAULT_HYBRID_WEIGHTS)
    if holdout_days is None:
        latest = events["occurred_at"].max() - events["occurred_at"].quantile(0.9)
        holdout_days = max(latest / pd.Timedelta(days=1), 1.0 / 24)
    split = _split(events, holdout_days, test_events)
    if split.test.empty or split.train.empty:
        return dict(DEFAULT_HYBRID_WEIGHTS)
    fitted = _fit(split.train, products, split.cutoff, config)
    holdout = _holdout(fitted, split.test, config.tune_persons, config.seed)
    n = min(TUNE_K, len(fitted.product_ids))
    discount = 1.0 / np.log2(np.arange(2, n + 2))
    idcg = np.cumsum(1.0 / np.log2(np.arange(2, TUNE_K + 2)))
    idcg = idcg[np.minimum(holdout.relevant, TUNE_K) - 1]
    parts = ("item_cf", "user_cf", "content", "popularity")
    totals = np.zeros(len(HYBRID_GRID))
    for chunk in _chunk_slices(len(holdout.rows), fitted):
        rows = holdout.rows[chunk]
        bought = fitted.purchased[rows].toarray() > 0
        scores = {part: _row_normalised(_scores(fitted, part, rows)) for part in parts}
        best = min(TUNE_CANDIDATES, len(fitted.product_ids))
        candidates = np.sort(
            np.hstack([_top_columns(np.where(bought, -np.inf, scores[p]), best) for p in parts]),
            axis=1,
        )
        excluded = np.take_along_axis(bought, candidates, axis=1)
        excluded[:, 1:] |= candidates[:, 1:] == candidates[:, :-1]  # each product once
        values = {part: np.take_along_axis(scores[part], candidates, axis=1) for part in parts}
        truth = np.take_along_axis(holdout.truth[chunk].toarray(), candidates, axis=1)
        for position, weights in enumerate(HYBRID_GRID):
            blend = sum(weights[part] * values[part] for part in parts)
            blend[excluded] = -np.inf
            top = _top_columns(blend, n)
            hits = np.where(
                np.isfinite(np.take_along_axis(blend, top, axis=1)),
                np.take_along_axis(truth, top, axis=1),
                0.0,
            )
            totals[position] += (hits @ discount / idcg[chunk]).sum()
    return dict(HYBRID_GRID[int(np.argmax(totals))])


def _holdout(
    fitted: _Fitted, test: pd.DataFrame, sample: int | None = None, seed: int = 0
) -> _Holdout:
    persons = np.unique(test["person_id"].to_numpy())
    if sample is not None and len(persons) > sample:
        persons = np.sort(np.random.default_rng(seed).choice(persons, sample, replace=False))
        test = test.loc[test["person_id"].isin(persons)]
    person_row = np.searchsorted(persons, test["person_id"].to_numpy())
    item = pd.Index(fitted.product_ids).get_indexer(test["product_id"])
    known = item >= 0  # a product first seen after the cutoff can never be a hit
    truth = sparse.csr_matrix(
        (np.ones(known.sum()), (person_row[known], item[known])),
        shape=(len(persons), len(fitted.product_ids)),
    )
    return _Holdout(
        rows=pd.Index(fitted.person_ids).get_indexer(persons),
        truth=truth,
        relevant=np.bincount(person_row, minlength=len(persons)),
    )


def _hits(holdout: _Holdout, chunk: slice, items: np.ndarray) -> np.ndarray:
    """1.0 where a recommended product (-1: none) is relevant to that test person."""
    truth = holdout.truth[chunk].toarray()
    return np.where(items >= 0, np.take_along_axis(truth, np.maximum(items, 0), axis=1), 0.0)


def _fit(
    events: pd.DataFrame,
    products: pd.DataFrame | None,
    as_of: object,
    config: RecommenderConfig,
) -> _Fitted:
    """Everything the models share: the decayed rating matrix, popularity, the person vectors."""
    as_of = events["occurred_at"].max() if as_of is None else _utc(as_of)
    events = events.loc[events["occurred_at"] <= as_of]
    if events.empty:
        raise ModelFitError("no interactions with a person, product and time to learn from")

    catalogue = events["product_id"]
    if products is not None:
        if "product_id" not in products.columns:
            raise ValueError("products lack the column recommendations need: product_id")
        catalogue = pd.concat([catalogue, products["product_id"].dropna().astype(str)])
    person, person_ids = pd.factorize(events["person_id"], sort=True)
    product_ids = np.asarray(pd.unique(catalogue), dtype=object)
    product_ids.sort()
    product = pd.Index(product_ids).get_indexer(events["product_id"])
    person_ids = np.asarray(person_ids, dtype=object)

    age_days = (as_of - events["occurred_at"]).dt.total_seconds().to_numpy() / 86_400.0
    weight = events["event_type"].map(EVENT_WEIGHTS).fillna(DEFAULT_EVENT_WEIGHT).to_numpy()
    weight = weight * np.exp2(-age_days / config.half_life_days)
    # Same cells summed in the same order whatever order the rows came in: reproducible floats.
    order = np.lexsort((weight, product, person))
    shape = (len(person_ids), len(product_ids))
    ratings = sparse.csr_matrix((weight[order], (person[order], product[order])), shape=shape)
    ratings.sum_duplicates()
    ratings.data = np.log1p(ratings.data)  # ten views are not ten times one view
    is_purchase = events["event_type"].isin(PURCHASE_EVENTS).to_numpy()
    purchased = sparse.csr_matrix(
        (np.ones(is_purchase.sum()), (person[is_purchase], product[is_purchase])), shape=shape
    )

    # Most popular product first, ties by id: column order becomes the tie-break.
    popularity = np.asarray(ratings.sum(axis=0)).ravel()
    by_popularity = np.lexsort((np.arange(len(product_ids)), -popularity))
    product_ids, popularity = product_ids[by_popularity], popularity[by_popularity]
    ratings, purchased = ratings[:, by_popularity].tocsr(), purchased[:, by_popularity].tocsr()
    purchased.data[:] = 1.0

    attributes, block, block_weight = _attribute_matrix(products, product_ids, config)
    return _Fitted(
        person_ids=person_ids,
        product_ids=product_ids,
        ratings=ratings,
        purchased=purchased,
        popularity=popularity / max(popularity.max(), np.finfo(float).tiny),
        item_similarity=None,
        person_space=None,
        attributes=attributes,
        attribute_block=block,
        attribute_weight=block_weight,
        config=config,
    )


def _attribute_matrix(
    products: pd.DataFrame | None, product_ids: np.ndarray, config: RecommenderConfig
) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]:
    """One row per (attribute, value), e.g. category=shoes; missing values simply have none."""
    names = [
        name
        for name, weight in config.attribute_weights.items()
        if products is not None and name in products.columns and weight > 0
    ]
    value_rows, item_cols, blocks, offset = [], [], [], 0
    if names:
        table = products.dropna(subset=["product_id"]).astype({"product_id": str})
        table = table.drop_duplicates("product_id").set_index("product_id")
        table = table.reindex(product_ids)
        for name in names:
            values = table[name].astype("string")
            codes, uniques = pd.factorize(values, sort=True)  # missing -> -1
            has = codes >= 0
            value_rows.append(codes[has] + offset)
            item_cols.append(np.nonzero(has)[0])
            blocks.append(np.full(len(uniques), len(blocks)))
            offset += len(uniques)
    value_row = np.concatenate(value_rows) if value_rows else np.zeros(0, dtype=int)
    item_col = np.concatenate(item_cols) if item_cols else np.zeros(0, dtype=int)
    block = np.concatenate(blocks) if blocks else np.zeros(0, dtype=int)
    attributes = sparse.csr_matrix(
        (np.ones(len(value_row)), (value_row, item_col)), shape=(offset, len(product_ids))
    )
    block_matrix = sparse.csr_matrix(
        (np.ones(offset), (np.arange(offset), block)), shape=(offset, max(len(names), 1))
    )
    weights = np.array([config.attribute_weights[name] for name in names] or [0.0])
    return attributes, block_matrix, weights


def _unit_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix


def _top_k_per_row(matrix: sparse.csr_matrix, k: int | None, cells: int) -> sparse.csr_matrix:
    """Keep each row's k largest entries (ties to the lower column).

    Rows holding more than k entries are pruned either through dense blocks of at most `cells`
    values (a vectorised partition; best when the rows are dense) or by one sort of their
    entries on row + (1 - value / max): a single float key sorts far faster than a lexsort,
    and it tells apart values that differ by more than about 1e-10 of the largest.
    """
    matrix = matrix.tocsr()
    matrix.eliminate_zeros()
    counts = np.diff(matrix.indptr)
    heavy = np.nonzero(counts > k)[0] if k is not None else np.zeros(0, dtype=int)
    if len(heavy) == 0:
        return matrix
    row = np.repeat(np.arange(matrix.shape[0]), counts)
    keep = counts[row] <= k
    if len(heavy) * matrix.shape[1] <= 4 * counts[heavy].sum():
        rows, cols, data = [row[keep]], [matrix.indices[keep]], [matrix.data[keep]]
        size = max(1, cells // matrix.shape[1])
        for start in range(0, len(heavy), size):
            block = heavy[start : start + size]
            dense = matrix[block].toarray()
            top = _top_columns(dense, k)
            rows.append(np.repeat(block, k))
            cols.append(top.ravel())
            data.append(np.take_along_axis(dense, top, axis=1).ravel())
        row, col, data = np.concatenate(rows), np.concatenate(cols), np.concatenate(data)
    else:
        matrix.sort_indices()  # so that equal keys keep column order
        entries = np.nonzero(~keep)[0]
        key = row[entries] * 2.0 + (1.0 - matrix.data[entries] / np.abs(matrix.data).max())
        order = entries[np.argsort(key, kind="stable")]
        rank = np.arange(len(order)) - np.searchsorted(row[order], row[order])
        keep[order[rank < k]] = True
        row, col, data = row[keep], matrix.indices[keep], matrix.data[keep]
    return sparse.csr_matrix((data, (row, col)), shape=matrix.shape)


def _top_columns(scores: np.ndarray, n: int) -> np.ndarray:
    """(rows x n) column positions of each row's n best scores, best first, ties to the lower.

    A partition finds each row's n best in linear time. Where more columns tie with the n-th
    best than the partition took, the row is redone exactly: everything above the tie is in,
    and the tie is filled from the left.
    """
    top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    picked = np.take_along_axis(scores, top, axis=1)
    threshold = picked.min(axis=1, keepdims=True)
    tied = scores == threshold
    ambiguous = np.nonzero(tied.sum(axis=1) > (picked == threshold).sum(axis=1))[0]
    if len(ambiguous):
        rows_tied = tied[ambiguous]
        above = scores[ambiguous] > threshold[ambiguous]
        missing = n - above.sum(axis=1, keepdims=True)
        chosen = above | (rows_tied & (np.cumsum(rows_tied, axis=1) <= missing))
        top[ambiguous] = np.nonzero(chosen)[1].reshape(-1, n)
        picked = np.take_along_axis(scores, top, axis=1)
    # Best first; equal scores by column, i.e. by popularity.
    order = np.lexsort((top, -picked), axis=1)
    return np.take_along_axis(top, order, axis=1)


def _item_similarity(fitted: _Fitted) -> sparse.csr_matrix:
    """Cosine between products over who engaged with them; computed once, on first use.

    Built a block of products at a time and pruned to `item_neighbours` per block, so the
    unpruned products x products matrix, dense for a busy catalogue, never exists at once.
    """
    if fitted.item_similarity is None:
        config = fitted.config
        columns = _unit_rows(fitted.ratings.T.tocsr())
        columns_t = columns.T.tocsr()
        size = max(64, config.chunk_cells // columns.shape[0])
        similarity = sparse.vstack(
            [
                _top_k_per_row(
                    (columns[start : start + size] @ columns_t).tocsr(),
                    config.item_neighbours,
                    config.chunk_cells,
                )
                for start in range(0, columns.shape[0], size)
            ],
            format="csr",
        )
        # A product is its own best neighbour: what a person viewed or carted and has not
        # bought yet stays a strong candidate (purchases themselves are excluded later).
        size = similarity.shape[0]
        similarity = similarity - sparse.diags(similarity.diagonal()) + sparse.identity(size)
        fitted.item_similarity = similarity.tocsr()
    return fitted.item_similarity


def _person_space(fitted: _Fitted) -> tuple[np.ndarray | sparse.csr_matrix, np.ndarray]:
    """Unit-length person vectors (dot product = similarity) and the neighbour pool.

    Comparing every person with every other costs persons squared. Neighbours come from the
    `neighbour_pool` most active persons (the ones with history enough to lend). While exact
    cosine stays under `exact_budget` co-occurrences (sum over products of buyers x pool
    buyers), persons are compared exactly; beyond, in a seeded randomised SVD of their unit
    rating vectors, whose cosine approximates theirs at `person_dims` operations per pair.
    """
    if fitted.person_space is None:
        config = fitted.config
        unit = _unit_rows(fitted.ratings)
        activity = np.diff(unit.indptr)
        pool = np.lexsort((np.arange(len(activity)), -activity))[: config.neighbour_pool]
        everyone = np.bincount(unit.indices, minlength=unit.shape[1]).astype(float)
        in_pool = np.bincount(unit[pool].indices, minlength=unit.shape[1])
        if everyone @ in_pool <= config.exact_budget or min(unit.shape) <= config.person_dims:
            vectors = unit
        else:
            left, singular, _ = randomized_svd(
                unit, config.person_dims, n_iter=4, random_state=config.seed
            )
            vectors = (left * singular).astype(np.float32)  # half the traffic, ample precision
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.where(norms > 0, norms, 1.0)
        fitted.person_space = (vectors, pool)
    return fitted.person_space


def _scores(fitted: _Fitted, model: str, rows: np.ndarray) -> np.ndarray:
    """Dense (len(rows) x products) scores of one model; higher is better."""
    history = fitted.ratings[rows]
    if model == "popularity":
        return np.broadcast_to(fitted.popularity, (len(rows), len(fitted.popularity))).copy()
    if model == "item_cf":
        return (history @ _item_similarity(fitted)).toarray()
    if model == "user_cf":
        vectors, pool = _person_space(fitted)
        similar = vectors[rows] @ vectors[pool].T
        similar = similar.toarray() if sparse.issparse(similar) else similar
        # Nobody is their own neighbour.
        in_pool = pd.Index(pool).get_indexer(rows)
        similar[np.nonzero(in_pool >= 0)[0], in_pool[in_pool >= 0]] = -np.inf
        k = min(fitted.config.user_neighbours, len(pool))
        top = _top_columns(similar, k)
        weight = np.maximum(np.take_along_axis(similar, top, axis=1), 0.0)
        neighbours = sparse.csr_matrix(
            (weight.ravel(), (np.repeat(np.arange(len(rows)), k), pool[top].ravel())),
            shape=(len(rows), len(fitted.person_ids)),
        )
        return (neighbours @ fitted.ratings).toarray()
    if model == "content" and fitted.attributes.shape[0] == 0:
        return np.zeros((len(rows), len(fitted.product_ids)))  # ties: popularity decides
    if model == "content":
        # Share of each person's engagement per attribute value, within each attribute.
        affinity = (history @ fitted.attributes.T).tocsr()
        per_attribute = affinity @ fitted.attribute_block
        share = affinity.multiply(
            1.0 / np.maximum((per_attribute @ fitted.attribute_block.T).toarray(), 1e-12)
        )
        weighted = share @ sparse.diags(fitted.attribute_block @ fitted.attribute_weight)
        return (sparse.csr_matrix(weighted) @ fitted.attributes).toarray()
    blend = np.zeros((len(rows), len(fitted.product_ids)))
    for part, weight in (fitted.config.hybrid_weights or DEFAULT_HYBRID_WEIGHTS).items():
        if weight:
            blend += weight * _row_normalised(_scores(fitted, part, rows))
    return blend


def _row_normalised(scores: np.ndarray) -> np.ndarray:
    """Each person's best product scores 1, so models on different scales blend fairly."""
    top = scores.max(axis=1, keepdims=True)
    return scores / np.where(top > 0, top, 1.0)


def _chunk_slices(count: int, fitted: _Fitted) -> Iterator[slice]:
    """As many persons per chunk as keep (persons x max(products, neighbour pool)) under
    chunk_cells: dense scores and user CF's similarities both scale with it."""
    pool = min(len(fitted.person_ids), fitted.config.neighbour_pool)
    size = max(1, fitted.config.chunk_cells // max(len(fitted.product_ids), pool))
    for start in range(0, count, size):
        yield slice(start, start + size)


def _ranked(
    fitted: _Fitted, model: str, rows: np.ndarray, n: int
) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Per chunk of rows: (chunk x n) product positions, -1 where nothing is left, and scores."""
    n = min(n, len(fitted.product_ids))
    for chunk in _chunk_slices(len(rows), fitted):
        scores = _scores(fitted, model, rows[chunk])
        bought = fitted.purchased[rows[chunk]].tocoo()
        scores[bought.row, bought.col] = -np.inf
        items = _top_columns(scores, n)
        picked = np.take_along_axis(scores, items, axis=1)
        yield chunk, np.where(np.isfinite(picked), items, -1), picked


def _long(
    person_ids: np.ndarray, items: np.ndarray, scores: np.ndarray, product_ids: np.ndarray
) -> pd.DataFrame:
    """From (persons x n) arrays to one row per recommendation, in the contract's columns."""
    valid = items >= 0
    return pd.DataFrame(
        {
            "person_id": np.repeat(person_ids, valid.sum(axis=1)).astype(str),
            "rank": (np.nonzero(valid)[1] + 1).astype("int64"),
            "product_id": product_ids[items[valid]].astype(str),
            "score": scores[valid].astype("float64"),
        },
        columns=list(RECOMMENDATION_COLUMNS),
    )
