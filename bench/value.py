"""Does customer value predict? The spend forecast against the naive forecasts on a temporal
holdout, on the generator and on real purchases, and BG/NBD against what happened on CDNOW.

Run: .venv/bin/python bench/value.py [--real-data ../shared/data/real]
Writes bench/results/value.json and bench/results/value.md.

Steps:
1. the product's own path, once per scenario, each in a temp folder removed afterwards:
   `dmp demo` on the generator (the demo's 5,000 persons x 60 days, and 2,000 persons x 180
   days for a longer history) and `dmp demo --dataset online-retail`; the customer value
   asset scores every spend model on its temporal holdout (purchases before as-of minus the
   evaluation window, spend during it, 5-fold cross-fitted over persons) and stores the
   figures in `ml.customer_value_eval`, which is read back;
2. CDNOW (not a `dmp demo` dataset: purchases only) through `ml.value` with the asset's
   settings: the 23,570-customer cohort, purchases before 1 Oct 1997 (the paper's 39
   calibration weeks), spend over the next 90 days;
3. the paper's holdout check on the 1/10 sample (2,357 customers; Fader, Hardie & Lee 2005,
   Figure 4): BG/NBD fitted on the 39 calibration weeks, the expected repeat purchases in
   weeks 40-78 against the actual ones, in total and per number of calibration repeats.
"""

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from machine import describe_machine
from threadpoolctl import threadpool_limits

