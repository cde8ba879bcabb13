"""Published snapshots: what serving reads, so a read never waits for a run and a run never
waits for a read.

DuckDB admits one writing process, and a writer cannot open the file while anyone else holds
it, even read-only. So serving never opens the warehouse: at the end of a successful run the
serving tables (profiles.py) are written to a new DuckDB file of their own,
`<serving>/snapshot-<time>-<label>.duckdb`, and the pointer `<serving>/current.json` is
replaced atomically (`os.replace`) to name it. Readers open the file the pointer names,
read-only, and reopen when the pointer changes. A failed run publishes nothing: the last good
snapshot keeps serving. An erasure writes a copy of the current snapshot without the person and
points at it, and deletes every older snapshot, at once. The last two snapshots are kept.
"""

import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from serving.profiles import build_serving_tables, remove_persons

POINTER = "current.json"
KEEP = 2


@dataclass(frozen=True)
class Manifest:
    snapshot: str  # file name under the serving folder
    published_at: datetime
    label: str  # the run (or erasure) that published it
    persons: int

    def age_seconds(self) -> float:
        return (datetime.now(UTC) - self.published_at).total_seconds()


class NoSnapshot(RuntimeError):
    """No run has published profiles yet."""

    def __init__(self, serving_dir: Path):
        super().__init__(
            f"no run has published profiles yet (no {serving_dir / POINTER}): run `dmp run` first"
        )


def publish(database: Path, serving_dir: Path, label: str) -> Manifest:
    """Copy the serving tables out of the warehouse into a new snapshot and point at it. The
    caller holds the warehouse (a run, under its lock)."""
    serving_dir.mkdir(parents=True, exist_ok=True)
    for partial in serving_dir.glob("*.partial"):
        partial.unlink()  # a publisher that died half-way; only one publishes at a time
    name, partial = _new_name(serving_dir, label)
    with duckdb.connect(str(partial)) as con:
        con.execute("set enable_progress_bar = false")  # a run's output is one line a step
        con.execute(f"attach '{_quoted(database)}' as warehouse (read_only)")
        persons = build_serving_tables(con, "warehouse")
        con.execute("detach warehouse")
    return _install(serving_dir, name, partial, label, persons, keep=KEEP)


def erase(serving_dir: Path, person_ids: list[str], label: str) -> Manifest | None:
    """Publish the current snapshot without these persons and delete every other snapshot
    (the previous one still holds them). None when nothing was published yet."""
    manifest = current(serving_dir)
    if manifest is None:
        return None
    name, partial = _new_name(serving_dir, label)
    shutil.copyfile(serving_dir / manifest.snapshot, partial)
    with duckdb.connect(str(partial)) as con:
        remove_persons(con, person_ids)
        persons = con.execute("select count(*) from serving.profiles").fetchone()[0]
    return _install(serving_dir, name, partial, label, persons, keep=1)


def current(serving_dir: Path) -> Manifest | None:
    """The published snapshot the pointer names, or None."""
    try:
        data = json.loads((serving_dir / POINTER).read_text())
    except FileNotFoundError:
        return None
    return Manifest(
        snapshot=data["snapshot"],
        published_at=datetime.fromisoformat(data["published_at"]),
        label=data["label"],
        persons=data["persons"],
    )


@contextmanager
def opened(serving_dir: Path) -> Iterator[tuple[Manifest, duckdb.DuckDBPyConnection]]:
    """The current snapshot, read-only, for one caller (`dmp profile`)."""
    manifest = current(serving_dir)
    if manifest is None:
        raise NoSnapshot(serving_dir)
    with duckdb.connect(str(serving_dir / manifest.snapshot), read_only=True) as con:
        yield manifest, con


def _new_name(serving_dir: Path, label: str) -> tuple[str, Path]:
    name = f"snapshot-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{label}.duckdb"
    return name, serving_dir / f"{name}.partial"


def _install(
    serving_dir: Path, name: str, partial: Path, label: str, persons: int, keep: int
) -> Manifest:
    """Rename the finished file into place, then replace the pointer: a reader sees the old
    snapshot or the new one, never half of one. Then delete all but the newest `keep`."""
    os.replace(partial, serving_dir / name)
    manifest = Manifest(name, datetime.now(UTC), label, persons)
    pointer = serving_dir / f"{POINTER}.partial"
    pointer.write_text(
        json.dumps(
            {
                "snapshot": name,
                "published_at": manifest.published_at.isoformat(),
                "label": label,
                "persons": persons,
            }
        )
    )
    os.replace(pointer, serving_dir / POINTER)
    for old in sorted(serving_dir.glob("snapshot-*.duckdb"), reverse=True)[keep:]:
        old.unlink()  # a reader that still has it open reads on until it sees the pointer
    return manifest


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


class SnapshotReader:
    """Read connections to the current snapshot, one per thread, reopened when the pointer
    changes (checked on every call: one stat)."""

    def __init__(self, serving_dir: Path):
        self.serving_dir = Path(serving_dir)
        self._lock = threading.Lock()
        self._opened: tuple[tuple[int, int], Manifest, duckdb.DuckDBPyConnection] | None = None
        self._local = threading.local()

    def cursor(self) -> tuple[Manifest, duckdb.DuckDBPyConnection]:
        """The current manifest and this thread's connection to its snapshot; NoSnapshot
        when nothing was published yet."""
        opened = self._current()
        local = getattr(self._local, "cursor", None)
        if local is None or local[0] is not opened[2]:
            local = (opened[2], opened[2].cursor())
            self._local.cursor = local
        return opened[1], local[1]

    def _current(self) -> tuple[tuple[int, int], Manifest, duckdb.DuckDBPyConnection]:
        try:
            stat = (self.serving_dir / POINTER).stat()
        except FileNotFoundError:
            raise NoSnapshot(self.serving_dir) from None
        version = (stat.st_ino, stat.st_mtime_ns)
        opened = self._opened
        if opened is not None and opened[0] == version:
            return opened
        with self._lock:
            if self._opened is None or self._opened[0] != version:
                manifest = current(self.serving_dir)
                con = duckdb.connect(str(self.serving_dir / manifest.snapshot), read_only=True)
                # Threads still reading the old snapshot keep their cursor until their next
                # call; the old connection closes when the last one lets go of it.
                self._opened = (version, manifest, con)
            return self._opened
