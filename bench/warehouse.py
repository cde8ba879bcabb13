"""How long `dbt build` takes on a warehouse of ~1M events: a full build, a build with nothing
new, an incremental build after a new week of events, and a full refresh.

Run: .venv/bin/python bench/warehouse.py [--persons 16000 --days 60] [--landing DIR]
Writes bench/results/warehouse.json and bench/results/warehouse.md.

Steps, in a temp folder that is removed afterwards:
1. generate the landing zone (datagen; 16,000 persons x 60 days is ~1.07M web + app event
   lines), or copy `--landing` (the copy is changed, the original never);
2. hold back the newest week of event files: `web_events_<day>`, `app_events_<day>` and
   `social_engagements_<day>.jsonl.gz` of the latest weekly stamp (the generator writes one
   file per channel and week from the period start; the last week may be shorter);
3. ingest every channel in `ingestion.channels.CHANNELS` with `ingestion.pipeline.load_channel`
   into a fresh DuckDB file;
4. copy dbt_project/ (so edits made meanwhile cannot change what is measured, and nothing
   is written into the repository's target/ or logs/) and run, each `dbt build` in its own
   subprocess with DMP_DUCKDB_PATH pointing at that file:
   a. "full": on the freshly ingested raw tables (empty staging/intermediate/marts);
   b. "second_no_new_data": again at once, nothing new ingested;
   c. "incremental_new_week": the held-back files are put back and every channel is loaded
      again (load_channel only reads files it has not loaded yet), then an incremental build;
   d. "full_refresh": `dbt build --full-refresh` on the same final data.
5. after c and after d, count the rows of intermediate.int_events_deduplicated,
   intermediate.int_events_sessionised and marts.person_profiles: an incremental build must
   leave what a full refresh makes. The tables after c are also copied into a side DuckDB
   file and compared row by row (`except all`, both ways) with those after d.

Incremental models: int_events_deduplicated (rewrites the UTC days of the last
var events_lookback_days; delete+insert on event_date), int_events_sessionised (rebuilds the
persons whose events' fingerprint changed; delete+insert on person_id) and
int_person_ids_assigned (the person id memory; full_refresh=false, so --full-refresh keeps it).
Every other model is a view or a table rebuilt each time.

Peak RSS is the dbt process's own VmHWM, polled from /proc while it runs (dbt and DuckDB
run in one process); not rusage, which Linux carries over fork + exec from this process.
"""

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import re
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
# The weekly event files held back for the incremental build: landing folder -> file prefix.
WEEKLY_EVENT_FILES = {
    "web_events": "web_events",
    "app_events": "app_events",
    "social": "social_engagements",
}
# Compared after the incremental build and after the full refresh.
COMPARED_TABLES = (
    "intermediate.int_events_deduplicated",
    "intermediate.int_events_sessionised",
    "marts.person_profiles",
)
INCREMENTAL_MODELS = (
    "int_events_deduplicated",
    "int_events_sessionised",
    "int_person_ids_assigned",
)
POLL_SECONDS = 0.1
# Float columns are compared exactly and also rounded to this many decimals: a sum over rows
# in another order can differ in its last bits.
FLOAT_DECIMALS = 6
FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")
SLOWEST_NODES = 5
BUILDS = {
    "full": "dbt build on freshly ingested raw tables, newest week held back",
    "second_no_new_data": "dbt build again at once, nothing new ingested",
    "incremental_new_week": "newest week released and ingested, dbt build (incremental)",
    "full_refresh": "dbt build --full-refresh on the same final data",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=16000, help="persons to generate")
    parser.add_argument("--days", type=int, default=60, help="days to generate")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--landing", type=Path, help="copy this landing dir instead")
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the temp folder")
    args = parser.parse_args()

    started_all = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dmp_bench_warehouse_", dir=args.work_dir) as tmp:
        work = Path(tmp)
        landing = work / "landing"
        if args.landing is None:
            _say(f"generating {args.persons:,} persons x {args.days} days")
            started = time.perf_counter()
            _generate(args.persons, args.days, args.seed, landing)
            landing_info = {"generated": True, "persons": args.persons, "days": args.days}
            landing_info["seed"] = args.seed
            landing_info["generate_seconds"] = round(time.perf_counter() - started, 1)
        else:
            shutil.copytree(args.landing.resolve(), landing)
            landing_info = {"generated": False, "dir": str(args.landing.resolve())}
        landing_info.update(_manifest_counts(landing))
        _say(f"{landing_info['event_lines']:,} web + app event lines in the landing manifest")

        held = work / "held_back"
        held_back = _hold_back_newest_week(landing, held)
        _say(
            f"held back week {held_back['week']}: {held_back['lines']:,} lines in "
            f"{len(held_back['files'])} files"
        )

        db = work / "warehouse" / "dmp.duckdb"
        ingest = _ingest(landing, db)
        _say(f"ingested {ingest['raw_rows']:,} raw rows in {ingest['seconds']} s")

        project = work / "dbt_project"
        shutil.copytree(
            DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
        )
        code = _code_state(project)
        snapshot = work / "after_incremental.duckdb"
        builds, comparison, new_week_ingest = {}, {}, None
        for name, description in BUILDS.items():
            if name == "incremental_new_week":
                _release(held, landing)
                new_week_ingest = _ingest(landing, db, before=ingest["raw_rows_per_table"])
                _say(
                    f"ingested the new week: {new_week_ingest['raw_rows_added']:,} raw rows "
                    f"in {new_week_ingest['seconds']} s"
                )
            _say(f"{name}: {description}")
            full_refresh = name == "full_refresh"
            builds[name] = {"description": description, **_dbt_build(project, db, full_refresh)}
            _say(
                f"{name}: {builds[name]['wall_seconds']} s wall, "
                f"peak RSS {builds[name]['peak_rss_mb']:,} MB, {builds[name]['counts']}"
            )
            if name == "incremental_new_week":
                comparison["after_incremental"] = _snapshot(db, snapshot)
            if name == "full_refresh":
                comparison.update(_compare(db, snapshot, comparison["after_incremental"]))
                _say(f"incremental vs full refresh: {comparison['verdict']}")
        warehouse = _warehouse_facts(db)

    report = {
        "benchmark": (
            "dbt build (models, data tests, unit tests) on ~1M events in DuckDB: full, "
            "no new data, incremental after a new week, full refresh"
        ),
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": describe_machine(("dbt-core", "dbt-duckdb", "duckdb", "dlt")),
        "load_average_1m": {"before": round(load_before[0], 2), "after": _load_1m()},
        "script_seconds": round(time.perf_counter() - started_all, 1),
        "code": code,
        "landing": landing_info,
        "held_back": held_back,
        "ingest": ingest,
        "ingest_new_week": new_week_ingest,
        "builds": builds,
        "incremental_equals_full_refresh": comparison,
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


def _hold_back_newest_week(landing: Path, held: Path) -> dict:
    """Move the event files of the latest weekly stamp out of the landing zone into `held`."""
    stamps = {
        match.group(1)
        for folder, prefix in WEEKLY_EVENT_FILES.items()
        for path in (landing / folder).glob(f"{prefix}_*.jsonl.gz")
        if (match := re.fullmatch(rf"{prefix}_(\d{{8}})\.jsonl\.gz", path.name))
    }
    if not stamps:
        raise SystemExit(f"no weekly event files in {landing}")
    week = max(stamps)
    held.mkdir(parents=True)
    files = {}
    for folder, prefix in WEEKLY_EVENT_FILES.items():
        path = landing / folder / f"{prefix}_{week}.jsonl.gz"
        if path.exists():
            files[f"{folder}/{path.name}"] = _lines(path)
            path.rename(held / path.name)
    return {"week": week, "files": files, "lines": sum(files.values())}


def _release(held: Path, landing: Path) -> None:
    folders = {prefix: folder for folder, prefix in WEEKLY_EVENT_FILES.items()}
    for path in held.iterdir():
        path.rename(landing / folders[path.name.rsplit("_", 1)[0]] / path.name)


def _lines(path: Path) -> int:
    with gzip.open(path, "rb") as handle:
        return sum(1 for _ in handle)


def _ingest(landing: Path, db: Path, before: dict | None = None) -> dict:
    """Load every channel; with `before` (rows per raw table), also what each load added."""
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
    result = {
        "seconds": round(sum(seconds.values()), 1),
        "seconds_per_channel": seconds,
        "raw_rows": sum(rows.values()),
        "raw_rows_per_table": rows,
        "duckdb_file_mb": _mb(db),
    }
    if before is not None:
        added = {table: count - before.get(table, 0) for table, count in rows.items()}
        result["raw_rows_added"] = sum(added.values())
        result["raw_rows_added_per_table"] = {t: n for t, n in added.items() if n}
    return result


def _dbt_build(project: Path, db: Path, full_refresh: bool = False) -> dict:
    """One `dbt build` in its own process: wall time, its peak RSS and what run_results says."""
    target = project / "target"
    command = [str(Path(sys.executable).with_name("dbt")), "build", "--target-path", str(target)]
    if full_refresh:
        command.append("--full-refresh")
    log = project / "build.log"
    env = {**os.environ, "DMP_DUCKDB_PATH": str(db)}
    load_before = _load_1m()
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
    slowest = sorted(nodes, key=lambda node: node["execution_time"], reverse=True)
    incremental = {
        node["unique_id"].split(".")[-1]: round(node["execution_time"], 2)
        for node in nodes
        if node["unique_id"].split(".")[0] == "model"
        and node["unique_id"].split(".")[-1] in INCREMENTAL_MODELS
    }
    return {
        "command": " ".join(["dbt", *command[1:2], *command[4:]]),
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
            for node in slowest[:SLOWEST_NODES]
        ],
        "incremental_model_seconds": {name: incremental.get(name) for name in INCREMENTAL_MODELS},
        "models_seconds_total": round(
            sum(n["execution_time"] for n in nodes if n["unique_id"].startswith("model.")), 1
        ),
        "tests_seconds_total": round(
            sum(n["execution_time"] for n in nodes if not n["unique_id"].startswith("model.")), 1
        ),
        "load_average_1m": {"before": load_before, "after": _load_1m()},
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


def _snapshot(db: Path, snapshot: Path) -> dict:
    """Copy COMPARED_TABLES into a side DuckDB file (the warehouse is only read); row counts."""
    import duckdb

    with duckdb.connect(str(snapshot)) as con:
        con.execute(f"attach '{db}' as wh (read_only)")
        for table in COMPARED_TABLES:
            con.execute(f'create table "{table}" as select * from wh.{table}')
        con.execute("detach wh")
        return {
            table: con.execute(f'select count(*) from "{table}"').fetchone()[0]
            for table in COMPARED_TABLES
        }


def _compare(db: Path, snapshot: Path, incremental_counts: dict) -> dict:
    """Row counts after the incremental build vs after the full refresh, and the rows found
    after one only: every column compared exactly, then with floats rounded."""
    import duckdb

    tables = {}
    with duckdb.connect(str(snapshot)) as con:
        con.execute(f"attach '{db}' as wh (read_only)")
        for table in COMPARED_TABLES:
            columns = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_catalog = current_database() and table_name = ? "
                "order by ordinal_position",
                [table],
            ).fetchall()
            exact = ", ".join(f'"{name}"' for name, _ in columns)
            rounded = ", ".join(
                f'round("{name}", {FLOAT_DECIMALS})' if kind in FLOAT_TYPES else f'"{name}"'
                for name, kind in columns
            )
            figures = {
                "rows_after_incremental": incremental_counts[table],
                "rows_after_full_refresh": con.execute(
                    f"select count(*) from wh.{table}"
                ).fetchone()[0],
            }
            figures["row_counts_equal"] = (
                figures["rows_after_incremental"] == figures["rows_after_full_refresh"]
            )
            for label, select in (("", exact), ("_floats_rounded", rounded)):
                incremental = f'select {select} from "{table}"'
                refreshed = f"select {select} from wh.{table}"
                for side, (a, b) in {
                    "incremental": (incremental, refreshed),
                    "full_refresh": (refreshed, incremental),
                }.items():
                    figures[f"rows_only_after_{side}{label}"] = con.execute(
                        f"select count(*) from ({a} except all {b})"
                    ).fetchone()[0]
            figures["float_columns"] = [name for name, kind in columns if kind in FLOAT_TYPES]
            tables[table] = figures
    counts_equal = all(t["row_counts_equal"] for t in tables.values())
    rows_equal = all(
        t["rows_only_after_incremental"] == t["rows_only_after_full_refresh"] == 0
        for t in tables.values()
    )
    rows_equal_rounded = all(
        t["rows_only_after_incremental_floats_rounded"]
        == t["rows_only_after_full_refresh_floats_rounded"]
        == 0
        for t in tables.values()
    )
    verdict = "row counts equal" if counts_equal else "ROW COUNTS DIFFER"
    if rows_equal:
        verdict += "; every row equal, bit for bit"
    elif rows_equal_rounded:
        verdict += (
            f"; every row equal once floats are rounded to {FLOAT_DECIMALS} decimals (some rows "
            "differ only in float digits below that)"
        )
    else:
        verdict += f"; SOME ROWS DIFFER even with floats rounded to {FLOAT_DECIMALS} decimals"
    return {
        "tables": tables,
        "row_counts_equal": counts_equal,
        "rows_equal_exactly": rows_equal,
        f"rows_equal_with_floats_rounded_to_{FLOAT_DECIMALS}_decimals": rows_equal_rounded,
        "verdict": verdict,
    }


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
            "execution after parsing); models_seconds_total / tests_seconds_total: the sum of "
            "the nodes' own times (2 threads, so more than the elapsed time)."
        ),
        (
            "Builds run one after the other on the same DuckDB file. Only int_events_deduplicated, "
            "int_events_sessionised and int_person_ids_assigned are incremental; every other "
            "model is a view or a table rebuilt from scratch in every build, and every data "
            "and unit test runs each time. The second build reuses dbt's partial parse."
        ),
        (
            "The held-back week is the newest weekly stamp of web_events, app_events and "
            "social_engagements files; orders, CRM, campaign touches and ad-network files are "
            "loaded in full from the start. The new week is ingested with load_channel for every "
            "channel; channels without new files load nothing."
        ),
        (
            "incremental_equals_full_refresh: row counts of the compared tables after the "
            "incremental build and after the full refresh, and the rows found after one only "
            "(`except all` both ways): every column compared exactly, then again with float "
            f"columns rounded to {FLOAT_DECIMALS} decimals."
        ),
        (
            "Peak RSS: the dbt process's VmHWM, polled every 0.1 s; in brackets the figure dbt "
            "logs itself (process_mem_max_rss of its 'Resource report')."
        ),
        "dbt runs with the profile's 2 threads; DuckDB uses every core.",
        (
            "load_average_1m (for the whole run and for each build) shows whether something "
            "else ran on the machine during the measurement (the 2-core machine is shared)."
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
    held, new_week = report["held_back"], report["ingest_new_week"]
    scale = (
        f"{landing['persons']:,} persons x {landing['days']} days"
        if landing["generated"]
        else f"landing {landing['dir']}"
    )
    lines = [
        "# Warehouse build time: dbt build on ~1M events, full, incremental and full refresh",
        "",
        (
            f"{scale}: {landing['event_lines']:,} web + app event lines. The newest week "
            f"({held['week']}: {held['lines']:,} web, app and social lines in "
            f"{len(held['files'])} files) was held back: {ingest['raw_rows']:,} raw rows over "
            f"{len(ingest['raw_rows_per_table'])} tables first (ingested in {ingest['seconds']} s; "
            f"DuckDB file {ingest['duckdb_file_mb']} MB), then {new_week['raw_rows_added']:,} "
            f"more (ingested in {new_week['seconds']} s). {machine['cores']} cores, "
            f"{machine['ram_gb']} GB, {machine['cpu']}; Python {machine['python']}, dbt-core "
            f"{machine['dbt-core']}, dbt-duckdb {machine['dbt-duckdb']}, duckdb "
            f"{machine['duckdb']}. Run {report['run_at']}: `{report['command']}` "
            f"({report['script_seconds']} s in all); load average "
            f"{report['load_average_1m']['before']} before, "
            f"{report['load_average_1m']['after']} after."
        ),
        "",
        (
            "| build | wall s | dbt elapsed s | peak RSS MB (dbt's report) | models | data tests "
            "| unit tests | statuses | load avg 1m before / after |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, build in report["builds"].items():
        counts = build["counts"]
        statuses = ", ".join(f"{status} {count}" for status, count in build["statuses"].items())
        load = build["load_average_1m"]
        lines.append(
            f"| {name}: {build['description']} | {build['wall_seconds']} | "
            f"{build['dbt_elapsed_seconds']} | {build['peak_rss_mb']:,} "
            f"({build['dbt_reported_max_rss_mb']:,}) | {counts['models']} | "
            f"{counts['data_tests']} | {counts['unit_tests']} | {statuses} | "
            f"{load['before']} / {load['after']} |"
        )
    lines += [
        "",
        "Incremental models (seconds per build):",
        "",
        "| build | " + " | ".join(INCREMENTAL_MODELS) + " | all models | tests |",
        "|---|" + "---:|" * (len(INCREMENTAL_MODELS) + 2),
    ]
    for name, build in report["builds"].items():
        cells = [build["incremental_model_seconds"][model] for model in INCREMENTAL_MODELS]
        lines.append(
            f"| {name} | "
            + " | ".join("-" if cell is None else str(cell) for cell in cells)
            + f" | {build['models_seconds_total']} | {build['tests_seconds_total']} |"
        )
    lines += ["", "Slowest nodes:", ""]
    for name, build in report["builds"].items():
        slowest = ", ".join(
            f"{_node_name(node['node'])} {node['seconds']} s" for node in build["slowest_nodes"]
        )
        lines.append(f"- {name}: {slowest}.")
    comparison = report["incremental_equals_full_refresh"]
    lines += [
        "",
        f"Incremental build vs full refresh: {comparison['verdict']}.",
        "",
        (
            "| table | rows after incremental | rows after full refresh | counts equal "
            "| rows only after incremental / only after full refresh: exact "
            f"| same, floats rounded to {FLOAT_DECIMALS} decimals |"
        ),
        "|---|---:|---:|---|---:|---:|",
    ]
    for table, figures in comparison["tables"].items():
        lines.append(
            f"| {table} | {figures['rows_after_incremental']:,} | "
            f"{figures['rows_after_full_refresh']:,} | "
            f"{'yes' if figures['row_counts_equal'] else 'NO'} | "
            f"{figures['rows_only_after_incremental']:,} / "
            f"{figures['rows_only_after_full_refresh']:,} | "
            f"{figures['rows_only_after_incremental_floats_rounded']:,} / "
            f"{figures['rows_only_after_full_refresh_floats_rounded']:,} |"
        )
    lines += [
        "",
        "Mart rows after the full refresh: "
        + ", ".join(f"{name} {rows:,}" for name, rows in report["warehouse"]["mart_rows"].items())
        + ".",
        "",
        *[f"- {note}" for note in report["notes"]],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
