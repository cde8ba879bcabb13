"""Vectorised construction of string columns (ids, padded numbers, JSON lines) with Arrow.

Nothing here loops over rows in Python: fixed-width strings are laid out as byte matrices
with numpy, variable ones are joined with Arrow compute kernels.
"""

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_HEX_PAIRS = np.frombuffer(
    "".join(f"{byte:02x}" for byte in range(256)).encode("ascii"), dtype=np.uint8
).reshape(256, 2)
_SMALL_NUMBERS = {
    width: np.frombuffer(
        "".join(f"{n:0{width}d}" for n in range(10**width)).encode("ascii"), dtype=np.uint8
    ).reshape(-1, width)
    for width in (1, 2, 3, 4)
}
# Big string outputs (joins grow theirs by reallocation, takes of long lines) run 3-4x slower
# with Arrow's default allocators, which fault in fresh pages for every large buffer.
POOL = pa.system_memory_pool()
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def from_char_matrix(chars: np.ndarray) -> pa.Array:
    """Strings from an (n, width) matrix of ASCII codes, one row per string."""
    n_rows, width = chars.shape
    offsets = np.arange(n_rows + 1, dtype=np.int32) * np.int32(width)
    data = np.ascontiguousarray(chars, dtype=np.uint8)
    return pa.Array.from_buffers(
        pa.string(), n_rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def ascii_matrix(text: str, n_rows: int) -> np.ndarray:
    """`text` repeated in n_rows rows, as a byte matrix to be combined with other pieces."""
    return np.broadcast_to(np.frombuffer(text.encode("ascii"), dtype=np.uint8), (n_rows, len(text)))


def digit_matrix(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers, `width` columns."""
    if width in _SMALL_NUMBERS:
        return _SMALL_NUMBERS[width][np.asarray(values, dtype=np.intp)]
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((np.asarray(values, dtype=np.int64)[:, None] // powers) % 10 + 48).astype(np.uint8)


def scramble(values: np.ndarray, key: int) -> np.ndarray:
    """A bijection on uint64 (splitmix64 finaliser): distinct inputs give distinct random-looking ids."""
    mixed = np.asarray(values, dtype=np.uint64) + np.uint64(key & 0xFFFFFFFFFFFFFFFF)
    mixed = (mixed ^ (mixed >> np.uint64(30))) * _MIX_1
    mixed = (mixed ^ (mixed >> np.uint64(27))) * _MIX_2
    return mixed ^ (mixed >> np.uint64(31))


def hex_ids(prefix: str, serials: np.ndarray, key: int) -> pa.Array:
    """Unique opaque ids `prefix` + 16 hex digits, one per distinct serial number."""
    big_endian_bytes = scramble(serials, key).astype(">u8").view(np.uint8).reshape(-1, 8)
    hex_digits = _HEX_PAIRS[big_endian_bytes].reshape(-1, 16)
    return from_char_matrix(np.hstack([ascii_matrix(prefix, len(hex_digits)), hex_digits]))


def numbered_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Sequential business ids such as C0001234."""
    return from_char_matrix(
        np.hstack([ascii_matrix(prefix, len(numbers)), digit_matrix(numbers, width)])
    )


def take(values: pa.Array, rows: np.ndarray) -> pa.Array:
    """values[rows]; a negative row gives null."""
    rows = np.asarray(rows, dtype=np.int64)
    return pc.take(values, pa.array(rows, mask=rows < 0), memory_pool=POOL)


def lookup(values: Sequence[str | None], codes: np.ndarray) -> pa.Array:
    """values[code] per row; code -1 gives null."""
    return take(pa.array(list(values), pa.string()), codes)


def with_nulls(values: pa.Array, null_mask: np.ndarray) -> pa.Array:
    """`values` with the rows of `null_mask` set to null."""
    return pc.if_else(pa.array(null_mask), pa.scalar(None, values.type), values)


def concat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation; a null part makes the row null."""
    return pc.binary_join_element_wise(*parts, "", memory_pool=POOL)


def json_string(values: pa.Array) -> pa.Array:
    """JSON literal of a string column (values never need escaping: the generator writes them)."""
    return concat('"', values, '"')


def json_lines(fields: Sequence[tuple[str, pa.Array]]) -> pa.Array:
    """One JSON object per row, newline-terminated, from (key, JSON literal) pairs.

    A null literal leaves the key out, as trackers do for unset properties; an explicit JSON
    null is written by passing the literal text "null".
    """
    # 64-bit offsets: a channel's lines pass 2 GB beyond ~5M events (10M-event scenarios).
    members = [concat(f'"{key}":', literal).cast(pa.large_string()) for key, literal in fields]
    body = pc.binary_join_element_wise(
        *members, _large(","), null_handling="skip", memory_pool=POOL
    )
    return pc.binary_join_element_wise(
        _large("{"), body, _large("}\n"), _large(""), memory_pool=POOL
    )


def _large(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())
