"""The HTTP event collector: what it accepts, what it refuses, and that an acknowledged
event is in the landing zone, readable by the real ingestion, even if the process dies."""

import gzip
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import duckdb
import pytest
from conftest import free_port

from ingestion.channels import CHANNELS
from ingestion.collector import create_app, write_keys_from_env
from ingestion.landing import read_channel
from ingestion.pipeline import load_channel

REPO_ROOT = Path(__file__).resolve().parents[1]
WEB, APP = CHANNELS["web_events"], CHANNELS["app_events"]
KEYS = {"web-key": "web", "app-key": "app"}


def web_event(event_id: str, **fields) -> dict:
    return {
        "event_id": event_id,
        "event_type": "page_view",
        "event_time": "2026-03-01T12:34:56Z",
        "anonymous_id": "anon-1",
        "page_url": "/",
        **fields,
    }


def app_event(event_id: str, **fields) -> dict:
    return {
        "event_id": event_id,
        "event_type": "app_open",
        "event_time": "2026-03-01 12:34:56",
        "device_id": "device-1",
        "platform": "ios",
        **fields,
    }


def call(app, path: str, body=b"", headers=None, method="POST", chunks=None):
    """One request straight through the ASGI app (starlette's TestClient needs httpx2, which
    is not installed); `chunks` sends the body in pieces without a Content-Length."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    headers = dict(headers or {})
    if chunks is None:
        chunks = [body]
        headers.setdefault("content-length", str(len(body)))
    messages = [
        {"type": "http.request", "body": chunk, "more_body": number < len(chunks) - 1}
        for number, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("collector", 80),
    }
    anyio.run(app, scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    content = b"".join(message.get("body", b"") for message in sent[1:])
    response_headers = {name.decode(): value.decode() for name, value in start["headers"]}
    is_json = response_headers.get("content-type") == "application/json"
    return start["status"], (json.loads(content) if is_json else content), response_headers


def bearer(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


def landed(landing: Path, channel=WEB) -> list[dict]:
    """Every event in the channel's landing files, in file order."""
    return [
        json.loads(line)
        for path in sorted((landing / channel.folder).glob(channel.pattern))
        for line in gzip.decompress(path.read_bytes()).decode().splitlines()
    ]


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def app(landing: Path):
    return create_app(landing, KEYS, max_body_bytes=10_000, max_batch=5)


def test_one_event_an_array_and_an_envelope_each_land_as_one_file(app, landing: Path):
    bodies = [
        web_event("e1"),
        [web_event("e2"), web_event("e3")],
        {"batch": [web_event("e4")]},
    ]
    for body in bodies:
        status, answer, _ = call(app, "/v1/web", body, bearer("web-key"))
        assert status == 200, answer
        assert answer["rejected"] == []
        assert answer["file"].startswith("web_events/collector_")
    status, answer, _ = call(app, "/v1/app", [app_event("a1")], {"x-write-key": "app-key"})
    assert (status, answer["accepted"]) == (200, 1)

    files = sorted(path.name for path in (landing / "web_events").iterdir())
    assert len(files) == 3 and all(name.endswith(".jsonl.gz") for name in files)
    assert landed(landing) == [web_event(f"e{number}") for number in (1, 2, 3, 4)]
    assert landed(landing, APP) == [app_event("a1")]


