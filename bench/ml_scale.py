"""Each ML asset on a built warehouse: wall seconds and peak RSS, one child process per asset.

Run (on a warehouse whose ingestion and warehouse groups are built, e.g. by bench/scale.py
--keep or `dmp generate` + `dmp run --select 'group:ingestion or group:warehouse'`):
    DMP_DUCKDB_PATH=DIR/dmp.duckdb .venv/bin/python bench/ml_scale.py --label "1M events"
        [--code main --repo ../main] [--results bench/results]
Writes RESULTS/ml_scale.json (rows of {"label", "code", "asset", "persons", "events",
"seconds", "cpu_seconds", "peak_rss_mb", "load_before", "load_after"}; an asset run again on
a label + code replaces its row) and RESULTS/ml_scale.md. Every asset runs through the real
command line (`dmp run --select key:ml/<asset> --full`), so each figure includes the ~10 s a
Dagster run takes to start; bench/measure.py takes the peak RSS of the whole process tree.
"""

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
from measure import run_measured

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
DMP = [sys.executable, "-m", "dmp_cli.commands"]
NOTES = "<!-- notes: kept when the table is rewritten -->"
# In dependency order: budget_allocation reads ml.person_segments.
ASSETS = (
    "person_segments",
    "propensity_scores",
    "customer_value",
    "lookalikes",
    "recommendations",
    "ab_test_results",
    "budget_allocation",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", required=True, help="the warehouse, e.g. '1M events'")
    parser.add_argument("--code", default="this branch", help="which code ran, e.g. 'main'")
    parser.add_argument(
        "--repo", type=Path, default=REPO, help="the checkout whose code runs (default: this one)"
    )
    parser.add_argument("--assets", nargs="*", default=ASSETS, choices=ASSETS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    database = Path(os.environ["DMP_DUCKDB_PATH"])
    with duckdb.connect(str(database), read_only=True) as con:
        persons = con.sql("select count(*) from marts.person_profiles").fetchall()[0][0]
        events = con.sql("select count(*) from marts.person_events").fetchall()[0][0]
    env = {
        **os.environ,
        "PYTHONPATH": str(args.repo),
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="ml_scale_") as logs:
        for asset in args.assets:
            uptime, cpu_before = _uptime(), _children_cpu_seconds()
            measured = run_measured(
                [*DMP, "run", "--select", f"key:ml/{asset}", "--full"],
                Path(logs) / f"{asset}.log",
                env={**env, "DMP_LOGS_DIR": logs},
            )
            rows.append(
                {
                    "label": args.label,
                    "code": args.code,
                    "asset": asset,
                    "persons": persons,
                    "events": events,
                    "seconds": measured.seconds,
                    "cpu_seconds": round(_children_cpu_seconds() - cpu_before, 1),
                    "peak_rss_mb": measured.peak_rss_mb,
                    "load_before": measured.load_1m_before,
                    "load_after": measured.load_1m_after,
                    "uptime_before": uptime,
                    "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                }
            )
            _say(
                f"{asset}: {rows[-1]['seconds']:.1f} s ({rows[-1]['cpu_seconds']} s CPU), "
                f"{measured.peak_rss_mb:,.0f} MB, load {measured.load_1m_before}"
            )
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / "ml_scale.json"
    kept = [
        row
        for row in (json.loads(path.read_text()) if path.exists() else [])
        if (row["label"], row["code"], row["asset"])
        not in {(new["label"], new["code"], new["asset"]) for new in rows}
    ]
    every = kept + rows
    path.write_text(json.dumps(every, indent=1) + "\n")
    markdown = args.results / "ml_scale.md"
    # What a reader wrote below the table (the reading of the figures) stays.
    notes = markdown.read_text().partition(NOTES)[2] if markdown.exists() else ""
    markdown.write_text(_markdown(every) + (f"\n{NOTES}{notes}" if notes else ""))


def _markdown(rows: list[dict]) -> str:
    lines = [
        "# ML assets at scale: seconds and peak RSS per asset",
        "",
        (
            "`bench/ml_scale.py` (its docstring says how): each asset in its own "
            "`dmp run --select key:ml/<asset> --full` on an already built warehouse; seconds "
            "include the ~10 s a Dagster run takes to start. The machine has 2 cores shared "
            "with other jobs: the 1-minute load is beside every figure, and CPU seconds (user + "
            "system of the whole process tree) are the figure to compare across loads."
        ),
        "",
        (
            "| warehouse | code | asset | persons | events | wall s | CPU s | peak RSS MB | "
            "load 1m before / after |"
        ),
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['code']} | {row['asset']} | {row['persons']:,} | "
            f"{row['events']:,} | {row['seconds']:.1f} | {row['cpu_seconds']:.1f} | "
            f"{row['peak_rss_mb']:,.0f} | "
            f"{row['load_before']} / {row['load_after']} |"
        )
    return "\n".join(lines) + "\n"


def _children_cpu_seconds() -> float:
    """User + system CPU of every finished child process (and theirs): unlike wall time, it
    hardly moves with what else the machine runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _say(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
