"""Customer segmentation: a latent-class model of what persons look at, what they pay, how they shop.

Each segment is a class of a finite mixture. Given the class, a person's behaviour is a few
independent blocks of counts, each with the distribution that fits how such counts arise:

- categories: activities per product category (person_interests.weighted_activities),
  Dirichlet-multinomial. A person has their own category mix around the segment's and the
  events of one visit share a category, so the counts are overdispersed; a plain multinomial
  would read every extra event as new evidence and split segments by activity level.
- price tiers: product interactions with budget, mid and premium brands, Dirichlet-multinomial.
- visits: sessions, negative binomial; depth: events, negative binomial per session.
- app: whether the person uses the app at all, and the share of their sessions in it, binomial.
- discounts: discounted order lines out of all order lines, binomial.

A block a person cannot show is left out of their likelihood rather than read as zero: someone
known only from store orders has no sessions, which says nothing about how often they would visit
the web shop (missing at random given the class).

k is chosen by ICL, BIC plus twice the entropy of the assignments (Biernacki, Celeux & Govaert
2000), on a sample. BIC chooses how many components describe the density best, and on
overdispersed behaviour it keeps splitting a segment by activity level; ICL also charges for
persons that sit between segments, so it prefers well-separated segments, the ones a marketer can
address. On three generated data sets (5 planted personas) BIC chose 7 classes twice, ICL 5 each
time. The sample (5,000 by default) keeps the choice fast, and independent of how many persons
there are: more data should sharpen the segments, not multiply them.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ml.frames import ModelFitError

PRICE_TIERS = ("budget", "mid", "premium")
TIER_COLUMNS = tuple(f"{tier}_tier_interactions" for tier in PRICE_TIERS)
BEHAVIOUR_COLUMNS = (
    "sessions",
    "app_sessions",
    "events",
    *TIER_COLUMNS,
    "social_engagements",
    "orders",
    "store_orders",
    "order_lines",
    "discounted_order_lines",
    "revenue",
)
INTEREST_COLUMNS = ("category", "weighted_activities")
NO_ACTIVITY_ID = 0
NO_ACTIVITY_NAME = "Not enough activity yet"
# A person joins a segment only when the model gives it at least this probability; the rest
# stay in segment 0 with those without activity. One or two visits rarely tell a persona (a
# classifier told the planted personas is right on ~75% of a month's persons), and an audience
# built on a coin-flip segment wastes the spend it directs.
MIN_SEGMENT_PROBABILITY = 0.6

# How far a segment must sit from all active persons (its value / the overall value, or the
# inverse) for a trait to appear in its name; a category must also reach CATEGORY_LIFT times
# an even split over the categories.
CATEGORY_LIFT = 1.5
TRAIT_RATIO = 1.4
_DM_STEPS = 30  # at most this many fixed-point steps per M-step


# Too little behaviour for the mixture: fewer than this share of the active persons has a web
# or app session (order-only data such as Online Retail), or nobody shows a taste (no named
# category, no price tier: Taobao's id-only categories). Persons are segmented by recency,
# frequency and monetary value then.
MIN_SESSION_SHARE = 0.2
NO_ORDERS_NAME = "No completed orders"
RFM_ORDER_COLUMNS = ("person_id", "ordered_at", "revenue")
RFM_MIN_CUSTOMERS = 20
# In rule order: a customer is in the first group whose rule holds (_rfm_groups).
BIG_SPENDERS = "Loyal big spenders"
FREQUENT_BUYERS = "Loyal frequent buyers"  # the big spenders' name when there are no prices
RFM_GROUPS = ("New customers", "Lapsed customers", "At risk", BIG_SPENDERS, "Loyal customers")
WINDOW_SHOPPERS = "Window shoppers"  # sessions, no completed order
BIG_SPENDER_QUANTILE = 0.75
STABILITY_RESAMPLES = 5
SELECTION_SIZE = 5_000  # active persons (a seeded sample) k is chosen on
# Active persons the chosen model's EM is refined on (a seeded sample when there are more; one
# E-step then assigns everyone): EM's hundreds of passes over 500k persons would take most of a
# run and barely move parameters that 50,000 persons already pin down.
FIT_SIZE = 50_000


@dataclass
class Segmentation:
    assignments: pd.DataFrame  # person_id, segment_id, segment_name, probability
    summary: pd.DataFrame  # one row per segment: size, value and the behaviour behind the name
    k: int  # segments; segment 0 (no activity or orders, or no segment likely enough) is not counted
    selection: pd.DataFrame  # per candidate k on the sample: log_likelihood, bic, icl, ...
    method: str  # "latent classes", "recency, frequency, monetary" or "one segment"
    # ARI between the segments and a refit on each bootstrap resample of the persons, compared
    # on the persons the resample holds: how much the segments depend on who happens to be in
    # the data (1 = not at all).
    stability: list[float]

    def evaluation(self) -> pd.DataFrame:
        """One row per figure (model = the method), for ml.segmentation_eval."""
        figures = {"k": float(self.k), "bootstrap_resamples": float(len(self.stability))}
        if self.stability:
            figures["bootstrap_stability_ari"] = float(np.mean(self.stability))
            figures["bootstrap_stability_ari_min"] = float(np.min(self.stability))
        return pd.DataFrame(
            {"model": self.method, "metric": list(figures), "value": list(figures.values())}
        )


@dataclass(frozen=True)
class _Counts:
    """Per person, in person_id order: the counts the model and the summary read."""

    persons: np.ndarray
    categories: tuple[str, ...]
    columns: dict[str, np.ndarray]

    def subset(self, rows: np.ndarray) -> "_Counts":
        return _Counts(
            self.persons[rows],
            self.categories,
            {name: values[rows] for name, values in self.columns.items()},
        )

    def __len__(self) -> int:
        return len(self.persons)

    @property
    def named_categories(self) -> np.ndarray:
        """Columns of the categories with a name: ones known only by an id (no letter, e.g.
        Taobao's "4756105") neither shape nor name segments, as a marketer could not tell
        such segments apart; behaviour does both then."""
        return np.array(
            [j for j, name in enumerate(self.categories) if any(ch.isalpha() for ch in name)],
            dtype="int64",
        )


def segment_persons(
    behaviour: pd.DataFrame,
    interests: pd.DataFrame,
    orders: pd.DataFrame | None = None,
    k_candidates: range = range(2, 9),
    seed: int = 42,
    sample_size: int = SELECTION_SIZE,
    n_init: int = 2,
    resamples: int = STABILITY_RESAMPLES,
    min_probability: float = MIN_SEGMENT_PROBABILITY,
    fit_size: int = FIT_SIZE,
) -> Segmentation:
    """Segment persons with a latent-class model; segment 1 brings the most revenue per person.

    `behaviour`: one row per person, person_id and BEHAVIOUR_COLUMNS (marts.person_behaviour).
    `interests`: one row per person and category, person_id, category and weighted_activities
    (marts.person_interests). k is chosen by ICL on a random sample of at most `sample_size`
    active persons; the chosen model is then refined on a random sample of at most `fit_size`
    of them (all of them below it), which assigns everyone. Persons without any
    activity, or whose likeliest segment has a probability under `min_probability`, get
    segment 0. The result depends on the data and the seed, not on row order.

    `orders` (person_id, ordered_at, revenue: completed orders): on data with too little
    behaviour (under MIN_SESSION_SHARE of the active persons with a session, or no taste
    signal at all) the segments are recency, frequency and monetary groups (`rfm_segments`).
    Stability: `resamples` refits of the chosen model on bootstrap resamples of the persons.
    """
    counts = _read_counts(behaviour, interests)
    active = _has_activity(counts)
    if orders is not None and not _shows_behaviour(counts, active):
        return rfm_segments(behaviour, interests, orders, seed=seed, resamples=resamples)
    n_active = int(active.sum())
    if n_active <= max(k_candidates):
        raise ModelFitError(
            f"need more than {max(k_candidates)} persons with activity to segment, got {n_active}"
        )
    data = counts.subset(np.flatnonzero(active))

    rng = np.random.default_rng(seed)
    sample = data.subset(np.sort(rng.choice(n_active, min(sample_size, n_active), replace=False)))
    sample_blocks = _blocks(sample)
    start = _start_features(sample)
    fits, rows = {}, []
    for k in k_candidates:
        fits[k] = _fit(sample_blocks, start, k, seed, n_init)
        rows.append({"k": k, **fits[k].criteria(sample_blocks, len(sample))})
    selection = pd.DataFrame(rows)
    best_k = int(selection.loc[selection["icl"].idxmin(), "k"])

    blocks = _blocks(data)
    refined_on = blocks
    if n_active > fit_size:
        refined_on = _blocks(data.subset(np.sort(rng.choice(n_active, fit_size, replace=False))))
    final = _em(refined_on, params=fits[best_k].params, log_prior=fits[best_k].log_prior)
    if refined_on is not blocks:
        final = _em(blocks, params=final.params, log_prior=final.log_prior, max_iter=0)
    classes = final.resp.argmax(axis=1)

    def refit_on(rows: np.ndarray) -> np.ndarray:
        resampled = data.subset(rows)
        fit = _fit(_blocks(resampled), _start_features(resampled), best_k, seed, n_init)
        return _em(blocks, params=fit.params, log_prior=fit.log_prior, max_iter=0).resp.argmax(1)

    stability = _bootstrap_stability(classes, refit_on, min(sample_size, n_active), resamples, seed)
    confident = np.flatnonzero(final.resp.max(axis=1) >= min_probability)
    segment_of_class, names, summary = _describe(
        data.subset(confident),
        classes[confident],
        best_k,
        n_inactive=len(counts) - len(confident),
    )
    k = int(segment_of_class.max())

    segment_ids = np.full(len(counts), NO_ACTIVITY_ID, dtype="int64")
    segment_ids[np.flatnonzero(active)[confident]] = segment_of_class[classes[confident]]
    probability = np.ones(len(counts))
    probability[active] = final.resp.max(axis=1)
    assignments = pd.DataFrame(
        {
            "person_id": counts.persons,
            "segment_id": segment_ids,
            "segment_name": [names[segment] for segment in segment_ids],
            "probability": probability,
        }
    )
    return Segmentation(
        assignments=assignments,
        summary=summary,
        k=k,
        selection=selection,
        method="latent classes",
        stability=stability,
    )


def one_segment(behaviour: pd.DataFrame, interests: pd.DataFrame) -> Segmentation:
    """Every active person in segment 1, the rest in segment 0: what a data set too small
    for `segment_persons` still gets, so every person has a segment and a summary row."""
    counts = _read_counts(behaviour, interests)
    active = _has_activity(counts)
    n_active = int(active.sum())
    classes = np.zeros(n_active, dtype="int64")
    segment_of_class, names, summary = _describe(
        counts.subset(np.flatnonzero(active)), classes, 1, n_inactive=len(counts) - n_active
    )
    if summary.empty:  # nobody at all: no rows, but the columns readers expect
        nothing = {field: float("nan") for field in _profile(counts, np.arange(0))}
        row = _summary_row(NO_ACTIVITY_ID, NO_ACTIVITY_NAME, 0, 1, nothing, counts)
        summary = pd.DataFrame([row]).iloc[:0]
    segment_ids = np.full(len(counts), NO_ACTIVITY_ID, dtype="int64")
    segment_ids[active] = segment_of_class[classes]
    assignments = pd.DataFrame(
        {
            "person_id": counts.persons,
            "segment_id": segment_ids,
            "segment_name": [names[segment] for segment in segment_ids],
            "probability": np.ones(len(counts)),
        }
    )
    return Segmentation(
        assignments=assignments,
        summary=summary,
        k=int(n_active > 0),
        selection=pd.DataFrame(columns=["k"]),
        method="one segment",
        stability=[],
    )


def rfm_segments(
    behaviour: pd.DataFrame,
    interests: pd.DataFrame,
    orders: pd.DataFrame,
    seed: int = 42,
    resamples: int = STABILITY_RESAMPLES,
) -> Segmentation:
    """Recency, frequency and monetary groups a marketer reads, for data without behaviour the
    mixture can read (orders only, or browsing without any taste to tell apart): when and how
    much people buy is what there is then. Persons who browse but have not bought are "Window shoppers"; the others without a
    completed order are segment 0.

    The history's "today" is its latest order; a quarter of the history (the span from the
    first order to the last) is the horizon: new customers bought first within it, at-risk
    customers last bought one to two horizons ago, lapsed customers longer ago. Recent
    customers with more than one order are loyal, big spenders when their revenue is in the
    top quarter of all customers'. Thresholds come from the data, so a year of orders and a
    month of them are both split where their own customers differ.
    """
    counts = _read_counts(behaviour, interests)
    missing = [column for column in RFM_ORDER_COLUMNS if column not in orders.columns]
    if missing:
        raise ValueError(f"orders lack the column(s) segmentation needs: {', '.join(missing)}")
    rfm = _rfm_table(orders, counts.persons)
    buyers = np.flatnonzero(rfm["orders"].to_numpy() > 0)
    if len(buyers) < RFM_MIN_CUSTOMERS:
        raise ModelFitError(
            f"need at least {RFM_MIN_CUSTOMERS} persons with a completed order to segment them "
            f"by recency, frequency and value, got {len(buyers)}"
        )
    customers = rfm.iloc[buyers].reset_index(drop=True)
    if not customers["revenue"].any():  # no prices: how often they buy is their value
        customers = customers.assign(revenue=customers["orders"].astype(float))
        groups = tuple(FREQUENT_BUYERS if g == BIG_SPENDERS else g for g in RFM_GROUPS)
    else:
        groups = RFM_GROUPS
    classes = _rfm_groups(customers)
    stability = _bootstrap_stability(
        classes,
        lambda rows: _rfm_groups(customers.iloc[rows].reset_index(drop=True), like=customers),
        len(customers),
        resamples,
        seed,
    )
    # Who browses but has not bought (Taobao's clickstream) is a group of its own; their
    # group needs no threshold, so the stability above is over customers alone.
    browsers = np.flatnonzero((rfm["orders"].to_numpy() == 0) & (counts.columns["sessions"] > 0))
    placed = np.concatenate([buyers, browsers])
    placed_classes = np.concatenate([classes, np.full(len(browsers), len(groups))])
    segment_of_class, names, summary = _describe(
        counts.subset(placed),
        placed_classes,
        len(groups) + 1,
        n_inactive=len(counts) - len(placed),
        names_of_class=(*groups, WINDOW_SHOPPERS),
        inactive_name=NO_ORDERS_NAME,
    )
    recency = customers.groupby(segment_of_class[classes])[
        ["days_since_last_order", "days_since_first_order"]
    ].median()
    summary = summary.join(recency, on="segment_id")
    segment_ids = np.full(len(counts), NO_ACTIVITY_ID, dtype="int64")
    segment_ids[placed] = segment_of_class[placed_classes]
    assignments = pd.DataFrame(
        {
            "person_id": counts.persons,
            "segment_id": segment_ids,
            "segment_name": [names[segment] for segment in segment_ids],
            "probability": np.ones(len(counts)),
        }
    )
    return Segmentation(
        assignments=assignments,
        summary=summary,
        k=int(segment_of_class.max()),
        selection=pd.DataFrame(columns=["k"]),
        method="recency, frequency, monetary",
        stability=stability,
    )


def _rfm_table(orders: pd.DataFrame, persons: np.ndarray) -> pd.DataFrame:
    """Per person (in `persons` order): orders, revenue, days since the last and first order."""
    ordered_at = pd.to_datetime(orders["ordered_at"])
    as_of = ordered_at.max()
    per_person = (
        pd.DataFrame(
            {
                "person_id": orders["person_id"],
                "ordered_at": ordered_at,
                "revenue": orders["revenue"].fillna(0),
            }
        )
        .groupby("person_id")
        .agg(
            orders=("ordered_at", "size"),
            revenue=("revenue", "sum"),
            first=("ordered_at", "min"),
            last=("ordered_at", "max"),
        )
        .reindex(persons)
    )
    day = pd.Timedelta(days=1)
    return pd.DataFrame(
        {
            "orders": per_person["orders"].fillna(0).to_numpy(dtype="int64"),
            "revenue": per_person["revenue"].fillna(0).to_numpy(dtype=float),
            "days_since_last_order": ((as_of - per_person["last"]) / day).to_numpy(),
            "days_since_first_order": ((as_of - per_person["first"]) / day).to_numpy(),
        }
    )


def _rfm_groups(customers: pd.DataFrame, like: pd.DataFrame | None = None) -> np.ndarray:
    """Index into RFM_GROUPS per customer, with thresholds from `customers` themselves;
    `like` (a larger set they were drawn from) gets the labels instead when given."""
    horizon = max(customers["days_since_first_order"].max() / 4, 1.0)
    big = customers["revenue"].quantile(BIG_SPENDER_QUANTILE)
    target = customers if like is None else like
    rules = [
        target["days_since_first_order"] <= horizon,
        target["days_since_last_order"] > 2 * horizon,
        target["days_since_last_order"] > horizon,
        (target["orders"] > 1) & (target["revenue"] >= big),
        target["orders"] > 1,
    ]
    # One order, bought within the horizon, is a new customer: the rules cover everyone.
    return np.select(rules, np.arange(len(RFM_GROUPS)), default=0)


def _bootstrap_stability(
    labels: np.ndarray, refit, size: int, resamples: int, seed: int
) -> list[float]:
    """ARI between `labels` and `refit(rows)` on each of `resamples` bootstrap resamples of
    `size` rows, over the distinct rows each holds. `refit` returns labels for every row."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(seed + 1)
    scores = []
    for _ in range(resamples):
        rows = rng.choice(len(labels), size, replace=True)
        held = np.unique(rows)
        scores.append(float(adjusted_rand_score(labels[held], refit(rows)[held])))
    return scores


