"""Freshness: how long after the collector acknowledges an event it shows in
marts.person_profiles, with the landing sensor and the Dagster daemon doing the work (nobody
launches a run), and whether every acknowledged event arrives.

Run: .venv/bin/python bench/freshness.py [--persons 5000 --days 60] [--rate 1000]
     [--seconds 180] [--batch 100]
Writes bench/results/freshness.json and bench/results/freshness.md.

Steps, in a temp folder that is removed afterwards:
1. the demo warehouse an operator would have: `dmp demo` (generate, materialise every asset);
2. `dmp collect` and `dagster-daemon run` start, with a DAGSTER_HOME holding the project's
   dagster.yaml (one run at a time); only the sensor `new_landing_files` is switched on
   (`dagster sensor start`): it launches the micro-batch job `refresh_warehouse`;
3. a second process posts web events on loopback at a steady `--rate` for `--seconds`, in
   requests of `--batch` events from new visitors (a fresh anonymous id per 10 events), each
   request sent on its schedule, and records every acknowledgement (time, event ids);
4. after the load, wait (bounded) until a micro-batch has finished after the last file landed;
5. measure, per acknowledged request: from the acknowledgement to the end of the
   person_profiles materialisation of the first micro-batch whose web ingestion started after
   it (the ingestion lists the landing files when it starts; a file that lands just as a run
   lists them may be taken a run earlier than counted here, so figures are upper bounds).
   Count in = acknowledged events; count out = those event ids in raw.web_events, in
   intermediate.int_events_deduplicated, and the web_events of the visitors' profiles.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from machine import describe_machine

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
BIN = Path(sys.executable).parent
WRITE_KEY = "bench-web-key"
EVENTS_PER_VISITOR = 10
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _batch(size: int) -> tuple[list[dict], list[str]]:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    events, visitors = [], []
    for index in range(size):
        if index % EVENTS_PER_VISITOR == 0:
            visitors.append(f"anon-{uuid.uuid4().hex[:16]}")
        events.append(
            {
                "event_id": f"evt-{uuid.uuid4().hex[:16]}",
                "event_type": "page_view",
                "event_time": now,
                "anonymous_id": visitors[-1],
                # a page per event: the same page twice within 2 s is a near-duplicate
                "page_url": f"/c/page-{index % EVENTS_PER_VISITOR}",
                "user_agent": USER_AGENT,
            }
        )
    return events, visitors


def drive(port: int, rate: float, seconds: float, batch: int, out: Path) -> None:
    """The load: one request every batch/rate seconds on its schedule, one JSON line per
    acknowledged request (or the refusal) in `out`."""
    interval = batch / rate
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start = time.monotonic()
    with out.open("w") as log:
        for number in range(int(seconds * rate / batch)):
            delay = start + number * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            events, visitors = _batch(batch)
            body = json.dumps(events)
            connection.request(
                "POST",
                "/v1/web",
                body=body,
                headers={
                    "Authorization": f"Bearer {WRITE_KEY}",
                    "Content-Type": "application/json",
                },
            )
            response = connection.getresponse()
            answer = json.loads(response.read())
            acked = time.time()
            log.write(
                json.dumps(
                    {
                        "status": response.status,
                        "acked_at": acked,
                        "sent_late_s": max(0.0, -delay),
                        "accepted": answer.get("accepted", 0),
                        "event_ids": [event["event_id"] for event in events],
                        "visitors": visitors,
                        "answer": {k: v for k, v in answer.items() if k != "rejected"},
                    }
                )
                + "\n"
            )


def _start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        env=env,
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_collector(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the collector did not come up")


def _micro_batches(home: Path) -> list[dict]:
    """The runs of refresh_warehouse and when each materialised person_profiles."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_run_records(dg.RunsFilter(job_name="refresh_warehouse"))
        web_ingestion_started = {
            run.dagster_run.run_id: next(
                (
                    entry.timestamp
                    for entry in instance.all_logs(
                        run.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START
                    )
                    if entry.step_key == "ingest_web_events"
                ),
                None,
            )
            for run in runs
        }
        profiles = instance.fetch_materializations(
            dg.AssetKey(["marts", "person_profiles"]), limit=10_000
        ).records
        by_run = {record.run_id: record.timestamp for record in profiles}
        return sorted(
            (
                {
                    "run_id": run.dagster_run.run_id,
                    "status": run.dagster_run.status.value,
                    "created_at": run.create_timestamp.timestamp(),
                    "started_at": run.start_time,
                    "ended_at": run.end_time,
                    "web_ingestion_started_at": web_ingestion_started[run.dagster_run.run_id],
                    "profiles_at": by_run.get(run.dagster_run.run_id),
                }
                for run in runs
            ),
            key=lambda run: run["created_at"],
        )