def test_bad_events_are_rejected_by_index_and_field_while_good_ones_land(app, landing: Path):
    batch = [
        web_event("good-1"),
        web_event("no-anon", anonymous_id=None),
        "not an object",
        web_event("typed", user_id=42, referrer=True),
        web_event("future", event_time="2099-01-01T00:00:00Z"),
    ]
    status, answer, _ = call(app, "/v1/web", batch, bearer("web-key"))
    assert status == 200
    assert answer["accepted"] == 1
    assert answer["rejected"] == [
        {
            "index": 1,
            "event_id": "no-anon",
            "errors": [{"field": "anonymous_id", "reason": "missing required field anonymous_id"}],
        },
        {
            "index": 2,
            "event_id": None,
            "errors": [{"field": None, "reason": "event is not a JSON object"}],
        },
        {
            "index": 3,
            "event_id": "typed",
            "errors": [
                {"field": "user_id", "reason": "must be a string or null, not number"},
                {"field": "referrer", "reason": "must be a string or null, not boolean"},
            ],
        },
        {
            "index": 4,
            "event_id": "future",
            "errors": [
                {
                    "field": "event_time",
                    "reason": "event_time: implausible value 2099-01-01T00:00:00Z",
                }
            ],
        },
    ]
    batch = [
        web_event("epoch", event_time=1772368496000, new_field={"nested": 1}),
        web_event("", page_url="/a"),
        web_event("ctrl", anonymous_id="a\u0007b"),
        {"event_type": "login"},
    ]
    status, answer, _ = call(app, "/v1/web", batch, bearer("web-key"))
    assert (status, answer["accepted"]) == (200, 1)
    assert {entry["index"]: entry["errors"] for entry in answer["rejected"]} == {
        1: [{"field": "event_id", "reason": "missing required field event_id"}],
        2: [{"field": "anonymous_id", "reason": "anonymous_id: control characters"}],
        3: [
            {"field": name, "reason": f"missing required field {name}"}
            for name in ("event_id", "event_time", "anonymous_id")
        ],
    }
    # Known fields keep their value as sent; an undeclared field is kept for ingestion.
    assert landed(landing) == [web_event("good-1"), batch[0]]


def test_a_request_with_no_good_event_is_400_and_writes_nothing(app, landing: Path):
    status, answer, _ = call(app, "/v1/web", [{"event_id": "x"}], bearer("web-key"))
    assert status == 400
    assert answer["accepted"] == 0 and answer["rejected"][0]["index"] == 0
    assert not (landing / "web_events").exists()


def test_write_keys_are_checked_before_anything_is_read(app, landing: Path):
    cases = [
        ({}, 401, "missing write key"),
        (bearer("wrong"), 401, "invalid write key"),
        ({"x-write-key": "wrong"}, 401, "invalid write key"),
        (bearer("app-key"), 403, "write key is for source 'app', not 'web'"),
    ]
    for headers, status, reason in cases:
        got, answer, _ = call(app, "/v1/web", [web_event("e1")], headers)
        assert got == status and answer["error"].startswith(reason), (headers, answer)
    assert call(app, "/v1/web", [web_event("e1")], {"x-write-key": "web-key"})[0] == 200
    assert call(app, "/v1/app", [app_event("a1")], bearer("web-key"))[0] == 403
    assert not (landing / "app_events").exists()


def test_oversized_malformed_and_empty_bodies_are_refused(app, landing: Path):
    key = bearer("web-key")
    big = json.dumps([web_event("e1", page_url="x" * 20_000)]).encode()
    cases = [
        ({"body": big}, 413),  # Content-Length says too much
        ({"chunks": [big[:6000], big[6000:]]}, 413),  # chunked, no Content-Length
        ({"body": [web_event(f"e{n}") for n in range(6)]}, 413),  # more than max_batch
        ({"body": b'{"event_id": '}, 400),
        ({"body": b"\xff\xfe"}, 400),
        ({"body": b'{"event_id": NaN}'}, 400),
        ({"body": []}, 400),
        ({"body": {"batch": {"event_id": "e1"}}}, 400),
    ]
    for request, status in cases:
        got, answer, _ = call(app, "/v1/web", headers=key, **request)
        assert got == status, (request, answer)
        assert isinstance(answer["error"], str)
    assert not (landing / "web_events").exists()
    # A body sent in chunks under the limit is fine.
    body = json.dumps([web_event("c1")]).encode()
    assert call(app, "/v1/web", headers=key, chunks=[body[:10], body[10:]])[0] == 200


def test_requests_over_the_rate_are_429_with_retry_after_per_write_key(landing: Path):
    app = create_app(landing, KEYS, rate_per_second=0.5, burst=2)
    statuses = [call(app, "/v1/web", [web_event(f"e{n}")], bearer("web-key"))[0] for n in range(2)]
    status, answer, headers = call(app, "/v1/web", [web_event("e3")], bearer("web-key"))
    assert statuses == [200, 200]
    assert status == 429 and "too many requests" in answer["error"]
    assert headers["retry-after"] == "2"
    assert call(app, "/v1/app", [app_event("a1")], bearer("app-key"))[0] == 200
    assert [event["event_id"] for event in landed(landing)] == ["e0", "e1"]