# --- input ---------------------------------------------------------------------------------


def _read_counts(behaviour: pd.DataFrame, interests: pd.DataFrame) -> _Counts:
    for frame, name, columns in (
        (behaviour, "behaviour", BEHAVIOUR_COLUMNS),
        (interests, "interests", INTEREST_COLUMNS),
    ):
        missing = [column for column in ("person_id", *columns) if column not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks the column(s) segmentation needs: {', '.join(missing)}")
    duplicated = behaviour["person_id"].duplicated()
    if duplicated.any():
        person = behaviour.loc[duplicated, "person_id"].iloc[0]
        raise ValueError(f"behaviour has more than one row for person_id {person!r}")

    ordered = behaviour.sort_values("person_id", kind="stable").reset_index(drop=True)
    values = ordered.loc[:, BEHAVIOUR_COLUMNS].fillna(0)
    negative = values.columns[(values < 0).any()].tolist()
    if negative:
        raise ValueError(f"behaviour has negative values in: {', '.join(negative)}")
    columns = {name: values[name].to_numpy(dtype="int64") for name in BEHAVIOUR_COLUMNS[:-1]}
    columns["revenue"] = values["revenue"].to_numpy(dtype=float)
    columns["tiers"] = np.column_stack([columns.pop(name) for name in TIER_COLUMNS])

    known = interests.loc[
        interests["category"].notna(), ["person_id", "category", "weighted_activities"]
    ]
    wide = known.pivot_table(
        index="person_id", columns="category", values="weighted_activities", aggfunc="sum"
    )
    wide = wide.reindex(index=ordered["person_id"], columns=sorted(wide.columns)).fillna(0)
    columns["categories"] = wide.to_numpy(dtype="int64").reshape(len(ordered), len(wide.columns))
    return _Counts(
        persons=ordered["person_id"].to_numpy(),
        categories=tuple(str(category) for category in wide.columns),
        columns=columns,
    )


def _shows_behaviour(counts: _Counts, active: np.ndarray) -> bool:
    """Enough behaviour for the mixture: sessions for MIN_SESSION_SHARE of the active persons,
    and a taste (named categories or price tiers) for somebody."""
    c = counts.columns
    if not active.any() or (c["sessions"][active] > 0).mean() < MIN_SESSION_SHARE:
        return False
    return bool(c["categories"][:, counts.named_categories].any() or c["tiers"].any())


def _has_activity(counts: _Counts) -> np.ndarray:
    c = counts.columns
    return (
        (c["sessions"] > 0)
        | (c["social_engagements"] > 0)
        | (c["orders"] > 0)
        | (c["categories"].sum(axis=1) > 0)
        | (c["tiers"].sum(axis=1) > 0)
    )


# --- model blocks ----------------------------------------------------------------------------


class _DirichletMultinomial:
    """Counts over J cells; class k has Dirichlet parameters alpha[k] (mean mix and precision).

    Counts are integers, so the likelihood and the fixed-point update (Minka 2000) are sums of
    log(alpha + t) and 1 / (alpha + t) over t below each count: tables per count value, not a
    digamma per person.
    """

    def __init__(self, counts: np.ndarray):
        from scipy import sparse

        self.counts = counts.astype("int64")
        n, self.cells = self.counts.shape
        self.totals = self.counts.sum(axis=1)
        self.sizes = self.counts.max(axis=0, initial=0) + 1
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        rows = np.repeat(np.arange(n), self.cells)
        ones = np.ones(n * self.cells)
        cell_values = (self.counts + self.offsets[:-1]).ravel()
        # (count value slots, persons): histogram of each cell's counts, weighted by class.
        self.cell_histogram = sparse.csr_matrix(
            (ones, (cell_values, rows)), shape=(self.offsets[-1], n)
        )
        self.total_histogram = sparse.csr_matrix(
            (np.ones(n), (self.totals, np.arange(n))), shape=(self.totals.max(initial=0) + 1, n)
        )
        # Where each person's count sits in a (cells x count values) table, row-major.
        self.table_index = (np.arange(self.cells) * self.sizes.max() + self.counts).T

    def n_parameters(self, k: int) -> int:
        return self.cells * k

    def m_step(self, resp: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        k, steps = resp.shape[1], self.sizes.max() - 1
        histogram = (self.cell_histogram @ resp).T  # (k, count value slots)
        # above[:, j, t] = class weight of persons whose count in cell j exceeds t.
        above = np.zeros((k, self.cells, max(steps, 1)))
        for j in range(self.cells):
            cell = _exceeding(histogram[:, self.offsets[j] : self.offsets[j + 1]])
            above[:, j, : cell.shape[1]] = cell
        above_total = _exceeding((self.total_histogram @ resp).T)
        t, t_total = np.arange(above.shape[2]), np.arange(above_total.shape[1])
        if previous is None:
            means = above.sum(axis=2) + 0.1
            alpha = 10.0 * means / means.sum(axis=1, keepdims=True)
        else:
            alpha = previous
        # Generalised EM: a few fixed-point steps, each of which raises the likelihood, are
        # enough; the next EM iteration continues from here.
        for _ in range(_DM_STEPS):
            precision = alpha.sum(axis=1, keepdims=True)
            denominator = (above_total / (precision + t_total)).sum(axis=1)
            numerator = (above / (alpha[:, :, None] + t)).sum(axis=2)
            updated = np.clip(
                alpha * numerator / np.maximum(denominator, 1e-12)[:, None], 1e-3, 1e5
            )
            converged = np.abs(updated - alpha).max() <= 1e-6 * alpha.max()
            alpha = updated
            if converged:
                break
        return alpha

    def log_likelihood(self, alpha: np.ndarray) -> np.ndarray:
        cells = _rising_log_table(alpha.reshape(-1), self.sizes.max())
        cells = cells.reshape(len(alpha), -1)[:, self.table_index]  # (k, cells, persons)
        totals = _rising_log_table(alpha.sum(axis=1), self.totals.max(initial=0) + 1)
        return (cells.sum(axis=1) - totals[:, self.totals]).T


def _rising_log_table(values: np.ndarray, size: int) -> np.ndarray:
    """table[i, c] = log(values[i] * (values[i] + 1) * ... * (values[i] + c - 1)), c < size.

    That is lgamma(values + c) - lgamma(values), from sums of logs that numpy does fast.
    """
    steps = np.log(values[:, None] + np.arange(max(size - 1, 0)))
    return np.concatenate([np.zeros((len(values), 1)), np.cumsum(steps, axis=1)], axis=1)


def _exceeding(histogram: np.ndarray) -> np.ndarray:
    """From weights per count value 0..C-1 to weights of counts above t, for t = 0..C-2."""
    return np.cumsum(histogram[:, ::-1], axis=1)[:, ::-1][:, 1:]


class _NegativeBinomial:
    """Count ~ NB(mean = rate[k] * exposure, size[k]); persons with `observed` false skip it."""

    def __init__(self, count: np.ndarray, exposure: np.ndarray, observed: np.ndarray):
        from scipy.special import gammaln

        self.counts = count.astype("int64")
        self.count = count.astype(float)[:, None]
        self.log_factorial = gammaln(self.count + 1)
        self.exposure = exposure.astype(float)[:, None]
        self.observed = observed.astype(float)[:, None]

    def n_parameters(self, k: int) -> int:
        return 2 * k

    def m_step(self, resp: np.ndarray, previous: object) -> tuple[np.ndarray, np.ndarray]:
        weights = resp * self.observed
        rate = (weights.T @ self.count[:, 0] + 0.01) / (weights.T @ self.exposure[:, 0] + 0.01)
        mean = self.exposure * rate
        # Moments: Var = mean + mean^2 / size.
        excess = (weights * ((self.count - mean) ** 2 - mean)).sum(axis=0)
        size = (weights * mean**2).sum(axis=0) / np.maximum(excess, 1e-9)
        return rate, np.clip(size, 0.05, 1e4)

    def log_likelihood(self, params: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        rate, size = params
        mean = np.maximum(self.exposure * rate, 1e-12)
        rising = _rising_log_table(size, self.counts.max(initial=0) + 1)[:, self.counts].T
        log_pmf = (
            rising
            - self.log_factorial
            + size * np.log(size / (size + mean))
            + self.count * np.log(mean / (size + mean))
        )
        return log_pmf * self.observed


class _Binomial:
    """Successes ~ Binomial(trials, p[k]); persons with no trials or not `observed` skip it."""

    def __init__(self, successes: np.ndarray, trials: np.ndarray, observed: np.ndarray):
        self.successes = (successes * observed).astype(float)[:, None]
        self.trials = (trials * observed).astype(float)[:, None]

    def n_parameters(self, k: int) -> int:
        return k

    def m_step(self, resp: np.ndarray, previous: object) -> np.ndarray:
        return (resp.T @ self.successes[:, 0] + 0.5) / (resp.T @ self.trials[:, 0] + 1.0)

    def log_likelihood(self, p: np.ndarray) -> np.ndarray:
        return self.successes * np.log(p) + (self.trials - self.successes) * np.log1p(-p)


def _blocks(data: _Counts) -> list:
    c = data.columns
    sessions, app_sessions = c["sessions"], c["app_sessions"]
    has_sessions = sessions > 0
    named = data.named_categories
    blocks = [_DirichletMultinomial(c["categories"][:, named])] if len(named) else []
    return [
        *blocks,
        _DirichletMultinomial(c["tiers"]),
        _NegativeBinomial(sessions, np.ones(len(data)), has_sessions),
        _NegativeBinomial(c["events"], sessions, has_sessions),
        _NegativeBinomial(c["orders"], sessions, has_sessions),
        _Binomial((app_sessions > 0).astype(int), np.ones(len(data), int), has_sessions),
        _Binomial(app_sessions, sessions, app_sessions > 0),
        _Binomial(c["discounted_order_lines"], c["order_lines"], c["order_lines"] > 0),
    ]


# --- fitting -------------------------------------------------------------------------------


@dataclass
class _Fit:
    params: list
    log_prior: np.ndarray
    resp: np.ndarray
    log_likelihood: float
    iterations: int

    def criteria(self, blocks: list, n: int) -> dict[str, float]:
        k = len(self.log_prior)
        parameters = sum(block.n_parameters(k) for block in blocks) + k - 1
        bic = -2.0 * self.log_likelihood + parameters * np.log(n)
        entropy = -float((self.resp * np.log(np.clip(self.resp, 1e-300, 1.0))).sum())
        return {
            "log_likelihood": self.log_likelihood,
            "parameters": parameters,
            "bic": bic,
            "icl": bic + 2.0 * entropy,
            "em_iterations": self.iterations,
        }


def _em(
    blocks: list,
    resp: np.ndarray | None = None,
    params: list | None = None,
    log_prior: np.ndarray | None = None,
    max_iter: int = 300,
    tol: float = 1e-6,
) -> _Fit:
    """Expectation-maximisation from responsibilities, or from parameters (E-step first)."""
    previous_ll = -np.inf
    for iteration in range(max_iter + 1):
        if iteration > 0 or params is None:
            weights = resp.sum(axis=0)
            log_prior = np.log(np.maximum(weights / weights.sum(), 1e-12))
            params = [
                block.m_step(resp, None if params is None else old)
                for block, old in zip(blocks, params or [None] * len(blocks))
            ]
        joint = log_prior + sum(block.log_likelihood(p) for block, p in zip(blocks, params))
        top = joint.max(axis=1, keepdims=True)
        resp = np.exp(joint - top)
        total = resp.sum(axis=1, keepdims=True)
        resp /= total
        per_person = np.log(total[:, 0]) + top[:, 0]
        log_likelihood = float(per_person.sum())
        if abs(log_likelihood - previous_ll) <= tol * abs(log_likelihood):
            break
        previous_ll = log_likelihood
    return _Fit(params, log_prior, resp, log_likelihood, iteration)


def _start_features(data: _Counts) -> np.ndarray:
    """Shares and log activity for the k-means that starts each EM run."""
    c = data.columns
    shares = [c["categories"][:, data.named_categories], c["tiers"]]
    shares = [x / np.maximum(x.sum(axis=1, keepdims=True), 1) for x in shares]
    activity = np.log1p(
        np.column_stack([c["sessions"], c["events"] / np.maximum(c["sessions"], 1)])
    )
    activity = (activity - activity.mean(axis=0)) / np.maximum(activity.std(axis=0), 1e-9)
    return np.hstack([*shares, 0.3 * activity])


def _fit(blocks: list, start: np.ndarray, k: int, seed: int, n_init: int) -> _Fit:
    from sklearn.cluster import KMeans

    best = None
    for attempt in range(n_init):
        # One thread: the k-means is small, and OpenMP threads competing for a busy machine
        # made it 50 times slower.
        with threadpool_limits(limits=1, user_api="openmp"):
            labels = KMeans(n_clusters=k, n_init=1, random_state=seed + attempt).fit_predict(start)
        resp = np.full((len(start), k), 0.1 / max(k - 1, 1))
        resp[np.arange(len(start)), labels] = 0.9
        fit = _em(blocks, resp=resp)
        if best is None or fit.log_likelihood > best.log_likelihood:
            best = fit
    return best


# --- description ---------------------------------------------------------------------------


def _profile(data: _Counts, rows: np.ndarray) -> dict[str, float]:
    """What a group of persons does, as rates a marketer reads."""
    c = {name: values[rows] for name, values in data.columns.items()}
    persons = max(len(rows), 1)

    def share(numerator: float, denominator: float) -> float:
        return float(numerator / denominator) if denominator > 0 else float("nan")

    tiers = c["tiers"].sum(axis=0)
    categories = c["categories"].sum(axis=0)
    return {
        "revenue_per_person": float(c["revenue"].sum() / persons),
        "orders_per_person": float(c["orders"].sum() / persons),
        "sessions_per_person": float(c["sessions"].sum() / persons),
        "events_per_session": share(c["events"].sum(), c["sessions"].sum()),
        "app_session_share": share(c["app_sessions"].sum(), c["sessions"].sum()),
        "social_engagements_per_person": float(c["social_engagements"].sum() / persons),
        "store_orders_per_person": float(c["store_orders"].sum() / persons),
        "discount_share": share(c["discounted_order_lines"].sum(), c["order_lines"].sum()),
        **{f"{tier}_share": share(tiers[i], tiers.sum()) for i, tier in enumerate(PRICE_TIERS)},
        **{
            f"category:{name}": share(categories[i], categories.sum())
            for i, name in enumerate(data.categories)
        },
    }


# (profile field, adjective when the segment is well above everyone, adjective when well below)
_TRAITS = (
    ("budget_share", "budget", None),
    ("premium_share", "premium", None),
    ("discount_share", "deal-seeking", None),
    ("sessions_per_person", "frequent", "occasional"),
    ("app_session_share", "app-first", None),
    ("social_engagements_per_person", "social", None),
    ("store_orders_per_person", "in-store", None),
)


def _name(profile: dict[str, float], overall: dict[str, float], categories: tuple[str, ...]) -> str:
    """Up to two standout categories as the noun, up to two strongest traits as adjectives.
    `categories`: the named ones (_Counts.named_categories)."""
    lifts = {
        name: profile[f"category:{name}"] / overall[f"category:{name}"]
        for name in categories
        if overall[f"category:{name}"] > 0
        # Well above an even split too: with even interests nothing stands out.
        and profile[f"category:{name}"] * len(categories) >= CATEGORY_LIFT
    }
    standout = sorted((n for n, lift in lifts.items() if lift >= CATEGORY_LIFT), key=lifts.get)
    standout = standout[::-1][:2]
    traits = []
    for field, above, below in _TRAITS:
        if not overall[field] > 0 or not profile[field] > 0:
            continue
        ratio = profile[field] / overall[field]
        if ratio >= TRAIT_RATIO and above:
            traits.append((np.log(ratio), above))
        elif ratio <= 1 / TRAIT_RATIO and below:
            traits.append((-np.log(ratio), below))
    adjectives = [word for _, word in sorted(traits, reverse=True)[:2]]
    if standout:
        noun = f"{' & '.join(standout)} shoppers"
    elif "occasional" in adjectives:
        noun = "browsers"
    else:
        noun = "shoppers"
    name = " ".join(filter(None, [", ".join(adjectives), noun]))
    return name[0].upper() + name[1:]


def _describe(
    data: _Counts,
    classes: np.ndarray,
    k: int,
    n_inactive: int,
    names_of_class: tuple[str, ...] | None = None,
    inactive_name: str = NO_ACTIVITY_NAME,
) -> tuple[np.ndarray, dict[int, str], pd.DataFrame]:
    """Segment ids by revenue per person (1 = most; ties, as without prices: most orders per
    person), names (from behaviour unless given per class), and the summary table."""
    overall = _profile(data, np.arange(len(data)))
    profiles = [_profile(data, np.flatnonzero(classes == cls)) for cls in range(k)]
    sizes = np.bincount(classes, minlength=k)
    order = sorted(
        np.flatnonzero(sizes),  # a class can end up with nobody; it is no segment then
        key=lambda cls: (
            -profiles[cls]["revenue_per_person"],
            -profiles[cls]["orders_per_person"],
            -sizes[cls],
            cls,
        ),
    )
    segment_of_class = np.zeros(k, dtype="int64")
    segment_of_class[order] = np.arange(1, len(order) + 1)

    names: dict[int, str] = {NO_ACTIVITY_ID: inactive_name}
    rows = []
    total = len(data) + n_inactive
    for cls in order:
        segment = int(segment_of_class[cls])
        if names_of_class is None:
            named = tuple(data.categories[j] for j in data.named_categories)
            name = _name(profiles[cls], overall, named)
        else:
            name = names_of_class[cls]
        names[segment] = name if name not in names.values() else f"{name} ({segment})"
        rows.append(_summary_row(segment, names[segment], sizes[cls], total, profiles[cls], data))
    if n_inactive:
        empty = {field: float("nan") for field in overall}
        rows.append(_summary_row(NO_ACTIVITY_ID, inactive_name, n_inactive, total, empty, data))
    return segment_of_class, names, pd.DataFrame(rows)


def _summary_row(
    segment: int, name: str, persons: int, total: int, profile: dict[str, float], data: _Counts
) -> dict[str, object]:
    shares = sorted(
        ((profile[f"category:{c}"], c) for c in data.categories if profile[f"category:{c}"] > 0),
        reverse=True,
    )
    return {
        "segment_id": segment,
        "segment_name": name,
        "persons": int(persons),
        "person_share": persons / total,
        **{field: value for field, value in profile.items() if not field.startswith("category:")},
        "top_categories": ", ".join(f"{c} {share:.0%}" for share, c in shares[:3]),
    }
