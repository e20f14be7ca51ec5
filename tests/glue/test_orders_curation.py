"""curate_orders' pure core: every bad row is quarantined with the rule it breaks, and counts reconcile."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import DateType, StructType

from shelfwise.curation.orders import (
    COLUMNS,
    ReconciliationError,
    SchemaMismatchError,
    count_outcome,
    curate_orders,
)
from shelfwise.schemas import ORDER_LINE_SCHEMA
from shelfwise.spark import spark_schema

pytestmark = pytest.mark.slow

RUN_DATE = dt.date(2024, 6, 30)
GOOD = {
    "order_id": "O1",
    "line_no": "1",
    "ts": "2024-06-01 10:00:00",
    "store_id": "S001",
    "customer_id": "C000001",
    "sku": "SKU00001",
    "quantity": "2",
    "unit_price": "9.5",
    "promo": "false",
    "channel": "store",
}
#: One row per rule, as strings (the shape of a batch from a CSV export or a JSON event), with its expected reason.
BAD = {
    "missing_order_id": {"order_id": None},
    "uncastable_line_no": {"line_no": "1.5"},
    "missing_line_no": {"line_no": None},
    "uncastable_ts": {"ts": "yesterday"},
    "missing_ts": {"ts": None},
    "missing_store_id": {"store_id": "  "},
    "missing_sku": {"sku": ""},
    "uncastable_quantity": {"quantity": "two"},
    "uncastable_unit_price": {"unit_price": "free"},
    "uncastable_promo": {"promo": "maybe"},
    "missing_channel": {"channel": None},
    "blank_customer_id": {"customer_id": " "},
    "line_no_below_1": {"line_no": "0"},
    "nonfinite_unit_price": {"unit_price": "NaN"},
    "negative_unit_price": {"unit_price": "-0.01"},
    "zero_quantity": {"quantity": "0"},
    "unknown_channel": {"channel": "fax"},
    "future_ts": {"ts": "2024-07-01 00:00:00"},
}


def _string_frame(spark: SparkSession, rows: list[dict[str, str | None]]) -> DataFrame:
    schema = ", ".join(f"{name} string" for name in COLUMNS)
    return spark.createDataFrame([tuple(row[name] for name in COLUMNS) for row in rows], schema)


def _batch() -> list[dict[str, str | None]]:
    rows: list[dict[str, str | None]] = [dict(GOOD)]
    for n, change in enumerate(BAD.values()):
        rows.append({**GOOD, "order_id": f"OBAD{n}", **change})
    # The same key three times: the earliest timestamp survives, the two others are duplicates.
    rows += [
        {**GOOD, "order_id": "ODUP", "ts": "2024-06-02 10:00:00"},
        {**GOOD, "order_id": "ODUP", "ts": "2024-06-01 09:00:00"},
        {**GOOD, "order_id": "ODUP", "ts": "2024-06-03 10:00:00"},
    ]
    # A walk-in (no customer) on the last second of the run date, and a return: both valid.
    rows += [
        {**GOOD, "order_id": "OWALK", "customer_id": None, "ts": "2024-06-30 23:59:59"},
        {**GOOD, "order_id": "ORET", "quantity": "-1", "promo": None},
    ]
    return rows


@dataclass(frozen=True)
class Outcome:
    curated: list[Row]
    quarantine: list[Row]
    curated_schema: StructType
    quarantine_columns: list[str]


@pytest.fixture(scope="module")
def outcome(spark: SparkSession) -> Outcome:
    """The batch curated once, collected, for the tests that only look at the result."""
    curation = curate_orders(_string_frame(spark, _batch()), RUN_DATE)
    return Outcome(
        curation.curated.collect(), curation.quarantine.collect(), curation.curated.schema, curation.quarantine.columns
    )


def test_each_bad_row_goes_to_quarantine_with_the_rule_it_breaks(outcome: Outcome) -> None:
    quarantined = [(r["order_id"], r["reason"]) for r in outcome.quarantine]
    expected = {(f"OBAD{n}", reason) for n, reason in enumerate(BAD)}
    expected = {(None if reason == "missing_order_id" else o, reason) for o, reason in expected}
    assert sorted(quarantined, key=str) == sorted(
        [*expected, ("ODUP", "duplicate_key"), ("ODUP", "duplicate_key")], key=str
    )
    curated_ids = sorted(r["order_id"] for r in outcome.curated)
    assert curated_ids == ["O1", "ODUP", "ORET", "OWALK"]


def test_counts_reconcile_in_equals_out_plus_quarantined(outcome: Outcome) -> None:
    batch = _batch()
    reasons = Counter(r["reason"] for r in outcome.quarantine)
    counts = count_outcome(len(batch), len(outcome.curated), reasons)
    assert counts.input == len(batch) == counts.curated + counts.quarantined
    assert counts.reasons["duplicate_key"] == 2
    assert counts.as_dict()["quarantined.zero_quantity"] == 1


def test_duplicates_keep_the_same_row_whatever_the_input_order(spark: SparkSession, outcome: Outcome) -> None:
    forward = [r for r in outcome.curated if r["order_id"] == "ODUP"]
    backward = (
        curate_orders(_string_frame(spark, _batch()[::-1]), RUN_DATE).curated.where("order_id = 'ODUP'").collect()
    )
    assert forward == backward
    assert forward[0]["ts"] == dt.datetime(2024, 6, 1, 9)


def test_curated_rows_have_the_schema_types_and_the_order_date(outcome: Outcome) -> None:
    expected = [(f.name, f.dataType) for f in spark_schema(ORDER_LINE_SCHEMA).fields]
    assert [(f.name, f.dataType) for f in outcome.curated_schema.fields] == [*expected, ("dt", DateType())]
    by_id = {r["order_id"]: r for r in outcome.curated}
    walk_in = by_id["OWALK"]
    assert walk_in["customer_id"] is None
    assert walk_in["dt"] == dt.date(2024, 6, 30)
    # A missing promo flag takes the model's default.
    assert by_id["ORET"]["promo"] is False


def test_quarantine_keeps_the_values_as_they_came(outcome: Outcome) -> None:
    row = next(r for r in outcome.quarantine if r["reason"] == "uncastable_quantity")
    assert row["quantity"] == "two"
    assert outcome.quarantine_columns == [*COLUMNS, "reason"]


def test_a_missing_required_column_is_named(spark: SparkSession) -> None:
    frame = _string_frame(spark, [GOOD]).drop("sku")
    with pytest.raises(SchemaMismatchError, match="sku"):
        curate_orders(frame, RUN_DATE)


def test_reconciliation_fails_when_rows_are_lost() -> None:
    with pytest.raises(ReconciliationError, match=r"input 10 != curated 8 \+ quarantined 1"):
        count_outcome(10, 8, {"zero_quantity": 1})
