"""Product recommendations from implicit feedback.

Models: `popularity`; `history` (the person's own engaged, not-excluded products: "continue
shopping"); the item-item models `item_cf` (each product's own top neighbours), `item_knn`
(the usual item-kNN: for each candidate, the top-k most similar among the person's products)
and `ease` (Steck's closed-form EASE on the most popular EASE_MAX_ITEMS products); `user_cf`;
`als` (implicit-feedback ALS, the `implicit` library); `content` (attribute affinity, several
values per attribute allowed); and `hybrid`, the default, which is the single component that
validates best unless a blend beats it with confidence (see `choose_hybrid`).

Every model scores a block of persons at a time, so memory stays bounded by
`RecommenderConfig.chunk_cells` however many persons there are. Products are indexed in
popularity order, which makes "ties go to the more popular product, then the lower id" a
property of the column order rather than an extra sort. No item-item model lets a product
be its own neighbour (their diagonals are zero): a product the person already has comes back
only through other products, or through `history`, never through itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from itertools import product as grid_of
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ml.frames import ModelFitError

if TYPE_CHECKING:
    from scipy import sparse

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
# The single models, in the order that breaks ties between equally good ones on validation.
COMPONENTS = (
    "popularity",
    "item_knn",
    "ease",
    "als",
    "user_cf",
    "item_cf",
    "history",
    "content",
)
MODELS = (*COMPONENTS, "hybrid")
INTERACTION_COLUMNS = ("person_id", "product_id", "event_type", "occurred_at")
RECOMMENDATION_COLUMNS = ("person_id", "rank", "product_id", "score")  # ml.recommendations
EVAL_COLUMNS = ("model", "metric", "k", "value")  # ml.recommendation_eval

# What a person already has and is never recommended again:
# - "purchased": products they bought (viewed, carted, wished-for ones may come back);
# - "seen": every product they interacted with in any way;
# - "auto": "purchased" where persons in this data do come back to products they had
#   engaged with without buying (at least REPEAT_SHARE of the validation targets, see below),
#   else "seen" (a ratings log, where nobody rates twice: showing seen products wastes slots).
EXCLUDE_RULES = ("purchased", "seen", "auto")
REPEAT_SHARE = 0.05
# The time decay: weights halve every `half_life_share` of the data's own span (first event to
# the latest), unless `half_life_days` is set; never a fixed number of days from the latest.
# A single model uses HALF_LIFE_SHARE (the oldest event keeps 1/16 of its weight); the hybrid
# picks one of DECAY_SHARES on validation (None: no decay), as catalogues differ: seasonal
# gifts want a short memory, steady tastes none.
HALF_LIFE_SHARE = 0.25
DECAY_SHARES: tuple[float | None, ...] = (HALF_LIFE_SHARE, None, 0.0625)
# EASE inverts a (products x products) Gram matrix: only the most popular this many products
# take part (dense float32: 100 MB and about a second at 5,000 on 2 cores; cubic beyond).
EASE_MAX_ITEMS = 5000
EASE_LAMBDA_SHARE = 3.0
# Hybrid choice. Validation = the latest VALIDATION_SHARE of the training events (by time).
VALIDATION_SHARE = 0.2
MIN_TUNE_PERSONS = 200  # below this many validation persons no blend is tuned
BLEND_COMPONENTS = 3  # blends mix the best this many components ...
BLEND_STEP = 0.25  # ... with weights on this grid of the simplex (15 blends for three)
BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95
TUNE_K = 10  # the choice maximises NDCG at this depth
TUNE_CANDIDATES = 50  # per component and person: the products blends are ranked within
FALLBACK_COMPONENT = "item_knn"  # when there is nothing to validate on


@dataclass(frozen=True)
class RecommenderConfig:
    half_life_share: float | None = HALF_LIFE_SHARE  # of the data's span; None: no decay
    half_life_days: float | None = None  # fixed instead (then the hybrid does not tune it)
    exclude: str = "auto"  # see EXCLUDE_RULES
    item_neighbours: int | None = 200  # item_cf: similar products kept per product
    knn_neighbours: int = 100  # item_knn: the person's products each candidate sums over
    similarity_budget: int = 20_000_000  # item_knn: item-item similarities kept at most
    user_neighbours: int = 50  # most similar persons whose history counts
    neighbour_pool: int = 2000  # the most active persons, where neighbours are looked for
    person_dims: int = 64  # latent dimensions persons are compared in (seeded SVD) ...
    exact_budget: float = 2e8  # ... when exact cosine would take more co-occurrences than this
    ease_items: int = EASE_MAX_ITEMS
    ease_lambda: float | None = None  # L2 penalty of EASE; None: EASE_LAMBDA_SHARE x mean
    # of the Gram matrix's diagonal (the scale of the ratings and of the data's size)
    als_factors: int = 32
    als_regularization: float = 1.0
    als_alpha: float = 2.0  # confidence = 1 + alpha * rating
    als_iterations: int = 15
    als_threads: int = 1
    attribute_weights: Mapping[str, float] = field(
        default_factory=lambda: {"category": 1.0, "brand": 0.5}
    )
    # None: chosen on validation (choose_hybrid). A mapping component -> weight otherwise.
    hybrid_weights: Mapping[str, float] | None = None
    tune_holdout_days: float | None = None  # None: the span of the latest VALIDATION_SHARE
    tune_persons: int = 2000  # validation persons (a seeded sample) the choice scores
    min_tune_persons: int = MIN_TUNE_PERSONS
    seed: int = 42
    chunk_cells: int = 4_000_000  # dense scores held at once (float64: 32 MB, a few copies)


@dataclass
class TemporalSplit:
    train: pd.DataFrame  # every interaction strictly before the cutoff
    test: pd.DataFrame  # person_id, product_id: what train persons went on to do
    cutoff: pd.Timestamp
    exclude: str = "purchased"  # the rule the test set honours (resolved, never "auto")


@dataclass
class HybridChoice:
    """What the hybrid is and why: recorded for the asset's metadata and the report."""

    weights: dict[str, float]  # component -> weight; one entry when a single component won
    chosen: str  # a component's name, or "blend"
    reason: str
    exclude: str  # the exclusion rule the choice was made under
    validation_persons: int = 0
    validation_ndcg: dict[str, float] = field(default_factory=dict)  # per component, @TUNE_K
    blend_ndcg: float | None = None  # the best blend's, when one was scored
    gain_ci: tuple[float, float] | None = None  # blend - best component, cross-fitted
    half_life_share: float | None = HALF_LIFE_SHARE  # the decay chosen (None: none)
    decay_ndcg: dict[str, float] = field(default_factory=dict)  # best NDCG per decay tried

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Fitted:
    person_ids: np.ndarray  # sorted
    product_ids: np.ndarray  # most popular first
    ratings: sparse.csr_matrix  # persons x products, log1p of decayed event weights
    excluded: sparse.csr_matrix  # persons x products, 1 where never to be recommended
    popularity: np.ndarray  # per product, max 1
    attributes: sparse.csr_matrix  # attribute values x products, 0/1
    attribute_block: sparse.csr_matrix  # attribute values x attributes, 0/1
    attribute_weight: np.ndarray  # per attribute
    config: RecommenderConfig
    cache: dict = field(default_factory=dict)  # what a model computes once, on first use


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
    """Top-n products per person, never one they already have (`config.exclude`); no history
    means popularity.

    `persons` defaults to everyone with interactions; listed persons without any get the most
    popular products. Events after `as_of` (default: the latest event) are ignored. The
    result's attrs hold the exclusion rule applied, the hybrid's weights and, when the hybrid
    was chosen here, the choice (`HybridChoice.as_dict()`).
    """
    _check_models([model])
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    config = _checked(config or RecommenderConfig())
    events = _clean(interactions)
    if as_of is not None:
        events = events.loc[events["occurred_at"] <= _utc(as_of)].reset_index(drop=True)
    choice = None
    if model == "hybrid" and config.hybrid_weights is None:
        choice = _choose(events, products, None, config)
        config = _chosen(config, choice)
    else:
        config = replace(config, exclude=_resolve_exclude(events, None, config))
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
    result = result.sort_values(["person_id", "rank"], ignore_index=True)
    result.attrs["exclude"] = config.exclude
    result.attrs["hybrid_weights"] = dict(config.hybrid_weights or {})
    if choice is not None:
        result.attrs["hybrid_choice"] = choice.as_dict()
    return result


