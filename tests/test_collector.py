"""The HTTP event collector: what it accepts, what it refuses, and that an acknowledged
event is in the landing zone, readable by the real ingestion, even if the process dies."""

import gzip
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio
import duckdb
import pytest
from conftest import free_port
from hypothesis import event, given, settings
from hypothesis import strategies as st

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


def test_gzip_bodies_are_read_and_a_gzip_bomb_is_413(app, landing: Path):
    key = bearer("web-key")
    gzip_key = {**key, "content-encoding": "gzip"}
    body = json.dumps([web_event("z1"), web_event("z2")]).encode()
    status, answer, _ = call(app, "/v1/web", gzip.compress(body), gzip_key)
    assert (status, answer["accepted"]) == (200, 2), answer
    # Several gzip members are one body (RFC 1952), as `gzip.decompress` reads them.
    members = gzip.compress(body[:20]) + gzip.compress(body[20:])
    assert call(app, "/v1/web", members, gzip_key)[0] == 200

    bomb = gzip.compress(b" " * 5_000_000)  # 5 MB of JSON whitespace in ~5 kB
    assert len(bomb) < 10_000
    cases = [
        (bomb, gzip_key, 413, "decompressed body exceeds the limit of 10000 bytes"),
        (gzip.compress(body)[:-8], gzip_key, 400, "body is not valid gzip: truncated"),
        (body, gzip_key, 400, "body is not valid gzip"),
        (body, {**key, "content-encoding": "br"}, 415, "Content-Encoding 'br' is not gzip"),
    ]
    for request, headers, status, reason in cases:
        got, answer, _ = call(app, "/v1/web", request, headers)
        assert got == status and answer["error"].startswith(reason), answer
    assert [event["event_id"] for event in landed(landing)] == ["z1", "z2", "z1", "z2"]


def test_only_json_content_types_are_read(app, landing: Path):
    """JSON, a vendor +json type, or no Content-Type at all (a bare client) are read; a form,
    text or HTML is a client mistake worth a clear 415, not a 400 about JSON syntax."""
    accepted = [{}, {"content-type": "application/json; charset=utf-8"}]
    accepted.append({"content-type": "Application/vnd.dmp.events+json"})
    for number, headers in enumerate(accepted):
        status, answer, _ = call(
            app, "/v1/web", [web_event(f"t{number}")], {**bearer("web-key"), **headers}
        )
        assert status == 200, (headers, answer)
    for media_type in ("text/html", "text/plain", "application/x-www-form-urlencoded"):
        headers = {**bearer("web-key"), "content-type": media_type}
        status, answer, _ = call(app, "/v1/web", [web_event("refused")], headers)
        assert status == 415 and answer["error"] == (
            f"Content-Type {media_type!r} is not JSON (send application/json)"
        )
    assert [event["event_id"] for event in landed(landing)] == ["t0", "t1", "t2"]


def test_a_repeated_event_id_in_one_body_is_dropped_and_counted(app, landing: Path):
    batch = [
        web_event("d1"),
        web_event("d2"),
        web_event("d1", page_url="/second"),
        web_event("d3"),
        web_event("d2", user_id=7),  # dropped as a repeat before its type is looked at
    ]
    status, answer, _ = call(app, "/v1/web", batch, bearer("web-key"))
    assert status == 200
    assert (answer["accepted"], answer["rejected"], answer["duplicates"]) == (3, [], 2)
    assert landed(landing) == [web_event("d1"), web_event("d2"), web_event("d3")]
    # The first occurrence wins even when it is the one refused: the client fixes and resends it.
    batch = [web_event("d4", event_time="2099-01-01T00:00:00Z"), web_event("d4")]
    status, answer, _ = call(app, "/v1/web", batch, bearer("web-key"))
    assert (status, answer["accepted"], answer["duplicates"]) == (400, 0, 1)
    assert [entry["index"] for entry in answer["rejected"]] == [0]


def test_a_storage_error_is_503_and_the_collector_keeps_serving(app, landing: Path):
    landing.mkdir()
    (landing / "web_events").write_text("a file where the folder should be")
    status, answer, _ = call(app, "/v1/web", [web_event("s1")], bearer("web-key"))
    assert (status, answer) == (503, {"error": "events not stored, retry: FileExistsError"})
    assert call(app, "/v1/app", [app_event("a1")], bearer("app-key"))[0] == 200
    (landing / "web_events").unlink()
    assert call(app, "/v1/web", [web_event("s1")], bearer("web-key"))[0] == 200


def test_temporary_files_of_a_killed_collector_are_removed_at_start(landing: Path, caplog):
    for folder in ("web_events", "app_events"):
        (landing / folder).mkdir(parents=True)
        (landing / folder / ".collector_20260301T000000Z_dead.tmp").write_bytes(b"\x1f\x8b")
    kept = [landing / "web_events" / "collector_1.jsonl.gz", landing / "web_events" / ".other.tmp"]
    for path in kept:
        path.write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="ingestion.collector"):
        create_app(landing, KEYS)
    assert sorted(path for path in landing.rglob("*") if path.is_file()) == sorted(kept)
    assert "removed 2 temporary file(s) left by an earlier collector" in caplog.text


SERVE = """
import json, sys
from pathlib import Path
from ingestion.collector import run_collector
run_collector(
    "127.0.0.1", int(sys.argv[1]), Path(sys.argv[2]), {"web-key": "web"}, **json.loads(sys.argv[3])
)
"""


