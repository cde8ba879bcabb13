"""HTTP event collector: web and app clients POST events, which land as gz JSONL batch files.

    POST /v1/web   POST /v1/app   GET /health

A body is one event (a JSON object), a JSON array of events, or `{"batch": [...]}`, as
`Content-Type: application/json` or `application/<anything>+json` (no Content-Type is read as
JSON too; anything else is 415), optionally `Content-Encoding: gzip` (other encodings 415).
The size limit holds for the body as sent and for the decompressed JSON alike (413).
Authentication is a write key, `Authorization: Bearer <key>` or `X-Write-Key: <key>`; each
key is bound to one source (`web` or `app`).

Partial acceptance: events are independent facts, so the good events of a batch are stored
and the bad ones are named in the answer (`rejected`: index in the batch, event_id, and each
field with its reason); a client resends only those, after fixing them. An event_id repeated
within one body is dropped and counted (`duplicates`): the first occurrence wins, even when it
is the one rejected. Resending a whole batch is harmless too: events merge on `event_id`, first
arrival stays; the same holds for one event_id in two concurrent requests, which are both
stored as sent, as if they had come one after the other. The answer is 200 when at least one
event was stored, 400 when none was (nothing of that request is written).

An event is accepted only if ingestion would load it without a quarantine row: declared
fields are strings or null (`event_time` may also be epoch milliseconds as an integer), and
then the landing rules themselves (`ingestion.landing.read_channel`: required fields,
oversized fields, control characters, implausible `event_time`) run on the exact lines
that will be written.

Group commit: validation (an in-memory DuckDB) and an fsync cost nearly as much for one event
as for a thousand, so requests do not pay for them one by one. Each request puts its checked
lines in its channel's queue; one committer thread takes everything pending, validates it
with one `read_channel` call, writes the group's accepted lines as one new file,
`<channel folder>/collector_<UTC time>_<batch id>.jsonl.gz`, under a hidden temporary name
that the ingestion's `*.jsonl.gz` pattern never matches, fsyncs it, renames it into place and
fsyncs its folder, and only then answers every request of the group (`batch_id` and `file`
name the group's file). While it works the next group gathers. A 2xx therefore means the
events are in the landing zone; any other answer means they may not be, and the client
retries. Temporary files left by a killed collector are removed when the next one starts.
"""

import asyncio
import gzip
import hmac
import json
import logging
import math
import os
import re
import threading
import time
import uuid
import zlib
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ingestion.channels import CHANNELS, TEXT, Channel
from ingestion.landing import read_channel

# source named in the route and in a write key -> landing channel
SOURCES: dict[str, Channel] = {"web": CHANNELS["web_events"], "app": CHANNELS["app_events"]}

WRITE_KEYS_ENV = "DMP_WRITE_KEYS"
FILE_PREFIX = "collector_"
# Not a landing file: hidden, and not ending in the channel's pattern.
TEMP_PREFIX = ".collector_"
TEMP_SUFFIX = ".tmp"

# Fields that may also arrive as a JSON integer (epoch milliseconds, docs/landing.md).
_EPOCH_FIELDS = frozenset({"event_time"})
# read_channel over this path finds no landing files: it checks only the lines it is given.
_NO_LANDING_FILES = Path("/dev/null")
# A landing reason: "missing required field <name>" or "<name>: <what is wrong>".
_REASON = re.compile(r"missing required field (?P<missing>\S+)|(?P<field>[^:;]+): ")
# application/json, application/<vendor>+json; parameters (charset) are ignored.
_JSON_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json", re.IGNORECASE)
# Bodies up to this size are parsed and checked on the event loop: a thread hand-off costs
# more than they do; bigger ones would hold up every other request meanwhile.
_INLINE_PARSE_BYTES = 64 * 1024
# One encoder for every line: json.dumps with separators builds a new one per call.
_LINE = json.JSONEncoder(separators=(",", ":"))

log = logging.getLogger(__name__)


