"""Forecast records as online-store items and back: the pure core of publishing and serving demand forecasts.

Two kinds of item, both under the sort key `demand` (`shelfwise.online_store`), named as `shelfwise.demand.keys`
says:

- a store x SKU's forecast (`ForecastRecord`): entity `forecast`, id `series_id(store_id, sku)`;
- the forecast of a sum of series (`AggregateRecord`): entity `forecast_aggregate`, id `aggregate_id(level, key)`.

Both carry the same attributes (`ForecastRecord.attributes`), so one reader checks both: a stored item that is not a
whole forecast raises `MalformedRecordError` rather than reaching an answer, and the publisher refuses a line of the
batch forecast's `online_records.jsonl` with the same checks. No pandas or Spark: the Lambdas import this module.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from typing import Any

from shelfwise import publishing
from shelfwise.demand.forecast_records import (
    CUMULATIVE_LEVELS,
    DAILY_QUANTILES,
    ForecastRecord,
    pack_rows,
    quantile_name,
)
from shelfwise.demand.keys import (
    AGGREGATE_ENTITY,
    ENTITY,
    FEATURE_SET_VERSION,
    LEVELS,
    MAX_ID_CHARS,
    SORT_KEY,
    TOTAL,
    AggregateLevel,
    MalformedIdError,
    aggregate_id,
    parse_aggregate_id,
    parse_series_id,
    series_id,
)
from shelfwise.online_store import OnlineItem, StoredItem
from shelfwise.publishing import MalformedLineError, as_of_date, json_object

__all__ = [
    "AGGREGATE_ENTITY",
    "ENTITY",
    "FEATURE_SET_VERSION",
    "LEVELS",
    "MAX_ID_CHARS",
    "SORT_KEY",
    "TOTAL",
    "AggregateLevel",
    "AggregateRecord",
    "MalformedRecordError",
    "aggregate_id",
    "series_id",
]

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
        values = {name: _listed(getattr(self, name)) for name in _VALUES}
        return {**values, "cumulative": pack_rows(self.cumulative)}


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
    try:
        store_id, sku = parse_series_id(item.entity_id)
    except MalformedIdError as exc:
        raise MalformedRecordError(str(exc)) from None
    return ForecastRecord(store_id=store_id, sku=sku, **_values(item))


def aggregate_from_item(item: StoredItem) -> AggregateRecord:
    """The record of a stored `forecast_aggregate` item; raises MalformedRecordError if it is not a whole one."""
    try:
        level, key = parse_aggregate_id(item.entity_id)
    except MalformedIdError as exc:
        raise MalformedRecordError(str(exc)) from None
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
    try:
        cumulative = json.loads(cumulative) if isinstance(cumulative, str) else None
    except ValueError:
        cumulative = None
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


# -- the batch forecast's online records -------------------------------------------------------------------------

_LINE_FIELDS = ("entity", "id", "as_of", "feature_set_version", *_VALUES)


@dataclass(frozen=True)
class DemandLine:
    """One line of `online_records.jsonl`: a series' or a sum's forecast, checked, as the publisher writes it."""

    entity: str
    entity_id: str
    as_of: str
    cold_start: bool
    attributes: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.entity}#{self.entity_id}"

    def to_item(self) -> OnlineItem:
        return OnlineItem(
            entity=self.entity,
            entity_id=self.entity_id,
            feature_set=SORT_KEY,
            as_of=self.as_of,
            feature_set_version=FEATURE_SET_VERSION,
            attributes=self.attributes,
        )


def online_line(record: ForecastRecord | AggregateRecord) -> dict[str, Any]:
    """What the batch forecast writes for a record (one JSON object per line)."""
    if isinstance(record, ForecastRecord):
        entity, entity_id = ENTITY, series_id(record.store_id, record.sku)
    else:
        entity, entity_id = AGGREGATE_ENTITY, aggregate_id(record.level, record.key)
    return {
        "entity": entity,
        "id": entity_id,
        "as_of": record.as_of.isoformat(),
        "feature_set_version": FEATURE_SET_VERSION,
        **record.attributes(),
    }


def parse_line(raw: bytes | str, line: int) -> DemandLine:
    """One line as a `DemandLine`; raises MalformedLineError naming the line and what is wrong."""
    value = json_object(raw, line)
    missing = [name for name in _LINE_FIELDS if name not in value]
    if missing:
        raise MalformedLineError(line, f"missing field {missing[0]!r}")
    unknown = sorted(set(value) - set(_LINE_FIELDS))
    if unknown:
        raise MalformedLineError(line, f"unknown field {unknown[0]!r}")
    if value["feature_set_version"] != FEATURE_SET_VERSION:
        raise MalformedLineError(
            line,
            f"feature_set_version is {value['feature_set_version']!r}; this publisher serves {FEATURE_SET_VERSION!r}",
        )
    entity, entity_id = value["entity"], value["id"]
    as_of = as_of_date(value["as_of"], line)
    stored = StoredItem(
        entity_id=entity_id if isinstance(entity_id, str) else "",
        as_of=as_of,
        feature_set_version=FEATURE_SET_VERSION,
        attributes={name: value[name] for name in _VALUES},
        expires_at=0,
    )
    try:
        if entity == ENTITY:
            record: ForecastRecord | AggregateRecord = forecast_from_item(stored)
        elif entity == AGGREGATE_ENTITY:
            record = aggregate_from_item(stored)
        else:
            raise MalformedLineError(line, f"entity must be {ENTITY} or {AGGREGATE_ENTITY}, got {entity!r}")
    except MalformedRecordError as exc:
        raise MalformedLineError(line, str(exc).replace("the stored forecast", "the forecast")) from None
    return DemandLine(entity, stored.entity_id, as_of, record.cold_start, record.attributes())


#: Write every valid line to the online store (`shelfwise.publishing.publish_lines` with this domain's parser).
publish_lines = functools.partial(publishing.publish_lines, parse=parse_line, key_field="id")
