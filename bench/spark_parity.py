"""Do the DuckDB and Spark builds of dbt_project/ hold the same data? (issue 16: the same
project on Spark; docs/spark.md.) tests/test_spark_engine.py compares every value; this
profile is a quick look at two builds made by hand.

Run after `dmp run` with DMP_ENGINE=duckdb and with DMP_ENGINE=spark over the same landing
data (the same DMP_DUCKDB_PATH, DMP_SPARK_DIR as those runs):
    .venv/bin/python bench/spark_parity.py
One query, the same SQL on both engines, profiles every model and mart column: the row count
of each model, the sum (rounded to 3 places) of each numeric mart column, the count of
distinct values of each other mart column. Prints the profiles that differ and writes
bench/results/spark_parity.json.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DBT_DIR = ROOT / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
NUMERIC = {"double", "bigint", "integer"}


def profile_sql(manifest: dict) -> str:
    """One union query: (k, v) per model row count and per mart column."""
    parts = []
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    for node in sorted(models, key=lambda n: n["name"]):
        relation = f"{node['schema']}.{node['name']}"
        parts.append(f"select '{relation}' as k, cast(count(*) as string) as v from {relation}")
        if node["schema"] != "marts":
            continue
        for column in node["columns"].values():
            name = column["name"]
            if (column.get("data_type") or "").lower() in NUMERIC:
                value = f"cast(round(sum(cast({name} as double)), 3) as string)"
            else:
                value = f"cast(count(distinct {name}) as string)"
            parts.append(f"select '{relation}.{name}' as k, {value} as v from {relation}")
    return "\nunion all\n".join(parts)


def run_profile(target: str, sql: str) -> dict[str, str]:
    """The profile on one dbt target, through `dbt show` (rows come back as JSON)."""
    command = [str(DBT), "show", "--target", target, "--target-path", f"target/parity-{target}"]
    command += ["--inline", sql, "--limit", "100000", "--output", "json", "--log-format", "json"]
    out = subprocess.run(command, cwd=DBT_DIR, capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        if line.startswith("{") and '"preview"' in line:
            rows = json.loads(json.loads(line)["data"]["preview"])
            return {row["k"]: row["v"] for row in rows}
    raise RuntimeError(f"dbt show on {target} returned no rows:\n{out.stdout[-2000:]}")


def main() -> None:
    subprocess.run([str(DBT), "parse", "--quiet"], cwd=DBT_DIR, check=True)
    sql = profile_sql(json.loads((DBT_DIR / "target" / "manifest.json").read_text()))
    duckdb, spark = run_profile("dev", sql), run_profile("spark", sql)
    differ = {
        k: {"duckdb": duckdb[k], "spark": spark.get(k)} for k in duckdb if duckdb[k] != spark.get(k)
    }
    result = {"profiles_compared": len(duckdb), "profiles_differing": len(differ), "differ": differ}
    (ROOT / "bench" / "results" / "spark_parity.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )
    print(f"{len(duckdb)} profiles compared, {len(differ)} differ")
    for key, values in sorted(differ.items()):
        print(f"  {key}: duckdb {values['duckdb']}, spark {values['spark']}")


if __name__ == "__main__":
    main()
