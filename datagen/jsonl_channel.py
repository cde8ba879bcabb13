"""Write one JSON-lines channel: weekly files, re-sent duplicates and malformed lines, all counted."""

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np

from datagen.dirt import DUPLICATE_DELAY_MEAN_MS, MALFORMED_KINDS, RATES, malformed_lines, pick
from datagen.events import Records
from datagen.period import Period
from datagen.strings import take
from datagen.timestamps import DAY_MS
from datagen.writer import file_content, write_gzip

WEEK_MS = 7 * DAY_MS


def write_jsonl_channel(
    records: Records, folder: Path, prefix: str, period: Period, rng: np.random.Generator
) -> dict:
    """Split `records` into one file per week of the period and spoil them as documented in dirt.RATES.

    A re-sent duplicate repeats its line byte for byte, some time later, so it may land in the
    next week's file. Returns the channel's manifest entry (paths relative to the landing dir).
    """
    n = len(records.time_ms)
    resent = pick(rng, np.arange(n), RATES["resent_duplicate_events"])
    source = np.concatenate([np.arange(n), resent])
    arrival_ms = np.concatenate(
        [
            records.time_ms,
            records.time_ms[resent]
            + 1000
            + rng.exponential(DUPLICATE_DELAY_MEAN_MS, len(resent)).astype(np.int64),
        ]
    )
    n_files = -(-period.days // 7)
    file_index = np.clip((arrival_ms - period.start_ms) // WEEK_MS, 0, n_files - 1)
    order = np.lexsort((np.arange(len(source)), arrival_ms, file_index))
    bounds = np.searchsorted(file_index[order], np.arange(n_files + 1))
    folder.mkdir(parents=True, exist_ok=True)
    files, kinds, lines_written, writes = [], Counter(), 0, []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as compressors:
        for week in range(n_files):
            name = f"{prefix}_{period.start + timedelta(days=7 * week):%Y%m%d}.jsonl.gz"
            lines = take(records.lines, source[order[bounds[week] : bounds[week + 1]]])
            malformed = malformed_lines(lines, rng)
            writes.append(
                compressors.submit(write_gzip, folder / name, file_content(lines, malformed))
            )
            files.append(f"{folder.name}/{name}")
            kinds.update(malformed.kinds)
            lines_written += len(lines) + len(malformed.lines)
        for write in writes:
            write.result()  # re-raises a failed write
    return {
        "files": files,
        "lines_written": lines_written,
        "records_written": len(source),
        "unique_records": n,
        "duplicates_injected": len(resent),
        "malformed_lines": sum(kinds.values()),
        "malformed_lines_by_kind": {kind: kinds[kind] for kind in MALFORMED_KINDS},
    }
