"""Forecast records as online-store items and back: the pure core of publishing and serving demand forecasts.

Two kinds of item, both under the sort key `demand` (`shelfwise.online_store`):

- a store x SKU's forecast (`ForecastRecord`): entity `forecast`, id `series_id(store_id, sku)`;
- the forecast of a sum of series (`AggregateRecord`): entity `forecast_aggregate`, id `<level>#<key>` (`total#`
  for the total, which has no key). A level never contains `#`, so the first `#` ends it whatever the key holds.

Store ids and SKUs are whatever the retailer's data holds (`#`, spaces, any script), so `<store_id>#<sku>` alone
would be ambiguous (`A#B` + `C` and `A` + `B#C`). The series id is therefore length-prefixed:
`<number of characters of store_id>:<store_id>#<sku>`, e.g. `4:CA_1#FOODS_3_090`. The count says where the store
id ends, so every pair has exactly one id and every id one pair; the `#` keeps it readable in the console.

Both kinds carry the same attributes (`ForecastRecord.attributes`), so one reader checks both: a stored item that is
not a whole forecast raises `MalformedRecordError` rather than reaching an answer. No pandas or Spark: the API
Lambda imports this module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from shelfwise.demand.forecast_records import CUMULATIVE_LEVELS, DAILY_QUANTILES, ForecastRecord, quantile_name
from shelfwise.online_store import OnlineItem, StoredItem

ENTITY: Final = "forecast"
AGGREGATE_ENTITY: Final = "forecast_aggregate"
#: The online store's sort key of every demand item.
SORT_KEY: Final = "demand"
#: `shelfwise.demand.demand_features.FEATURE_SET_VERSION`, which this module cannot import (it pulls in Spark, and
#: the API Lambda reads records without it); tests/demand/test_demand_publish.py holds the two equal.
FEATURE_SET_VERSION: Final = "demand/1"
#: The longest store id or SKU: two of them, their separators and a two-digit length fit the online store's
#: 128-character ids.
MAX_ID_CHARS: Final = 60

AggregateLevel = Literal["region", "store", "category", "department", "total"]
LEVELS: tuple[AggregateLevel, ...] = get_args(AggregateLevel)
TOTAL: Final = "total"

#: The attributes `ForecastRecord.attributes` writes, in that order.
_VALUES = ("model_version", "cold_start", "mean", "quantiles", "cumulative")
_QUANTILE_NAMES = tuple(quantile_name(q) for q in DAILY_QUANTILES)


class MalformedRecordError(ValueError):
    """A stored item is not a whole forecast record; the message names the attribute."""


@dataclass(frozen=True)
class AggregateRecord:
    """The forecast of a sum of store x SKU series, with the values of a `ForecastRecord`.

    `key` names the group at `level` (a region, a store id, a category, a department) and is None for the total.
    `cold_start` is True when a series in the sum is a cold start.
    """

    level: AggregateLevel
    key: str | None
    as_of: dt.date
    model_version: str
    cold_start: bool
    mean: tuple[float, ...]
    quantiles: dict[str, tuple[float, ...]]
    cumulative: tuple[tuple[float, ...], ...]

    def attributes(self) -> dict[str, Any]:
        """The same attributes as a series' record, so that one reader reads both."""
        return {name: _listed(getattr(self, name)) for name in _VALUES}


# -- ids ---------------------------------------------------------------------------------------------------------


def series_id(store_id: str, sku: str) -> str:
    """`<len(store_id)>:<store_id>#<sku>`: one id per pair, whatever characters the two hold (module doc)."""
    for name, value in (("store_id", store_id), ("sku", sku)):
        if not 0 < len(value) <= MAX_ID_CHARS:
            raise ValueError(f"{name} must be 1-{MAX_ID_CHARS} characters, got {len(value)}")
    return f"{len(store_id)}:{store_id}#{sku}"


def parse_series_id(entity_id: str) -> tuple[str, str]:
    """(store_id, sku) of a `series_id`; raises MalformedRecordError for anything `series_id` does not write."""
    length, colon, rest = entity_id.partition(":")
    # Only canonical counts (no sign, no leading zero), so that no pair has a second id.
    if not colon or not length.isascii() or not length.isdigit() or length.startswith("0"):
        raise MalformedRecordError(f"series id {entity_id!r} does not start with the store id's length")
    size = int(length)
    store_id, separator, sku = rest[:size], rest[size : size + 1], rest[size + 1 :]
    if len(store_id) != size or separator != "#" or not sku:
        raise MalformedRecordError(f"series id {entity_id!r} is not <length>:<store_id>#<sku>")
    return store_id, sku


