"""A store x SKU's forecast as served: daily mean and quantiles, and the distribution of cumulative demand.

The batch forecast turns each series' sample paths into one record; the API reads records by key and never sees a
model. Cumulative demand over days 1..h is kept as quantiles at `CUMULATIVE_LEVELS` for every h, computed from the
paths (the quantile of a sum is not the sum of the daily quantiles). Read level by level, those quantiles are
non-decreasing in h, so `cumulative_demand` can hand them to `shelfwise.demand.inventory` as comonotone sample
paths: every decision there depends on the marginal distributions of D(L) and D(L+R) only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shelfwise.demand.inventory import CumulativeDemand

DAILY_QUANTILES: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
#: 0.01, 0.02, ..., 0.99: fine enough for a service level of 0.99 (the API refuses a finer one).
CUMULATIVE_LEVELS: tuple[float, ...] = tuple(round(0.01 * k, 2) for k in range(1, 100))
_DECIMALS = 2


def quantile_name(q: float) -> str:
    """`0.05` -> `p05`."""
    return f"p{round(q * 100):02d}"


@dataclass(frozen=True)
class ForecastRecord:
    store_id: str
    sku: str
    #: The first forecast day (the run date); day h of the horizon is as_of + h - 1.
    as_of: dt.date
    model_version: str
    cold_start: bool
    mean: tuple[float, ...]
    quantiles: dict[str, tuple[float, ...]]
    #: cumulative[k][h - 1]: the CUMULATIVE_LEVELS[k] quantile of demand over days 1..h.
    cumulative: tuple[tuple[float, ...], ...]

    @property
    def horizon_days(self) -> int:
        return len(self.mean)

    def attributes(self) -> dict[str, Any]:
        """The record's values as the online store keeps them (everything but the key and `as_of`)."""
        return {
            "model_version": self.model_version,
            "cold_start": self.cold_start,
            "mean": list(self.mean),
            "quantiles": {name: list(values) for name, values in self.quantiles.items()},
            "cumulative": pack_rows(self.cumulative),
        }

    def dates(self) -> list[dt.date]:
        return [self.as_of + dt.timedelta(days=h) for h in range(self.horizon_days)]


def pack_rows(rows: Sequence[Sequence[float]]) -> str:
    """The cumulative quantiles as one compact JSON text: 2,772 numbers as one attribute, not 2,772 (an item a
    third the size, written and read several times faster)."""
    return json.dumps([list(row) for row in rows], separators=(",", ":"))


def _rounded(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in np.round(values, _DECIMALS))


def forecast_records(
    keys: Sequence[tuple[str, str]],
    paths: np.ndarray,
    as_of: dt.date,
    model_version: str,
    cold_start: Sequence[bool],
) -> Iterator[ForecastRecord]:
    """One record per series from daily sample paths `(series, paths, horizon)` (negative samples count as 0)."""
    if paths.ndim != 3 or paths.shape[0] != len(keys) or len(cold_start) != len(keys):
        raise ValueError(f"paths {paths.shape} do not match {len(keys)} keys and {len(cold_start)} cold-start flags")
    daily = np.maximum(paths.astype(np.float64), 0.0)
    for i, (store_id, sku) in enumerate(keys):
        levels = np.quantile(daily[i], DAILY_QUANTILES, axis=0)
        cumulative = np.quantile(np.cumsum(daily[i], axis=1), CUMULATIVE_LEVELS, axis=0)
        yield ForecastRecord(
            store_id=store_id,
            sku=sku,
            as_of=as_of,
            model_version=model_version,
            cold_start=bool(cold_start[i]),
            mean=_rounded(daily[i].mean(axis=0)),
            quantiles={quantile_name(q): _rounded(row) for q, row in zip(DAILY_QUANTILES, levels, strict=True)},
            cumulative=tuple(_rounded(row) for row in np.maximum.accumulate(cumulative, axis=1)),
        )


def cumulative_demand(record: ForecastRecord) -> CumulativeDemand:
    """The record's cumulative-demand quantiles as the comonotone sample paths the inventory decisions take."""
    return CumulativeDemand(np.array(record.cumulative, dtype=np.float64))