def temporal_split(
    interactions: pd.DataFrame,
    holdout_days: float,
    test_events: Collection[str] | None = None,
    config: RecommenderConfig | None = None,
) -> TemporalSplit:
    """Train on the past, test on what happened in the last `holdout_days`.

    The test set is what train persons did after the cutoff with `test_events` (default:
    purchases; without any purchase after the cutoff, the heaviest event type present), minus
    the products the exclusion rule (`config.exclude`, resolved on the training part) says they
    already have, because recommendations never repeat those.
    """
    config = _checked(config or RecommenderConfig())
    events = _clean(interactions)
    train, _, _ = _cut(events, holdout_days)
    rule = _resolve_exclude(train, test_events, config)
    return _split(events, holdout_days, test_events, rule)


def choose_hybrid(
    interactions: pd.DataFrame,
    products: pd.DataFrame | None = None,
    test_events: Collection[str] | None = None,
    config: RecommenderConfig | None = None,
) -> HybridChoice:
    """What `hybrid` will be on these interactions, and why.

    The training events are split by time into a fit part and a validation part (the latest
    VALIDATION_SHARE of events, or `config.tune_holdout_days`). Every component is fitted on
    the fit part and scored (NDCG@10) on what the validation persons did next. The hybrid is
    the best single component unless (a) at least `config.min_tune_persons` persons validate
    and (b) a blend of the best BLEND_COMPONENTS components beats it with confidence: the
    persons are split into two folds, the blend is picked on one and scored on the other
    (both ways, so the gain is not flattered by the pick), and a paired bootstrap interval
    (CONFIDENCE) of the gain over the best component lies above 0. Blends include every
    component alone, so a chosen blend never validates below its best component.
    """
    config = _checked(config or RecommenderConfig())
    return _choose(_clean(interactions), products, test_events, config)


