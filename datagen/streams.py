"""Independent random streams, one per concern, all derived from the user's seed.

Each part of the generator draws from its own stream, so changing how one channel is
generated never shifts the random numbers (and so the data) of another.
"""

import zlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
    """A generator for `name` that depends only on `seed` and `name` (crc32 is stable, hash() is not)."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),))
    )


def sample_rows(cumulative: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one column index per entry of `rows` from the row's cumulative distribution.

    Offsetting row k's cumulative weights by k makes one sorted vector of all rows, so a single
    searchsorted draws every sample at once.
    """
    n_rows, width = cumulative.shape
    flat = (cumulative + np.arange(n_rows)[:, None]).ravel()
    draws = np.searchsorted(flat, rows + rng.random(len(rows)), side="right")
    return np.minimum(draws - rows * width, width - 1)


def cumulative_weights(weights: np.ndarray) -> np.ndarray:
    """Row-normalised cumulative weights whose last column is exactly 1 (safe for sample_rows)."""
    totals = weights.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(weights / np.where(totals > 0, totals, 1.0), axis=1)
    cumulative[:, -1] = 1.0
    return cumulative