def _wait_until_caught_up(home: Path, last_file_at: float, deadline: float) -> None:
    """Until a micro-batch created after the last file landed has ended."""
    while time.monotonic() < deadline:
        runs = _micro_batches(home)
        if any(run["created_at"] > last_file_at and run["ended_at"] for run in runs):
            return
        time.sleep(5)
    raise RuntimeError("no micro-batch after the last acknowledged event within the deadline")


def _measure(database: Path, acks: list[dict], runs: list[dict]) -> dict:
    import duckdb

    acked = [ack for ack in acks if ack["status"] == 200]
    rows = [(event_id,) for ack in acked for event_id in ack["event_ids"]]
    visitors = [(visitor,) for ack in acked for visitor in ack["visitors"]]
    with duckdb.connect(str(database), read_only=True) as con:
        con.execute("create temp table bench_events (event_id varchar)")
        con.executemany("insert into bench_events values (?)", rows)
        con.execute("create temp table bench_visitors (anonymous_id varchar)")
        con.executemany("insert into bench_visitors values (?)", visitors)
        in_raw = con.execute(
            "select count(*) from raw.web_events join bench_events using (event_id)"
        ).fetchone()[0]
        in_events = con.execute(
            "select count(*) from intermediate.int_events_deduplicated "
            "join bench_events using (event_id)"
        ).fetchone()[0]
        in_profiles, persons = con.execute(
            """
            select coalesce(sum(profiles.web_events), 0), count(*)
            from marts.person_profiles as profiles
            where profiles.person_id in (
                select identifiers.person_id
                from marts.person_identifiers as identifiers
                join bench_visitors on identifiers.identifier_value = bench_visitors.anonymous_id
                where identifiers.identifier_type = 'anonymous_id'
            )
            """
        ).fetchone()
    takes = sorted(
        (run["web_ingestion_started_at"], run["profiles_at"])
        for run in runs
        if run["web_ingestion_started_at"] and run["profiles_at"]
    )
    latencies = []
    for ack in acked:
        shown = next((shown for started, shown in takes if started >= ack["acked_at"]), None)
        if shown is not None:
            latencies.append(shown - ack["acked_at"])
    latencies.sort()
    events_in = sum(ack["accepted"] for ack in acked)
    return {
        "requests_sent": len(acks),
        "requests_acknowledged": len(acked),
        "events_acknowledged": events_in,
        "events_in_raw": in_raw,
        "events_in_int_events_deduplicated": in_events,
        "events_in_person_profiles": int(in_profiles),
        "visitors": len(visitors),
        "visitor_profiles": persons,
        "requests_measured": len(latencies),
        "latency_s": {
            "p50": round(statistics.quantiles(latencies, n=100)[49], 1),
            "p95": round(statistics.quantiles(latencies, n=100)[94], 1),
            "max": round(latencies[-1], 1),
            "min": round(latencies[0], 1),
        }
        if len(latencies) > 1
        else None,
        "micro_batches": len(runs),
        "micro_batch_seconds": {
            "median": round(
                statistics.median(
                    run["ended_at"] - run["started_at"]
                    for run in runs
                    if run["ended_at"] and run["started_at"]
                ),
                1,
            )
        },
        "failed_micro_batches": sum(run["status"] != "SUCCESS" for run in runs),
        "send_lag_s_max": round(max(ack["sent_late_s"] for ack in acks), 2),
    }


