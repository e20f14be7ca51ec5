"""The batch forecast's pure core: sample paths of every active store x SKU -> the records the API serves.

Sums (a region, a store, a category, a department, the total) are forecast bottom-up: the store x SKU paths,
reordered with the Schaake shuffle so that they carry the dependence history showed between series
(`shelfwise.demand.aggregation`), are added path by path. Every path of a sum is a sum of paths, so means add up
exactly at every level (the forecasts are coherent) and each sum's quantiles and cumulative distribution come from
its own paths.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd

from shelfwise.demand.aggregation import schaake_shuffle, schaake_template, sum_by_group
from shelfwise.demand.forecast_records import ForecastRecord, forecast_records
from shelfwise.demand.keys import TOTAL, AggregateLevel
from shelfwise.demand.publish import AggregateRecord

#: Each level of sums and the static column that names its groups (none: the total).
LEVEL_COLUMNS: dict[AggregateLevel, str | None] = {
    "region": "region",
    "store": "store_id",
    "category": "category",
    "department": "department",
    TOTAL: None,
}


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
) -> Iterator[AggregateRecord]:
    """The forecast of every sum at every level (`LEVEL_COLUMNS`) from the series' `paths` (series, paths, days);
    `history` (series, days) is what the Schaake shuffle takes the dependence between series from."""
    n_paths, horizon = paths.shape[1:]
    template = schaake_template(history, n_paths, horizon, seed=seed)
    shuffled = schaake_shuffle(np.maximum(paths, 0.0), template, seed)
    for level, column in LEVEL_COLUMNS.items():
        if column is None:
            names, group = np.array([None], dtype=object), np.zeros(len(keys), dtype=np.int64)
        else:
            codes, uniques = pd.factorize(keys[column].astype(str), sort=True)
            names, group = np.asarray(uniques, dtype=object), codes.astype(np.int64)
        sums = sum_by_group(group, shuffled)
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
