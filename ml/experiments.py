"""A/B test read-outs: each variant of a campaign against its control, one row per variant.

Input is one row per user who was assigned a variant (campaign_id, variant, a 0/1 outcome
and optionally spend); all statistics come from per-group counts, sums and sums of
squares, so a campaign of millions of users costs no more than one of a hundred.

Columns of `results` (rates are proportions, not percentage points):
- campaign_id, variant, users, conversions, conversion_rate: the raw counts.
- ci_low, ci_high: the Wilson 95% interval of *this variant's own conversion rate* (not of
  the lift): a planted true rate falls inside it 95% of the time. Wilson, not Wald,
  because conversion rates sit near 0, where the Wald interval undercovers.
- lift: conversion_rate minus the control's (absolute); relative_lift: lift / control rate.
- p_value: two-sided two-proportion z-test (pooled variance) of variant vs control;
  p_value_holm: Holm-adjusted across the non-control variants of the campaign, which keeps
  the chance of any false "winner" in a campaign at alpha; significant: p_value_holm < alpha.
- lift_ci_low, lift_ci_high: 95% interval of the lift (Newcombe's hybrid score interval,
  built from the two Wilson intervals; better than Wald at low rates).
- mde: the smallest absolute lift this sample size detects with the given power at alpha
  (two-sided, normal approximation at the control's rate): a non-significant lift below
  it says "too few users", not "no effect".
- mean_spend, spend_diff, spend_diff_ci_low, spend_diff_ci_high, spend_p_value: Welch's
  t-test on spend per user, variant minus control (NaN without a spend column).
- <outcome>_rate, <outcome>_lift, <outcome>_p_value, <outcome>_lift_ci_low,
  <outcome>_lift_ci_high for every secondary 0/1 outcome asked for (e.g. visit_rate,
  visit_lift for a `visit` column): the same z-test and Newcombe interval as the main outcome.
- is_control, control_variant, control_rule: which arm the row was compared with and why
  (see `choose_controls`); note: why a row has no comparison (a campaign with one arm).
The control's own row has lift 0 and NaN in the comparison columns; a campaign with a single
arm keeps its counts and rate, with NaN lift and a note, since there is nothing to compare.

Which arm is the control (`control=None`), per campaign, first rule that applies:
1. "held_out": the arm whose users were assigned to the test but not treated (observations
   with a true `held_out` column, e.g. touches of type 'holdout' or 'control');
2. "name": the arm named like a control ("control", "holdout", "hold-out", "No E-Mail",
   "no mail", "baseline", "none", ...), as an export without touch types still names it;
3. "first variant": else the first variant in sorted order ("A" of A/B/C), which suits
   e-mail tests whose "A" is the current version.
Two arms tied by rule 1 or 2 are resolved by sorted name, and the row says so in `note`.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

CONTRACT_COLUMNS = (
    "campaign_id",
    "variant",
    "users",
    "conversions",
    "conversion_rate",
    "lift",
    "p_value",
    "ci_low",
    "ci_high",
)
HELD_OUT_RULE, NAME_RULE, FIRST_RULE, GIVEN_RULE = "held_out", "name", "first variant", "given"
SINGLE_ARM_NOTE = "single arm: nothing to compare it with"
# Words that name an untreated arm, in names lower-cased with punctuation made spaces.
_CONTROL_WORDS = {"control", "holdout", "holdback", "baseline"}
_CONTROL_NAMES = {
    "hold out",
    "held out",
    "hold back",
    "no email",
    "no e mail",
    "no mail",
    "no mailing",
    "no send",
    "not sent",
    "no contact",
    "no treatment",
    "untreated",
    "none",
}


@dataclass
class ExperimentResults:
    results: pd.DataFrame  # CONTRACT_COLUMNS first, then the extra columns described above
    controls: dict[str, str]  # campaign_id -> the variant each campaign was compared against
    # (campaigns with a single arm are not in it: their rows carry a note)
    alpha: float
    power: float


def analyse_experiments(
    observations: pd.DataFrame,
    control: str | Mapping[str, str] | None = None,
    outcome: str = "converted",
    spend: str | None = "spend",
    alpha: float = 0.05,
    power: float = 0.8,
    secondary: Sequence[str] = (),
    held_out: str = "held_out",
) -> ExperimentResults:
    """Compare every variant with its campaign's control.

    `control` is the control variant's name for every campaign, or a mapping campaign_id ->
    name; None chooses it by the rules in the module docstring, using the `held_out` column
    (0/1 or boolean per user) when the observations have one. `spend=None` skips the spend
    test; `secondary` names further 0/1 outcome columns compared the same way as `outcome`.
    Intervals are at 1 - alpha (95% by default).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, got {power}")
    needed = ["campaign_id", "variant", outcome, *secondary]
    needed += [spend] if spend is not None else []
    missing = [column for column in needed if column not in observations.columns]
    if missing:
        raise ValueError(f"observations lack the column(s): {', '.join(missing)}")
    for column in ("campaign_id", "variant"):
        if observations[column].isna().any():
            raise ValueError(
                f"observations have a missing {column} in row {_first_bad(observations[column].isna())}"
            )
    frame = pd.DataFrame(
        {
            "campaign_id": observations["campaign_id"].astype(str).to_numpy(),
            "variant": observations["variant"].astype(str).to_numpy(),
            "converted": _binary(observations, outcome),
        }
    )
    for name in secondary:
        frame[f"secondary_{name}"] = _binary(observations, name)
    frame["held_out"] = _binary(observations, held_out) if held_out in observations.columns else 0.0
    if spend is not None:
        amount = pd.to_numeric(observations[spend], errors="coerce")
        if amount.isna().any():
            row = _first_bad(amount.isna())
            raise ValueError(
                f"spend column {spend!r} must be numeric; row {row} has "
                f"{observations[spend].iloc[row]!r}"
            )
        frame["spend"] = amount.to_numpy(dtype=float)
        frame["spend_sq"] = frame["spend"] ** 2
    else:
        frame["spend"] = frame["spend_sq"] = 0.0

    groups = (
        frame.groupby(["campaign_id", "variant"], sort=True)
        .agg(
            users=("converted", "size"),
            conversions=("converted", "sum"),
            spend_sum=("spend", "sum"),
            spend_sq=("spend_sq", "sum"),
            held_out=("held_out", "min"),
            **{f"secondary_{name}": (f"secondary_{name}", "sum") for name in secondary},
        )
        .reset_index()
    )
    choice = choose_controls(groups, control)
    groups = groups.merge(choice, on="campaign_id", how="left")
    # A single-arm campaign is its own reference in the arithmetic; its comparisons are blanked.
    groups["is_control"] = groups["variant"] == groups["control_variant"]

    results = _compare(groups, alpha, power, has_spend=spend is not None, secondary=secondary)
    controls = dict(zip(choice["campaign_id"], choice["control_variant"]))
    single = set(choice.loc[choice["arms"] < 2, "campaign_id"])
    controls = {campaign: name for campaign, name in controls.items() if campaign not in single}
    return ExperimentResults(results=results, controls=controls, alpha=alpha, power=power)


