"""How long a full `dbt build` takes on a warehouse of ~1M events, and a second one with no new data.

Run: .venv/bin/python bench/warehouse.py [--persons 16000 --days 60] [--landing DIR]
Writes bench/results/warehouse.json and bench/results/warehouse.md.

Steps, in a temp folder that is removed afterwards:
1. generate the landing zone (datagen; 16,000 persons x 60 days is ~1.07M web + app event
   lines), or reuse `--landing`;
2. ingest every channel in `ingestion.channels.CHANNELS` with `ingestion.pipeline.load_channel`
   into a fresh DuckDB file;
3. copy dbt_project/ (so edits made meanwhile cannot change what is measured, and nothing
   is written into the repository's target/ or logs/) and run `dbt build` in a subprocess
   with DMP_DUCKDB_PATH pointing at that file: once on the fresh raw tables ("full build"),
   then again with no new data ("second build").

No model is incremental yet: the second build rebuilds every table, so it measures the cost
of a scheduled run when nothing arrived. It does reuse dbt's partial parse from the first.
Peak RSS is the dbt process's own VmHWM, polled from /proc while it runs (dbt and DuckDB
run in one process); not rusage, which Linux carries over fork + exec from this process.
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from machine import describe_machine

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
DBT_PROJECT = REPO / "dbt_project"
EVENT_CHANNELS = ("web_events", "app_events")
POLL_SECONDS = 0.1
BUILDS = {
    "full": "dbt build on freshly ingested raw tables (empty staging/intermediate/marts)",
    "second_no_new_data": "dbt build again at once, nothing new ingested (models are not incremental)",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=16000, help="persons to generate")
    parser.add_argument("--days", type=int, default=60, help="days to generate")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--landing", type=Path, help="reuse this landing dir instead")
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the temp folder")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dmp_bench_warehouse_", dir=args.work_dir) as tmp:
        work = Path(tmp)
        if args.landing is None:
            landing = work / "landing"
            _say(f"generating {args.persons:,} persons x {args.days} days")
            started = time.perf_counter()
            _generate(args.persons, args.days, args.seed, landing)
            landing_info = {"generated": True, "persons": args.persons, "days": args.days}
            landing_info["seed"] = args.seed
            landing_info["generate_seconds"] = round(time.perf_counter() - started, 1)
        else:
            landing = args.landing.resolve()
            landing_info = {"generated": False, "dir": str(landing)}
        landing_info.update(_manifest_counts(landing))
        _say(f"{landing_info['event_lines']:,} web + app event lines in the landing manifest")

        db = work / "warehouse" / "dmp.duckdb"
        ingest = _ingest(landing, db)
        _say(f"ingested {ingest['raw_rows']:,} raw rows in {ingest['seconds']} s")

        project = work / "dbt_project"
        shutil.copytree(
            DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
        )
        code = _code_state(project)
        builds = {}
        for name, description in BUILDS.items():
            _say(f"{name}: {description}")
            builds[name] = {"description": description, **_dbt_build(project, db)}
            _say(
                f"{name}: {builds[name]['wall_seconds']} s wall, "
                f"peak RSS {builds[name]['peak_rss_mb']:,} MB, {builds[name]['counts']}"
            )
        warehouse = _warehouse_facts(db)

    report = {
        "benchmark": "dbt build (models, data tests, unit tests) on ~1M events in DuckDB",
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": describe_machine(("dbt-core", "dbt-duckdb", "duckdb", "dlt")),
        "load_average_1m": {"before": round(load_before[0], 2), "after": _load_1m()},
        "code": code,
        "landing": landing_info,
        "ingest": ingest,
        "builds": builds,
        "warehouse": warehouse,
        "notes": _notes(code_changed=_tree_sha1(DBT_PROJECT) != code["dbt_tree_sha1"]),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "warehouse.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = _markdown(report)
    (RESULTS / "warehouse.md").write_text(markdown)
    print(markdown)


def _say(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _generate(persons: int, days: int, seed: int, landing: Path) -> None:
    from datagen import generate

    generate(persons=persons, days=days, seed=seed, out_dir=landing)


def _manifest_counts(landing: Path) -> dict:
    """What the generator says it wrote (`_truth/manifest.json`), when there is one."""
    path = landing / "_truth" / "manifest.json"
    if not path.exists():
        return {"event_lines": 0, "records_written": {}}
    channels = json.loads(path.read_text())["channels"]
    written = {name: channel["records_written"] for name, channel in channels.items()}
    return {
        "event_lines": sum(written.get(name, 0) for name in EVENT_CHANNELS),
        "records_written": written,
    }


def _ingest(landing: Path, db: Path) -> dict:
    import duckdb

    from ingestion.channels import CHANNELS
    from ingestion.pipeline import RAW_DATASET, load_channel

    seconds = {}
    for name, channel in CHANNELS.items():
        started = time.perf_counter()
        load_channel(channel, landing, db)
        seconds[name] = round(time.perf_counter() - started, 2)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = {
            channel.table: con.execute(
                f"select count(*) from {RAW_DATASET}.{channel.table}"
            ).fetchone()[0]
            for channel in CHANNELS.values()
        }
    return {
        "seconds": round(sum(seconds.values()), 1),
        "seconds_per_channel": seconds,
        "raw_rows": sum(rows.values()),
        "raw_rows_per_table": rows,
        "duckdb_file_mb": _mb(db),
    }


def _dbt_build(project: Path, db: Path) -> dict:
    """One `dbt build` in its own process: wall time, its peak RSS and what run_results says."""
    target = project / "target"
    command = [str(Path(sys.executable).with_name("dbt")), "build", "--target-path", str(target)]
    log = project / "build.log"
    env = {**os.environ, "DMP_DUCKDB_PATH": str(db)}
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=project, env=env, stdout=out, stderr=out)
        peak_kib = 0
        while process.poll() is None:
            peak_kib = max(peak_kib, _vm_hwm_kib(process.pid))
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
    if process.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"dbt build failed (exit {process.returncode}); end of its log:\n{tail}")
    results = json.loads((target / "run_results.json").read_text())
    nodes = results["results"]
    kinds = Counter(node["unique_id"].split(".")[0] for node in nodes)
    statuses = Counter(node["status"] for node in nodes)
    slowest = sorted(nodes, key=lambda node: node["execution_time"], reverse=True)[:5]
    return {
        "wall_seconds": round(seconds, 1),
        "dbt_elapsed_seconds": round(results["elapsed_time"], 1),
        "peak_rss_mb": round(peak_kib / 1024),
        "dbt_reported_max_rss_mb": _dbt_reported_max_rss_mb(project / "logs" / "dbt.log"),
        "counts": {
            "models": kinds["model"],
            "data_tests": kinds["test"],
            "unit_tests": kinds["unit_test"],
            "exposures": kinds["exposure"],
        },
        "statuses": dict(statuses),
        "slowest_nodes": [
            {"node": node["unique_id"], "seconds": round(node["execution_time"], 2)}
            for node in slowest
        ],
        "duckdb_file_mb_after": _mb(db),
    }


def _vm_hwm_kib(pid: int) -> int:
    """A running process's peak resident set so far (0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _dbt_reported_max_rss_mb(log: Path) -> int | None:
    """dbt's own figure (its last 'Resource report' line), to cross-check the rusage one."""
    reports = [line for line in log.read_text().splitlines() if "Resource report: " in line]
    if not reports:
        return None
    report = json.loads(reports[-1].split("Resource report: ", 1)[1])
    return round(int(report["process_mem_max_rss"]) / 1024)