def serve(landing: Path, port: int, **options) -> subprocess.Popen:
    """The collector under uvicorn in its own process (`options` go to `create_app`),
    once it answers on /health."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port), str(landing), json.dumps(options)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.1)


def test_every_acknowledged_event_survives_a_sigkill(landing: Path):
    port = free_port()
    server = serve(landing, port)
    try:
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


def test_concurrent_requests_share_group_commits_and_every_ack_lands_once(landing: Path):
    """200 clients post one event each at the same moment: all are acknowledged, and every
    acknowledged event is in the landing files exactly once, in fewer files than requests."""
    port = free_port()
    server = serve(landing, port, rate_per_second=10_000, burst=10_000)
    clients = 200
    start = threading.Barrier(clients)
    answers: dict[str, tuple[int, dict]] = {}

    def client(event_id: str) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps(web_event(event_id))
        start.wait()
        connection.request(
            "POST", "/v1/web", body, {**bearer("web-key"), "content-type": "application/json"}
        )
        response = connection.getresponse()
        answers[event_id] = (response.status, json.loads(response.read()))

    try:
        threads = [threading.Thread(target=client, args=(f"g{n}",)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert len(answers) == clients
    assert {status for status, _ in answers.values()} == {200}
    assert all(answer["accepted"] == 1 for _, answer in answers.values())
    stored = [event["event_id"] for event in landed(landing)]
    assert sorted(stored) == sorted(answers)  # each acknowledged event once, nothing else
    files = {answer["file"] for _, answer in answers.values()}
    assert files == {
        f"web_events/{path.name}" for path in (landing / "web_events").glob(WEB.pattern)
    }
    assert len(files) < clients


# Values a client might put in an event: every JSON type, odd text, huge and tiny numbers.
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
_TIMES = st.sampled_from(
    ["2026-03-01T12:34:56Z", "2026-03-01 12:34:56", "2099-01-01T00:00:00Z", "yesterday", ""]
)
# A good event, then some fields changed to anything and some dropped: most stay good.
_EVENTS = st.builds(
    lambda event_id, changes, dropped: {
        name: value
        for name, value in {**web_event(event_id), **changes}.items()
        if name not in dropped
    },
    st.sampled_from(["f1", "f2", "f3"]),
    st.just({})
    | st.fixed_dictionaries(
        {},
        optional={
            "event_id": st.sampled_from(["f4", " ", ""]) | _JSON_VALUES,
            "event_type": _JSON_VALUES,
            "event_time": _TIMES | st.integers() | _JSON_VALUES,
            "anonymous_id": st.sampled_from(["a\u0007b", "a\x00b"]) | _JSON_VALUES,
            "page_url": st.text(max_size=20),
            "user_id": _JSON_VALUES,
            "extra": _JSON_VALUES,
        },
    ),
    st.sets(st.sampled_from(["event_id", "event_time", "anonymous_id"]), max_size=1),
)
# Mostly events, some other JSON values; the app under test takes 5 at most.
_BATCHES = st.lists(_EVENTS | _EVENTS | _JSON_VALUES, max_size=6)


@st.composite
def _requests(draw) -> tuple[bytes, dict[str, str], list | None]:
    """A body, its headers, and the events it holds (None when it is not a JSON batch)."""
    events = draw(_BATCHES)
    shape = draw(st.sampled_from(["array", "envelope", "one", "array", "binary", "text"]))
    if shape == "binary":
        body, events = draw(st.binary(max_size=300)), None
    elif shape == "text":
        body, events = draw(st.text(max_size=100)).encode("utf-8", "surrogatepass"), None
    else:
        document = {"array": events, "envelope": {"batch": events}}.get(shape)
        if shape == "one":
            document = draw(_EVENTS)
            events = [document]
        body = json.dumps(document).encode()
    headers = {
        **bearer("web-key"),
        "content-type": draw(st.sampled_from(["application/json", None, "text/plain"])),
    }
    if draw(st.booleans()):
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    return body, {name: value for name, value in headers.items() if value}, events


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(request=_requests())
def test_fuzzed_bodies_never_crash_and_every_event_is_stored_or_named(request):
    """Whatever arrives, the answer is a 2xx or 4xx with a reason, every event is accounted
    for (accepted, a duplicate, or rejected with a reason per field), and the landing files
    hold exactly the accepted events."""
    body, headers, events = request
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder)
        app = create_app(landing, KEYS, max_body_bytes=10_000, max_batch=5, burst=1e9)
        status, answer, _ = call(app, "/v1/web", body, headers)
        stored = landed(landing)
    assert status in (200, 400, 413, 415), answer
    event(f"status {status}")
    if "error" in answer:
        assert isinstance(answer["error"], str) and answer["error"]
        assert stored == []
        return
    rejected = {entry["index"]: entry for entry in answer["rejected"]}
    assert all(
        entry["errors"] and all(error["reason"] for error in entry["errors"])
        for entry in rejected.values()
    )
    assert len(stored) == answer["accepted"] and (status == 200) == bool(stored)
    if events is None:  # free text that happens to be JSON: accounted for above
        return
    seen: set[str] = set()
    kept = []
    for index, sent in enumerate(events):
        event_id = sent.get("event_id") if isinstance(sent, dict) else None
        if isinstance(event_id, str):
            if event_id in seen:
                continue
            seen.add(event_id)
        if index not in rejected:
            kept.append(sent)
    assert answer["duplicates"] == len(events) - len(kept) - len(rejected)
    assert answer["accepted"] == len(kept) and (status == 200) == bool(kept)
    assert stored == kept
