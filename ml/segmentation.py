"""Customer segmentation: k-means on scaled RFM and engagement features."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

FEATURES = ("recency_days", "frequency", "monetary", "engagement_score")

# How a centroid far above / below the average reads to a marketer.
_TRAIT_WORDS = {
    "recency_days": ("lapsed", "recently active"),
    "frequency": ("frequent buyers", "rare buyers"),
    "monetary": ("big spenders", "low spenders"),
    "engagement_score": ("highly engaged", "barely engaged"),
}


@dataclass
class Segmentation:
    assignments: pd.DataFrame  # person_id, segment_id, segment_name
    summary: pd.DataFrame  # one row per segment: size and mean features
    k: int
    silhouette: float


def segment_profiles(
    profiles: pd.DataFrame,
    k_candidates: range = range(3, 7),
    seed: int = 42,
    silhouette_sample: int = 5000,
) -> Segmentation:
    """Choose k by silhouette on a sample, then name segments by what sets their centroid apart."""
    missing = [column for column in ("person_id", *FEATURES) if column not in profiles.columns]
    if missing:
        raise ValueError(f"profiles lack the column(s) segmentation needs: {', '.join(missing)}")
    if len(profiles) <= max(k_candidates):
        raise ValueError(
            f"need more than {max(k_candidates)} profiles to segment, got {len(profiles)}"
        )

    raw = profiles.loc[:, FEATURES].astype(float)
    # No activity at all is the most lapsed a person can be, not the most recent.
    raw["recency_days"] = raw["recency_days"].fillna(raw["recency_days"].max() + 1)
    raw = raw.fillna(0.0)
    # Spend and counts are heavy-tailed: log them so a few whales do not own a cluster each.
    features = np.log1p(raw.clip(lower=0.0))
    scaled = StandardScaler().fit_transform(features)

    rng = np.random.default_rng(seed)
    sample = rng.choice(len(scaled), size=min(silhouette_sample, len(scaled)), replace=False)
    best_k, best_score, best_model = 0, -1.0, None
    for k in k_candidates:
        model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(scaled)
        score = float(silhouette_score(scaled[sample], model.labels_[sample]))
        if score > best_score:
            best_k, best_score, best_model = k, score, model

    # Stable ids: segment 1 is the highest-spending centroid, and so on down.
    centroids = pd.DataFrame(best_model.cluster_centers_, columns=FEATURES)
    order = centroids["monetary"].sort_values(ascending=False).index
    segment_of_cluster = {cluster: rank + 1 for rank, cluster in enumerate(order)}
    names = _segment_names(centroids.rename(index=segment_of_cluster))

    segment_ids = pd.Series(best_model.labels_).map(segment_of_cluster).to_numpy()
    assignments = pd.DataFrame(
        {
            "person_id": profiles["person_id"].to_numpy(),
            "segment_id": segment_ids.astype("int64"),
            "segment_name": [names[segment] for segment in segment_ids],
        }
    )
    summary = (
        raw.assign(segment_id=segment_ids)
        .groupby("segment_id")
        .agg(persons=("frequency", "size"), **{f"mean_{f}": (f, "mean") for f in FEATURES})
        .reset_index()
    )
    summary.insert(1, "segment_name", summary["segment_id"].map(names))
    return Segmentation(assignments=assignments, summary=summary, k=best_k, silhouette=best_score)


def _segment_names(centroids: pd.DataFrame, distinct_at: float = 0.5) -> dict[int, str]:
    """The (up to) two traits where a centroid sits furthest from average, in standard deviations."""
    names: dict[int, str] = {}
    for segment, centre in centroids.iterrows():
        strongest = [
            feature
            for feature in centre.abs().sort_values(ascending=False).index[:2]
            if abs(centre[feature]) >= distinct_at
        ]
        words = [_TRAIT_WORDS[feature][0 if centre[feature] > 0 else 1] for feature in strongest]
        name = ", ".join(words).capitalize() or "Mid-range customers"
        names[int(segment)] = name if name not in names.values() else f"{name} ({segment})"
    return names
