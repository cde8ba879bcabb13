"""Collector throughput and durability: how many requests and events `dmp collect`'s app
acknowledges per second on loopback, at what latency, and whether an acknowledged event
survives a SIGKILL.

Run: .venv/bin/python bench/collector.py [--seconds 15] [--batch 1000] [--kill-after 8]
Needs `wrk` (Debian: apt-get install wrk). Writes bench/results/collector.json and .md.

Steps, each against a fresh collector (uvicorn, uvloop + httptools, as `dmp collect` runs it,
rate limit raised out of the way) on 127.0.0.1 with a temp landing dir:
1. single events: wrk POSTs one web event per request, a unique event_id each (Lua), from 64
   and from 256 connections (group commit groups grow with the number of clients);
2. batches: wrk POSTs `--batch` events per request, unique event_ids, from 16 connections;
   after each, the landing files are read back: every acknowledged request's events must be
   there once (wrk counts 2xx; the events of requests cut off at the end may land too);
3. durability: Python clients post batches and record every acknowledged event_id; the
   collector gets SIGKILL mid-load; every acknowledged event_id must be in the landing files,
   and every landing file must be whole.
wrk is a closed loop: latency is per request at that concurrency, queueing included. The
load generator shares the machine's cores with the collector (and whatever else runs).
"""

import argparse
import gzip
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from machine import describe_machine

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
WRITE_KEY = "bench-web-key"
GOALS = {"single_requests_per_s": 1_000, "batched_events_per_s": 50_000}

SERVE = """
import sys
from pathlib import Path
from ingestion.collector import run_collector
run_collector("127.0.0.1", int(sys.argv[1]), Path(sys.argv[2]), {sys.argv[3]: "web"},
              rate_per_second=1e9, burst=1e9)
"""

# One request per call of `request`; event ids unique per wrk thread and request.
WRK_SCRIPT = """
local thread_number = 0
function setup(thread)
  thread:set("number", thread_number)
  thread_number = thread_number + 1
end
local counter = 0
local events = tonumber(os.getenv("BENCH_EVENTS"))
local headers = {["Authorization"] = "Bearer %(key)s", ["Content-Type"] = "application/json"}
local template = '{"event_id":"%%s","event_type":"page_view","event_time":"2026-03-01T12:34:56Z",'
  .. '"anonymous_id":"anon-%%d","page_url":"/bench"}'
function request()
  counter = counter + 1
  local parts = {}
  for n = 1, events do
    parts[n] = string.format(template, "w" .. number .. "-" .. counter .. "-" .. n, counter %% 1000)
  end
  local body = events == 1 and parts[1] or ("[" .. table.concat(parts, ",") .. "]")
  return wrk.format("POST", "/v1/web", headers, body)
end
function done(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests": %%d, "seconds": %%f, "non_2xx": %%d, "socket_errors": %%d, '
    .. '"p50_ms": %%f, "p90_ms": %%f, "p99_ms": %%f, "max_ms": %%f}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3))
end
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(landing: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """A collector on a free loopback port, once it answers /health."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port), str(landing), WRITE_KEY],
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return server, port
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the collector did not come up, see {log}")


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _landed_ids(landing: Path) -> list[str]:
    return [
        json.loads(line)["event_id"]
        for path in sorted((landing / "web_events").glob("*.jsonl.gz"))
        for line in gzip.decompress(path.read_bytes()).decode().splitlines()
    ]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (the collector's, not wrk's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(uptime_note: str) -> str:
    return f"{uptime_note}: load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"


def wrk_run(work: Path, name: str, events: int, seconds: int, connections: int) -> dict:
    """wrk against a fresh collector; the figures, and a read-back of the landing files."""
    landing = work / name
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT % {"key": WRITE_KEY})
    server, port = _start(landing, work / f"{name}.log")
    loadavg_before = _load("before")
    cpu_before = _cpu_seconds(server.pid)
    try:
        completed = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}/v1/web",
            ],
            env={**os.environ, "BENCH_EVENTS": str(events)},
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        )
        cpu_seconds = _cpu_seconds(server.pid) - cpu_before
    finally:
        _stop(server)
    figures = json.loads(re.search(r"WRK_JSON (.*)", completed.stdout).group(1))
    acknowledged = figures["requests"] - figures["non_2xx"]
    landed = _landed_ids(landing)
    files = len(list((landing / "web_events").glob("*.jsonl.gz")))
    return {
        "name": name,
        "events_per_request": events,
        "connections": connections,
        **figures,
        "requests_per_s": round(acknowledged / figures["seconds"], 1),
        "events_per_s": round(acknowledged * events / figures["seconds"], 1),
        "acknowledged_requests": acknowledged,
        "landed_events": len(landed),
        "landed_unique_events": len(set(landed)),
        "landing_files": files,
        "collector_cpu_seconds": round(cpu_seconds, 2),
        "collector_cpu_ms_per_request": round(1000 * cpu_seconds / max(acknowledged, 1), 3),
        "load": [loadavg_before, _load("after")],
        "wrk_output": completed.stdout,
    }


