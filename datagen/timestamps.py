"""Timestamps written in the formats senders really use (docs/landing.md).

Each source system or client version has its own habit; the generator picks a format per
sender and renders all rows of a format at once as fixed-width byte matrices.
"""

import numpy as np
import pyarrow as pa

from datagen.strings import ascii_matrix, digit_matrix, from_char_matrix, take

ISO_UTC, ISO_UTC_MS, ISO_OFFSET, NAIVE_UTC, EPOCH_MS, EPOCH_MS_STRING = range(6)
DAY_MS = 86_400_000


def _civil_parts(epoch_ms: np.ndarray) -> dict[str, np.ndarray]:
    days = np.floor_divide(epoch_ms, DAY_MS)
    ms_of_day = epoch_ms - days * DAY_MS
    day = days.astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    return {
        "year": day.astype("datetime64[Y]").astype(np.int64) + 1970,
        "month": month.astype(np.int64) % 12 + 1,
        "day": (day - month).astype(np.int64) + 1,
        "hour": ms_of_day // 3_600_000,
        "minute": ms_of_day // 60_000 % 60,
        "second": ms_of_day // 1000 % 60,
        "milli": ms_of_day % 1000,
    }


def _date_time(parts: dict[str, np.ndarray], separator: str) -> list[np.ndarray]:
    n_rows = len(parts["year"])
    return [
        digit_matrix(parts["year"], 4),
        ascii_matrix("-", n_rows),
        digit_matrix(parts["month"], 2),
        ascii_matrix("-", n_rows),
        digit_matrix(parts["day"], 2),
        ascii_matrix(separator, n_rows),
        digit_matrix(parts["hour"], 2),
        ascii_matrix(":", n_rows),
        digit_matrix(parts["minute"], 2),
        ascii_matrix(":", n_rows),
        digit_matrix(parts["second"], 2),
    ]


def _offset_suffix(offset_minutes: np.ndarray) -> list[np.ndarray]:
    n_rows = len(offset_minutes)
    sign = np.where(offset_minutes < 0, ord("-"), ord("+")).astype(np.uint8)[:, None]
    size = np.abs(offset_minutes)
    return [
        sign,
        digit_matrix(size // 60, 2),
        ascii_matrix(":", n_rows),
        digit_matrix(size % 60, 2),
    ]


def _render(
    epoch_ms: np.ndarray, offset_minutes: np.ndarray, code: int, quoted: bool
) -> np.ndarray:
    n_rows = len(epoch_ms)
    if code in (EPOCH_MS, EPOCH_MS_STRING):
        if ((epoch_ms < 10**12) | (epoch_ms >= 10**13)).any():
            raise ValueError("epoch milliseconds outside 2001..2286 do not have 13 digits")
        pieces = [digit_matrix(epoch_ms, 13)]
    elif code == ISO_OFFSET:
        local = _civil_parts(epoch_ms + offset_minutes.astype(np.int64) * 60_000)
        pieces = [*_date_time(local, "T"), *_offset_suffix(offset_minutes)]
    else:
        parts = _civil_parts(epoch_ms)
        pieces = _date_time(parts, " " if code == NAIVE_UTC else "T")
        if code == ISO_UTC_MS:
            pieces += [ascii_matrix(".", n_rows), digit_matrix(parts["milli"], 3)]
        if code in (ISO_UTC, ISO_UTC_MS):
            pieces.append(ascii_matrix("Z", n_rows))
    if quoted and code != EPOCH_MS:
        pieces = [ascii_matrix('"', n_rows), *pieces, ascii_matrix('"', n_rows)]
    return np.hstack(pieces)


def format_times(
    epoch_ms: np.ndarray,
    codes: np.ndarray,
    offset_minutes: np.ndarray | None = None,
    quoted: bool = False,
) -> pa.Array:
    """Render UTC epoch milliseconds in each row's format.

    `offset_minutes` is the sender's UTC offset (used by ISO_OFFSET only). With `quoted`,
    the result is a JSON literal: strings in quotes, EPOCH_MS as a bare number.
    """
    epoch_ms = np.asarray(epoch_ms, dtype=np.int64)
    codes = np.asarray(codes)
    if offset_minutes is None:
        offset_minutes = np.zeros(len(epoch_ms), dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    pieces = []
    for code in np.unique(sorted_codes):
        rows = order[
            np.searchsorted(sorted_codes, code) : np.searchsorted(sorted_codes, code, side="right")
        ]
        pieces.append(
            from_char_matrix(_render(epoch_ms[rows], offset_minutes[rows], int(code), quoted))
        )
    if not pieces:
        return pa.array([], pa.string())
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return take(pa.concat_arrays(pieces), inverse)