def _warehouse_facts(db: Path) -> dict:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute(
            """
            select table_schema, count(*) from information_schema.tables
            where table_schema in ('staging', 'intermediate', 'marts')
            group by all order by all
            """
        ).fetchall()
        marts = con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' "
            "order by all"
        ).fetchall()
        rows = {
            f"marts.{name}": con.execute(f'select count(*) from marts."{name}"').fetchone()[0]
            for (name,) in marts
        }
    return {"relations_per_schema": dict(tables), "mart_rows": rows}


def _node_name(unique_id: str) -> str:
    """model.dmp.x -> model x; test.dmp.x.hash -> test x; unit_test.dmp.model.x -> unit_test x."""
    kind, _, *rest = unique_id.split(".")
    return f"{kind} {rest[1] if kind == 'unit_test' else rest[0]}"


def _mb(path: Path) -> float:
    return round(path.stat().st_size / 2**20, 1)


def _load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def _code_state(project: Path) -> dict:
    """Which dbt project was measured (the copy): the commit, and dbt files changed on top."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], check=False, cwd=REPO, capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD").strip() or None,
        "uncommitted_dbt_files": [
            line[3:] for line in git("status", "--porcelain", "--", "dbt_project").splitlines()
        ],
        "dbt_tree_sha1": _tree_sha1(project),
        "models": len(list((project / "models").rglob("*.sql"))),
    }


def _tree_sha1(project: Path) -> str:
    """The dbt code in a project folder: models, macros, tests and dbt_project.yml."""
    tree = hashlib.sha1()
    for folder in ("models", "macros", "tests"):
        for path in sorted((project / folder).rglob("*")):
            if path.is_file():
                relative = path.relative_to(project).as_posix()
                tree.update(relative.encode() + b"\0" + path.read_bytes())
    tree.update((project / "dbt_project.yml").read_bytes())
    return tree.hexdigest()[:12]


def _notes(code_changed: bool) -> list[str]:
    notes = [
        (
            "wall_seconds: the whole `dbt build` process (start-up, parse, every model, data "
            "test and unit test); dbt_elapsed_seconds: run_results.json elapsed_time (the "
            "execution after parsing)."
        ),
        (
            "The second build runs right after the first on the same raw tables. Every model "
            "is a view or a table rebuilt from scratch, so it redoes all the work; it shows "
            "what incremental models would save."
        ),
        (
            "Peak RSS: the dbt process's VmHWM, polled every 0.1 s; in brackets the figure dbt "
            "logs itself (process_mem_max_rss of its 'Resource report')."
        ),
        "dbt runs with the profile's 2 threads; DuckDB uses every core.",
        (
            "load_average_1m shows whether something else ran on the machine during the "
            "measurement (the 2-core machine is shared)."
        ),
    ]
    if code_changed:
        notes.append(
            "The repository's dbt project changed during this run; `code` describes the copy "
            "that was measured."
        )
    return notes


def _markdown(report: dict) -> str:
    machine, landing, ingest = report["machine"], report["landing"], report["ingest"]
    scale = (
        f"{landing['persons']:,} persons x {landing['days']} days"
        if landing["generated"]
        else f"landing {landing['dir']}"
    )
    lines = [
        "# Warehouse build time: dbt build on ~1M events",
        "",
        (
            f"{scale}: {landing['event_lines']:,} web + app event lines, "
            f"{ingest['raw_rows']:,} raw rows over {len(ingest['raw_rows_per_table'])} tables "
            f"(ingested in {ingest['seconds']} s; DuckDB file {ingest['duckdb_file_mb']} MB). "
            f"{machine['cores']} cores, {machine['ram_gb']} GB, {machine['cpu']}; Python "
            f"{machine['python']}, dbt-core {machine['dbt-core']}, dbt-duckdb "
            f"{machine['dbt-duckdb']}, duckdb {machine['duckdb']}. Run {report['run_at']}: "
            f"`{report['command']}`; load average {report['load_average_1m']['before']} "
            f"before, {report['load_average_1m']['after']} after."
        ),
        "",
        "| build | wall s | dbt elapsed s | peak RSS MB (dbt's report) | models | data tests | unit tests | statuses |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, build in report["builds"].items():
        counts = build["counts"]
        statuses = ", ".join(f"{status} {count}" for status, count in build["statuses"].items())
        lines.append(
            f"| {name}: {build['description']} | {build['wall_seconds']} | "
            f"{build['dbt_elapsed_seconds']} | {build['peak_rss_mb']:,} "
            f"({build['dbt_reported_max_rss_mb']:,}) | {counts['models']} | "
            f"{counts['data_tests']} | {counts['unit_tests']} | {statuses} |"
        )
    full = report["builds"]["full"]
    lines += [
        "",
        "Slowest nodes of the full build: "
        + ", ".join(
            f"{_node_name(node['node'])} {node['seconds']} s" for node in full["slowest_nodes"]
        )
        + ".",
        "",
        "Mart rows: "
        + ", ".join(f"{name} {rows:,}" for name, rows in report["warehouse"]["mart_rows"].items())
        + ".",
        "",
        *[f"- {note}" for note in report["notes"]],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