def tune_hybrid_weights(
    interactions: pd.DataFrame,
    products: pd.DataFrame | None = None,
    holdout_days: float | None = None,
    test_events: Collection[str] | None = None,
    config: RecommenderConfig | None = None,
) -> dict[str, float]:
    """The hybrid's weights as `choose_hybrid` picks them (validating on `holdout_days`)."""
    config = _checked(config or RecommenderConfig())
    if holdout_days is not None:
        config = replace(config, tune_holdout_days=holdout_days)
    return _choose(_clean(interactions), products, test_events, config).weights


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
    is chosen on the training part only (its own latest events); the choice is in
    `result.attrs["hybrid_choice"]`, its weights in `result.attrs["hybrid_weights"]`.
    """
    ks, models = sorted(set(ks)), list(models)
    _check_models(models)
    config = _checked(config or RecommenderConfig())
    events = _clean(interactions)
    train, _, _ = _cut(events, holdout_days)
    rule = _resolve_exclude(train, test_events, config)
    split = _split(events, holdout_days, test_events, rule)
    if split.test.empty:
        raise ModelFitError(
            f"no test interactions in the last {holdout_days:g} days by persons seen before them"
        )
    config = replace(config, exclude=rule)
    choice, hybrid_config = None, config
    if "hybrid" in models and config.hybrid_weights is None:
        choice = _choose(split.train, products, test_events, config)
        hybrid_config = _chosen(config, choice)
    fitted = _fit(split.train, products, split.cutoff, config)
    holdout = _holdout(fitted, split.test)
    # The hybrid may have chosen another time decay than the single models use.
    if _same_fit(hybrid_config, config):
        fitted = replace(fitted, config=hybrid_config)
        hybrid_fitted, hybrid_holdout = fitted, holdout
    else:
        hybrid_fitted = _fit(split.train, products, split.cutoff, hybrid_config)
        hybrid_holdout = _holdout(hybrid_fitted, split.test)
    discount = 1.0 / np.log2(np.arange(2, max(ks) + 2))
    ideal = np.cumsum(discount)

    records = []
    for model in models:
        # Products are in each fit's popularity order: the hybrid's own holdout if it has one.
        model_fitted, model_holdout = (
            (hybrid_fitted, hybrid_holdout) if model == "hybrid" else (fitted, holdout)
        )
        ranked = list(_ranked(model_fitted, model, model_holdout.rows, max(ks)))
        items = np.vstack([items for _, items, _ in ranked])
        hits = np.vstack([_hits(model_holdout, chunk, items) for chunk, items, _ in ranked])
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
    result.attrs["exclude"] = rule
    result.attrs["hybrid_weights"] = dict(hybrid_config.hybrid_weights or {})
    if choice is not None:
        result.attrs["hybrid_choice"] = choice.as_dict()
    return result


def _chosen(config: RecommenderConfig, choice: HybridChoice) -> RecommenderConfig:
    """The config that makes `hybrid` what the choice says."""
    return replace(
        config,
        hybrid_weights=dict(choice.weights),
        half_life_share=choice.half_life_share,
        exclude=choice.exclude,
    )


def _same_fit(first: RecommenderConfig, second: RecommenderConfig) -> bool:
    """Whether two configs give the same rating matrix (they may differ in blend weights)."""
    return replace(first, hybrid_weights=None) == replace(second, hybrid_weights=None)


def _check_models(models: Iterable[str]) -> None:
    unknown = [model for model in models if model not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")


def _checked(config: RecommenderConfig) -> RecommenderConfig:
    if config.exclude not in EXCLUDE_RULES:
        raise ValueError(
            f"unknown exclude rule {config.exclude!r}; choose from {', '.join(EXCLUDE_RULES)}"
        )
    if config.hybrid_weights is not None:
        unknown = [part for part in config.hybrid_weights if part not in COMPONENTS]
        if unknown:
            raise ValueError(f"hybrid weights name unknown component(s) {', '.join(unknown)}")
    return config


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


def _cut(
    events: pd.DataFrame, holdout_days: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Train (strictly before the cutoff) and what train persons did from the cutoff on."""
    cutoff = events["occurred_at"].max() - pd.Timedelta(days=holdout_days)
    train = events.loc[events["occurred_at"] < cutoff].reset_index(drop=True)
    later = events.loc[
        (events["occurred_at"] >= cutoff) & events["person_id"].isin(train["person_id"].unique())
    ]
    return train, later, cutoff


