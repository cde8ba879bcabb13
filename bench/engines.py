"""DuckDB vs local Spark: the same dbt models on the same raw data, build time per layer.

Generates a scenario, ingests it once with DMP_ENGINE=spark (raw tables in DuckDB and, through
dlt's filesystem destination, in the Parquet lake), then runs `dbt run` on each engine's
target and sums the models' execution times per layer (staging, intermediate, marts) from
dbt's run_results.json; the wall time includes dbt's start (and Spark's session start).
Writes DIR/engines.json and prints a Markdown table (bench/results/engines.md holds results).

    .venv/bin/python bench/engines.py --persons 2000 --days 30 --out /tmp/engines
"""

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
DBT_DIR = ROOT / "dbt_project"
BIN = Path(sys.executable).parent
TARGETS = {"duckdb": "dev", "spark": "spark"}


def dmp(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(BIN / "python"), "-m", "dmp_cli.commands", *args], env=env, check=True)


def dbt_run(env: dict[str, str], engine: str, out: Path) -> dict[str, float]:
    """Seconds per layer (models' execution time) and the invocation's wall time."""
    target_path = out / f"dbt-{engine}"
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "dbt"), "run", "--target", TARGETS[engine], "--target-path", str(target_path)],
        cwd=DBT_DIR,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds: dict[str, float] = defaultdict(float)
    seconds["wall"] = time.perf_counter() - started
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    nodes = json.loads((target_path / "manifest.json").read_text())["nodes"]
    for result in results:
        if result["unique_id"].startswith("model."):
            # the layer is the models/ folder of the model's SQL file
            layer = nodes[result["unique_id"]]["path"].split("/")[0]
            seconds[layer] += result["execution_time"]
            seconds["models"] += result["execution_time"]
    return dict(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    out = args.out.resolve()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DMP_ENGINE": "spark",
        "DMP_LANDING_DIR": str(out / "landing"),
        "DMP_DUCKDB_PATH": str(out / "warehouse" / "dmp.duckdb"),
        "DMP_SPARK_DIR": str(out / "spark"),
        "DAGSTER_HOME": str(out / "dagster_home"),
    }
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    dmp(env, "generate", "--persons", str(args.persons), "--days", str(args.days),
        "--seed", str(args.seed), "--out", env["DMP_LANDING_DIR"])  # fmt: skip
    dmp(env, "run", "--select", "group:ingestion")
    with duckdb.connect(env["DMP_DUCKDB_PATH"], read_only=True) as con:
        events = con.execute(
            "select (select count(*) from raw.web_events) + (select count(*) from raw.app_events)"
        ).fetchone()[0]
    result = {"events": events, "persons": args.persons, "days": args.days, "load": ""}
    for engine in TARGETS:
        result[engine] = dbt_run(env, engine, out)
    result["load"] = Path("/proc/loadavg").read_text().split()[:3]
    (out / "engines.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{events:,} raw events ({args.persons} persons x {args.days} days), load {result['load']}"
    )
    print("| seconds | " + " | ".join(TARGETS) + " |\n|---|" + "---|" * len(TARGETS))
    for layer in ("staging", "intermediate", "marts", "models", "wall"):
        print(
            f"| {layer} | " + " | ".join(f"{result[e].get(layer, 0):.1f}" for e in TARGETS) + " |"
        )


if __name__ == "__main__":
    main()
