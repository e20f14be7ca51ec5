"""Raw order lines -> curated order lines and quarantine: the pure core of the Glue job `curate_orders`.

Every raw row ends up in exactly one of the two outputs. A row is quarantined with the `reason` of the first rule
it breaks, in the order of `rules`; among the valid rows sharing an (order_id, line_no), one is kept (the first in
a fixed order over all columns, so reruns keep the same one) and the others go to quarantine as `duplicate_key`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import get_args

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import DataType, LongType
from pyspark.sql.window import Window

from shelfwise.data_quality import Check, InRange, NullRate, RowCount, Unique
from shelfwise.schemas import ORDER_LINE_SCHEMA, Channel
from shelfwise.spark import spark_type

KEY = ("order_id", "line_no")
COLUMNS: tuple[str, ...] = tuple(ORDER_LINE_SCHEMA.names)
REQUIRED: tuple[str, ...] = tuple(f.name for f in ORDER_LINE_SCHEMA if not f.nullable and f.name != "promo")
CHANNELS: tuple[str, ...] = get_args(Channel)
DUPLICATE = "duplicate_key"
#: Columns the model gives a default, used when the value (or the whole column) is absent.
DEFAULTS: dict[str, bool] = {"promo": False}

_RAW = "__raw_"


class SchemaMismatchError(ValueError):
    """The raw data lacks a required column; the message names it."""


class ReconciliationError(RuntimeError):
    """Rows in != rows curated + rows quarantined."""


@dataclass(frozen=True)
class Curation:
    curated: DataFrame
    """`ORDER_LINE_SCHEMA` columns with their types, plus `dt` (the order date)."""
    quarantine: DataFrame
    """The rejected rows' columns as they came in, plus `reason`."""


@dataclass(frozen=True)
class CurationCounts:
    input: int
    curated: int
    quarantined: int
    reasons: dict[str, int]

    def as_dict(self) -> dict[str, int]:
        return {
            "input": self.input,
            "curated": self.curated,
            "quarantined": self.quarantined,
            **{f"quarantined.{reason}": n for reason, n in sorted(self.reasons.items())},
        }


def curate_orders(raw: DataFrame, run_date: dt.date) -> Curation:
    """Split raw order lines into curated rows and quarantined rows; see the module docstring for the rules."""
    return split_flagged(flag_order_lines(raw, run_date))


def split_flagged(flagged: DataFrame) -> Curation:
    """The curated and quarantined rows of the output of `flag_order_lines`."""
    curated = flagged.where(sf.col("reason").isNull()).select(*COLUMNS).withColumn("dt", sf.to_date("ts"))
    as_read = [
        sf.col(_RAW + name).alias(name) if _RAW + name in flagged.columns else sf.col(name)
        for name in COLUMNS
        if name in flagged.columns
    ]
    quarantine = flagged.where(sf.col("reason").isNotNull()).select(*as_read, "reason")
    return Curation(curated=curated, quarantine=quarantine)


def flag_order_lines(raw: DataFrame, run_date: dt.date) -> DataFrame:
    """The schema columns with their types, `reason` (null for a good row), and, prefixed `__raw_`, the values as
    read of the columns whose type or value the cast may change (so the quarantine keeps them as they came)."""
    _require_columns(raw)
    source = raw.select(*(name for name in COLUMNS if name in raw.columns))
    kept_raw = [name for name in source.columns if _cast_may_change(source, name)]
    typed = source.select(
        *(_typed(source, name).alias(name) for name in COLUMNS), *(sf.col(n).alias(_RAW + n) for n in kept_raw)
    )
    reason = sf.coalesce(*(sf.when(rule, sf.lit(name)) for name, rule in rules(kept_raw, run_date).items()))
    flagged = typed.withColumn("reason", reason)
    # A fixed order over every column picks the same survivor among duplicates on every run (rows equal in all
    # of them curate to the same row, whichever is kept).
    tie_break = [sf.col(name).asc_nulls_first() for name in COLUMNS if name not in KEY]
    window = Window.partitionBy(*KEY, sf.col("reason").isNull()).orderBy(*tie_break)
    rank = sf.row_number().over(window)
    return flagged.withColumn(
        "reason", sf.when(sf.col("reason").isNull() & (rank > 1), sf.lit(DUPLICATE)).otherwise(sf.col("reason"))
    )