def test_health_and_write_keys_from_env(app, monkeypatch):
    assert call(app, "/health", method="GET")[:2] == (
        200,
        {"status": "ok", "sources": ["app", "web"]},
    )
    assert call(app, "/v1/web", method="GET")[0] == 405
    monkeypatch.setenv("DMP_WRITE_KEYS", " web:K1, app:K2 ,web:K3")
    assert write_keys_from_env() == {"K1": "web", "K2": "app", "K3": "web"}
    for bad in ("K1", "shop:K1", "web:", "web:K1,app:K1"):
        with pytest.raises(ValueError, match="DMP_WRITE_KEYS"):
            write_keys_from_env(bad)


def test_collected_events_load_through_the_real_ingestion_with_nothing_quarantined(
    app, landing: Path, tmp_path: Path
):
    sent: list[str] = []
    for request in range(3):
        batch = [web_event(f"r{request}-{n}", user_id=f"u{n}") for n in range(4)]
        batch.append(web_event(f"bad-{request}", event_time="sometime"))  # rejected
        status, answer, _ = call(app, "/v1/web", batch, bearer("web-key"))
        assert (status, answer["accepted"]) == (200, 4)
        sent += [event["event_id"] for event in batch[:4]]
    call(app, "/v1/web", [web_event("r0-0")], bearer("web-key"))  # a re-send

    db = tmp_path / "dmp.duckdb"
    load_channel(WEB, landing, db)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "select event_id, event_time, _source_file from raw.web_events order by event_id"
        ).fetchall()
        quarantined = con.execute("select count(*) from raw.quarantine_web_events").fetchone()
        files = con.execute(
            "select count(*), sum(loaded_lines), sum(rejected_lines) "
            "from raw.landing_files_web_events where status = 'loaded'"
        ).fetchone()
    assert [row[0] for row in rows] == sorted(sent)
    assert {row[1] for row in rows} == {"2026-03-01T12:34:56Z"}
    assert all(row[2].startswith("web_events/collector_") for row in rows)
    assert quarantined == (0,)
    assert files == (4, 12, 0)  # the re-sent event is a duplicate line, not a second row


SERVE = """
import sys
from pathlib import Path
from ingestion.collector import run_collector
run_collector("127.0.0.1", int(sys.argv[1]), Path(sys.argv[2]), {"web-key": "web"})
"""


def test_every_acknowledged_event_survives_a_sigkill(landing: Path):
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVE,
            str(port),
            str(landing),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)

        acknowledged: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()
        failures: list[dict] = []

        def client(number: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            for request in range(1000):
                if stop.is_set():
                    return
                ids = [f"c{number}-r{request}-e{n}" for n in range(25)]
                body = json.dumps({"batch": [web_event(event_id) for event_id in ids]})
                try:
                    connection.request(
                        "POST", "/v1/web", body, {**bearer("web-key"), "Connection": "keep-alive"}
                    )
                    response = connection.getresponse()
                    answer = json.loads(response.read())
                except (OSError, http.client.HTTPException, json.JSONDecodeError):
                    return  # the server died mid-request: not acknowledged
                if response.status != 200 or answer["accepted"] != len(ids):
                    failures.append(answer)
                    return
                with lock:
                    acknowledged.extend(ids)
                    if len(acknowledged) >= 40 * len(ids) and not stop.is_set():
                        stop.set()
                        os.kill(server.pid, signal.SIGKILL)  # right after this ack
                        return

        clients = [threading.Thread(target=client, args=(number,)) for number in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(timeout=30)
        assert failures == [] and stop.is_set(), failures
        assert server.wait(timeout=10) == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    # Every landing file is whole (the real reader finds none unreadable) and holds every
    # acknowledged event; events of requests cut off by the kill may or may not be there.
    batch = read_channel(WEB, landing)
    assert batch.unreadable_files == {}
    stored = batch.records["event_id"].to_pylist()
    assert set(acknowledged) <= set(stored)
    assert len(stored) == len(set(stored)) >= len(acknowledged) >= 40 * 25
    assert batch.quarantine.num_rows == 0
    # A write cut off by the kill can leave only a hidden temporary file, never a landing file.
    for path in (landing / "web_events").iterdir():
        if not path.match(WEB.pattern):
            assert path.name.startswith(".collector_") and path.name.endswith(".tmp")
