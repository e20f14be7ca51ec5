"""Forecast records as online-store items and back: ids that name exactly one store x SKU or group, and items that
read back as the records written (through the online store's own serialization)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shelfwise import online_store
from shelfwise.demand.forecast_records import CUMULATIVE_LEVELS, ForecastRecord, forecast_records, pack_rows
from shelfwise.demand.keys import (
    AGGREGATE_ENTITY,
    ENTITY,
    FEATURE_SET_VERSION,
    LEVELS,
    MAX_ID_CHARS,
    SORT_KEY,
    MalformedIdError,
    aggregate_id,
    parse_aggregate_id,
    parse_series_id,
    series_id,
)
from shelfwise.demand.publish import (
    AggregateRecord,
    MalformedRecordError,
    aggregate_from_item,
    aggregate_item,
    forecast_from_item,
    forecast_item,
)

ids = st.text(min_size=1, max_size=MAX_ID_CHARS)
AS_OF = dt.date(2025, 3, 1)


def record(store_id: str = "CA_1", sku: str = "FOODS_3_090", cold_start: bool = False) -> ForecastRecord:
    paths = np.random.default_rng(0).poisson(3, size=(1, 300, 28)).astype(float)
    (made,) = forecast_records([(store_id, sku)], paths, AS_OF, "v7", [cold_start])
    return made


def aggregate(level: Any = "region", key: str | None = "west") -> AggregateRecord:
    values = {f.name: getattr(record(), f.name) for f in dataclasses.fields(ForecastRecord)}
    del values["store_id"], values["sku"]
    return AggregateRecord(level=level, key=key, **values)


class OneItemTable:
    """`get_item` of a table that holds the one item written (in DynamoDB's attribute-value form)."""

    def __init__(self, item: online_store.OnlineItem) -> None:
        self.stored = online_store.to_item(item, expiry=0)

    def get_item(self, TableName: str, Key: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        found = {k: self.stored[k] for k in ("pk", "sk")} == Key
        return {"Item": self.stored} if found else {}


def read_back(item: online_store.OnlineItem) -> online_store.StoredItem:
    stored = online_store.get_item(item.entity, item.entity_id, SORT_KEY, "table", OneItemTable(item))
    assert stored is not None
    return stored


# -- ids -----------------------------------------------------------------------------------------------------------


@given(store_id=ids, sku=ids)
def test_series_ids_round_trip_any_pair_of_strings(store_id: str, sku: str) -> None:
    entity_id = series_id(store_id, sku)
    assert parse_series_id(entity_id) == (store_id, sku)
    assert len(entity_id) <= 128  # what the online store accepts


@pytest.mark.parametrize(
    ("store_id", "sku"),
    [
        ("A#B", "C"),
        ("A", "B#C"),
        ("12:x", "#"),
        ("store 1", "sku 2"),
        ("Zürich Hbf", "商品-42"),
        ("😀", "a\tb"),
        ("#", "#"),
    ],
)
def test_separators_in_ids_neither_collide_nor_get_lost(store_id: str, sku: str) -> None:
    assert parse_series_id(series_id(store_id, sku)) == (store_id, sku)


def test_pairs_that_would_collide_under_a_plain_separator_get_different_ids() -> None:
    assert series_id("A#B", "C") != series_id("A", "B#C")
    assert series_id("CA_1", "FOODS_3_090") == "4:CA_1#FOODS_3_090"


@pytest.mark.parametrize(("store_id", "sku"), [("", "K"), ("S", ""), ("x" * (MAX_ID_CHARS + 1), "K")])
def test_series_id_refuses_empty_and_overlong_ids(store_id: str, sku: str) -> None:
    with pytest.raises(ValueError, match="must be 1-60 characters"):
        series_id(store_id, sku)


@pytest.mark.parametrize(
    "entity_id", ["CA_1#X", "04:CA_1#X", "+4:CA_1#X", "٤:CA_1#X", "5:CA_1#X", "4:CA_1X", "4:CA_1#", ""]
)
def test_only_ids_series_id_writes_parse(entity_id: str) -> None:
    with pytest.raises(MalformedIdError):
        parse_series_id(entity_id)


@given(level=st.sampled_from([level for level in LEVELS if level != "total"]), key=ids)
def test_aggregate_ids_round_trip_any_key(level: Any, key: str) -> None:
    assert parse_aggregate_id(aggregate_id(level, key)) == (level, key)


def test_the_total_has_no_key_and_every_other_level_one() -> None:
    assert aggregate_id("total", None) == "total#"
    assert parse_aggregate_id("total#") == ("total", None)
    assert aggregate_id("store", "A#B") == "store#A#B"
    with pytest.raises(ValueError, match="no key"):
        aggregate_id("total", "x")
    with pytest.raises(ValueError, match="needs a key"):
        aggregate_id("region", None)
    for malformed in ("total#x", "region#", "planet#earth", "region"):
        with pytest.raises(MalformedIdError):
            parse_aggregate_id(malformed)


# -- records <-> items ---------------------------------------------------------------------------------------------


def test_a_forecast_record_reads_back_as_written() -> None:
    written = record("Store #1/ü", "SKU 42%#x", cold_start=True)
    item = forecast_item(written)
    assert (item.entity, item.entity_id, item.feature_set) == (ENTITY, series_id("Store #1/ü", "SKU 42%#x"), "demand")
    assert item.feature_set_version == FEATURE_SET_VERSION
    assert forecast_from_item(read_back(item)) == written


@pytest.mark.parametrize(("level", "key"), [("total", None), ("region", "west"), ("store", "A#B"), ("category", "c")])
def test_an_aggregate_record_reads_back_as_written(level: Any, key: str | None) -> None:
    written = aggregate(level, key)
    item = aggregate_item(written)
    assert (item.entity, item.entity_id) == (AGGREGATE_ENTITY, aggregate_id(level, key))
    assert aggregate_from_item(read_back(item)) == written


def test_aggregates_are_stored_with_the_attributes_of_a_series() -> None:
    assert aggregate().attributes() == record().attributes()


def spoiled(change: dict[str, Any]) -> online_store.StoredItem:
    stored = read_back(forecast_item(record()))
    return dataclasses.replace(stored, attributes=stored.attributes | change)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"mean": [1.0] * 27}, "quantiles.p05"),
        ({"mean": []}, "mean"),
        ({"mean": [True] * 28}, "mean"),
        ({"quantiles": {"p50": [1.0] * 28}}, "quantiles"),
        ({"cumulative": pack_rows([[1.0] * 28] * (len(CUMULATIVE_LEVELS) - 1))}, "cumulative"),
        ({"cumulative": pack_rows([[1.0] * 27] * len(CUMULATIVE_LEVELS))}, "cumulative[0]"),
        ({"cumulative": "[[1.0, 2.0"}, "cumulative"),
        ({"cumulative": [[1.0] * 28] * len(CUMULATIVE_LEVELS)}, "cumulative"),  # stored as one text
        ({"cold_start": None}, "cold_start"),
        ({"model_version": ""}, "model_version"),
    ],
)
def test_an_item_that_is_not_a_whole_forecast_is_refused_naming_the_attribute(
    change: dict[str, Any], named: str
) -> None:
    with pytest.raises(MalformedRecordError, match=named.replace("[", r"\[").replace("]", r"\]")):
        forecast_from_item(spoiled(change))


