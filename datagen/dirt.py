"""The realistic dirt the platform must survive, planted at stated rates and counted exactly.

Every function here returns what it did, so the manifest can state the exact counts that
ingestion's quarantine and dbt's deduplication are checked against.
"""

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datagen.strings import concat
from datagen.timestamps import DAY_MS

RATES = {
    "resent_duplicate_events": 0.01,  # of event records: sent again (same id and content)
    "malformed_lines": 0.001,  # of lines per events file: truncated JSON, garbage, empty
    "event_time_year_2099": 0.0005,  # of event records
    "missing_category": 0.02,  # of product events: category sent as null
    "negative_quantity": 0.003,  # of order lines
    "non_positive_price": 0.003,  # of order lines
    "impossible_birth_year": 0.005,  # of CRM rows: 1850 or 2090
}
MALFORMED_KINDS = ("truncated_json", "binary_garbage", "empty_line")
MALFORMED_KIND_SHARES = (0.5, 0.25, 0.25)
DUPLICATE_DELAY_MEAN_MS = 12 * 3_600_000  # a re-send comes minutes to days later
IMPOSSIBLE_YEAR = 2099
# Bytes that can never occur in UTF-8 text and are not line breaks in any decoder.
_GARBAGE_BYTES = np.array([0xC0, 0xC1, *range(0xF5, 0x100)], dtype=np.uint8)


def impossible_year_shift_ms(start: date) -> int:
    """Added to a time of the period, puts it in IMPOSSIBLE_YEAR (a device clock gone wrong)."""
    return (date(IMPOSSIBLE_YEAR, start.month, 1) - date(start.year, start.month, 1)).days * DAY_MS


def exact_count(n: int, rate: float) -> int:
    """Rows to spoil: the rate rounded, but at least one when there is anything to spoil."""
    return min(n, max(1, round(n * rate))) if n else 0


def pick(rng: np.random.Generator, candidates: np.ndarray, rate: float) -> np.ndarray:
    """Sorted row indices: exactly exact_count(len(candidates), rate) of the candidates."""
    chosen = rng.choice(len(candidates), size=exact_count(len(candidates), rate), replace=False)
    return np.sort(np.asarray(candidates)[chosen])


def as_typed_emails(canonical: pa.Array, rng: np.random.Generator) -> pa.Array:
    """E-mails as persons type them: mostly fine, some capitalised, shouted or with stray spaces."""
    variant = rng.choice(6, size=len(canonical), p=[0.55, 0.15, 0.05, 0.1, 0.1, 0.05])
    title = pc.utf8_title(canonical)
    return pc.choose(
        pa.array(variant),
        canonical,
        title,
        pc.utf8_upper(canonical),
        concat(" ", canonical),
        concat(canonical, "  "),
        concat(" ", title, " "),
    )


def spelled_flags(
    flags: np.ndarray, rng: np.random.Generator, unknown_share: float = 0.03
) -> pa.Array:
    """Consent booleans the way different CRM forms stored them: true/yes/1, false/no/0 or empty."""
    spelling = rng.integers(0, 3, len(flags))
    code = np.where(flags, spelling, 3 + spelling)
    code[rng.random(len(flags)) < unknown_share] = 6
    return pc.choose(
        pa.array(code), *[pa.scalar(text) for text in ("true", "yes", "1", "false", "no", "0", "")]
    )


@dataclass(frozen=True)
class MalformedLines:
    """Lines that are not valid JSON, and where they go in their file."""

    lines: list[bytes]
    kinds: list[str]
    before_line: np.ndarray  # each goes right before this index of its file's valid lines


def malformed_lines(file_lines: pa.Array, rng: np.random.Generator) -> MalformedLines:
    """About RATES['malformed_lines'] of a file, at least one of each kind, never as the last line.

    A file whose last line were empty would lose it to `text.rstrip()`-style readers.
    """
    if len(file_lines) == 0:
        return MalformedLines(lines=[], kinds=[], before_line=np.zeros(0, dtype=np.int64))
    n_bad = max(len(MALFORMED_KINDS), exact_count(len(file_lines), RATES["malformed_lines"]))
    kinds = [MALFORMED_KINDS[k] for k in range(len(MALFORMED_KINDS))]
    kinds += [
        MALFORMED_KINDS[k] for k in rng.choice(3, n_bad - len(kinds), p=MALFORMED_KIND_SHARES)
    ]
    lines = []
    for kind in kinds:  # a handful per file: a Python loop is fine here
        if kind == "truncated_json":
            source = file_lines[int(rng.integers(len(file_lines)))].as_py().rstrip("\n").encode()
            lines.append(source[: int(rng.integers(1, len(source) - 1))] + b"\n")
        elif kind == "binary_garbage":
            garbage = rng.choice(_GARBAGE_BYTES, size=int(rng.integers(8, 80)))
            lines.append(garbage.tobytes() + b"\n")
        else:
            lines.append(b"\n")
    return MalformedLines(
        lines=lines, kinds=kinds, before_line=rng.integers(0, len(file_lines), n_bad)
    )