class RequestError(Exception):
    """A request refused as a whole: HTTP status, reason, and extra response headers."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


@dataclass
class TokenBucket:
    """Requests per write key: `burst` at once, refilled at `rate` per second."""

    rate: float
    burst: float
    tokens: dict[str, float] = field(default_factory=dict)
    updated: dict[str, float] = field(default_factory=dict)

    def take(self, key: str, now: float) -> float:
        """Take one token; return 0 when granted, else the seconds until one is available."""
        elapsed = now - self.updated.get(key, now)
        tokens = min(self.burst, self.tokens.get(key, self.burst) + elapsed * self.rate)
        self.updated[key] = now
        if tokens >= 1:
            self.tokens[key] = tokens - 1
            return 0.0
        self.tokens[key] = tokens
        return (1 - tokens) / self.rate


@dataclass
class Committed:
    """What the group commit did with one request's lines: the landing reason of each
    rejected line (by position in the request's lines) and the file holding the rest."""

    rejected: dict[int, str]
    batch_id: str | None
    file: str | None


@dataclass
class _Pending:
    lines: list[str]
    future: Future


class GroupCommitter:
    """Validates and stores the pending requests of one channel together, on a thread of its
    own that runs only while requests are pending: the first request to find it idle starts
    it, and it stops when it finds nothing left to commit."""

    def __init__(self, landing_dir: Path, channel: Channel, max_group_lines: int = 50_000):
        self.landing_dir = landing_dir
        self.channel = channel
        self.max_group_lines = max_group_lines
        self._lock = threading.Lock()
        self._pending: deque[_Pending] = deque()
        self._running = False
        # Used by the one draining thread at a time: opening one per group cost a quarter
        # of the check.
        self._con = duckdb.connect()

    def submit(self, lines: list[str]) -> Future:
        """Queue a request's lines; the future resolves to its `Committed` once the group's
        file is durable (or to the error that stopped the group)."""
        pending = _Pending(lines, Future())
        with self._lock:
            self._pending.append(pending)
            start, self._running = not self._running, True
        if start:
            name = f"collector-{self.channel.folder}"
            threading.Thread(target=self._drain, name=name, daemon=True).start()
        return pending.future

    def _drain(self) -> None:
        while True:
            with self._lock:
                group, size = [], 0
                while self._pending and (not group or size < self.max_group_lines):
                    pending = self._pending.popleft()
                    # A request cancelled while it waited (server shutting down) is not
                    # stored; once running, its future can no longer be cancelled.
                    if pending.future.set_running_or_notify_cancel():
                        group.append(pending)
                        size += len(pending.lines)
                if not group:
                    self._running = False
                    return
            self._settle(group)

    def _settle(self, group: list[_Pending]) -> None:
        """Commit the group and resolve its futures. If the check itself fails, commit each
        request alone, so that whatever one request sent can fail only that request; a
        storage error (OSError) fails them all at once: each would meet it again."""
        try:
            results = self._commit([pending.lines for pending in group])
        except Exception as error:  # noqa: BLE001 - no request may wait forever
            if len(group) == 1 or isinstance(error, OSError):
                for pending in group:
                    pending.future.set_exception(error)
            else:
                for pending in group:
                    self._settle([pending])
            return
        for pending, result in zip(group, results):
            pending.future.set_result(result)

    def _commit(self, requests: list[list[str]]) -> list[Committed]:
        """One landing-rules check and one durable file for all the requests' lines."""
        owners = [
            (number, position)
            for number, lines in enumerate(requests)
            for position in range(len(lines))
        ]
        everything = [line for lines in requests for line in lines]
        # The landing rules on the exact lines to be written (line_number is 1-based).
        checked = read_channel(
            self.channel, _NO_LANDING_FILES, api_pages=[("collector", everything)], con=self._con
        ).quarantine
        rejected: list[dict[int, str]] = [{} for _ in requests]
        for line_number, reason in zip(
            checked["line_number"].to_pylist(), checked["reason"].to_pylist()
        ):
            if line_number is None:  # a note on the whole page, not on one of its lines
                continue
            number, position = owners[line_number - 1]
            rejected[number][position] = reason
        stored = [
            line
            for number, lines in enumerate(requests)
            for position, line in enumerate(lines)
            if position not in rejected[number]
        ]
        batch_id = file = None
        if stored:
            batch_id = uuid.uuid4().hex
            file = _write_batch(self.landing_dir, self.channel, stored, batch_id)
        return [
            Committed(refused, batch_id, file)
            if len(refused) < len(lines)
            else Committed(refused, None, None)
            for lines, refused in zip(requests, rejected)
        ]


def write_keys_from_env(value: str | None = None) -> dict[str, str]:
    """Parse `DMP_WRITE_KEYS` ("web:KEY1,app:KEY2", a source may have several keys, for
    rotation) into write key -> source."""
    value = os.environ.get(WRITE_KEYS_ENV, "") if value is None else value
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        source, separator, key = item.partition(":")
        source, key = source.strip(), key.strip()
        if not separator or source not in SOURCES or not key:
            raise ValueError(
                f"{WRITE_KEYS_ENV}: {item!r} is not <source>:<key> with source one of "
                f"{', '.join(SOURCES)}"
            )
        if keys.setdefault(key, source) != source:
            raise ValueError(f"{WRITE_KEYS_ENV}: key {key!r} is bound to two sources")
    return keys


def create_app(
    landing_dir: Path,
    write_keys: dict[str, str],
    max_body_bytes: int = 1_000_000,
    max_batch: int = 1000,
    rate_per_second: float = 50.0,
    burst: float = 100.0,
) -> Starlette:
    """The collector for one landing zone. `write_keys` maps each write key to its source
    ("web" or "app"); the rate limit counts requests per write key. Removes the temporary
    files a killed collector left behind: nothing acknowledged is in them."""
    unknown = sorted(set(write_keys.values()) - set(SOURCES))
    if unknown:
        raise ValueError(f"write keys bound to unknown sources: {', '.join(unknown)}")
    landing_dir = Path(landing_dir)
    removed = remove_temp_files(landing_dir)
    log.log(
        logging.WARNING if removed else logging.INFO,
        "removed %d temporary file(s) left by an earlier collector in %s",
        removed,
        landing_dir,
    )
    bucket = TokenBucket(rate=rate_per_second, burst=burst)
    committers = {
        source: GroupCommitter(landing_dir, channel) for source, channel in SOURCES.items()
    }

    def authenticate(request: Request, source: str) -> str:
        key = _write_key(request)
        if key is None:
            raise RequestError(401, "missing write key (Authorization: Bearer <key>)")
        bound = next(
            (bound for known, bound in write_keys.items() if hmac.compare_digest(known, key)),
            None,
        )
        if bound is None:
            raise RequestError(401, "invalid write key")
        if bound != source:
            raise RequestError(403, f"write key is for source {bound!r}, not {source!r}")
        return key

    def rate_limit(key: str) -> None:
        wait = bucket.take(key, time.monotonic())
        if wait:
            raise RequestError(
                429, "too many requests for this write key", {"Retry-After": str(math.ceil(wait))}
            )

    async def collect(request: Request) -> JSONResponse:
        source = request.scope["path"].rsplit("/", 1)[-1]
        channel = SOURCES[source]
        try:
            rate_limit(authenticate(request, source))
            gzipped = _content_is_gzip(request)
            body = await _body(request, max_body_bytes)
            read = (body, gzipped, max_body_bytes, max_batch)
            if len(body) > _INLINE_PARSE_BYTES or gzipped:
                events = await run_in_threadpool(_events, *read)
                candidates, problems, duplicates = await run_in_threadpool(_check, channel, events)
            else:
                events = _events(*read)
                candidates, problems, duplicates = _check(channel, events)
        except RequestError as error:
            return JSONResponse(
                {"error": error.reason}, status_code=error.status, headers=error.headers
            )
        committed = Committed({}, None, None)
        if candidates:
            try:
                committed = await asyncio.wrap_future(
                    committers[source].submit([line for _, line in candidates])
                )
            except OSError as error:
                return JSONResponse(
                    {"error": f"events not stored, retry: {type(error).__name__}"},
                    status_code=503,
                )
        for position, reason in committed.rejected.items():
            problems[candidates[position][0]] = _reasons(reason)
        answer: dict = {
            "accepted": len(candidates) - len(committed.rejected),
            "rejected": [
                {"index": index, "event_id": _event_id(events[index]), "errors": errors}
                for index, errors in sorted(problems.items())
            ],
            "duplicates": duplicates,
        }
        if committed.file is None:
            return JSONResponse(answer, status_code=400)
        return JSONResponse({**answer, "batch_id": committed.batch_id, "file": committed.file})

    async def health(request: Request) -> JSONResponse:
        del request
        return JSONResponse({"status": "ok", "sources": sorted(SOURCES)})

    return Starlette(
        routes=[
            *(Route(f"/v1/{source}", collect, methods=["POST"]) for source in SOURCES),
            Route("/health", health, methods=["GET"]),
        ]
    )


def run_collector(
    host: str, port: int, landing_dir: Path, write_keys: dict[str, str], **options
) -> None:
    """Serve the collector with uvicorn until stopped (`options` go to `create_app`)."""
    import uvicorn

    if not write_keys:
        raise ValueError(f"no write keys: set {WRITE_KEYS_ENV}, e.g. web:KEY1,app:KEY2")
    app = create_app(landing_dir, write_keys, **options)
    # The first check imports what the landing rules need: before the first client waits.
    read_channel(SOURCES["web"], _NO_LANDING_FILES, api_pages=[("warm-up", ["{}"])])
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # at thousands of requests/s a log line each costs more than the work
    )


