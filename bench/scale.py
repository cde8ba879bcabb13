"""The whole pipeline at N generated events, stage by stage: wall time, peak RSS and rows/s.

Run: .venv/bin/python bench/scale.py --events 1000000 --out DIR [--events 10000000 ...]
     [--results bench/results]
Writes DIR/scale.json (a list of {"stage", "events", "seconds", "peak_rss_mb", "rows_per_s"},
every scenario run into DIR so far; a scenario run again replaces its rows) and
DIR/scale_runs.json (per scenario: the machine, its load, where dbt's time went, the data's
skew, the acceptance ratios). With --results, also `scale.md` and `scale.png` there.

Each scenario, in a work folder under DIR (removed afterwards unless --keep):
1. generate: `dmp generate` at persons = events / (days x EVENTS_PER_PERSON_DAY); the
   generator's skew is kept (log-normal activity per person, five personas with different
   rates, bot cookies with thousands of events, re-sent duplicates arriving up to days late).
2. Two increments of INCREMENT_SHARE of the web and app event lines each are taken out of the
   landing files before anything is ingested: the newest lines, plus LATE_SHARE of each
   increment drawn from anywhere in the period (late data: a device that was offline).
3. Every stage runs in its own child process (bench/measure.py takes its wall time and the
   peak RSS of its process tree, dbt included), through the real command line:
   ingest (`dmp run --select group:ingestion`), dbt_full (`group:warehouse`: dbt build with
   its tests, on empty models), profile_sql_floor (one hand-written DuckDB query computing the
   profile mart's core columns straight from the raw tables: the floor for dbt's profile
   build), ml, activation, report; then the first increment lands: ingest_incremental,
   dbt_incremental; then the second: micro_batch (the landing sensor's job
   refresh_warehouse: ingest, dbt models without tests, profile snapshot); run_everything
   (`dmp run`: every asset, as the hourly schedule); nothing_new (`dmp run` again at once).
   With --smoke (what CI runs at a tiny scenario), only the stages CONTRACT.md names and what
   they need: no micro_batch, run_everything, nothing_new.
rows_per_s: the event lines a stage brought in or rebuilt from, per second (0 for
nothing_new, which builds nothing).
"""