def durability_run(work: Path, seconds: float, clients: int, batch: int) -> dict:
    """Clients post batches and record acknowledged ids; SIGKILL after `seconds`; count what
    the landing files hold of what was acknowledged."""
    landing = work / "durability"
    server, port = _start(landing, work / "durability.log")
    acknowledged: list[str] = []
    requests_done = [0]
    lock = threading.Lock()

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for request in range(10**9):
            ids = [f"k{number}-{request}-{n}" for n in range(batch)]
            body = json.dumps([_event(event_id) for event_id in ids])
            try:
                connection.request(
                    "POST",
                    "/v1/web",
                    body,
                    {"Authorization": f"Bearer {WRITE_KEY}", "Content-Type": "application/json"},
                )
                response = connection.getresponse()
                answer = json.loads(response.read())
            except (OSError, http.client.HTTPException, ValueError):
                return  # killed mid-request: not acknowledged
            if response.status != 200 or answer["accepted"] != len(ids):
                raise RuntimeError(f"refused: {response.status} {answer}")
            with lock:
                acknowledged.extend(ids)
                requests_done[0] += 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    for thread in threads:
        thread.join(timeout=30)
    with lock:
        acked = set(acknowledged)
    landed = _landed_ids(landing)
    leftovers = [path.name for path in (landing / "web_events").glob(".collector_*.tmp")]
    return {
        "clients": clients,
        "events_per_request": batch,
        "seconds_before_kill": seconds,
        "acknowledged_requests": requests_done[0],
        "acknowledged_events": len(acked),
        "lost_acknowledged_events": len(acked - set(landed)),
        "landed_events": len(landed),
        "landed_unique_events": len(set(landed)),
        "landing_files": len(list((landing / "web_events").glob("*.jsonl.gz"))),
        "temp_files_left": len(leftovers),
    }


def _event(event_id: str) -> dict:
    return {
        "event_id": event_id,
        "event_type": "page_view",
        "event_time": "2026-03-01T12:34:56Z",
        "anonymous_id": "anon-1",
        "page_url": "/bench",
    }


