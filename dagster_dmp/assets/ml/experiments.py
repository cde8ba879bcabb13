"""A/B read-outs of the e-mail campaigns' arms."""

import dagster as dg

from dagster_dmp.assets.ml.inputs import EXPERIMENT_OBSERVATIONS, experiment_observations
from dagster_dmp.assets.ml.quality import fits_what_it_can
from dagster_dmp.resources import WarehouseResource
from ml.experiments import analyse_experiments
from ml.frames import ModelFitError

AB_TEST_RESULTS = dg.AssetKey(["ml", "ab_test_results"])


@dg.asset(
    key=AB_TEST_RESULTS,
    deps=[EXPERIMENT_OBSERVATIONS],
    group_name="ml",
    kinds={"scipy", "duckdb"},
    description=(
        "Every arm of a campaign test against the campaign's control: the held-out arm "
        "(touch_type 'holdout'/'control', e.g. Hillstrom's \"No E-Mail\"), else the arm named "
        "like a control, else the first variant by name (control_variant, control_rule). Per "
        "arm: users, conversions (an order with the campaign's tag within the response window "
        "from the first touch: marts.experiment_observations), conversion rate with its Wilson 95% "
        "interval (ci_low, ci_high), absolute and relative lift with a 95% interval, "
        "two-proportion z-test p-value and its Holm adjustment across the campaign's arms, "
        "spend per user with Welch's t-test (mean_spend, spend_diff), visit rate and its lift "
        "(visit_rate, visit_lift: any web or app visit in the window), and the minimum "
        "detectable effect at 80% power. A campaign with a single arm keeps its rows with no "
        "lift and a note."
    ),
)
@fits_what_it_can(
    AB_TEST_RESULTS,
    {
        "ml.ab_test_results": {
            "campaign_id": "string",
            "variant": "string",
            "users": "int64",
            "conversions": "int64",
            "conversion_rate": "float64",
            "lift": "float64",
            "p_value": "float64",
            "ci_low": "float64",
            "ci_high": "float64",
        }
    },
)
def ab_test_results(warehouse: WarehouseResource) -> dg.MaterializeResult:
    observations = experiment_observations(warehouse)
    if observations.empty:
        # A dataset without campaign tests (e.g. an order history): an empty read-out, said so.
        raise ModelFitError("no campaign touches with a test arm")
    analysis = analyse_experiments(observations, spend="spend", secondary=("visit",))
    results = analysis.results
    warehouse.replace_tables({"ml.ab_test_results": results})
    shown = results[
        ["campaign_id", "variant", "control_variant", "users", "conversion_rate", "lift"]
        + ["p_value_holm", "significant", "visit_rate", "visit_lift", "mean_spend"]
        + ["spend_diff", "mde", "note"]
    ]
    single_arm = sorted(results.loc[results["note"].notna(), "campaign_id"].unique())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(results),
            "campaigns": int(results["campaign_id"].nunique()),
            "compared_campaigns": len(analysis.controls),
            "controls": dg.MetadataValue.json(
                {
                    campaign: {"variant": variant, "rule": rule}
                    for campaign, variant, rule in results.loc[
                        results["is_control"], ["campaign_id", "variant", "control_rule"]
                    ].itertuples(index=False)
                }
            ),
            "campaigns_with_notes": dg.MetadataValue.json(single_arm),
            "significant_variants": int(results["significant"].fillna(False).sum()),
            "results": dg.MetadataValue.md(shown.round(4).to_markdown(index=False)),
        }
    )
