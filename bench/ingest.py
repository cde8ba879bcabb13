"""How fast ~1M web events go from landing files into DuckDB: our path vs dlt's default path.

Run: .venv/bin/python bench/ingest.py [--persons 21500 --days 60] [--landing DIR]
                                      [--baseline-rows N] [--paths ours,dicts_parquet,default]
Writes bench/results/ingest.json and bench/results/ingest.md. Targets: ours is at least 10x
faster (rows/s) than dlt's default path; ours_all_channels loads at least 150k rows/s with a
peak RSS of at most 2 GB (issue 15, at 10M events; `--persons 150000` generates ~10M lines).

The paths, each on the same web_events/*.jsonl.gz files:
- ours: `ingestion.pipeline.load_channel` (files streamed in batches, parsed and validated
  vectorised in a DuckDB work connection, Arrow batches into dlt's Arrow/Parquet loader; also
  writes the quarantine table), with the DMP's DuckDB resource settings
  (`dagster_dmp.settings.ingest_duckdb_config`: DMP_INGEST_MEMORY_LIMIT etc.);
- ours_all_channels: the same for every channel in `ingestion.channels.CHANNELS`;
- dicts_parquet: a plain resource that `json.loads` every line and yields dicts, parquet loader;
- default: the same resource with dlt's default loader file format (insert_values).
Each path runs in its own freshly spawned process (so its peak RSS, VmHWM, is its own) with a
fresh DuckDB file and dlt working dir in a temp folder; everything but the results is removed.

The default path takes ~7 minutes for 1M rows on the 2-core machine. `--baseline-rows N` stops
it after N rows; its rows/s is then measured on those N rows only and extrapolated to all rows
(dlt's per-row cost is about constant, but the extrapolated time is an estimate, not a measure).
"""

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from machine import describe_machine

# Keeps dlt from trying to send anonymous usage telemetry (there is no network here); the
# same for every path, so it does not favour one.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