import argparse
import datetime as dt
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from machine import describe_machine
from measure import run_measured

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DMP = [PYTHON, "-m", "dmp_cli.commands"]
EVENTS_PER_PERSON_DAY = 1.116  # web + app event lines the generator writes (16,000 x 60: 1.07M)
EVENT_FOLDERS = ("web_events", "app_events")
INCREMENT_SHARE = 0.01
INCREMENTS = 2
LATE_SHARE = 0.1
GZIP_LEVEL = 4  # as the generator writes
SLOWEST_MODELS = 6
PROFILES_MODEL = "model.dmp.person_profiles"
STAGES = {
    "generate": "dmp generate: every channel's landing files and the ground truth",
    "ingest": "dmp run --select group:ingestion: every landing file into raw.*",
    "dbt_full": "dmp run --select group:warehouse: dbt build (models + tests) on empty models",
    "profile_sql_floor": "one hand-written DuckDB query: profile core columns from raw.*",
    "ml": "dmp run --select group:ml",
    "activation": "dmp run --select group:activation: audiences, exports, profile snapshot",
    "report": "dmp run --select group:reports",
    "ingest_incremental": "+1% new events landed: dmp run --select group:ingestion",
    "dbt_incremental": "dmp run --select group:warehouse (incremental models, every test)",
    "micro_batch": "another +1%: the sensor's refresh_warehouse job (dagster job execute)",
    "run_everything": "dmp run: every asset (as the hourly schedule)",
    "nothing_new": "dmp run again at once: nothing new, exits early",
}
SMOKE_SKIPS = {"micro_batch", "run_everything", "nothing_new"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, action="append", help="web + app event lines (repeatable)"
    )
    parser.add_argument("--out", type=Path, help="folder for scale.json and the work folders")
    parser.add_argument("--days", type=int, default=60, help="days of history (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--results", type=Path, help="also write scale.md and scale.png here")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    parser.add_argument(
        "--smoke", action="store_true", help="only the contract's stages (CI's smoke test)"
    )
    parser.add_argument("--profile-floor", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_floor:
        print(json.dumps(profile_floor(args.profile_floor)))
        return
    if not args.events or not args.out:
        parser.error("--events and --out are required")
    args.out.mkdir(parents=True, exist_ok=True)
    for events in args.events:
        stages, run = scenario(events, args.days, args.seed, args.out, args.keep, args.smoke)
        _merge(args.out / "scale.json", stages, key=lambda row: row["events"])
        _merge(args.out / "scale_runs.json", [run], key=lambda row: row["events"])
    if args.results:
        write_results(args.out, args.results)


def scenario(
    target_events: int, days: int, seed: int, out: Path, keep: bool, smoke: bool = False
) -> tuple:
    persons = max(20, round(target_events / (days * EVENTS_PER_PERSON_DAY)))
    work = Path(tempfile.mkdtemp(prefix=f"scale_{target_events}_", dir=out))
    landing, held = work / "landing", work / "held_back"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "DMP_DUCKDB_PATH": str(work / "warehouse" / "dmp.duckdb"),
        "DMP_LANDING_DIR": str(landing),
        "DMP_REPORTS_DIR": str(work / "reports"),
        "DMP_EXPORTS_DIR": str(work / "exports"),
        "DMP_PRIVACY_DIR": str(work / "privacy"),
        "DMP_SERVING_DIR": str(work / "serving"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    env.pop("DAGSTER_HOME", None)  # an ephemeral instance for every dmp run
    started_at, load_before = dt.datetime.now(dt.UTC), _uptime()
    _say(f"{target_events:,} events: {persons:,} persons x {days} days in {work}")
    subprocess.run(
        [PYTHON, "-c", "from dagster_dmp.project import ensure_dbt_manifest as e; e()"],
        env=env,
        check=True,
    )
    rows, stages, details = {}, [], {}

    def stage(name: str, command: list[str], stage_env: dict | None = None) -> None:
        if smoke and name in SMOKE_SKIPS:
            return
        logs = work / "logs" / name
        measured = run_measured(
            command, logs / "output.log", env={**(stage_env or env), "DMP_LOGS_DIR": str(logs)}
        )
        count = rows[name]
        stages.append(
            {
                "stage": name,
                "events": events,
                "seconds": measured.seconds,
                "peak_rss_mb": measured.peak_rss_mb,
                "rows_per_s": round(count / measured.seconds) if count else 0,
            }
        )
        details[name] = {
            "rows": count,
            "load_1m": [measured.load_1m_before, measured.load_1m_after],
            **_dbt_breakdown(logs),
        }
        _say(
            f"{name}: {measured.seconds:.1f} s, peak RSS {measured.peak_rss_mb:,.0f} MB, "
            f"load {measured.load_1m_before} -> {measured.load_1m_after}"
        )

    events = target_events  # until the generator says how many it wrote
    rows["generate"] = target_events
    command = [*DMP, "generate", "--persons", str(persons), "--days", str(days)]
    stage("generate", [*command, "--seed", str(seed), "--out", str(landing)])
    events = _event_lines(landing)
    stages[-1]["events"], details["generate"]["rows"] = events, events
    stages[-1]["rows_per_s"] = round(events / stages[-1]["seconds"])
    increments = hold_back(landing, held, seed)
    increment_lines = [sum(part.values()) for part in increments]
    first_load = events - sum(increment_lines)
    rows.update(
        ingest=first_load,
        dbt_full=first_load,
        profile_sql_floor=first_load,
        ml=first_load,
        activation=first_load,
        report=first_load,
        ingest_incremental=increment_lines[0],
        dbt_incremental=increment_lines[0],
        micro_batch=increment_lines[1],
        run_everything=events,
        nothing_new=0,
    )
    database = work / "warehouse" / "dmp.duckdb"
    stage("ingest", [*DMP, "run", "--select", "group:ingestion"])
    stage("dbt_full", [*DMP, "run", "--select", "group:warehouse"])
    floor_log = work / "logs" / "profile_sql_floor" / "output.log"
    stage("profile_sql_floor", [PYTHON, __file__, "--profile-floor", str(database)])
    details["profile_sql_floor"].update(json.loads(floor_log.read_text().strip().splitlines()[-1]))
    skew = _skew(database)
    for name, group in (("ml", "ml"), ("activation", "activation"), ("report", "reports")):
        stage(name, [*DMP, "run", "--select", f"group:{group}"])
    _release(held / "1", landing)
    stage("ingest_incremental", [*DMP, "run", "--select", "group:ingestion"])
    stage("dbt_incremental", [*DMP, "run", "--select", "group:warehouse"])
    _release(held / "2", landing)
    home = work / "dagster_home"
    home.mkdir()
    micro_batch = [PYTHON, "-m", "dagster", "job", "execute", "-m", "dagster_dmp.definitions"]
    stage(
        "micro_batch", [*micro_batch, "-j", "refresh_warehouse"], {**env, "DAGSTER_HOME": str(home)}
    )
    stage("run_everything", [*DMP, "run"])
    stage("nothing_new", [*DMP, "run"])
    seconds = {row["stage"]: row["seconds"] for row in stages}
    full_build = seconds["ingest"] + seconds["dbt_full"]
    acceptance = {
        "incremental_over_full_build": round(
            (seconds["ingest_incremental"] + seconds["dbt_incremental"]) / full_build, 3
        )
    }
    if not smoke:
        nothing_new_line = _last_line(work / "logs" / "nothing_new" / "output.log")
        if "nothing new since run" not in nothing_new_line:
            raise RuntimeError(f"the second dmp run did not stop early: {nothing_new_line}")
        whole_pipeline = full_build + seconds["ml"] + seconds["activation"] + seconds["report"]
        acceptance.update(
            micro_batch_over_full_build=round(seconds["micro_batch"] / full_build, 3),
            nothing_new_over_whole_pipeline=round(seconds["nothing_new"] / whole_pipeline, 3),
            nothing_new_message=nothing_new_line,
        )
    run = {
        "events": events,
        "target_events": target_events,
        "persons": persons,
        "days": days,
        "seed": seed,
        "run_at": started_at.isoformat(timespec="seconds"),
        "command": " ".join([Path(PYTHON).name, *sys.argv]),
        "uptime_before": load_before,
        "uptime_after": _uptime(),
        "machine": describe_machine(("dbt-core", "dbt-duckdb", "duckdb", "dlt", "dagster")),
        "increments": [
            {"lines": lines, "files": part} for lines, part in zip(increment_lines, increments)
        ],
        "late_share_of_increment": LATE_SHARE,
        "skew": skew,
        "stages": details,
        "acceptance": acceptance,
    }
    if not keep:
        shutil.rmtree(work)
    return stages, run


def hold_back(landing: Path, held: Path, seed: int) -> list[dict[str, int]]:
    """Take INCREMENTS increments of the web and app event lines out of the landing files into
    `held/<k>/<folder>/`: per channel, the newest lines (increment 2 newer than 1) plus
    LATE_SHARE of each increment drawn from the earlier lines. Returns the lines per file."""
    rng = np.random.default_rng(seed)
    increments: list[dict[str, int]] = [{} for _ in range(INCREMENTS)]
    for folder in EVENT_FOLDERS:
        files = sorted((landing / folder).glob("*.jsonl.gz"))  # weekly stamps: oldest first
        counts = [_lines(path) for path in files]
        total = sum(counts)
        per_increment = round(total * INCREMENT_SHARE)
        late = round(per_increment * LATE_SHARE)
        newest = per_increment - late
        target = np.full(total, -1, dtype=np.int8)  # line -> increment (-1: stays)
        tail = total - newest * INCREMENTS
        for k in range(INCREMENTS):
            target[tail + k * newest : tail + (k + 1) * newest] = k
        late_lines = rng.choice(tail, size=late * INCREMENTS, replace=False)
        target[late_lines] = np.repeat(np.arange(INCREMENTS), late)
        paths = [
            held / str(k + 1) / folder / f"{folder}_increment_{k + 1}.jsonl.gz"
            for k in range(INCREMENTS)
        ]
        for k, path in enumerate(paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            increments[k][f"{folder}/{path.name}"] = int((target == k).sum())
        with ExitStack() as stack:
            writers = [stack.enter_context(gzip.open(path, "wb", GZIP_LEVEL)) for path in paths]
            line = 0
            for path in files:
                kept = path.with_suffix(".kept")
                with gzip.open(path, "rb") as source, gzip.open(kept, "wb", GZIP_LEVEL) as stays:
                    for text in source:
                        k = target[line]
                        (stays if k < 0 else writers[k]).write(text)
                        line += 1
                kept.replace(path)
    return increments


def profile_floor(database: Path) -> dict:
    """The profile mart's core columns (first/last seen, recency, frequency, monetary, events
    per channel, top interest) from the raw tables in one query: events deduplicated on their
    id, a cookie or device belongs to the user it was ever seen logged in as (one hop, where
    dbt stitches the whole identity graph), orders by user or customer id."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        persons, monetary, interests, _first, _scores = con.execute(
            """
            with events as (
                select event_id, anonymous_id as visitor_id, user_id, category, 'web' as channel,
                    try_cast(event_time as timestamptz) as event_at
                from raw.web_events
                union all
                select event_id, device_id, user_id, category, 'app',
                    try_cast(event_time as timestamptz)
                from raw.app_events
            ),
            deduplicated as (
                select * from events
                where event_at < timestamptz '2090-01-01'
                qualify row_number() over (partition by event_id order by event_at) = 1
            ),
            visitor_users as (
                select visitor_id, min(user_id) as user_id
                from deduplicated where user_id is not null group by visitor_id
            ),
            attributed as (
                select coalesce(d.user_id, v.user_id, d.visitor_id) as person_key, d.*
                from deduplicated as d left join visitor_users as v using (visitor_id)
            ),
            orders as (
                select coalesce(user_id, customer_id) as person_key, order_id,
                    sum(quantity * unit_price) as order_value,
                    min(try_cast(order_time as timestamptz)) as ordered_at
                from raw.orders
                where quantity > 0 and unit_price > 0 and coalesce(user_id, customer_id) is not null
                group by all
            ),
            event_profiles as (
                select person_key, min(event_at) as first_seen_at, max(event_at) as last_seen_at,
                    count(*) filter (where channel = 'web') as web_events,
                    count(*) filter (where channel = 'app') as app_events,
                    mode(category) as top_interest
                from attributed group by person_key
            ),
            order_profiles as (
                select person_key, count(*) as frequency, sum(order_value) as monetary,
                    max(ordered_at) as last_purchase_at
                from orders group by person_key
            ),
            profiles as (
                select coalesce(e.person_key, o.person_key) as person_key, e.first_seen_at,
                    greatest(e.last_seen_at, o.last_purchase_at) as last_seen_at,
                    e.web_events, e.app_events, e.top_interest,
                    coalesce(o.frequency, 0) as frequency, coalesce(o.monetary, 0) as monetary
                from event_profiles as e full join order_profiles as o using (person_key)
            )
            -- every column is aggregated, so none is pruned from the plan
            select count(*), sum(monetary), count(top_interest), min(first_seen_at),
                sum(recency_days + r_score + f_score + m_score + frequency
                    + coalesce(web_events, 0) + coalesce(app_events, 0))
            from (
                select *,
                    date_diff('day', last_seen_at, max(last_seen_at) over ()) as recency_days,
                    ntile(5) over (order by last_seen_at) as r_score,
                    ntile(5) over (order by frequency) as f_score,
                    ntile(5) over (order by monetary) as m_score
                from profiles
            )
            """
        ).fetchone()
    return {
        "floor_persons": persons,
        "floor_persons_with_interest": interests,
        "floor_monetary": round(monetary or 0, 2),
    }


def write_results(out: Path, results: Path) -> None:
    """scale.md (every scenario's stages, acceptance ratios, where dbt's time went) and
    scale.png (seconds per stage against events, log-log) from DIR's json files."""
    stages = json.loads((out / "scale.json").read_text())
    runs = json.loads((out / "scale_runs.json").read_text())
    results.mkdir(parents=True, exist_ok=True)
    _figure(stages, results / "scale.png")
    (results / "scale.md").write_text(_markdown(stages, runs))


def _figure(stages: list[dict], path: Path) -> None:
    import pandas as pd
    from plotnine import (
        aes,
        geom_line,
        geom_point,
        ggplot,
        labs,
        scale_x_log10,
        scale_y_log10,
        theme_bw,
    )

    frame = pd.DataFrame(stages)
    frame = frame[frame["seconds"] > 0]
    plot = (
        ggplot(frame, aes("events", "seconds", colour="stage"))
        + geom_line()
        + geom_point()
        + scale_x_log10()
        + scale_y_log10()
        + labs(x="web + app event lines", y="wall seconds", title="DMP stages at scale")
        + theme_bw()
    )
    plot.save(path, width=8, height=5, dpi=100, verbose=False)


def _markdown(stages: list[dict], runs: list[dict]) -> str:
    lines = [
        "# The pipeline at scale: seconds, peak RSS and rows/s per stage",
        "",
        (
            "`bench/scale.py` (its docstring says how each stage runs). Every stage is a child "
            "process through the real command line; peak RSS is its whole process tree's "
            "(dbt included). ![scaling](scale.png)"
        ),
        "",
    ]
    for run in sorted(runs, key=lambda run: run["events"]):
        machine = run["machine"]
        rows = [row for row in stages if row["events"] == run["events"]]
        accept = run["acceptance"]
        lines += [
            (
                f"## {run['events']:,} web + app event lines ({run['persons']:,} persons x "
                f"{run['days']} days, seed {run['seed']})"
            ),
            "",
            (
                f"Run {run['run_at']}: `{run['command']}`; {machine['cores']} cores, "
                f"{machine['ram_gb']} GB; dbt-core {machine['dbt-core']}, duckdb {machine['duckdb']}, "
                f"dagster {machine['dagster']}. Machine load (`uptime`, shared with other jobs): "
                f"before `{run['uptime_before']}`, after `{run['uptime_after']}`."
            ),
            "",
            "| stage | what | seconds | peak RSS MB | rows/s | rows | load 1m before / after |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for row in rows:
            detail = run["stages"][row["stage"]]
            load = " / ".join(str(value) for value in detail["load_1m"])
            lines.append(
                f"| {row['stage']} | {STAGES[row['stage']]} | {row['seconds']:,.1f} | "
                f"{row['peak_rss_mb']:,.0f} | {row['rows_per_s']:,} | {detail['rows']:,} | "
                f"{load} |"
            )
        floor = run["stages"]["profile_sql_floor"]
        dbt = run["stages"]["dbt_full"]
        lines += [
            "",
            (
                f"- +1% new events: ingest + incremental dbt build = "
                f"**{accept['incremental_over_full_build']:.0%}** of the full build's time (ingest "
                f"+ dbt_full; target 10%)"
                + (
                    f"; the micro-batch (ingest + dbt models without tests + snapshot) "
                    f"{accept['micro_batch_over_full_build']:.0%}."
                    if "micro_batch_over_full_build" in accept
                    else "."
                )
            ),
        ]
        if "nothing_new_message" in accept:
            lines.append(
                f"- Nothing new: `dmp run` took **{accept['nothing_new_over_whole_pipeline']:.1%}** "
                "of the whole pipeline's stages (ingest to report; target 5%); it said: "
                f"`{accept['nothing_new_message']}`."
            )
        lines += [
            (
                f"- Profile floor: the hand-written query built {floor['floor_persons']:,} profiles "
                f"in {_seconds(stages, run, 'profile_sql_floor')} s; dbt's models behind "
                f"marts.person_profiles took {dbt.get('profiles_chain_seconds', '-')} s of node "
                f"time in dbt_full ({dbt.get('models', 0)} models "
                f"{dbt.get('models_seconds', 0)} s, {dbt.get('tests', 0)} tests "
                f"{dbt.get('tests_seconds', 0)} s, node times summed over dbt's 2 threads)."
            ),
        ]
        for name in ("dbt_full", "dbt_incremental", "micro_batch"):
            slowest = run["stages"].get(name, {}).get("slowest_models", [])
            if slowest:
                lines.append(
                    f"- Slowest models in {name}: "
                    + ", ".join(f"{model} {secs} s" for model, secs in slowest)
                    + "."
                )
        skew = run["skew"]
        lines += [
            (
                f"- Skew of the generated data: the top 1% of persons hold "
                f"{skew['top_1pct_event_share']:.1%} of the events, the top 10% "
                f"{skew['top_10pct_event_share']:.1%}; events per person median "
                f"{skew['median_events']}, p99 {skew['p99_events']}, max {skew['max_events']:,}; "
                f"each increment holds {run['late_share_of_increment']:.0%} late lines from "
                "anywhere in the period (older than dbt's 3-day lookback: they wait for the "
                "nightly full refresh)."
            ),
            "",
        ]
    return "\n".join(lines)


def _seconds(stages: list[dict], run: dict, name: str) -> float:
    return next(r["seconds"] for r in stages if r["events"] == run["events"] and r["stage"] == name)


_DBT_LINE = re.compile(
    r"\d+ of \d+ (?:OK created sql \w+ model|PASS|WARN \d+|FAIL \d+|ERROR creating sql \w+ model)"
    r" ([\w.]+) \.* \[.*? in ([\d.]+)s\]"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _dbt_breakdown(logs: Path) -> dict:
    """Where dbt's time went, from the run's log (dbt's own lines): models, tests, the slowest
    models and the models marts.person_profiles is built from."""
    text = "\n".join(path.read_text(errors="replace") for path in logs.glob("*.log"))
    models, tests = {}, {}
    for line in _ANSI.sub("", text).splitlines():
        match = _DBT_LINE.search(line)
        if match:
            name, seconds = match.group(1), float(match.group(2))
            (models if "model" in line else tests)[name] = seconds
    if not models and not tests:
        return {}
    chain = _profiles_chain()
    slowest = sorted(models.items(), key=lambda item: item[1], reverse=True)[:SLOWEST_MODELS]
    return {
        "models": len(models),
        "models_seconds": round(sum(models.values()), 1),
        "tests": len(tests),
        "tests_seconds": round(sum(tests.values()), 1),
        "slowest_models": [[name, secs] for name, secs in slowest],
        "profiles_chain_seconds": round(
            sum(secs for name, secs in models.items() if name.split(".")[-1] in chain), 1
        ),
    }


def _profiles_chain() -> set[str]:
    """marts.person_profiles and every model it is built from (dbt's manifest)."""
    manifest = json.loads((REPO / "dbt_project" / "target" / "manifest.json").read_text())
    parents, chain, pending = manifest["parent_map"], set(), [PROFILES_MODEL]
    while pending:
        node = pending.pop()
        if node.startswith("model.") and node not in chain:
            chain.add(node)
            pending.extend(parents.get(node, []))
    return {node.split(".")[-1] for node in chain}


def _skew(database: Path) -> dict:
    """How unevenly events fall on persons (marts.person_profiles: web + app events)."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        row = con.execute(
            """
            with counts as (
                select web_events + app_events as events,
                    row_number() over (order by web_events + app_events desc) as rank,
                    count(*) over () as persons
                from marts.person_profiles
            )
            select
                sum(events) filter (where rank <= ceil(persons * 0.01)) / sum(events),
                sum(events) filter (where rank <= ceil(persons * 0.10)) / sum(events),
                median(events), quantile_disc(events, 0.99), max(events)
            from counts
            """
        ).fetchone()
    return dict(
        zip(
            (
                "top_1pct_event_share",
                "top_10pct_event_share",
                "median_events",
                "p99_events",
                "max_events",
            ),
            (round(float(row[0]), 4), round(float(row[1]), 4), *map(int, row[2:])),
        )
    )


def _event_lines(landing: Path) -> int:
    channels = json.loads((landing / "_truth" / "manifest.json").read_text())["channels"]
    return sum(channels[name]["records_written"] for name in EVENT_FOLDERS)


def _release(held: Path, landing: Path) -> None:
    for path in held.rglob("*.jsonl.gz"):
        path.rename(landing / path.parent.name / path.name)


def _lines(path: Path) -> int:
    with gzip.open(path, "rb") as handle:
        return sum(1 for _ in handle)


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _merge(path: Path, rows: list[dict], key) -> None:
    """Add `rows` to the json list at `path`, replacing the rows of the same scenario."""
    replaced = {key(row) for row in rows}
    kept = json.loads(path.read_text()) if path.exists() else []
    merged = [row for row in kept if key(row) not in replaced] + rows
    path.write_text(json.dumps(sorted(merged, key=key), indent=2) + "\n")


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _say(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