def _targets(later: pd.DataFrame, test_events: Collection[str] | None) -> pd.DataFrame:
    """Distinct (person, product) pairs of the target events: `test_events`, by default
    purchases, or the heaviest event type present when nobody bought."""
    if test_events is None:
        if later["event_type"].isin(PURCHASE_EVENTS).any():
            test_events = PURCHASE_EVENTS
        else:
            weights = later["event_type"].map(EVENT_WEIGHTS).fillna(DEFAULT_EVENT_WEIGHT)
            test_events = set(later.loc[weights == weights.max(), "event_type"])
    wanted = {event.strip().lower() for event in test_events}
    return later.loc[
        later["event_type"].isin(wanted), ["person_id", "product_id"]
    ].drop_duplicates()


def _owned(train: pd.DataFrame, rule: str) -> pd.DataFrame:
    """(person, product) pairs the rule excludes."""
    if rule == "purchased":
        train = train.loc[train["event_type"].isin(PURCHASE_EVENTS)]
    return train[["person_id", "product_id"]].drop_duplicates()


def _without(pairs: pd.DataFrame, owned: pd.DataFrame) -> pd.DataFrame:
    return (
        pairs.merge(owned, how="left", indicator=True)
        .query("_merge == 'left_only'")
        .drop(columns="_merge")
    )


def _validation_days(events: pd.DataFrame, config: RecommenderConfig) -> float:
    if config.tune_holdout_days is not None:
        return config.tune_holdout_days
    times = events["occurred_at"]
    latest = times.max() - times.quantile(1.0 - VALIDATION_SHARE)
    return max(latest / pd.Timedelta(days=1), 1.0 / 24)


def _resolve_exclude(
    events: pd.DataFrame, test_events: Collection[str] | None, config: RecommenderConfig
) -> str:
    """The rule `config.exclude` names; "auto" is decided on the events' own validation split:
    "purchased" when at least REPEAT_SHARE of the validation targets (not bought before)
    are products the person had already engaged with, else "seen"."""
    if config.exclude != "auto":
        return config.exclude
    if events.empty:
        return "purchased"
    fit, later, _ = _cut(events, _validation_days(events, config))
    targets = _without(_targets(later, test_events), _owned(fit, "purchased"))
    if targets.empty:
        return "purchased"  # nothing tells: the rule that removes least
    seen = _owned(fit, "seen").assign(seen=True)
    repeat = targets.merge(seen, how="left")["seen"].fillna(False).astype(bool).mean()
    return "purchased" if repeat >= REPEAT_SHARE else "seen"


def _split(
    events: pd.DataFrame, holdout_days: float, test_events: Collection[str] | None, rule: str
) -> TemporalSplit:
    train, later, cutoff = _cut(events, holdout_days)
    test = _without(_targets(later, test_events), _owned(train, rule))
    test = test.sort_values(["person_id", "product_id"], ignore_index=True)
    return TemporalSplit(train=train, test=test, cutoff=cutoff, exclude=rule)


# --- the hybrid's choice ------------------------------------------------------------------------


def _choose(
    events: pd.DataFrame,
    products: pd.DataFrame | None,
    test_events: Collection[str] | None,
    config: RecommenderConfig,
) -> HybridChoice:
    rule = _resolve_exclude(events, test_events, config)
    config = replace(config, exclude=rule, hybrid_weights=None)

    def fallback(reason: str) -> HybridChoice:
        choice = HybridChoice({FALLBACK_COMPONENT: 1.0}, FALLBACK_COMPONENT, reason, rule)
        choice.half_life_share = config.half_life_share
        return choice

    if events.empty:
        return fallback("no interactions to validate on")
    split = _split(events, _validation_days(events, config), test_events, rule)
    if split.test.empty or split.train.empty:
        return fallback("no validation persons (nobody came back after the validation cut)")
    shares = DECAY_SHARES if config.half_life_days is None else (config.half_life_share,)
    found, by_decay = None, {}
    for share in shares:
        fitted = _fit(split.train, products, split.cutoff, replace(config, half_life_share=share))
        holdout = _holdout(fitted, split.test, config.tune_persons, config.seed)
        ndcg, blend_data = _validate(fitted, holdout, COMPONENTS)
        means = {part: float(values.mean()) for part, values in ndcg.items()}
        by_decay[str(share)] = round(max(means.values()), 6)
        if found is None or max(means.values()) > max(found[2].values()):
            found = (share, ndcg, means, blend_data, len(holdout.rows))
        del fitted
    share, ndcg, means, blend_data, persons = found
    best = max(COMPONENTS, key=lambda part: (means[part], -COMPONENTS.index(part)))
    choice = HybridChoice({best: 1.0}, best, "", rule, persons, dict(means))
    choice.half_life_share, choice.decay_ndcg = share, by_decay
    _settle_blend(choice, ndcg, blend_data, config)
    if len(shares) > 1:
        memory = "no time decay" if share is None else f"a half-life of {share:g} of the span"
        choice.reason += f"; {memory} validated best of {len(shares)} decays tried"
    return choice