RESULTS = Path(__file__).parent / "results"
MIN_LINES = 1_000_000
TARGET_RATIO = 10.0
ALL_CHANNELS_ROWS_PER_SECOND = 150_000
ALL_CHANNELS_PEAK_RSS_MB = 2_048
PATHS = {
    "ours": "DuckDB read + validate in batches -> Arrow batches -> dlt parquet loader",
    "ours_all_channels": "the same for every channel of the landing dir (rows of all raw tables)",
    "dicts_parquet": "dlt, resource yielding dicts (json.loads per line), parquet loader",
    "default": "dlt default: resource yielding dicts (json.loads per line), insert_values loader",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--persons", type=int, default=21500, help="persons to generate (21500 -> 1.02M lines)"
    )
    parser.add_argument("--days", type=int, default=60, help="days to generate")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument(
        "--landing", type=Path, help="reuse this landing dir instead of generating one"
    )
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=None,
        help="stop the default path after N rows and extrapolate its rows/s (default: all rows)",
    )
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"comma-separated subset of {', '.join(PATHS)} (default: all)",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="parent of the temp folder (default: system)"
    )
    args = parser.parse_args()
    paths = [name.strip() for name in args.paths.split(",") if name.strip()]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown path(s) {unknown}; choose from {list(PATHS)}")

    code = _code_state()
    with tempfile.TemporaryDirectory(prefix="dmp_bench_ingest_", dir=args.work_dir) as tmp:
        work = Path(tmp)
        if args.landing is None:
            landing = work / "landing"
            _say(f"generating {args.persons:,} persons x {args.days} days into {landing}")
            started = time.perf_counter()
            _generate(args.persons, args.days, args.seed, landing)
            _say(f"generated in {time.perf_counter() - started:.1f} s")
        else:
            landing = args.landing.resolve()
        landing_info = _describe_landing(landing)
        if args.landing is None:
            landing_info.update(
                generated=True, persons=args.persons, days=args.days, seed=args.seed
            )
        else:
            landing_info.update(generated=False, dir=str(landing))
        if landing_info["lines"] < MIN_LINES:
            _say(f"warning: only {landing_info['lines']:,} web event lines (< {MIN_LINES:,})")
        _say(f"{landing_info['lines']:,} lines in {len(landing_info['files'])} files")

        measured = {}
        for name in paths:
            cap = args.baseline_rows if name == "default" else None
            _say(f"{name}: {PATHS[name]}" + (f" (capped at {cap:,} rows)" if cap else ""))
            # A fresh spawned process per path: its own imports, memory and peak RSS.
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
                result = pool.submit(_measure, name, str(landing), str(work / name), cap).result()
            result = _finish(name, result, landing_info["lines"])
            measured[name] = result
            _say(
                f"{name}: {result['rows_loaded']:,} rows in {result['seconds']:.1f} s = "
                f"{result['rows_per_second']:,} rows/s, peak RSS {result['peak_rss_mb']:,} MB"
            )

    report = {
        "benchmark": "web_events landing files (jsonl.gz) -> DuckDB raw.web_events",
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": describe_machine(("dlt", "duckdb", "pyarrow")),
        "code": code,
        "landing": landing_info,
        "paths": measured,
        "ratios": _ratios(measured),
        "target": {
            "ours_vs_default_at_least": TARGET_RATIO,
            "met": (
                _ratios(measured).get("ours_vs_default", 0) >= TARGET_RATIO
                if "ours" in measured and "default" in measured
                else None
            ),
            "ours_all_channels_rows_per_second_at_least": ALL_CHANNELS_ROWS_PER_SECOND,
            "ours_all_channels_peak_rss_mb_at_most": ALL_CHANNELS_PEAK_RSS_MB,
            "ours_all_channels_met": (
                measured["ours_all_channels"]["rows_per_second"] >= ALL_CHANNELS_ROWS_PER_SECOND
                and measured["ours_all_channels"]["peak_rss_mb"] <= ALL_CHANNELS_PEAK_RSS_MB
                if "ours_all_channels" in measured
                else None
            ),
        },
        "notes": _notes(
            measured,
            code_changed=_code_state()["ingestion_tree_sha1"] != code["ingestion_tree_sha1"],
        ),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = _markdown(report)
    (RESULTS / "ingest.md").write_text(markdown)
    print(json.dumps(report, indent=2))
    print(markdown)


def _say(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _generate(persons: int, days: int, seed: int, landing: Path) -> None:
    from datagen import generate  # imported here so spawned children do not load it

    generate(persons=persons, days=days, seed=seed, out_dir=landing)


def _web_files(landing: Path) -> list[Path]:
    return sorted((Path(landing) / "web_events").glob("*.jsonl.gz"))


def _describe_landing(landing: Path) -> dict:
    """Lines counted as our reader counts them: split on newline, no trailing empty line."""
    files = _web_files(landing)
    if not files:
        raise SystemExit(f"no web_events/*.jsonl.gz under {landing}")
    lines = 0
    for path in files:
        content = gzip.decompress(path.read_bytes())
        lines += content.count(b"\n") + (1 if content and not content.endswith(b"\n") else 0)
    return {
        "files": [path.name for path in files],
        "lines": lines,
        "compressed_mb": round(sum(path.stat().st_size for path in files) / 2**20, 1),
    }


# --- run inside the spawned child -----------------------------------------------------------


def _measure(name: str, landing: str, work: str, cap: int | None) -> dict:
    """Load the web events one way into a fresh DuckDB file under `work`; time and count it."""
    import dlt
    import duckdb

    from dagster_dmp.settings import ingest_duckdb_config
    from ingestion.channels import CHANNELS
    from ingestion.pipeline import load_channel

    work_dir = Path(work)
    work_dir.mkdir(parents=True)
    db = work_dir / "bench.duckdb"
    rss_after_imports = _peak_rss_mb()
    counters: dict[str, int] = {}
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    config = {**ingest_duckdb_config(), "temp_directory": str(work_dir / "duckdb_tmp")}
    channels = {
        "ours": [CHANNELS["web_events"]],
        "ours_all_channels": list(CHANNELS.values()),
    }.get(name)
    if channels:
        for channel in channels:
            pipeline = load_channel(channel, Path(landing), db, duckdb_config=config).pipeline
    else:
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{name}",
            destination=dlt.destinations.duckdb(credentials=str(db)),
            dataset_name="raw",
            pipelines_dir=str(work_dir / "dlt"),
        )
        info = pipeline.run(
            _dict_resource(_web_files(Path(landing)), cap, counters),
            loader_file_format="parquet" if name == "dicts_parquet" else None,
        )
        info.raise_on_failed_jobs()
    seconds = time.perf_counter() - started
    cpu_seconds = _cpu_seconds() - cpu_before
    load_after = os.getloadavg()[0]
    steps = {  # of the last channel's run
        step.step: round((step.finished_at - step.started_at).total_seconds(), 2)
        for step in pipeline.last_trace.steps
        if step.step != "run" and step.finished_at is not None
    }
    peak = _peak_rss_mb()
    tables = [channel.table for channel in channels] if channels else ["web_events"]
    with duckdb.connect(str(db), read_only=True) as con:
        rows = sum(con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in tables)
        quarantined = (
            sum(
                con.execute(f"select count(*) from raw.quarantine_{t}").fetchone()[0]
                for t in tables
            )
            if channels
            else None
        )
    return {
        "rows_loaded": rows,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        # DMP_DUCKDB_MEMORY_LIMIT / _THREADS: the loader's memory follows the limit
        "duckdb_memory_limit": config["memory_limit"],
        "duckdb_threads": config["threads"],
        # the machine's 1-minute load average as the path started and ended
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "steps_seconds": steps,
        "peak_rss_mb": peak,
        "rss_after_imports_mb": rss_after_imports,
        "duckdb_file_mb": round(db.stat().st_size / 2**20, 1),
        **({"rows_quarantined": quarantined} if quarantined is not None else {}),
        **counters,
    }


def _dict_resource(files: list[Path], cap: int | None, counters: dict[str, int]):
    """The textbook dlt resource: one dict per JSON line; lines that do not parse are skipped."""
    import dlt

    counters.update(lines_read=0, lines_skipped=0)

    @dlt.resource(name="web_events", write_disposition="append")
    def web_events():
        yielded = 0
        for path in files:
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    counters["lines_read"] += 1
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        counters["lines_skipped"] += 1
                        continue
                    if not isinstance(record, dict):
                        counters["lines_skipped"] += 1
                        continue
                    yield record
                    yielded += 1
                    if cap is not None and yielded >= cap:
                        return

    return web_events


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads (DuckDB's too): unlike wall
    time it hardly changes when other work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> int:
    """This process's peak resident set (VmHWM).

    Not getrusage's ru_maxrss: Linux carries it over fork + exec, so a spawned child would
    report the parent's peak (the generator's 1.5 GB) when its own is lower.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux


# --- back in the parent ---------------------------------------------------------------------


def _finish(name: str, result: dict, total_lines: int) -> dict:
    capped = name == "default" and result.get("lines_read", total_lines) < total_lines
    rows_per_second = result["rows_loaded"] / result["seconds"]
    finished = {
        "description": PATHS[name],
        "capped": capped,
        **result,
        "rows_per_second": round(rows_per_second),
        "rows_per_cpu_second": round(result["rows_loaded"] / result["cpu_seconds"]),
        "lines_per_second": round(result.get("lines_read", total_lines) / result["seconds"]),
    }
    if capped:
        # All lines would give about this many rows (the skip rate of the capped part holds).
        share = result["rows_loaded"] / result["lines_read"]
        finished["estimated_seconds_for_all_lines"] = round(
            total_lines * share / rows_per_second, 1
        )
    return finished


def _ratios(measured: dict) -> dict:
    ours = measured.get("ours")
    if ours is None:
        return {}
    return {
        f"ours_vs_{name}": round(ours["rows_per_second"] / result["rows_per_second"], 1)
        for name, result in measured.items()
        if name != "ours"
    }


def _code_state() -> dict:
    """Which ingestion code was measured: the commit, and files changed on top of it."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], check=False, cwd=repo, capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    tree = hashlib.sha1()
    for path in sorted((repo / "ingestion").rglob("*.py")):
        tree.update(path.relative_to(repo).as_posix().encode() + b"\0" + path.read_bytes())
    return {
        "commit": git("rev-parse", "HEAD").strip() or None,
        "uncommitted_ingestion_files": [
            line[3:] for line in git("status", "--porcelain", "--", "ingestion").splitlines()
        ],
        # The code on disk, committed or not: tells apart runs on different versions.
        "ingestion_tree_sha1": tree.hexdigest()[:12],
    }


def _notes(measured: dict, code_changed: bool) -> list[str]:
    notes = [
        (
            "rows/s = rows in raw.web_events / wall seconds of the whole dlt run (extract, "
            "normalize, load; for ours the file reading and validation happen in extract)."
        ),
        (
            "Peak RSS is the child process's VmHWM, including the interpreter and imports "
            "(rss_after_imports_mb)."
        ),
        (
            "CPU s is the child's user + system time over all its threads; with other work on "
            "the cores (load average above the core count) wall time stretches, CPU time much less."
        ),
        (
            "Ours does more per line than the dict paths: it writes the quarantine table, a file "
            "ledger and the lineage columns, merges on the natural key (a re-sent event loads "
            "once) and keeps rejected lines out of raw.web_events; the dict paths append every "
            "line that parses as a JSON object. So ours loads fewer rows; lines_per_second "
            "counts every line read."
        ),
    ]
    if code_changed:
        notes.append(
            "The ingestion code on disk changed during this run; `code` is its state at the start."
        )
    default = measured.get("default")
    if default and default["capped"]:
        notes.append(
            f"The default path was capped at {default['rows_loaded']:,} rows "
            "(--baseline-rows): its rows/s is measured on those rows and "
            "estimated_seconds_for_all_lines is an extrapolation."
        )
    return notes


def _markdown(report: dict) -> str:
    machine, landing = report["machine"], report["landing"]
    lines = [
        "# Ingestion throughput: web_events into DuckDB",
        "",
        (
            f"{landing['lines']:,} JSON lines in {len(landing['files'])} jsonl.gz files "
            f"({landing['compressed_mb']} MB); {machine['cores']} cores, {machine['ram_gb']} GB, "
            f"{machine['cpu']}; Python {machine['python']}, dlt {machine['dlt']}, "
            f"duckdb {machine['duckdb']}. Run {report['run_at']}: `{report['command']}`."
        ),
        "",
        (
            "| path | how | rows loaded | seconds | rows/s | CPU s | rows per CPU s | peak RSS MB "
            "| load avg start-end | ours is x faster |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, result in report["paths"].items():
        ratio = report["ratios"].get(f"ours_vs_{name}")
        seconds = f"{result['seconds']:,}"
        if result["capped"]:
            seconds += f" (capped; all ~{result['estimated_seconds_for_all_lines']:,})"
        lines.append(
            f"| {name} | {result['description']} (DuckDB memory_limit "
            f"{result.get('duckdb_memory_limit', '?')}) | {result['rows_loaded']:,} | {seconds} | "
            f"{result['rows_per_second']:,} | {result['cpu_seconds']:,} | "
            f"{result['rows_per_cpu_second']:,} | {result['peak_rss_mb']:,} | "
            f"{result['load_average'][0]:g}-{result['load_average'][1]:g} | "
            f"{'-' if ratio is None else ratio} |"
        )
    target = report["target"]
    if target["met"] is not None:
        lines += [
            "",
            (
                f"Target ours >= {target['ours_vs_default_at_least']:g}x dlt's default path: "
                f"{'met' if target['met'] else 'NOT met'} "
                f"({report['ratios']['ours_vs_default']}x)."
            ),
        ]
    if target["ours_all_channels_met"] is not None:
        everything = report["paths"]["ours_all_channels"]
        lines += [
            "",
            (
                f"Target ours_all_channels >= {ALL_CHANNELS_ROWS_PER_SECOND:,} rows/s and peak "
                f"RSS <= {ALL_CHANNELS_PEAK_RSS_MB:,} MB: "
                f"{'met' if target['ours_all_channels_met'] else 'NOT met'} "
                f"({everything['rows_per_second']:,} rows/s, {everything['peak_rss_mb']:,} MB; "
                f"load average {everything['load_average'][0]:g}-"
                f"{everything['load_average'][1]:g} on {report['machine']['cores']} cores)."
            ),
        ]
    lines += ["", *[f"- {note}" for note in report["notes"]], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