def remove_temp_files(landing_dir: Path) -> int:
    """Delete the collector's temporary files in every source's folder; return how many."""
    removed = 0
    for channel in SOURCES.values():
        for path in (Path(landing_dir) / channel.folder).glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _write_key(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-write-key", "").strip() or None


def _content_is_gzip(request: Request) -> bool:
    """Check Content-Type (JSON, or none) and Content-Encoding (gzip or identity)."""
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media_type = content_type.partition(";")[0].strip()
        if not _JSON_TYPE.fullmatch(media_type):
            raise RequestError(
                415, f"Content-Type {media_type!r} is not JSON (send application/json)"
            )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("gzip", "x-gzip", "identity", ""):
        raise RequestError(415, f"Content-Encoding {encoding!r} is not gzip or identity")
    return encoding in ("gzip", "x-gzip")


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, "invalid Content-Length")
        if int(declared) > limit:
            raise RequestError(413, f"body of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as error:
        raise RequestError(400, "client disconnected before the body was complete") from error
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body (one or more members), refused (413) as soon as the JSON it
    holds exceeds `limit` bytes: a few kilobytes can inflate to gigabytes."""
    parts: list[bytes] = []
    size = 0
    rest = body
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as error:
            raise RequestError(400, f"body is not valid gzip: {error}") from error
        size += len(part)
        if size > limit:
            raise RequestError(413, f"decompressed body exceeds the limit of {limit} bytes")
        if not inflater.eof:
            raise RequestError(400, "body is not valid gzip: truncated")
        parts.append(part)
        rest = inflater.unused_data
    return b"".join(parts)


def _events(body: bytes, gzipped: bool, limit: int, max_batch: int) -> list:
    """One event, a JSON array, or {"batch": [...]} -> the list of events as sent."""
    if gzipped:
        body = _gunzip(body, limit)
    try:
        document = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:  # bad UTF-8, syntax, NaN, deep nesting
        raise RequestError(400, f"body is not valid JSON: {error}") from error
    if isinstance(document, dict) and "batch" in document:
        document = document["batch"]
        if not isinstance(document, list):
            raise RequestError(400, '"batch" must be a JSON array of events')
    events = document if isinstance(document, list) else [document]
    if not events:
        raise RequestError(400, "no events in the body")
    if len(events) > max_batch:
        raise RequestError(413, f"batch of {len(events)} events exceeds the limit of {max_batch}")
    return events


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check(channel: Channel, events: list) -> tuple[list[tuple[int, str]], dict[int, list], int]:
    """Before the landing rules: drop repeated event keys (first occurrence wins), refuse
    non-objects and mistyped fields; return (index, JSONL line) of each candidate, the
    problems by index, and how many repeats were dropped."""
    problems: dict[int, list[dict]] = {}
    candidates: list[tuple[int, str]] = []
    seen: set[tuple] = set()
    duplicates = 0
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            problems[index] = [{"field": None, "reason": "event is not a JSON object"}]
            continue
        key = tuple(event.get(name) for name in channel.natural_key)
        if all(isinstance(value, str) for value in key):
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
        # Most events hold only strings: they skip the field-by-field look.
        wrong = not all(type(value) is str for value in event.values()) and [
            {"field": name, "reason": f"must be a string or null, not {_json_type(value)}"}
            for name, value in event.items()
            if channel.fields.get(name) == TEXT and not _text_value(name, value)
        ]
        if wrong:
            problems[index] = wrong
            continue
        candidates.append((index, _LINE.encode(event)))
    return candidates, problems, duplicates


def _text_value(name: str, value: object) -> bool:
    if value is None or isinstance(value, str):
        return True
    return name in _EPOCH_FIELDS and isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array"}.get(type(value), type(value).__name__)


def _event_id(event: object) -> object:
    return event.get("event_id") if isinstance(event, dict) else None


def _reasons(reason: str) -> list[dict]:
    """Split a landing reason ("missing required field x; y: control characters") into
    field + reason pairs."""
    errors = []
    for part in reason.split("; "):
        match = _REASON.match(part)
        name = match and (match["missing"] or match["field"].strip())
        errors.append({"field": name if name else None, "reason": part})
    return errors


def _write_batch(landing_dir: Path, channel: Channel, lines: list[str], batch_id: str) -> str:
    """Write the lines as a new landing file, atomically and durably; return its name."""
    folder = landing_dir / channel.folder
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{FILE_PREFIX}{stamp}_{batch_id}.{channel.file_format}"
    temp = folder / f"{TEMP_PREFIX}{stamp}_{batch_id}{TEMP_SUFFIX}"
    data = ("\n".join(lines) + "\n").encode("utf-8")
    try:
        with open(temp, "xb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as packed:
                packed.write(data)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, folder / name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return f"{channel.folder}/{name}"