def choose_controls(
    groups: pd.DataFrame, control: str | Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Per campaign: control_variant, control_rule, arms and note (see the module docstring).

    `groups` has one row per campaign_id x variant, optionally with a 0/1 `held_out` (1 when
    every user of the arm was held out). A campaign with one arm gets that arm, rule None and
    the single-arm note; a given control that is not among the variants is an error.
    """
    held = groups["held_out"] if "held_out" in groups.columns else pd.Series(0, groups.index)
    rows = []
    for campaign, arms in groups.assign(held_out=held).groupby("campaign_id", sort=True):
        names = sorted(arms["variant"].astype(str))
        note = None
        if control is not None:
            if isinstance(control, str):
                chosen = control
            elif campaign in control:
                chosen = str(control[campaign])
            else:
                raise ValueError(f"control has no entry for campaign {campaign!r}")
            if chosen not in names:
                raise ValueError(
                    f"control variant {chosen!r} is not among campaign {campaign!r}'s "
                    f"variants: {', '.join(names)}"
                )
            rule = GIVEN_RULE
        else:
            held_names = sorted(arms.loc[arms["held_out"] > 0, "variant"].astype(str))
            named = [name for name in names if is_control_name(name)]
            for rule, candidates in ((HELD_OUT_RULE, held_names), (NAME_RULE, named)):
                if candidates:
                    break
            else:
                rule, candidates = FIRST_RULE, names
            chosen = candidates[0]
            if rule != FIRST_RULE and len(candidates) > 1:
                note = f"control ambiguous ({rule}: {', '.join(candidates)}); took {chosen!r}"
        if len(names) < 2:
            rule, note = None, SINGLE_ARM_NOTE
        rows.append(
            {
                "campaign_id": campaign,
                "control_variant": chosen,
                "control_rule": rule,
                "arms": len(names),
                "note": note,
            }
        )
    columns = ["campaign_id", "control_variant", "control_rule", "arms", "note"]
    return pd.DataFrame(rows, columns=columns)


def is_control_name(variant: str) -> bool:
    """True for an arm named like an untreated control ("No E-Mail", "holdout", "Control")."""
    words = re.sub(r"[^a-z0-9]+", " ", str(variant).lower()).strip()
    return words in _CONTROL_NAMES or bool(_CONTROL_WORDS & set(words.split()))


def wilson_interval(
    successes: np.ndarray, trials: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion (keeps inside [0, 1], right near 0)."""
    from scipy import stats

    successes, trials = np.asarray(successes, float), np.asarray(trials, float)
    z = stats.norm.ppf(0.5 + confidence / 2)
    rate = successes / trials
    centre = (rate + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z / (1 + z**2 / trials) * np.sqrt(rate * (1 - rate) / trials + z**2 / (4 * trials**2))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment: the smallest p times m, the next times m - 1, ...,
    each at least the one before, capped at 1."""
    p_values = np.asarray(p_values, float)
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    stepped = np.maximum.accumulate(p_values[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def _compare(
    groups: pd.DataFrame, alpha: float, power: float, has_spend: bool, secondary: Sequence[str]
) -> pd.DataFrame:
    from scipy import stats

    confidence = 1 - alpha
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    z_power = stats.norm.ppf(power)

    n = groups["users"].to_numpy(float)
    x = groups["conversions"].to_numpy(float)
    mean_spend = groups["spend_sum"].to_numpy() / n
    # Sample variance from the sums; clipped at 0 against rounding when every value is equal.
    var_spend = np.clip(
        (groups["spend_sq"].to_numpy() - n * mean_spend**2) / np.maximum(n - 1, 1), 0.0, None
    )

    # For every row, the position of its campaign's control row.
    is_control = groups["is_control"].to_numpy()
    control_position = pd.Series(
        np.flatnonzero(is_control), index=groups["campaign_id"].to_numpy()[is_control]
    )
    control_row = control_position.reindex(groups["campaign_id"]).to_numpy()
    n_c = n[control_row]
    rate, low, high, lift, p_value, lift_low, lift_high = _proportions(
        x, n, control_row, confidence
    )
    rate_c = rate[control_row]
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(rate_c > 0, lift / rate_c, np.nan)
    mde = (z_alpha + z_power) * np.sqrt(rate_c * (1 - rate_c) * (1 / n + 1 / n_c))

    results = groups[["campaign_id", "variant", "users"]].copy()
    results["conversions"] = x.astype("int64")
    results["conversion_rate"] = rate
    results["lift"] = lift
    results["p_value"] = p_value
    results["ci_low"], results["ci_high"] = low, high
    results["is_control"] = groups["is_control"].to_numpy()
    results["control_variant"] = groups["variant"].to_numpy()[control_row]
    results["relative_lift"] = relative
    results["lift_ci_low"], results["lift_ci_high"] = lift_low, lift_high
    results["p_value_holm"] = np.nan
    results["mde"] = mde

    if has_spend:
        diff, diff_low, diff_high, spend_p = _welch(
            mean_spend, var_spend, n, control_row, confidence
        )
    else:
        mean_spend = diff = diff_low = diff_high = spend_p = np.full(len(n), np.nan)
    results["mean_spend"] = mean_spend
    results["spend_diff"] = diff
    results["spend_diff_ci_low"], results["spend_diff_ci_high"] = diff_low, diff_high
    results["spend_p_value"] = spend_p

    comparison = ["p_value", "relative_lift", "lift_ci_low", "lift_ci_high", "mde"]
    comparison += ["spend_diff", "spend_diff_ci_low", "spend_diff_ci_high", "spend_p_value"]
    for name in secondary:
        s_rate, _, _, s_lift, s_p, s_low, s_high = _proportions(
            groups[f"secondary_{name}"].to_numpy(float), n, control_row, confidence
        )
        results[f"{name}_rate"], results[f"{name}_lift"] = s_rate, s_lift
        results[f"{name}_p_value"] = s_p
        results[f"{name}_lift_ci_low"], results[f"{name}_lift_ci_high"] = s_low, s_high
        comparison += [f"{name}_p_value", f"{name}_lift_ci_low", f"{name}_lift_ci_high"]
    results.loc[results["is_control"], comparison] = np.nan
    lifts = ["lift", *(f"{name}_lift" for name in secondary)]
    results.loc[results["is_control"], lifts] = 0.0
    # A single-arm campaign: its own counts and rates, no comparison, and a note saying why.
    single = (groups["arms"] < 2).to_numpy()
    results.loc[single, [*comparison, *lifts]] = np.nan
    results.loc[single, "is_control"] = False
    results.loc[single, "control_variant"] = None
    results["control_rule"] = groups["control_rule"].to_numpy()
    results["note"] = groups["note"].to_numpy()
    treated = ~results["is_control"] & ~single
    results.loc[treated, "p_value_holm"] = (
        results.loc[treated]
        .groupby("campaign_id")["p_value"]
        .transform(lambda p: holm(p.to_numpy()))
    )
    results["significant"] = results["p_value_holm"] < alpha
    return results.reset_index(drop=True)


def _proportions(
    x: np.ndarray, n: np.ndarray, control_row: np.ndarray, confidence: float
) -> tuple[np.ndarray, ...]:
    """Rate, its Wilson interval, and lift over the control with the pooled z-test p-value
    and Newcombe's interval, for successes x out of n in every row."""
    from scipy import stats

    rate = x / n
    low, high = wilson_interval(x, n, confidence)
    n_c, x_c, rate_c = n[control_row], x[control_row], rate[control_row]
    low_c, high_c = low[control_row], high[control_row]
    lift = rate - rate_c
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (x + x_c) / (n + n_c)
        se_pooled = np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n_c))
        z = np.where(se_pooled > 0, lift / se_pooled, 0.0)
    p_value = 2 * stats.norm.sf(np.abs(z))
    # Newcombe (1998) method 10: the difference's interval from the two Wilson intervals.
    lift_low = lift - np.sqrt((rate - low) ** 2 + (high_c - rate_c) ** 2)
    lift_high = lift + np.sqrt((high - rate) ** 2 + (rate_c - low_c) ** 2)
    return rate, low, high, lift, p_value, lift_low, lift_high


