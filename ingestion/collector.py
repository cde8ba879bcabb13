"""HTTP event collector: web and app clients POST events, which land as gz JSONL batch files.

    POST /v1/web   POST /v1/app   GET /health

A body is one event (a JSON object), a JSON array of events, or `{"batch": [...]}`.
Authentication is a write key, `Authorization: Bearer <key>` or `X-Write-Key: <key>`; each
key is bound to one source (`web` or `app`).

Partial acceptance: events are independent facts, so the good events of a batch are stored
and the bad ones are named in the answer (`rejected`: index in the batch, event_id, and each
field with its reason); a client resends only those, after fixing them. Resending a whole
batch is harmless too: events merge on `event_id`, first arrival stays. The answer is 200
when at least one event was stored, 400 when none was (nothing is written).

An event is accepted only if ingestion would load it without a quarantine row: declared
fields are strings or null (`event_time` may also be epoch milliseconds as an integer), and
then the landing rules themselves (`ingestion.landing.read_channel`: required fields,
oversized fields, control characters, implausible `event_time`) run on the exact lines
that will be written.

Durability: the accepted events of one request become one new file,
`<channel folder>/collector_<UTC time>_<uuid>.jsonl.gz`, written under a hidden temporary
name that the ingestion's `*.jsonl.gz` pattern never matches, fsynced, renamed into place
and its folder fsynced, all before the 2xx answer. A 2xx therefore means the events are
in the landing zone; any other answer means they may not be, and the client retries.
"""

import gzip
import hmac
import json
import math
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

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
    ("web" or "app"); the rate limit counts requests per write key."""
    unknown = sorted(set(write_keys.values()) - set(SOURCES))
    if unknown:
        raise ValueError(f"write keys bound to unknown sources: {', '.join(unknown)}")
    landing_dir = Path(landing_dir)
    bucket = TokenBucket(rate=rate_per_second, burst=burst)

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
        source = request.url.path.rsplit("/", 1)[-1]
        channel = SOURCES[source]
        try:
            rate_limit(authenticate(request, source))
            body = await _body(request, max_body_bytes)
            events = await run_in_threadpool(_events, body, max_batch)
        except RequestError as error:
            return JSONResponse(
                {"error": error.reason}, status_code=error.status, headers=error.headers
            )
        lines, rejected = await run_in_threadpool(_check, channel, events)
        answer: dict = {"accepted": len(lines), "rejected": rejected}
        if not lines:
            return JSONResponse(answer, status_code=400)
        batch_id = uuid.uuid4().hex
        try:
            name = await run_in_threadpool(_write_batch, landing_dir, channel, lines, batch_id)
        except OSError as error:
            return JSONResponse(
                {"error": f"events not stored, retry: {type(error).__name__}"}, status_code=503
            )
        return JSONResponse({**answer, "batch_id": batch_id, "file": name})

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
    uvicorn.run(create_app(landing_dir, write_keys, **options), host=host, port=port)


def _write_key(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-write-key", "").strip() or None


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


def _events(body: bytes, max_batch: int) -> list:
    """One event, a JSON array, or {"batch": [...]} -> the list of events as sent."""
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


def _check(channel: Channel, events: list) -> tuple[list[str], list[dict]]:
    """Split events into the JSONL lines to store and the rejected events with reasons."""
    problems: dict[int, list[dict]] = {}
    candidates: list[tuple[int, str]] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            problems[index] = [{"field": None, "reason": "event is not a JSON object"}]
            continue
        wrong = [
            {"field": name, "reason": f"must be a string or null, not {_json_type(value)}"}
            for name, value in event.items()
            if channel.fields.get(name) == TEXT and not _text_value(name, value)
        ]
        if wrong:
            problems[index] = wrong
            continue
        line = json.dumps(event, separators=(",", ":"))
        candidates.append((index, line))
    if candidates:
        # The landing rules, on the exact lines to be written (line_number is 1-based).
        checked = read_channel(
            channel, _NO_LANDING_FILES, api_pages=[("collector", [line for _, line in candidates])]
        ).quarantine
        for line_number, reason in zip(
            checked["line_number"].to_pylist(), checked["reason"].to_pylist()
        ):
            problems[candidates[line_number - 1][0]] = _reasons(reason)
    lines = [line for index, line in candidates if index not in problems]
    rejected = [
        {"index": index, "event_id": _event_id(events[index]), "errors": errors}
        for index, errors in sorted(problems.items())
    ]
    return lines, rejected


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