def _settle_blend(
    choice: HybridChoice, ndcg: dict[str, np.ndarray], blend_data: dict, config: RecommenderConfig
) -> None:
    """Keep the best single component, or take the best blend where the rules allow."""
    means, persons, best = choice.validation_ndcg, choice.validation_persons, choice.chosen
    if persons < config.min_tune_persons:
        choice.reason = (
            f"{best} validated best (NDCG@{TUNE_K} {means[best]:.4f}); {persons} validation "
            f"persons < {config.min_tune_persons}: too few to tune a blend"
        )
        return
    ranked = sorted(COMPONENTS, key=lambda part: (-means[part], COMPONENTS.index(part)))
    parts = [part for part in ranked[:BLEND_COMPONENTS] if means[part] > 0]
    if len(parts) < 2:
        choice.reason = f"{best} validated best; no second component to blend with"
        return
    grid, scores = _blend_scores(blend_data, parts)
    crossfit = _cross_fitted(scores, config.seed)
    gain = crossfit - scores[:, 0]  # the grid's first blend is the best component alone
    rng = np.random.default_rng(config.seed)
    samples = rng.integers(0, persons, size=(BOOTSTRAP_SAMPLES, persons))
    means_gain = gain[samples].mean(axis=1)
    tail = (1.0 - CONFIDENCE) / 2 * 100
    low, high = (float(v) for v in np.percentile(means_gain, [tail, 100 - tail]))
    top = int(np.argmax(scores.mean(axis=0)))
    choice.blend_ndcg = round(float(scores[:, top].mean()), 6)
    choice.gain_ci = (round(low, 6), round(high, 6))
    weights = {part: float(w) for part, w in zip(parts, grid[top], strict=True) if w > 0}
    if low > 0 and len(weights) > 1 and choice.blend_ndcg > means[best]:
        choice.weights, choice.chosen = weights, "blend"
        choice.reason = (
            f"blend {weights} beat {best} on {persons} validation persons: NDCG@{TUNE_K} "
            f"{choice.blend_ndcg:.4f} vs {means[best]:.4f}, cross-fitted gain "
            f"{CONFIDENCE:.0%} CI [{low:.4f}, {high:.4f}]"
        )
    else:
        choice.reason = (
            f"{best} validated best (NDCG@{TUNE_K} {means[best]:.4f} on {persons} persons); "
            f"the best blend's cross-fitted gain {CONFIDENCE:.0%} CI [{low:.4f}, {high:.4f}] "
            "does not exclude 0"
        )


def _validate(
    fitted: _Fitted, holdout: _Holdout, parts: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], dict]:
    """Per component, each validation person's NDCG@TUNE_K; and, for blending, every
    component's TUNE_CANDIDATES best products per person with all components' normalised
    scores on them (the union of those lists is where a blend's top ten nearly always is)."""
    n = min(TUNE_K, len(fitted.product_ids))
    best = min(TUNE_CANDIDATES, len(fitted.product_ids))
    ndcg = {part: np.zeros(len(holdout.rows)) for part in parts}
    stored: dict[str, list] = {"truth": [], "invalid": [], **{part: [] for part in parts}}
    idcg = _ideal(holdout.relevant)
    for chunk in _chunk_slices(len(holdout.rows), fitted):
        rows = holdout.rows[chunk]
        excluded = fitted.excluded[rows].toarray() > 0
        truth = holdout.truth[chunk].toarray()
        tops, normalised = [], {}
        for part in parts:
            scores = _scores(fitted, part, rows)
            scores[excluded] = -np.inf
            top = _top_columns(scores, best)
            finite = np.isfinite(np.take_along_axis(scores, top[:, :n], axis=1))
            hits = np.where(finite, np.take_along_axis(truth, top[:, :n], axis=1), 0.0)
            ndcg[part][chunk] = hits @ _discount(n) / idcg[chunk]
            normalised[part] = _row_normalised(np.where(excluded, 0.0, scores)).astype(np.float32)
            tops.append(top)
        candidates = np.sort(np.hstack(tops), axis=1)
        invalid = np.take_along_axis(excluded, candidates, axis=1)
        invalid[:, 1:] |= candidates[:, 1:] == candidates[:, :-1]  # each product once
        stored["invalid"].append(invalid)
        stored["truth"].append(np.take_along_axis(truth, candidates, axis=1).astype(np.float32))
        for part in parts:
            stored[part].append(np.take_along_axis(normalised[part], candidates, axis=1))
    data = {key: np.vstack(values) for key, values in stored.items()}
    data["idcg"] = idcg
    return ndcg, data