def rules(kept_raw: Sequence[str], run_date: dt.date) -> dict[str, Column]:
    """Quarantine rules by reason, in priority order; each is true for a row that breaks it.

    `kept_raw` names the columns whose values as read are kept (prefixed `__raw_`): only those can fail a cast.
    """
    checks: dict[str, Column] = {f"uncastable_{name}": _uncastable(name) for name in COLUMNS if name in kept_raw}
    for name in REQUIRED:
        missing = sf.col(name).isNull()
        if ORDER_LINE_SCHEMA.field(name).type == pa.string():
            missing = missing | (sf.trim(name) == "")
        checks[f"missing_{name}"] = missing
    end_of_run_day = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())
    price = sf.col("unit_price")
    checks |= {
        "blank_customer_id": sf.trim("customer_id") == "",
        "line_no_below_1": sf.col("line_no") < 1,
        "nonfinite_unit_price": sf.isnan(price) | (sf.abs(price) == float("inf")),
        "negative_unit_price": price < 0,
        "zero_quantity": sf.col("quantity") == 0,
        "unknown_channel": ~sf.col("channel").isin(*CHANNELS),
        "future_ts": sf.col("ts") >= sf.lit(end_of_run_day).cast("timestamp_ntz"),
    }
    # A comparison with null is null, not true: make every rule a plain boolean.
    return {reason: sf.coalesce(rule, sf.lit(False)) for reason, rule in checks.items()}


def _require_columns(raw: DataFrame) -> None:
    missing = [name for name in REQUIRED if name not in raw.columns]
    if missing:
        raise SchemaMismatchError(
            f"raw order lines lack required column(s) {', '.join(missing)}; found {', '.join(raw.columns)}"
        )


def _target(name: str) -> DataType:
    return spark_type(ORDER_LINE_SCHEMA.field(name).type)


def _cast_may_change(source: DataFrame, name: str) -> bool:
    """Whether the typed value of `name` can differ from the value as read (another type, or a default)."""
    return name in DEFAULTS or source.schema[name].dataType != _target(name)


def _typed(source: DataFrame, name: str) -> Column:
    """The column cast to its schema type (null when it cannot be cast), or its default when absent."""
    target = _target(name)
    if name not in source.columns:
        return sf.lit(DEFAULTS.get(name)).cast(target)
    value = sf.col(name).cast(target)
    if name in DEFAULTS:
        value = sf.coalesce(value, sf.lit(DEFAULTS[name]))
    return value


def _uncastable(name: str) -> Column:
    """True where a value as read is present but does not survive the cast to its schema type."""
    target = _target(name)
    raw = sf.col(_RAW + name)
    cast = raw.cast(target)
    lost = raw.isNotNull() & cast.isNull()
    if isinstance(target, LongType):
        # Spark truncates 1.5 to 1 when casting to an integer; a fractional line number or quantity is an error.
        lost = lost | (cast.isNotNull() & (raw.cast("double") != cast.cast("double")))
    return lost


def count_outcome(input_rows: int, curated_rows: int, reasons: Mapping[str, int]) -> CurationCounts:
    """The run's counts; raises `ReconciliationError` unless every input row is curated or quarantined."""
    quarantined = sum(reasons.values())
    if input_rows != curated_rows + quarantined:
        raise ReconciliationError(
            f"curate_orders lost rows: input {input_rows} != curated {curated_rows} + quarantined {quarantined}"
        )
    return CurationCounts(input_rows, curated_rows, quarantined, dict(reasons))


def curated_order_checks() -> list[Check]:
    """The checks on curated order lines: rows, unique (order_id, line_no), required values present and valid."""
    required = ("order_id", "line_no", "ts", "store_id", "sku", "quantity", "unit_price", "channel", "dt")
    return [
        RowCount(1),
        Unique(("order_id", "line_no")),
        *(NullRate(column) for column in required),
        InRange("line_no", 1, math.inf),
        InRange("unit_price", 0, math.inf),
    ]