def _markdown(result: dict) -> str:
    latency = result["latency_s"] or {}
    return "\n".join(
        [
            "# Freshness: collector acknowledgement -> marts.person_profiles",
            "",
            (
                f"`python bench/freshness.py --rate {result['rate']} --seconds {result['seconds']} "
                f"--batch {result['batch']}` on a demo warehouse of {result['persons']:,} persons x "
                f"{result['days']} days; sensor `new_landing_files` + `dagster-daemon`, micro-batch "
                "job `refresh_warehouse` (ingest the changed channels, dbt models without tests)."
            ),
            "",
            "| measure | value |",
            "|---|---|",
            (
                f"| requests acknowledged / sent | {result['requests_acknowledged']:,} / "
                f"{result['requests_sent']:,} |"
            ),
            f"| events acknowledged (count in) | {result['events_acknowledged']:,} |",
            (
                f"| in raw.web_events / int_events_deduplicated / person_profiles (count out) | "
                f"{result['events_in_raw']:,} / {result['events_in_int_events_deduplicated']:,} / "
                f"{result['events_in_person_profiles']:,} |"
            ),
            (
                f"| visitors / their profiles | {result['visitors']:,} / "
                f"{result['visitor_profiles']:,} |"
            ),
            (
                f"| latency ack -> profile p50 / p95 / max | {latency.get('p50')} s / "
                f"{latency.get('p95')} s / {latency.get('max')} s |"
            ),
            (
                f"| micro-batches (failed) | {result['micro_batches']} "
                f"({result['failed_micro_batches']}) |"
            ),
            f"| micro-batch run time, median | {result['micro_batch_seconds']['median']} s |",
            f"| worst lag of a request behind its schedule | {result['send_lag_s_max']} s |",
            "",
            f"Target: p95 <= 60 s and count in = count out: **{result['verdict']}**.",
            "",
            (
                f"Machine: {result['machine']['cores']} cores, {result['machine']['cpu']}, "
                f"{result['machine']['ram_gb']} GB RAM; load average during the run "
                f"{result['load_average']}."
            ),
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=5000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rate", type=float, default=1000, help="events per second")
    parser.add_argument("--seconds", type=float, default=180, help="how long the load lasts")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dmp-freshness-"))
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DMP_DUCKDB_PATH": str(work / "dmp.duckdb"),
        "DMP_LANDING_DIR": str(work / "landing"),
        "DMP_REPORTS_DIR": str(work / "reports"),
        "DMP_WRITE_KEYS": f"web:{WRITE_KEY}",
        "DMP_AUTOMATION": "off",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    processes = []
    try:
        print(
            f"[freshness] demo warehouse: {args.persons:,} persons x {args.days} days", flush=True
        )
        subprocess.run(
            [BIN / "dmp", "demo", "--persons", str(args.persons), "--days", str(args.days)],
            env=env,
            cwd=REPO,
            check=True,
            stdout=(work / "demo.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        port = _free_port()
        processes.append(
            _start([BIN / "dmp", "collect", "--port", str(port)], env, work / "collector.log")
        )
        # The sensor is switched on before the daemon starts (one writer creating state).
        subprocess.run(
            [
                BIN / "dagster",
                "sensor",
                "start",
                "new_landing_files",
                "-m",
                "dagster_dmp.definitions",
            ],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        processes.append(
            _start(
                [BIN / "dagster-daemon", "run", "-m", "dagster_dmp.definitions"],
                env,
                work / "daemon.log",
            )
        )
        _wait_for_collector(port, time.monotonic() + 60)
        print(f"[freshness] posting {args.rate:,.0f} events/s for {args.seconds:.0f} s", flush=True)
        acks_path = work / "acks.jsonl"
        load_average = []
        driver = multiprocessing.Process(
            target=drive, args=(port, args.rate, args.seconds, args.batch, acks_path)
        )
        driver.start()
        while driver.is_alive():
            load_average.append(os.getloadavg()[0])
            driver.join(timeout=10)
        if driver.exitcode != 0:
            raise RuntimeError(f"the load process failed (exit code {driver.exitcode})")
        acks = [json.loads(line) for line in acks_path.read_text().splitlines()]
        print("[freshness] load done; waiting for the last micro-batch", flush=True)
        _wait_until_caught_up(home, max(ack["acked_at"] for ack in acks), time.monotonic() + 600)
        for process in processes:
            _stop(process)
        result = {
            "persons": args.persons,
            "days": args.days,
            "rate": args.rate,
            "seconds": args.seconds,
            "batch": args.batch,
            **_measure(work / "dmp.duckdb", acks, _micro_batches(home)),
            "load_average": round(statistics.mean(load_average), 2) if load_average else None,
            "machine": describe_machine(("dagster", "dbt-core", "dbt-duckdb", "dlt", "duckdb")),
        }
        lost = result["events_acknowledged"] - min(
            result["events_in_raw"],
            result["events_in_int_events_deduplicated"],
            result["events_in_person_profiles"],
        )
        p95 = (result["latency_s"] or {}).get("p95")
        result["events_lost"] = lost
        result["verdict"] = "met" if lost == 0 and p95 is not None and p95 <= 60 else "not met"
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "freshness.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "freshness.md").write_text(_markdown(result))
        print(_markdown(result))
        return 0 if result["verdict"] == "met" else 1
    finally:
        for process in processes:
            _stop(process)
        if args.keep:
            print(f"[freshness] kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