def aggregate_id(level: AggregateLevel, key: str | None) -> str:
    """`<level>#<key>`; `total#` for the total."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if (key is None) != (level == TOTAL):
        raise ValueError("the total has no key" if level == TOTAL else f"level {level} needs a key")
    if key is not None and not 0 < len(key) <= MAX_ID_CHARS:
        raise ValueError(f"key must be 1-{MAX_ID_CHARS} characters, got {len(key)}")
    return f"{level}#{key or ''}"


def parse_aggregate_id(entity_id: str) -> tuple[AggregateLevel, str | None]:
    """(level, key) of an `aggregate_id`; raises MalformedRecordError for anything `aggregate_id` does not write."""
    level, separator, key = entity_id.partition("#")
    if not separator or level not in LEVELS or (level == TOTAL) != (key == ""):
        raise MalformedRecordError(f"aggregate id {entity_id!r} is not <level>#<key>")
    return level, key or None


# -- records <-> items -------------------------------------------------------------------------------------------


def forecast_item(record: ForecastRecord) -> OnlineItem:
    return OnlineItem(
        entity=ENTITY,
        entity_id=series_id(record.store_id, record.sku),
        feature_set=SORT_KEY,
        as_of=record.as_of,
        feature_set_version=FEATURE_SET_VERSION,
        attributes=record.attributes(),
    )


def aggregate_item(record: AggregateRecord) -> OnlineItem:
    return OnlineItem(
        entity=AGGREGATE_ENTITY,
        entity_id=aggregate_id(record.level, record.key),
        feature_set=SORT_KEY,
        as_of=record.as_of,
        feature_set_version=FEATURE_SET_VERSION,
        attributes=record.attributes(),
    )


def forecast_from_item(item: StoredItem) -> ForecastRecord:
    """The record of a stored `forecast` item; raises MalformedRecordError if it is not a whole forecast."""
    store_id, sku = parse_series_id(item.entity_id)
    return ForecastRecord(store_id=store_id, sku=sku, **_values(item))


def aggregate_from_item(item: StoredItem) -> AggregateRecord:
    """The record of a stored `forecast_aggregate` item; raises MalformedRecordError if it is not a whole one."""
    level, key = parse_aggregate_id(item.entity_id)
    return AggregateRecord(level=level, key=key, **_values(item))


def _values(item: StoredItem) -> dict[str, Any]:
    """Everything but the key, checked: every series of the horizon's length, every level and quantile present."""
    attributes = item.attributes
    missing = [name for name in _VALUES if name not in attributes]
    if missing:
        raise MalformedRecordError(f"the stored forecast has no {missing[0]}")
    model_version, cold_start = attributes["model_version"], attributes["cold_start"]
    if not isinstance(model_version, str) or not model_version:
        raise MalformedRecordError("the stored forecast's model_version is not a non-empty string")
    if not isinstance(cold_start, bool):
        raise MalformedRecordError("the stored forecast's cold_start is not a boolean")
    mean = _numbers("mean", attributes["mean"], None)
    horizon = len(mean)
    quantiles = attributes["quantiles"]
    if not isinstance(quantiles, dict) or set(quantiles) != set(_QUANTILE_NAMES):
        raise MalformedRecordError(f"the stored forecast's quantiles are not {', '.join(_QUANTILE_NAMES)}")
    cumulative = attributes["cumulative"]
    if not isinstance(cumulative, list) or len(cumulative) != len(CUMULATIVE_LEVELS):
        raise MalformedRecordError(f"the stored forecast's cumulative does not hold {len(CUMULATIVE_LEVELS)} levels")
    try:
        as_of = dt.date.fromisoformat(item.as_of)
    except ValueError:
        raise MalformedRecordError(f"the stored forecast's as_of {item.as_of!r} is not a date") from None
    return {
        "as_of": as_of,
        "model_version": model_version,
        "cold_start": cold_start,
        "mean": mean,
        "quantiles": {name: _numbers(f"quantiles.{name}", quantiles[name], horizon) for name in _QUANTILE_NAMES},
        "cumulative": tuple(_numbers(f"cumulative[{k}]", row, horizon) for k, row in enumerate(cumulative)),
    }


def _numbers(name: str, value: Any, length: int | None) -> tuple[float, ...]:
    # bool is an int in Python; a boolean among the numbers is a broken item, not a 0 or a 1.
    if (
        not isinstance(value, list)
        or not value
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)
    ):
        raise MalformedRecordError(f"the stored forecast's {name} is not a non-empty list of numbers")
    if length is not None and len(value) != length:
        raise MalformedRecordError(f"the stored forecast's {name} has {len(value)} days, not {length}")
    return tuple(float(v) for v in value)


def _listed(value: Any) -> Any:
    """Tuples as lists, in maps too: the attributes as `ForecastRecord.attributes` gives them."""
    if isinstance(value, tuple):
        return [_listed(v) for v in value]
    if isinstance(value, dict):
        return {k: _listed(v) for k, v in value.items()}
    return value
