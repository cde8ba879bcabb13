"""Shared measurement for the benchmarks: run a command in a child process and take its wall
time and the peak resident memory of its whole process tree.

Peak RSS is polled from /proc (every POLL_SECONDS): the largest sum of VmRSS over the child
and every process it started (a `dmp run` starts dbt, and dbt runs in its own process), and,
to catch a spike between two polls, at least the largest VmHWM any one of them reached. Not
rusage: Linux carries a parent's maximum RSS over fork + exec, and RUSAGE_CHILDREN only
reports the largest single process.
"""

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.1
_TAIL_CHARS = 3000


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float
    load_1m_before: float
    load_1m_after: float


def run_measured(
    command: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run `command` with its output in `log`; raise with the end of the log if it fails."""
    load_before = load_1m()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out)
        tree_peak_kib, single_peak_kib = 0, 0
        while process.poll() is None:
            tree = _tree(process.pid)
            rss = {pid: _status_kib(pid, "VmRSS") for pid in tree}
            tree_peak_kib = max(tree_peak_kib, sum(rss.values()))
            single_peak_kib = max(single_peak_kib, *(_status_kib(pid, "VmHWM") for pid in tree), 0)
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
    if process.returncode != 0:
        tail = log.read_text(errors="replace")[-_TAIL_CHARS:]
        raise RuntimeError(
            f"{' '.join(command)} exited {process.returncode}; end of {log}:\n{tail}"
        )
    return Measured(
        seconds=round(seconds, 2),
        peak_rss_mb=round(max(tree_peak_kib, single_peak_kib) / 1024, 1),
        load_1m_before=load_before,
        load_1m_after=load_1m(),
    )


def load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def _tree(pid: int) -> list[int]:
    """The process and all its descendants (those alive now)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue  # gone meanwhile
    return found


def _status_kib(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status in KiB (0 once the process has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
