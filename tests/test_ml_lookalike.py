"""Lookalikes find the seed's persona among overlapping personas, never return the seed, and
refuse a seed they cannot use."""

import numpy as np
import pandas as pd
import pytest

from ml.lookalike import find_lookalikes

PERSONAS = 4
PER_PERSONA = 1000
FEATURES = [f"f{i}" for i in range(8)]


def _personas(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Four planted personas whose features overlap (centres ~1.4 sd apart per feature, one
    sd of noise); three features heavy-tailed like spend and counts, with a few gaps."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(PERSONAS, len(FEATURES)))
    persona = np.repeat(np.arange(PERSONAS), PER_PERSONA)
    values = centres[persona] + rng.normal(0.0, 1.0, size=(len(persona), len(FEATURES)))
    values[:, :3] = np.exp(values[:, :3])
    values[rng.random(values.shape) < 0.02] = np.nan
    frame = pd.DataFrame(values, columns=FEATURES)
    frame.insert(0, "person_id", [f"p{i:05d}" for i in range(len(frame))])
    shuffled = rng.permutation(len(frame))
    return frame.iloc[shuffled].reset_index(drop=True), persona[shuffled]


@pytest.fixture(scope="module")
def personas() -> tuple[pd.DataFrame, np.ndarray]:
    return _personas()


@pytest.mark.parametrize("target", range(PERSONAS))
def test_seed_from_one_persona_finds_that_persona(personas, target):
    frame, persona = personas
    rng = np.random.default_rng(target)
    seed_ids = rng.choice(frame.loc[persona == target, "person_id"], size=100, replace=False)
    result = find_lookalikes(frame, seed_ids, top_n=300)

    truth = pd.Series(persona, index=frame["person_id"])
    precision = (truth[result.ranking["person_id"]] == target).mean()
    assert precision >= 0.8, f"persona {target}: only {precision:.0%} of the top 300"
    assert result.seed_auc > 0.8
    assert not result.ranking["person_id"].isin(seed_ids).any()
    assert result.ranking["rank"].tolist() == list(range(1, 301))
    assert result.ranking["score"].is_monotonic_decreasing
    assert result.seed_size == 100 and result.candidates == len(frame) - 100


def test_seed_auc_on_a_sample_agrees_with_the_auc_on_everyone(personas):
    frame, persona = personas
    seed_ids = frame.loc[persona == 0, "person_id"].iloc[:300]
    everyone = find_lookalikes(frame, seed_ids, top_n=100)
    sampled = find_lookalikes(frame, seed_ids, top_n=100, evaluation_size=len(frame) // 2)
    pd.testing.assert_frame_equal(sampled.ranking, everyone.ranking)
    assert sampled.seed_auc != everyone.seed_auc
    assert abs(sampled.seed_auc - everyone.seed_auc) < 0.03


def test_random_seed_is_flagged_by_its_auc(personas):
    frame, _ = personas
    seed_ids = frame["person_id"].sample(200, random_state=1)
    result = find_lookalikes(frame, seed_ids, top_n=50)
    assert 0.35 < result.seed_auc < 0.65


def test_same_input_gives_same_ranking(personas):
    frame, persona = personas
    seed_ids = frame.loc[persona == 0, "person_id"].iloc[:50]
    first = find_lookalikes(frame, seed_ids, top_n=100).ranking
    second = find_lookalikes(frame.iloc[::-1], list(seed_ids)[::-1], top_n=100).ranking
    pd.testing.assert_frame_equal(first, second, check_exact=False, rtol=1e-6)


def test_top_n_larger_than_the_crowd_returns_everyone_outside_the_seed(personas):
    frame, _ = personas
    small = frame.iloc[:30]
    result = find_lookalikes(small, small["person_id"].iloc[:10], top_n=1000)
    assert len(result.ranking) == 20
    assert set(result.ranking["person_id"]) == set(small["person_id"].iloc[10:])


@pytest.mark.parametrize(
    ("seed_ids", "message"),
    [
        ([], "seed is empty"),
        (["p00001", "nobody"], "not in features: 'nobody'"),
    ],
)
def test_bad_seed_is_a_clear_error(personas, seed_ids, message):
    frame, _ = personas
    with pytest.raises(ValueError, match=message):
        find_lookalikes(frame, seed_ids)


def test_bad_features_are_a_clear_error(personas):
    frame, _ = personas
    with pytest.raises(ValueError, match="not numeric: segment"):
        find_lookalikes(frame.assign(segment="a"), ["p00001"])
    with pytest.raises(ValueError, match="person_id is not unique"):
        find_lookalikes(pd.concat([frame, frame.iloc[:1]]), ["p00001"])
    with pytest.raises(ValueError, match="nobody is left"):
        find_lookalikes(frame.iloc[:3], frame["person_id"].iloc[:3])
