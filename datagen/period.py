"""The generated time span and the rhythm of activity in it (weekly seasonality, trend, time of day)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from datagen.timestamps import DAY_MS

WEEKEND_FACTOR = 1.45  # Saturdays and Sundays are clearly busier
TREND_GROWTH = 0.35  # the last day is this much busier than the first
# Share of activity per UTC hour: quiet nights, lunch bump, evening peak.
HOURLY_SHARES = np.array(
    [
        0.6,
        0.35,
        0.2,
        0.15,
        0.15,
        0.25,
        0.6,
        1.2,
        1.8,
        2.2,
        2.5,
        2.8,
        3.2,
        3.0,
        2.8,
        2.8,
        3.0,
        3.6,
        4.4,
        5.0,
        5.2,
        4.6,
        3.2,
        1.6,
    ]
)
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Period:
    """`days` whole UTC days starting at midnight of `start`."""

    start: date
    days: int

    @property
    def start_ms(self) -> int:
        return (
            int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp())
            * 1000
        )

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * DAY_MS

    def weekday(self) -> np.ndarray:
        """Monday=0 .. Sunday=6 for each day of the period."""
        return (self.start.weekday() + np.arange(self.days)) % 7

    def day_weights(self) -> np.ndarray:
        """Relative activity per day, mean 1."""
        trend = 1.0 + TREND_GROWTH * np.arange(self.days) / max(self.days - 1, 1)
        weights = trend * np.where(self.weekday() >= 5, WEEKEND_FACTOR, 1.0)
        return weights / weights.mean()

    def draw_days(
        self, rng: np.random.Generator, n: int, first: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Day indices in [first, stop) following the period's rhythm."""
        weights = self.day_weights()[first:stop]
        return first + rng.choice(len(weights), size=n, p=weights / weights.sum())

    def draw_times(self, rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
        """Epoch ms on the given days, at busy hours more often than at night."""
        hours = rng.choice(24, size=len(days), p=HOURLY_SHARES / HOURLY_SHARES.sum())
        return self.start_ms + days * DAY_MS + hours * HOUR_MS + rng.integers(0, HOUR_MS, len(days))