def _binary(observations: pd.DataFrame, column: str) -> np.ndarray:
    """A 0/1 (or boolean) column as floats; anything else is an error naming the row."""
    values = observations[column]
    if values.dtype == bool:
        return values.to_numpy(dtype=float)
    numbers = pd.to_numeric(values, errors="coerce")
    not_binary = ~numbers.isin([0, 1])
    if not_binary.any():
        row = _first_bad(not_binary)
        raise ValueError(f"column {column!r} must be 0/1; row {row} has {values.iloc[row]!r}")
    return numbers.to_numpy(dtype=float)


def _welch(
    mean: np.ndarray, var: np.ndarray, n: np.ndarray, control_row: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Welch's t-test and interval of mean(variant) - mean(control), from group moments."""
    from scipy import stats

    a, b = var / n, var[control_row] / n[control_row]
    diff = mean - mean[control_row]
    se = np.sqrt(a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (a + b) ** 2 / (a**2 / (n - 1) + b**2 / (n[control_row] - 1))
        t = diff / se
    p_value = np.where(se > 0, 2 * stats.t.sf(np.abs(t), df), np.nan)
    half = np.where(se > 0, stats.t.ppf(0.5 + confidence / 2, df) * se, np.nan)
    return diff, diff - half, diff + half, p_value


def _first_bad(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])
