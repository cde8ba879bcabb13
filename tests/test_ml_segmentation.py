"""Segmentation recovers planted groups, keeps ids stable, and names segments readably."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from ml.segmentation import segment_profiles


def _planted_profiles(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = {  # recency_days, frequency, monetary, engagement_score
        0: (5, 12, 2000, 80),
        1: (60, 1, 40, 10),
        2: (20, 4, 300, 45),
    }
    groups = np.repeat(list(centres), 400)
    rows = np.array([centres[group] for group in groups], dtype=float)
    rows *= rng.lognormal(0, 0.15, size=rows.shape)
    profiles = pd.DataFrame(
        rows, columns=["recency_days", "frequency", "monetary", "engagement_score"]
    )
    profiles.insert(0, "person_id", [f"p{i:05d}" for i in range(len(profiles))])
    return profiles, groups


def test_recovers_planted_groups_and_orders_ids_by_value():
    profiles, groups = _planted_profiles()
    result = segment_profiles(profiles)
    assert result.k == 3
    assert adjusted_rand_score(groups, result.assignments["segment_id"]) > 0.95
    top = result.assignments.loc[groups == 0, "segment_id"].mode()[0]
    assert top == 1, "segment 1 must be the highest-spending group"
    names = result.summary.set_index("segment_id")["segment_name"]
    assert names[1] == "Recently active, frequent buyers"
    assert names[2] == "Mid-range customers"
    assert names[3] == "Barely engaged, low spenders"


def test_same_input_gives_same_segments():
    profiles, _ = _planted_profiles()
    first = segment_profiles(profiles).assignments
    second = segment_profiles(
        profiles.sample(frac=1.0, random_state=3).sort_values("person_id")
    ).assignments
    pd.testing.assert_frame_equal(first, second)


def test_names_are_unique_and_readable():
    profiles, _ = _planted_profiles()
    names = segment_profiles(profiles).summary["segment_name"]
    assert names.is_unique
    assert all(name[0].isupper() and len(name) > 5 for name in names)


def test_missing_feature_is_a_clear_error():
    profiles, _ = _planted_profiles()
    with pytest.raises(ValueError, match="monetary"):
        segment_profiles(profiles.drop(columns="monetary"))
