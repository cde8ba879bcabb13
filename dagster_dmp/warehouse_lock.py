"""One writer at a time: a run takes the warehouse's lock for its whole length.

DuckDB admits one writing process; two runs at once failed half-way (a file lock error from
DuckDB, dlt's shared work folder). The lock is an advisory `flock` on `<warehouse>.lock`
beside the DuckDB file, so the kernel releases it when the holder dies (kill -9 included)
and nothing stale is ever left to clean up. The file also says who holds the lock (process,
what it runs, since when), for the run that has to wait. Readers and the collector never
take it.

The lock is re-entrant within a process: `dmp run` takes it before the run starts, and the
run's warehouse resource (which takes it for runs the UI or the daemon launch) finds it held.
"""

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

# sysexits.h EX_TEMPFAIL: try again later
EXIT_BUSY = 75
_POLL_SECONDS = 0.5


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse and the caller would not wait."""


def lock_path(database: Path) -> Path:
    database = Path(database)
    return database.with_name(database.name + ".lock")


_held: dict[Path, tuple[int, int]] = {}  # lock file -> (file descriptor, depth)
_guard = threading.Lock()


@contextmanager
def warehouse_lock(
    database: Path,
    holder: str,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the warehouse's lock. `holder` says what this process runs (shown to others).
    When another process holds it: wait (calling `on_wait` once with who holds it), or
    raise WarehouseBusy at once when `wait` is false."""
    acquire(database, holder, wait=wait, on_wait=on_wait)
    try:
        yield
    finally:
        release(database)


def acquire(
    database: Path,
    holder: str,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> None:
    path = lock_path(Path(database).resolve())
    with _guard:
        if path in _held:
            descriptor, depth = _held[path]
            _held[path] = (descriptor, depth + 1)
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    waited_since = None
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise WarehouseBusy(
                        f"the warehouse {database} is in use by {holder_of(path)}; "
                        "not waiting (--no-wait)"
                    ) from None
                if waited_since is None:
                    waited_since = time.monotonic()
                    if on_wait:
                        on_wait(
                            f"waiting for the warehouse {database}: in use by {holder_of(path)}"
                        )
                time.sleep(_POLL_SECONDS)
    except BaseException:
        os.close(descriptor)
        raise
    info = {
        "pid": os.getpid(),
        "holder": holder,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(info).encode(), 0)
    with _guard:
        _held[path] = (descriptor, 1)
    if waited_since is not None and on_wait:
        on_wait(f"warehouse free after {time.monotonic() - waited_since:.0f}s; going on")


def release(database: Path) -> None:
    path = lock_path(Path(database).resolve())
    with _guard:
        descriptor, depth = _held[path]
        if depth > 1:
            _held[path] = (descriptor, depth - 1)
            return
        del _held[path]
    os.ftruncate(descriptor, 0)
    fcntl.flock(descriptor, fcntl.LOCK_UN)
    os.close(descriptor)


def holder_of(path: Path) -> str:
    """Who holds the lock, as its holder wrote it: "dmp run (pid 123, since 17:40:03 UTC)"."""
    try:
        info = json.loads(Path(path).read_text() or "{}")
        since = datetime.fromisoformat(info["since"])
        age = (datetime.now(UTC) - since).total_seconds()
        return f"{info['holder']} (pid {info['pid']}, since {since:%H:%M:%S} UTC, {age:.0f}s ago)"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not said which yet)"