def _blend_scores(data: dict, parts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(blends x parts) weights on the simplex grid, and (persons x blends) NDCG@TUNE_K."""
    steps = round(1 / BLEND_STEP)
    grid = np.array(
        [w for w in grid_of(range(steps + 1), repeat=len(parts)) if sum(w) == steps], dtype=float
    )
    grid = grid[np.lexsort(grid.T[::-1])[::-1]] / steps  # the first component's vertex first
    n = min(TUNE_K, data["truth"].shape[1])
    discount = _discount(n)
    scores = np.zeros((len(data["idcg"]), len(grid)))
    for position, weights in enumerate(grid):
        blend = sum(w * data[part] for part, w in zip(parts, weights, strict=True) if w > 0)
        blend = np.where(data["invalid"], -np.inf, blend)
        top = _top_columns(blend, n)
        finite = np.isfinite(np.take_along_axis(blend, top, axis=1))
        hits = np.where(finite, np.take_along_axis(data["truth"], top, axis=1), 0.0)
        scores[:, position] = hits @ discount / data["idcg"]
    return grid, scores


def _cross_fitted(scores: np.ndarray, seed: int) -> np.ndarray:
    """Each person's NDCG under the blend picked on the other half of the persons."""
    fold = np.random.default_rng(seed).permutation(len(scores)) % 2
    result = np.zeros(len(scores))
    for side in (0, 1):
        pick = int(np.argmax(scores[fold != side].mean(axis=0)))
        result[fold == side] = scores[fold == side, pick]
    return result


def _discount(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def _ideal(relevant: np.ndarray) -> np.ndarray:
    return np.cumsum(_discount(TUNE_K))[np.minimum(relevant, TUNE_K) - 1]


def _holdout(
    fitted: _Fitted, test: pd.DataFrame, sample: int | None = None, seed: int = 0
) -> _Holdout:
    from scipy import sparse

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


# --- fitting ------------------------------------------------------------------------------------


def _fit(
    events: pd.DataFrame,
    products: pd.DataFrame | None,
    as_of: object,
    config: RecommenderConfig,
) -> _Fitted:
    """Everything the models share: the decayed rating matrix, popularity, the exclusions.
    Each model's own state (similarities, factors) is computed on its first use."""
    from scipy import sparse

    as_of = events["occurred_at"].max() if as_of is None else _utc(as_of)
    events = events.loc[events["occurred_at"] <= as_of]
    if events.empty:
        raise ModelFitError("no interactions with a person, product and time to learn from")
    if config.exclude == "auto":
        config = replace(config, exclude=_resolve_exclude(events, None, config))

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
    weight = weight * np.exp2(-age_days / _half_life(events, as_of, config))
    # Same cells summed in the same order whatever order the rows came in: reproducible floats.
    order = np.lexsort((weight, product, person))
    shape = (len(person_ids), len(product_ids))
    ratings = sparse.csr_matrix((weight[order], (person[order], product[order])), shape=shape)
    ratings.sum_duplicates()
    ratings.data = np.log1p(ratings.data)  # ten views are not ten times one view
    if config.exclude == "purchased":
        owned = events["event_type"].isin(PURCHASE_EVENTS).to_numpy()
    else:
        owned = np.ones(len(events), dtype=bool)
    excluded = sparse.csr_matrix(
        (np.ones(owned.sum()), (person[owned], product[owned])), shape=shape
    )

    # Most popular product first, ties by id: column order becomes the tie-break.
    popularity = np.asarray(ratings.sum(axis=0)).ravel()
    by_popularity = np.lexsort((np.arange(len(product_ids)), -popularity))
    product_ids, popularity = product_ids[by_popularity], popularity[by_popularity]
    ratings, excluded = ratings[:, by_popularity].tocsr(), excluded[:, by_popularity].tocsr()
    excluded.sum_duplicates()
    excluded.data[:] = 1.0

    attributes, block, block_weight = _attribute_matrix(products, product_ids, config)
    return _Fitted(
        person_ids=person_ids,
        product_ids=product_ids,
        ratings=ratings,
        excluded=excluded,
        popularity=popularity / max(popularity.max(), np.finfo(float).tiny),
        attributes=attributes,
        attribute_block=block,
        attribute_weight=block_weight,
        config=config,
    )


def _half_life(events: pd.DataFrame, as_of: pd.Timestamp, config: RecommenderConfig) -> float:
    """Days in which an event's weight halves: `half_life_days`, else `half_life_share` of
    the span from the first event to `as_of` (at least an hour); infinite for no decay."""
    if config.half_life_days is not None:
        return config.half_life_days
    if config.half_life_share is None:
        return np.inf
    span = (as_of - events["occurred_at"].min()) / pd.Timedelta(days=1)
    return max(config.half_life_share * span, 1.0 / 24)


def _attribute_matrix(
    products: pd.DataFrame | None, product_ids: np.ndarray, config: RecommenderConfig
) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]:
    """One row per (attribute, value), e.g. category=shoes; missing values simply have none.

    A product may hold several values of one attribute: a list (or tuple, set, array) in the
    cell, or several rows of the products table; it has every one of them.
    """
    from scipy import sparse

    names = [
        name
        for name, weight in config.attribute_weights.items()
        if products is not None and name in products.columns and weight > 0
    ]
    value_rows, item_cols, blocks, offset = [], [], [], 0
    for name in names:
        table = products[["product_id", name]].dropna(subset=["product_id"])
        table = table.assign(product_id=table["product_id"].astype(str)).explode(name)
        table = table.loc[table[name].notna()]
        table = table.assign(value=table[name].astype(str)).drop_duplicates(["product_id", "value"])
        item = pd.Index(product_ids).get_indexer(table["product_id"])
        table, item = table.loc[item >= 0], item[item >= 0]
        codes, uniques = pd.factorize(table["value"], sort=True)
        value_rows.append(codes + offset)
        item_cols.append(item)
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
    from scipy import sparse

    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return (sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix).tocsr()


def _top_k_per_row(matrix: sparse.csr_matrix, k: int | None, cells: int) -> sparse.csr_matrix:
    """Keep each row's k largest entries (ties to the lower column).

    Rows holding more than k entries are pruned either through dense blocks of at most `cells`
    values (a vectorised partition; best when the rows are dense) or by one sort of their
    entries on row + (1 - value / max): a single float key sorts far faster than a lexsort,
    and it tells apart values that differ by more than about 1e-10 of the largest.
    """
    from scipy import sparse

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


def _without_diagonal(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """A product is never its own neighbour."""
    from scipy import sparse

    matrix = matrix.tocoo()
    keep = matrix.row != matrix.col
    return sparse.csr_matrix(
        (matrix.data[keep], (matrix.row[keep], matrix.col[keep])), shape=matrix.shape
    )


def _cosine(fitted: _Fitted, keep: int | None) -> sparse.csr_matrix:
    """Cosine between products over who engaged with them, without the diagonal, each row
    pruned to its `keep` largest. Built a block of products at a time, so the unpruned
    products x products matrix, dense for a busy catalogue, never exists at once."""
    from scipy import sparse

    config = fitted.config
    columns = _unit_rows(fitted.ratings.T.tocsr())
    columns_t = columns.T.tocsr()
    size = max(64, config.chunk_cells // max(columns.shape[0], 1))
    blocks = []
    for start in range(0, columns.shape[0], size):
        block = (columns[start : start + size] @ columns_t).tocoo()
        mine = block.row + start != block.col  # a product is never its own neighbour
        block = sparse.csr_matrix(
            (block.data[mine], (block.row[mine], block.col[mine])), shape=block.shape
        )
        blocks.append(_top_k_per_row(block, keep, config.chunk_cells))
    if not blocks:
        return sparse.csr_matrix((0, 0))
    return sparse.vstack(blocks, format="csr")


def _item_similarity(fitted: _Fitted, model: str) -> sparse.csr_matrix:
    """The item-item matrix behind `item_cf` (rows pruned to `item_neighbours`) or `item_knn`
    (rows pruned only to keep memory under `similarity_budget`); zero diagonal."""
    key = f"similarity:{model}"
    if key not in fitted.cache:
        config = fitted.config
        if model == "item_cf":
            keep = config.item_neighbours
        else:
            keep = max(
                config.knn_neighbours, config.similarity_budget // max(1, len(fitted.product_ids))
            )
        fitted.cache[key] = _cosine(fitted, keep)
    return fitted.cache[key]


def _item_knn(fitted: _Fitted, rows: np.ndarray) -> np.ndarray:
    """Item-kNN pruned per person: a candidate's score sums, over the `knn_neighbours` of the
    person's products that speak for it most (similarity x the person's rating of them),
    similarity x rating. A person with no more products than that simply sums over all of
    them (one sparse product); the others go through dense (their products x candidates)
    blocks of at most `chunk_cells`, partitioned column-wise."""
    from scipy import sparse

    similarity = _item_similarity(fitted, "item_knn")
    k = fitted.config.knn_neighbours
    history = fitted.ratings[rows]
    counts = np.diff(history.indptr)
    light = sparse.diags((counts <= k).astype(float))
    scores = ((light @ history) @ similarity).toarray()
    cells = fitted.config.chunk_cells
    for row in np.nonzero(counts > k)[0]:
        start, end = history.indptr[row], history.indptr[row + 1]
        items, ratings = history.indices[start:end], history.data[start:end]
        neighbours = sparse.diags(ratings) @ similarity[items]
        reached = np.flatnonzero(np.bincount(neighbours.indices, minlength=neighbours.shape[1]))
        if len(reached) < neighbours.shape[1] // 2:
            neighbours = neighbours[:, reached]
        else:
            reached = np.arange(neighbours.shape[1])
        step = max(1, cells // len(items))
        for first in range(0, len(reached), step):
            block = neighbours[:, first : first + step].toarray()
            strongest = np.partition(block, len(items) - k, axis=0)[len(items) - k :]
            scores[row, reached[first : first + step]] = strongest.sum(axis=0)
    return scores


def _ease(fitted: _Fitted) -> np.ndarray:
    """EASE weights (Steck 2019) over the most popular `ease_items` products: B = I - P /
    diag(P) with P = (X'X + lambda I)^-1, whose diagonal is zero by construction."""
    from scipy import linalg

    if "ease" not in fitted.cache:
        config = fitted.config
        size = min(config.ease_items, len(fitted.product_ids))
        ratings = fitted.ratings[:, :size]
        # Single precision: half the memory, under half the time, ample for a regularised
        # Gram matrix.
        gram = (ratings.T @ ratings).astype(np.float32).toarray()
        penalty = config.ease_lambda
        if penalty is None:
            penalty = EASE_LAMBDA_SHARE * max(float(np.mean(np.diag(gram))), 1e-9)
        gram[np.diag_indices(size)] += penalty
        weights = linalg.inv(gram, overwrite_a=True, check_finite=False)
        weights /= -np.diag(weights)
        np.fill_diagonal(weights, 0.0)
        fitted.cache["ease"] = weights
    return fitted.cache["ease"]


def _als(fitted: _Fitted) -> tuple[np.ndarray, np.ndarray]:
    """Person and product factors of implicit-feedback ALS (Hu, Koren, Volinsky 2008) by the
    `implicit` library: seeded, `als_threads` threads, BLAS held to one thread as it asks."""
    if "als" not in fitted.cache:
        from implicit.cpu.als import AlternatingLeastSquares

        config = fitted.config
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=config.als_factors,
                regularization=config.als_regularization,
                alpha=config.als_alpha,
                iterations=config.als_iterations,
                random_state=config.seed,
                num_threads=config.als_threads,
            )
            model.fit(fitted.ratings.astype(np.float32), show_progress=False)
        fitted.cache["als"] = (
            np.asarray(model.user_factors, dtype=np.float32),
            np.asarray(model.item_factors, dtype=np.float32),
        )
    return fitted.cache["als"]


def _person_space(fitted: _Fitted) -> tuple[np.ndarray | sparse.csr_matrix, np.ndarray]:
    """Unit-length person vectors (dot product = similarity) and the neighbour pool.

    Comparing every person with every other costs persons squared. Neighbours come from the
    `neighbour_pool` most active persons (the ones with history enough to lend). While exact
    cosine stays under `exact_budget` co-occurrences (sum over products of buyers x pool
    buyers), persons are compared exactly; beyond, in a seeded randomised SVD of their unit
    rating vectors, whose cosine approximates theirs at `person_dims` operations per pair.
    """
    from sklearn.utils.extmath import randomized_svd

    if "person_space" not in fitted.cache:
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
        fitted.cache["person_space"] = (vectors, pool)
    return fitted.cache["person_space"]


def _scores(fitted: _Fitted, model: str, rows: np.ndarray) -> np.ndarray:
    """Dense (len(rows) x products) scores of one model; higher is better."""
    from scipy import sparse

    history = fitted.ratings[rows]
    if model == "popularity":
        return np.broadcast_to(fitted.popularity, (len(rows), len(fitted.popularity))).copy()
    if model == "history":
        return history.toarray()
    if model == "item_cf":
        return (history @ _item_similarity(fitted, "item_cf")).toarray()
    if model == "item_knn":
        return _item_knn(fitted, rows)
    if model == "ease":
        weights = _ease(fitted)
        size = weights.shape[0]
        part = history[:, :size] @ weights
        # Products beyond EASE's catalogue come last (in popularity order).
        scores = np.empty((len(rows), len(fitted.product_ids)))
        scores[:, :size] = part
        low = part.min(axis=1, keepdims=True) if size else np.zeros((len(rows), 1))
        scores[:, size:] = low - 1.0
        return scores
    if model == "als":
        persons, items = _als(fitted)
        return (persons[rows] @ items.T).astype(np.float64)
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
    weights = {part: w for part, w in (fitted.config.hybrid_weights or {}).items() if w}
    if not weights:
        weights = {FALLBACK_COMPONENT: 1.0}
    if len(weights) == 1:
        return _scores(fitted, next(iter(weights)), rows)  # exactly that component
    blend = np.zeros((len(rows), len(fitted.product_ids)))
    for part, weight in weights.items():
        blend += weight * _row_normalised(_scores(fitted, part, rows))
    return blend


def _row_normalised(scores: np.ndarray) -> np.ndarray:
    """Negative scores count as none, and each person's best product scores 1, so models on
    different scales blend fairly."""
    scores = np.maximum(scores, 0.0)
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
        owned = fitted.excluded[rows[chunk]].tocoo()
        scores[owned.row, owned.col] = -np.inf
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
