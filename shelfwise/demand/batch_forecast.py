"""The batch forecast's pure core: sample paths of every active store x SKU -> the records the API serves.

Sums (a region, a store, a category, a department, the total) are forecast bottom-up: the store x SKU paths,
reordered with the Schaake shuffle so that they carry the dependence history showed between series
(`shelfwise.demand.aggregation`), are added path by path. Every path of a sum is a sum of paths, so means add up
exactly at every level (the forecasts are coherent) and each sum's quantiles and cumulative distribution come from
its own paths. What the backtest chose is applied first: the series reconciled to a forecast of the total, and each
level's paths widened about their mean by its spread factor, which keeps the means coherent (`served_paths`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shelfwise.demand.aggregation import (
    reconcile_by_location,
    schaake_shuffle,
    schaake_template,
    sum_by_group,
    widen,
)
from shelfwise.demand.backtest import BOTTOM
from shelfwise.demand.cold_start import cold_start_paths
from shelfwise.demand.forecast_records import DAILY_QUANTILES, ForecastRecord, forecast_records, quantile_name
from shelfwise.demand.keys import TOTAL, AggregateLevel
from shelfwise.demand.models import HORIZON, StaticCodes, forecast_paths
from shelfwise.demand.publish import AggregateRecord
from shelfwise.demand.series import DemandPanel

#: Days of history below which a series is a cold start.
COLD_START_DAYS = 28

#: Each level of sums and the static column that names its groups (none: the total).
LEVEL_COLUMNS: dict[AggregateLevel, str | None] = {
    "region": "region",
    "store": "store_id",
    "category": "category",
    "department": "department",
    TOTAL: None,
}


@dataclass(frozen=True)
class BatchForecast:
    """Sample paths of the `HORIZON` days after the panel's end for every series on sale on its last day."""

    panel: DemandPanel
    paths: np.ndarray
    cold_start: np.ndarray


def forecast_active(
    panel: DemandPanel, forecaster: str, deepar: tuple[Any, StaticCodes] | None, n_paths: int, seed: int = 0
) -> BatchForecast:
    """Every series on sale on the last day (a SKU off sale is not forecast) with `forecaster`; a cold start (less
    than `COLD_START_DAYS` of history) with the attribute model fitted on the same history
    (`shelfwise.demand.cold_start`: its store, category, price tier and age, and what it and its SKU sold so far)."""
    active = panel.select(np.isfinite(panel.units[:, -1]))
    cold = (active.n_days - active.start_index) < COLD_START_DAYS
    paths = np.zeros((len(active.keys), n_paths, HORIZON), dtype=np.float32)
    if (~cold).any():
        paths[~cold] = forecast_paths(forecaster, active.select(~cold), deepar, n_paths, seed)
    if cold.any():
        paths[cold] = cold_start_paths(panel, active.select(cold), n_paths, seed)
    return BatchForecast(active, paths, cold)


def served_paths(batch: BatchForecast, spread: Mapping[str, float], reconcile: bool, seed: int = 0) -> np.ndarray:
    """The paths served for the series: reconciled to last year's comparable days if the model says so
    (`ModelManifest.reconcile_to_total`), then, but for cold starts, widened by the store x SKU spread factor."""
    paths = batch.paths
    if reconcile:
        n_paths, horizon = paths.shape[1:]
        template = schaake_template(batch.panel.units, n_paths, horizon, seed=seed)
        shuffled = schaake_shuffle(np.maximum(paths, 0.0), template, seed)
        paths = reconcile_by_location(batch.panel, shuffled, seed).astype(np.float32)
    factor = spread.get(BOTTOM, 1.0)
    if factor != 1.0:
        paths = paths.copy()
        warm = ~batch.cold_start
        paths[warm] = widen(paths[warm], factor)
    return paths


def series_records(
    keys: pd.DataFrame, paths: np.ndarray, as_of: dt.date, model_version: str, cold_start: np.ndarray
) -> Iterator[ForecastRecord]:
    pairs = list(zip(keys["store_id"].astype(str), keys["sku"].astype(str), strict=True))
    return forecast_records(pairs, paths, as_of, model_version, cold_start.tolist())


def aggregate_records(
    keys: pd.DataFrame,
    paths: np.ndarray,
    history: np.ndarray,
    as_of: dt.date,
    model_version: str,
    cold_start: np.ndarray,
    seed: int = 0,
    spread: Mapping[str, float] | None = None,
) -> Iterator[AggregateRecord]:
    """The forecast of every sum at every level (`LEVEL_COLUMNS`) from the series' `paths` (series, paths, days);
    `history` (series, days) is what the Schaake shuffle takes the dependence between series from; each level's
    sums are widened by its `spread` factor (`ModelManifest.spread`)."""
    n_paths, horizon = paths.shape[1:]
    template = schaake_template(history, n_paths, horizon, seed=seed)
    shuffled = schaake_shuffle(np.maximum(paths, 0.0), template, seed)
    for level, column in LEVEL_COLUMNS.items():
        if column is None:
            names, group = np.array([None], dtype=object), np.zeros(len(keys), dtype=np.int64)
        else:
            codes, uniques = pd.factorize(keys[column].astype(str), sort=True)
            names, group = np.asarray(uniques, dtype=object), codes.astype(np.int64)
        sums = widen(sum_by_group(group, shuffled), (spread or {}).get(level, 1.0))
        cold = np.zeros(len(names), dtype=bool)
        np.logical_or.at(cold, group, cold_start)
        labels = [("", "")] * len(names)
        for name, record in zip(
            names, forecast_records(labels, sums, as_of, model_version, cold.tolist()), strict=True
        ):
            yield AggregateRecord(
                level=level,
                key=name,
                as_of=as_of,
                model_version=model_version,
                cold_start=record.cold_start,
                mean=record.mean,
                quantiles=record.quantiles,
                cumulative=record.cumulative,
            )


def forecast_frame(keys: pd.DataFrame, paths: np.ndarray, first_day: dt.date, cold: np.ndarray) -> pd.DataFrame:
    """One row per series and day from `first_day`: `store_id, sku, date, mean, p05 .. p95, cold_start`."""
    n, _, horizon = paths.shape
    daily = np.maximum(paths, 0.0)
    levels = np.quantile(daily, DAILY_QUANTILES, axis=1)  # (quantile, series, day)
    return pd.DataFrame(
        {
            "store_id": np.repeat(keys["store_id"].astype(str).to_numpy(), horizon),
            "sku": np.repeat(keys["sku"].astype(str).to_numpy(), horizon),
            "date": np.tile(pd.date_range(first_day, periods=horizon, freq="D").date, n),
            "mean": daily.mean(axis=1).reshape(-1),
            **{quantile_name(q): level.reshape(-1) for q, level in zip(DAILY_QUANTILES, levels, strict=True)},
            "cold_start": np.repeat(cold, horizon),
        }
    )