from ml.value import (
    NAIVE_SPEND_MODELS,
    expected_purchases,
    fit_bgnbd,
    fit_spend_model,
    future_spend,
    rfm_from_orders,
    spend_features,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
SCENARIOS = {
    "generator 5,000 x 60 days (the demo)": [],
    "generator 2,000 x 180 days": ["--persons", "2000", "--days", "180"],
    "Online Retail (UCI)": ["--dataset", "online-retail"],
}
CDNOW_CALIBRATION_END = pd.Timestamp("1997-10-01")
CDNOW_SPEND_DAYS = 90
CDNOW_HOLDOUT_WEEKS = 39
METRICS = ("r2", "mae", "rmse", "spearman", "top_decile_spend_share", "total_ratio")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--real-data", type=Path, default=REPO.parent / "shared/data/real")
    args = parser.parse_args()
    started = time.perf_counter()
    scenarios = {}
    for name, demo_args in SCENARIOS.items():
        print(f"{name}: dmp demo {' '.join(demo_args)}", flush=True)
        scenarios[name] = _through_the_product(demo_args, args.real_data)
    print("CDNOW", flush=True)
    cdnow = args.real_data / "cdnow"
    scenarios["CDNOW (23,570 customers, 90 days after week 39)"] = _cdnow_spend(cdnow)
    report = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(("duckdb", "scikit-learn", "scipy")),
        "commit": _commit(),
        "seconds": round(time.perf_counter() - started, 1),
        "spend": scenarios,
        "cdnow_holdout": _cdnow_holdout(cdnow),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "value.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = _markdown(report)
    (RESULTS / "value.md").write_text(markdown)
    print(markdown)


def _through_the_product(demo_args: list[str], real_data: Path) -> dict:
    """`dmp demo` in a temp folder; the customer value asset's own evaluation table."""
    with tempfile.TemporaryDirectory(prefix="dmp-value-bench-") as folder:
        root = Path(folder)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(root / "dagster_home"),
            "DMP_DUCKDB_PATH": str(root / "dmp.duckdb"),
            "DMP_LANDING_DIR": str(root / "landing"),
            "DMP_REPORTS_DIR": str(root / "reports"),
            "DMP_EXPORTS_DIR": str(root / "exports"),
            "DMP_PRIVACY_DIR": str(root / "privacy"),
            "DMP_REAL_DATA_DIR": str(real_data),
        }
        (root / "dagster_home").mkdir()
        (root / "dagster_home" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        started = time.perf_counter()
        run = subprocess.run(
            [str(Path(sys.executable).parent / "dmp"), "demo", *demo_args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if run.returncode != 0:
            raise SystemExit(
                f"dmp demo {' '.join(demo_args)} exited {run.returncode}:\n{run.stderr}"
            )
        with duckdb.connect(str(root / "dmp.duckdb"), read_only=True) as con:
            evaluation = con.execute("select * from ml.customer_value_eval").df()
    best = evaluation[evaluation["model"] == "best"].set_index("metric")["value"]
    spend = evaluation[~evaluation["model"].isin(["best", "bgnbd", "gamma_gamma"])]
    return {
        "demo_seconds": round(seconds, 1),
        "customers": int(best["customers"]),
        "evaluation_days": int(best["evaluation_days"]),
        **_judged(spend.pivot(index="model", columns="metric", values="value")),
    }


def _cdnow_spend(cdnow: Path) -> dict:
    orders = _cdnow_orders(cdnow / "cdnow_master.csv.gz", "customer_id")
    features = spend_features(orders, CDNOW_CALIBRATION_END, CDNOW_SPEND_DAYS)
    target = future_spend(orders, CDNOW_CALIBRATION_END, CDNOW_SPEND_DAYS, persons=features.index)
    with threadpool_limits(limits=1, user_api="openmp"):
        model = fit_spend_model(features, target, horizon_periods=CDNOW_SPEND_DAYS / 7, seed=42)
    return {
        "customers": len(features),
        "evaluation_days": CDNOW_SPEND_DAYS,
        **_judged(model.metrics.pivot(index="model", columns="metric", values="value")),
    }


def _judged(table: pd.DataFrame) -> dict:
    """Each model's figures, the winner (highest R², as the asset picks by lowest RMSE), and
    by how much it beats the better naive forecast."""
    best = str(table["r2"].idxmax())
    naive = table.loc[[model for model in NAIVE_SPEND_MODELS if model in table.index], "r2"]
    return {
        "models": {
            model: {metric: float(table.loc[model, metric]) for metric in METRICS}
            for model in table.index
        },
        "best_model": best,
        "best_r2": float(table.loc[best, "r2"]),
        "best_naive_r2": float(naive.max()),
        "beats_both_naive": bool(
            best not in NAIVE_SPEND_MODELS and table.loc[best, "r2"] > naive.max()
        ),
    }


def _cdnow_holdout(cdnow: Path) -> dict:
    """Expected vs actual repeat purchases (purchase days) in the 39 holdout weeks."""
    sample = _cdnow_orders(cdnow / "cdnow_sample.csv", "sample_customer_id")
    rfm = rfm_from_orders(sample, CDNOW_CALIBRATION_END)
    params = fit_bgnbd(rfm["frequency"], rfm["recency"], rfm["T"])
    expected = expected_purchases(
        params, CDNOW_HOLDOUT_WEEKS, rfm["frequency"], rfm["recency"], rfm["T"]
    )
    holdout = sample[sample["ordered_at"] >= CDNOW_CALIBRATION_END]
    actual = (
        holdout.assign(day=holdout["ordered_at"].dt.floor("D"))
        .drop_duplicates(["person_id", "day"])
        .groupby("person_id")
        .size()
        .reindex(rfm["person_id"], fill_value=0)
        .to_numpy()
    )
    buckets = (
        pd.DataFrame(
            {
                "calibration_repeats": np.minimum(rfm["frequency"], 7),
                "expected": expected,
                "actual": actual,
            }
        )
        .groupby("calibration_repeats")
        .agg(customers=("actual", "size"), expected=("expected", "mean"), actual=("actual", "mean"))
    )
    return {
        "customers": len(rfm),
        "params": {"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b},
        "expected_total": float(expected.sum()),
        "actual_total": int(actual.sum()),
        "by_calibration_repeats": [
            {"repeats": f"{index}+" if index == 7 else str(index), **row}
            for index, row in buckets.round(3).to_dict("index").items()
        ],
    }


def _cdnow_orders(path: Path, id_column: str) -> pd.DataFrame:
    if not path.exists():
        raise SystemExit(f"CDNOW not found: {path} (pass --real-data)")
    return (
        pd.read_csv(path, dtype={id_column: str})
        .rename(columns={id_column: "person_id", "date": "ordered_at", "dollar_value": "revenue"})
        .assign(ordered_at=lambda orders: pd.to_datetime(orders["ordered_at"]))
    )


def _commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def _markdown(report: dict) -> str:
    lines = [
        "# Customer value: spend forecasts against the naive forecasts",
        "",
        (
            f"Generated {report['generated_at']} by `bench/value.py` at commit "
            f"{report['commit']} on {report['machine']['cores']} cores "
            f"({report['machine']['cpu']}), {report['seconds']} s."
        ),
        "",
        (
            "Next-period spend per buyer on a temporal holdout: purchases before the cutoff, "
            "spend in the window after it (5-fold cross-fitted over persons, every person "
            "scored once by a model that did not see them). R² is the judge (the share of the "
            "spread in spend a forecast explains; the mean scores 0); MAE rewards predicting 0 "
            "for everyone, since most spend nothing. Naive forecasts: `mean` (everyone spends "
            "the average) and `last_period_spend` (everyone repeats the window before)."
        ),
        "",
        "| data | buyers | window (days) | model | R² | MAE | RMSE | Spearman | top-decile share | total ratio |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in report["spend"].items():
        for model, figures in sorted(result["models"].items(), key=lambda item: -item[1]["r2"]):
            marker = " **(best)**" if model == result["best_model"] else ""
            lines.append(
                f"| {name} | {result['customers']:,} | {result['evaluation_days']} | "
                f"{model}{marker} | {figures['r2']:.3f} | {figures['mae']:.2f} | "
                f"{figures['rmse']:.2f} | {figures['spearman']:.3f} | "
                f"{figures['top_decile_spend_share']:.3f} | {figures['total_ratio']:.3f} |"
            )
    lines += [
        "",
        "| data | best | R² | best naive R² | beats both naive |",
        "|---|---|---:|---:|---|",
    ]
    for name, result in report["spend"].items():
        lines.append(
            f"| {name} | {result['best_model']} | {result['best_r2']:.3f} | "
            f"{result['best_naive_r2']:.3f} | {'yes' if result['beats_both_naive'] else 'NO'} |"
        )
    holdout = report["cdnow_holdout"]
    params = holdout["params"]
    lines += [
        "",
        f"## CDNOW: BG/NBD repeat purchases in the {CDNOW_HOLDOUT_WEEKS}-week holdout",
        "",
        (
            f"The 1/10 sample ({holdout['customers']:,} customers), fitted on weeks 1-39 "
            f"(r {params['r']:.3f}, α {params['alpha']:.3f}, a {params['a']:.3f}, "
            f"b {params['b']:.3f}; the paper: 0.243, 4.414, 0.793, 2.426). Repeat purchases "
            f"(purchase days) in weeks 40-78: expected **{holdout['expected_total']:,.0f}**, "
            f"actual **{holdout['actual_total']:,}** "
            f"(ratio {holdout['expected_total'] / holdout['actual_total']:.3f})."
        ),
        "",
        "| repeats in weeks 1-39 | customers | expected per customer | actual per customer |",
        "|---|---:|---:|---:|",
    ]
    for row in holdout["by_calibration_repeats"]:
        lines.append(
            f"| {row['repeats']} | {row['customers']:,.0f} | {row['expected']:.3f} | "
            f"{row['actual']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
