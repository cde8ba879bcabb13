"""A/B read-outs: intervals cover planted rates, p-values hold their level, Holm adjusts as
published, and the Hillstrom e-mail experiment gives its published lifts."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml.experiments import (
    CONTRACT_COLUMNS,
    SINGLE_ARM_NOTE,
    analyse_experiments,
    holm,
    is_control_name,
    wilson_interval,
)

HILLSTROM = Path("/work/shared/data/real/hillstrom_email_campaign/hillstrom.csv.gz")
# (arm, visit lift in points, conversion lift in points, spend per customer over "No E-Mail")
PUBLISHED_HILLSTROM_LIFTS = [("Mens E-Mail", 7.66, 0.68, 0.77), ("Womens E-Mail", 4.52, 0.31, 0.42)]

REPLICATES, USERS = 400, 2000
BASE = 0.05
# C's true lift is the minimum detectable effect for 2,000 users a side: found ~80% of the time.
MDE = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * np.sqrt(2 * BASE * (1 - BASE) / USERS)
PLANTED = {"A": BASE, "B": BASE, "C": BASE + MDE}


@pytest.fixture(scope="module")
def replicates() -> pd.DataFrame:
    """400 seeded replicate campaigns of an A/B/C test with planted rates, analysed at once."""
    rng = np.random.default_rng(7)
    variant = np.tile(np.repeat(list(PLANTED), USERS), REPLICATES)
    rate = pd.Series(variant).map(PLANTED).to_numpy()
    observations = pd.DataFrame(
        {
            "campaign_id": np.repeat([f"rep{i:03d}" for i in range(REPLICATES)], 3 * USERS),
            "variant": variant,
            "converted": (rng.random(len(rate)) < rate).astype(int),
        }
    )
    results = analyse_experiments(observations, spend=None).results
    return results.assign(planted=results["variant"].map(PLANTED))


def test_interval_covers_the_planted_rate_95_percent_of_the_time(replicates):
    inside = replicates["ci_low"].le(replicates["planted"]) & replicates["ci_high"].ge(
        replicates["planted"]
    )
    # 1,200 intervals: the standard error of the coverage is 0.6 points.
    assert inside.mean() == pytest.approx(0.95, abs=0.02)
    assert inside.groupby(replicates["variant"]).mean().min() >= 0.91


def test_lift_interval_covers_the_planted_lift(replicates):
    for variant in ("B", "C"):
        rows = replicates[replicates["variant"] == variant]
        planted = PLANTED[variant] - BASE
        inside = rows["lift_ci_low"].le(planted) & rows["lift_ci_high"].ge(planted)
        assert inside.mean() == pytest.approx(0.95, abs=0.03), variant


def test_p_values_hold_their_level_and_mde_its_power(replicates):
    null = replicates[replicates["variant"] == "B"]
    assert 0.01 <= (null["p_value"] < 0.05).mean() <= 0.09
    effect = replicates[replicates["variant"] == "C"]
    assert 0.7 <= (effect["p_value"] < 0.05).mean() <= 0.9
    # Each replicate plugs in its observed control rate; on average that is the planted one.
    assert effect["mde"].mean() == pytest.approx(MDE, rel=0.02)
    control = replicates[replicates["variant"] == "A"]
    assert control["lift"].eq(0).all() and control["p_value"].isna().all()


def test_output_carries_the_contract_columns_first(replicates):
    assert list(replicates.columns[: len(CONTRACT_COLUMNS)]) == list(CONTRACT_COLUMNS)
    assert replicates["users"].eq(USERS).all()
    assert (replicates["conversion_rate"] == replicates["conversions"] / USERS).all()


def test_holm_on_a_hand_example():
    # Sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, max(1 x 0.04, 0.06): each at least the last.
    assert holm(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    assert holm(np.array([0.5, 0.001, 0.6, 0.02])) == pytest.approx([1.0, 0.004, 1.0, 0.06])
    assert holm(np.array([0.2])) == pytest.approx([0.2])


def test_holm_is_applied_within_each_campaign():
    observations = _counts(
        {
            ("c1", "ctrl"): (1000, 50),
            ("c1", "v1"): (1000, 75),
            ("c1", "v2"): (1000, 62),
            ("c2", "ctrl"): (1000, 50),
            ("c2", "v1"): (1000, 75),
        }
    )
    results = analyse_experiments(observations, control="ctrl", spend=None).results
    rows = results.set_index(["campaign_id", "variant"])
    c1 = rows.loc["c1"].drop("ctrl")
    assert c1["p_value_holm"].to_numpy() == pytest.approx(holm(c1["p_value"].to_numpy()))
    assert rows.loc[("c2", "v1"), "p_value_holm"] == pytest.approx(
        rows.loc[("c2", "v1"), "p_value"]
    )
    # Same data, but c1 tested two variants: its v1 pays for the second look.
    assert rows.loc[("c1", "v1"), "p_value_holm"] == pytest.approx(
        2 * rows.loc[("c2", "v1"), "p_value"]
    )


def test_z_test_and_wilson_agree_with_reference_values():
    observations = _counts({("c", "A"): (1000, 50), ("c", "B"): (1200, 84)})
    row = analyse_experiments(observations, spend=None).results.iloc[1]
    table = np.array([[84, 1200 - 84], [50, 1000 - 50]])
    chi2 = stats.chi2_contingency(table, correction=False)  # same test as the pooled z
    assert row["p_value"] == pytest.approx(chi2.pvalue, rel=1e-9)
    assert row["lift"] == pytest.approx(0.07 - 0.05)
    assert row["relative_lift"] == pytest.approx(0.4)
    low, high = wilson_interval(np.array([3]), np.array([10]))
    assert (low[0], high[0]) == pytest.approx((0.1078, 0.6032), abs=1e-4)


def test_hillstrom_lifts_match_the_published_figures():
    if not HILLSTROM.is_file():
        pytest.skip(f"real dataset not found: {HILLSTROM}")
    data = pd.read_csv(HILLSTROM).rename(columns={"segment": "variant"})
    data["campaign_id"] = "hillstrom_2008"
    # No control given: "No E-Mail" is found by its name, though "Mens E-Mail" sorts first.
    analysis = analyse_experiments(data, outcome="conversion", secondary=("visit",))
    assert analysis.controls == {"hillstrom_2008": "No E-Mail"}
    rows = analysis.results.set_index("variant")
    assert rows.loc["No E-Mail", "control_rule"] == "name"
    for variant, visit, conversion, spend in PUBLISHED_HILLSTROM_LIFTS:
        assert round(100 * rows.loc[variant, "visit_lift"], 2) == visit
        assert round(100 * rows.loc[variant, "lift"], 2) == conversion
        assert round(rows.loc[variant, "spend_diff"], 2) == spend
        assert rows.loc[variant, "significant"]
        assert rows.loc[variant, "visit_p_value"] < 1e-6
    control = rows.loc["No E-Mail"]
    assert control["users"] == 21306 and control["conversions"] == 122

    # Welch from group moments equals scipy's on the raw rows.
    mens = data.loc[data["variant"] == "Mens E-Mail", "spend"]
    none = data.loc[data["variant"] == "No E-Mail", "spend"]
    welch = stats.ttest_ind(mens, none, equal_var=False)
    row = rows.loc["Mens E-Mail"]
    assert row["spend_p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    interval = welch.confidence_interval()
    assert (row["spend_diff_ci_low"], row["spend_diff_ci_high"]) == pytest.approx(
        (interval.low, interval.high), rel=1e-9
    )


def test_default_control_is_the_first_variant():
    result = analyse_experiments(_counts({("c", "B"): (10, 1), ("c", "A"): (10, 2)}), spend=None)
    assert result.controls == {"c": "A"}
    assert set(result.results["control_rule"]) == {"first variant"}


def test_held_out_arm_is_the_control_before_names_and_order():
    observations = _counts(
        {
            ("c", "A"): (100, 9),
            ("c", "Control"): (100, 8),
            ("c", "Z mailed late"): (100, 5),
            ("d", "A"): (100, 9),
            ("d", "Control"): (100, 8),
        }
    )
    observations["held_out"] = (
        (observations["campaign_id"] == "c") & (observations["variant"] == "Z mailed late")
    ).astype(int)
    results = analyse_experiments(observations, spend=None).results
    controls = results[results["is_control"]].set_index("campaign_id")
    assert controls["variant"].to_dict() == {"c": "Z mailed late", "d": "Control"}
    assert controls["control_rule"].to_dict() == {"c": "held_out", "d": "name"}
    row = results.set_index(["campaign_id", "variant"]).loc[("c", "A")]
    assert row["lift"] == pytest.approx(0.04) and row["control_variant"] == "Z mailed late"


@pytest.mark.parametrize(
    ("name", "is_control"),
    [
        ("No E-Mail", True),
        ("no_email", True),
        ("Control", True),
        ("control group", True),
        ("Holdout", True),
        ("hold-out", True),
        ("Mens E-Mail", False),
        ("A", False),
        ("Noel's Offer", False),
    ],
)
def test_control_names(name, is_control):
    assert is_control_name(name) is is_control


def test_a_single_arm_campaign_keeps_its_rows_with_a_note():
    observations = _counts({("solo", "A"): (50, 5), ("duo", "A"): (50, 5), ("duo", "B"): (50, 10)})
    analysis = analyse_experiments(observations, spend=None)
    assert analysis.controls == {"duo": "A"}
    rows = analysis.results.set_index(["campaign_id", "variant"])
    solo = rows.loc[("solo", "A")]
    assert solo["users"] == 50 and solo["conversion_rate"] == pytest.approx(0.1)
    assert np.isnan(solo["lift"]) and np.isnan(solo["p_value"]) and not solo["significant"]
    assert solo["note"] == SINGLE_ARM_NOTE
    assert rows.loc[("duo", "B"), "lift"] == pytest.approx(0.1)
    assert rows["note"].loc["duo"].isna().all()


def test_secondary_outcomes_are_compared_like_the_main_one():
    observations = _counts({("c", "A"): (1000, 50), ("c", "B"): (1200, 84)})
    observations["visit"] = observations["converted"]
    results = analyse_experiments(observations, spend=None, secondary=("visit",)).results
    for main, extra in [("conversion_rate", "visit_rate"), ("lift", "visit_lift")]:
        assert results[extra].to_numpy() == pytest.approx(results[main].to_numpy())
    b = results.iloc[1]
    assert b["visit_p_value"] == pytest.approx(b["p_value"])
    assert (b["visit_lift_ci_low"], b["visit_lift_ci_high"]) == pytest.approx(
        (b["lift_ci_low"], b["lift_ci_high"])
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o.drop(columns="converted"), "lack the column"),
        (lambda o: o.assign(converted=o["converted"].replace(1, 2)), "must be 0/1; row"),
        (lambda o: o.assign(variant=o["variant"].where(o.index > 0)), "missing variant in row 0"),
        (lambda o: o.assign(held_out=2), "'held_out' must be 0/1; row 0"),
    ],
)
def test_bad_observations_are_a_clear_error(change, message):
    observations = _counts({("c", "A"): (20, 2), ("c", "B"): (20, 5)})
    with pytest.raises(ValueError, match=message):
        analyse_experiments(change(observations), spend=None)


def test_unknown_control_is_a_clear_error():
    observations = _counts({("c", "A"): (20, 2), ("c", "B"): (20, 5)})
    with pytest.raises(ValueError, match="'control' is not among campaign 'c'"):
        analyse_experiments(observations, control="control", spend=None)
    with pytest.raises(ValueError, match="no entry for campaign 'c'"):
        analyse_experiments(observations, control={"other": "A"}, spend=None)


def _counts(groups: dict[tuple[str, str], tuple[int, int]]) -> pd.DataFrame:
    """Per-user rows from (campaign, variant) -> (users, conversions)."""
    rows = [
        (campaign, variant, int(i < conversions))
        for (campaign, variant), (users, conversions) in groups.items()
        for i in range(users)
    ]
    return pd.DataFrame(rows, columns=["campaign_id", "variant", "converted"])