def test_an_item_without_an_attribute_or_with_a_bad_date_is_refused() -> None:
    stored = read_back(forecast_item(record()))
    attributes = dict(stored.attributes)
    del attributes["cumulative"]
    with pytest.raises(MalformedRecordError, match="no cumulative"):
        forecast_from_item(dataclasses.replace(stored, attributes=attributes))
    with pytest.raises(MalformedRecordError, match="as_of"):
        forecast_from_item(dataclasses.replace(stored, as_of="soon"))


# -- the batch forecast's lines ------------------------------------------------------------------------------------


class RecordingTable:
    """The writer's calls: the turn always granted, every batch accepted, items kept by key."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def update_item(self, **_: Any) -> dict[str, Any]:
        return {"Attributes": {}}

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803
        for requests in RequestItems.values():
            for request in requests:
                item = request["PutRequest"]["Item"]
                self.items[item["pk"]["S"]] = item
        return {"UnprocessedItems": {}}


def publish(lines: list[str]) -> tuple[Any, RecordingTable, list[Any]]:
    from shelfwise.demand.publish import publish_lines

    table, rejected = RecordingTable(), []
    report = publish_lines(lines, table="online", client=table, on_reject=rejected.append)
    return report, table, rejected


def test_a_batch_forecasts_lines_become_the_items_the_api_reads() -> None:
    import json

    from shelfwise.demand.publish import online_line

    lines = [json.dumps(online_line(record("S#1", "X", cold_start=True))), json.dumps(online_line(aggregate()))]
    report, table, rejected = publish(lines)
    assert (report.lines, report.written, report.cold_starts, report.rejected) == (2, 2, 1, 0)
    assert rejected == []
    assert set(table.items) == {f"{ENTITY}#{series_id('S#1', 'X')}", f"{AGGREGATE_ENTITY}#region#west"}


def test_a_line_the_api_could_not_serve_is_rejected_naming_what_is_wrong() -> None:
    import json

    from shelfwise.demand.publish import online_line

    good = online_line(record())
    short = {**good, "mean": good["mean"][:5]}
    other_version = {**good, "feature_set_version": "demand/0"}
    bad_id = {**good, "id": "CA_1#FOODS"}
    lines = [json.dumps(short), json.dumps(other_version), json.dumps(bad_id), "{not json", json.dumps(good)]
    report, table, rejected = publish(lines)
    assert (report.lines, report.written, report.rejected) == (5, 1, 4)
    assert list(table.items) == [f"{ENTITY}#{good['id']}"]
    reasons = [r.reason for r in rejected]
    assert "has 28 days, not 5" in reasons[0]
    assert "demand/0" in reasons[1]
    assert "does not start with the store id's length" in reasons[2]
    assert "not JSON" in reasons[3]
    assert [r.line for r in rejected] == [1, 2, 3, 4]
    assert rejected[0].key == good["id"]  # kept under the line's id for the quarantine record
    assert report.reconciles
