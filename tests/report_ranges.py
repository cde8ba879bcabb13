"""Every figure in the report's CSV tables can be what its column claims it is.

Shared by the demo's report test and the real-data pipeline tests, so the same rules judge
every dataset's report. A column is judged by its name: the names are the report's contract.
"""

from pathlib import Path

import numpy as np
import pandas as pd

# Rates, shares, probabilities and their interval bounds: a fraction of something.
FRACTIONS = {
    "ctr",
    "conversion_rate",
    "ci_low",
    "ci_high",
    "p_value",
    "share_of_visitors",
    "conversion_from_previous_step",
}
FRACTION_SUFFIXES = ("_share", "_rate")
# Counts, money and cost ratios: never below zero.
NON_NEGATIVE = {
    "impressions",
    "clicks",
    "cost",
    "conversions",
    "converted_clicks",
    "revenue",
    "cpc",
    "cpm",
    "cpa",
    "roas",
    "users",
    "persons",
    "step_persons",
    "cohort_persons",
    "retained_persons",
    "members",
    "orders",
    "events",
    "active_persons",
    "monetary",
    "mean_monetary",
    "records",
    "files",
    "lines",
}
NON_NEGATIVE_SUFFIXES = ("_conversions", "_per_person", "_lines", "_files")


def assert_report_values_in_range(folder: Path) -> int:
    """Check every CSV in `folder`; return how many values were judged (0 means nothing was)."""
    judged = 0
    for table_path in sorted(folder.glob("*.csv")):
        table = pd.read_csv(table_path)
        for column in table.columns:
            values = pd.to_numeric(table[column], errors="coerce").dropna()
            if column in FRACTIONS or column.endswith(FRACTION_SUFFIXES):
                outside = values[~values.between(0, 1)]
            elif column in NON_NEGATIVE or column.endswith(NON_NEGATIVE_SUFFIXES):
                outside = values[values < 0]
            elif column == "roi":
                outside = values[values < -1]
            else:
                continue
            judged += len(values)
            assert outside.empty, f"{table_path.name}: {column} outside its range: {outside.head()}"
        if {"roi", "roas"} <= set(table.columns):
            priced = table.dropna(subset=["roi"])
            assert np.allclose(priced["roi"], priced["roas"] - 1), f"{table_path.name}: ROI"
        if "converted_clicks" in table.columns:
            assert (table["converted_clicks"] <= table["clicks"]).all(), table_path.name
        if {"retained_persons", "cohort_persons"} <= set(table.columns):
            assert (table["retained_persons"] <= table["cohort_persons"]).all(), table_path.name
        if "view_through_conversions" in table.columns:
            split = table["click_through_conversions"] + table["view_through_conversions"]
            assert (split == table["conversions"]).all(), f"{table_path.name}: conversions split"
    return judged
