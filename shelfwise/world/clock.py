"""When in the day things happen: store opening hours and intraday shapes per channel."""

from __future__ import annotations

import numpy as np

from shelfwise.world.arrays import FloatArray, IntArray

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND

# Hourly weights: stores open 9-21 with lunch and after-work peaks; online round the clock, busiest evenings.
_STORE_HOURS = np.array([0] * 9 + [3, 5, 7, 9, 8, 7, 7, 8, 10, 10, 8, 5] + [0] * 3, dtype=np.float64)
_ONLINE_HOURS = np.array([2, 1, 1, 0.5, 0.5, 0.5, 1, 2, 3, 4, 4, 4, 5, 5, 4, 4, 4, 5, 6, 8, 10, 10, 7, 4],
                         dtype=np.float64)  # fmt: skip


def _hours(channel: int) -> FloatArray:
    weights = _STORE_HOURS if channel == 0 else _ONLINE_HOURS
    result: FloatArray = weights / weights.sum()
    return result


def seconds_of_day(channel: IntArray, rng: np.random.Generator, latest: int = 86_399) -> IntArray:
    """A random time of day (seconds) for each event of the given channels, no later than `latest`."""
    hour = np.empty(len(channel), dtype=np.int64)
    for ch in (0, 1):
        mask = channel == ch
        hour[mask] = rng.choice(24, size=int(mask.sum()), p=_hours(ch))
    seconds = hour * 3600 + rng.integers(0, 3600, size=len(channel))
    result: IntArray = np.minimum(seconds, latest)
    return result