def _markdown(result: dict) -> str:
    runs, kill, machine = result["runs"], result["durability"], result["machine"]
    rows = [
        f"| {run['name']} | {run['events_per_request']:,} | {run['connections']} | "
        f"**{run['requests_per_s']:,.0f}** | **{run['events_per_s']:,.0f}** | "
        f"{run['p50_ms']:.1f} | {run['p99_ms']:.1f} | {run['max_ms']:.1f} | "
        f"{run['non_2xx'] + run['socket_errors']} | "
        f"{run['acknowledged_requests'] * run['events_per_request']:,} / "
        f"{run['landed_unique_events']:,} | {run['landing_files']:,} | "
        f"{run['collector_cpu_ms_per_request']:.2f} | "
        f"{run['collector_cpu_seconds'] / run['seconds']:.2f} |"
        for run in runs
    ]
    goals = [
        f"- {run['name']}: goal {goal:,} {unit}/s "
        f"{'met' if run[key] >= goal else '**not met**'} ({run[key]:,.0f}/s)."
        for run in runs
        for key, goal, unit in [
            ("requests_per_s", GOALS["single_requests_per_s"], "requests")
            if run["events_per_request"] == 1
            else ("events_per_s", GOALS["batched_events_per_s"], "events")
        ]
    ]
    return "\n".join(
        [
            "# HTTP event collector: throughput, latency, durability under SIGKILL",
            "",
            (
                f"{machine['cores']} cores, {machine['ram_gb']} GB, {machine['cpu']}; Python "
                f"{machine['python']}, uvicorn {machine['uvicorn']} (uvloop, httptools), "
                f"starlette {machine['starlette']}, duckdb {machine['duckdb']}. Run "
                f"{result['run_at']}: `{result['command']}`."
            ),
            "",
            (
                "| run | events/request | connections | requests/s | events/s | p50 ms "
                "| p99 ms | max ms | errors | events acked / landed | landing files "
                "| collector CPU ms/request | collector cores used |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            *goals,
            (
                f"- Durability: {kill['clients']} clients posting {kill['events_per_request']}-"
                f"event batches, SIGKILL after {kill['seconds_before_kill']:.0f} s: "
                f"{kill['acknowledged_events']:,} events acknowledged, "
                f"**{kill['lost_acknowledged_events']} lost**; {kill['landed_events']:,} events "
                f"({kill['landed_unique_events']:,} distinct) in {kill['landing_files']:,} whole "
                f"files (events beyond the acknowledged ones were cut off before their answer), "
                f"{kill['temp_files_left']} temporary file(s) left for the next start to remove."
            ),
            "- Machine load (1/5/15-minute load average) around each wrk run: "
            + "; ".join(f"{run['name']} {', '.join(run['load'])}" for run in runs)
            + ". The 2 cores are shared with the load generator (wrk, 2 threads) and, during "
            "this run, with other agents' work (tests, dbt, Dagster): the `collector cores "
            "used` column shows how much CPU the collector got.",
            (
                "- wrk is a closed loop (each connection waits for its answer), so latency "
                "includes the wait for the group commit: a request is answered only once its "
                "group's file is fsynced. Every acknowledged event was read back from the "
                "landing files exactly once (acked <= landed: requests cut off at the end of a "
                "run may land unanswered)."
            ),
            (
                "- Where the CPU goes (py-spy): nearly all of it is the group commit's one "
                "`read_channel` call per group (~30 ms of CPU whatever the group's size, in a "
                "DuckDB connection the committer keeps), so throughput grows with the "
                "group size, i.e. with the number of concurrent clients; the event loop costs "
                "~0.3-0.5 ms per single-event request."
            ),
            (
                "- With few clients the bound is latency, not CPU (Little's law): a request "
                "waits for the commit under way and then for its own, so a closed loop of C "
                "clients gets about C / (2 x commit time) requests/s: more clients, larger "
                "groups, more requests per commit. A web collector's "
                "clients are many browsers with one request each in flight, which the 256-client "
                "run models better."
            ),
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15, help="length of each wrk run")
    parser.add_argument("--batch", type=int, default=1000, help="events per batched request")
    parser.add_argument("--kill-after", type=float, default=8, help="seconds before SIGKILL")
    args = parser.parse_args()
    plan = [  # name, events per request, connections
        ("single, 64 clients", 1, 64),
        ("single, 256 clients", 1, 256),
        (f"batches of {args.batch}", args.batch, 16),
    ]
    runs = []
    with tempfile.TemporaryDirectory(prefix="dmp-collector-bench-") as folder:
        work = Path(folder)
        for number, (name, events, connections) in enumerate(plan):
            print(f"[collector] {name}", flush=True)
            run = wrk_run(work, f"run{number}", events, args.seconds, connections)
            runs.append({**run, "name": name})
            print(
                f"[collector] {run['requests_per_s']:,.0f} requests/s, "
                f"{run['events_per_s']:,.0f} events/s",
                flush=True,
            )
        print("[collector] durability under SIGKILL", flush=True)
        durability = durability_run(work, args.kill_after, clients=8, batch=100)
        print(f"[collector] lost: {durability['lost_acknowledged_events']}", flush=True)
    for run in runs:
        acked = run["acknowledged_requests"] * run["events_per_request"]
        if (
            run["landed_unique_events"] < acked
            or run["landed_events"] != run["landed_unique_events"]
        ):
            raise RuntimeError(f"{run['name']}: acknowledged events missing or doubled: {run}")
    result = {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/collector.py " + " ".join(sys.argv[1:]),
        "machine": describe_machine(("uvicorn", "starlette", "duckdb", "uvloop", "httptools")),
        "goals": GOALS,
        "runs": runs,
        "durability": durability,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "collector.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "collector.md").write_text(_markdown(result))
    print(f"[collector] wrote {RESULTS / 'collector.md'}", flush=True)
    return 0 if durability["lost_acknowledged_events"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
