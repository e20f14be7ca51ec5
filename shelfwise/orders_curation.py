"""Raw order lines -> curated order lines and quarantine: the pure core of the Glue job `curate_orders`.

Every raw row ends up in exactly one of the two outputs. A row is quarantined with the `reason` of the first rule
it breaks, in the order of `rules`; among the valid rows sharing an (order_id, line_no), one is kept (the first in
a fixed order over all columns, so reruns keep the same one) and the others go to quarantine as `duplicate_key`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_args

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.window import Window

from shelfwise.schemas import ORDER_LINE_SCHEMA, Channel
from shelfwise.spark import spark_type

KEY = ("order_id", "line_no")
COLUMNS: tuple[str, ...] = tuple(ORDER_LINE_SCHEMA.names)
REQUIRED: tuple[str, ...] = tuple(f.name for f in ORDER_LINE_SCHEMA if not f.nullable and f.name != "promo")
CHANNELS: tuple[str, ...] = get_args(Channel)
DUPLICATE = "duplicate_key"
#: Columns the model gives a default, used when the value (or the whole column) is absent.
DEFAULTS: dict[str, bool] = {"promo": False}

_TYPED = "__typed_"


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
    good = flagged.where(sf.col("reason").isNull())
    curated = good.select(*(sf.col(_TYPED + name).alias(name) for name in COLUMNS)).withColumn("dt", sf.to_date("ts"))
    quarantine = flagged.where(sf.col("reason").isNotNull()).select(
        *(name for name in COLUMNS if name in flagged.columns), "reason"
    )
    return Curation(curated=curated, quarantine=quarantine)


def flag_order_lines(raw: DataFrame, run_date: dt.date) -> DataFrame:
    """The raw schema columns, their typed versions (prefixed `__typed_`) and `reason` (null for a good row)."""
    _require_columns(raw)
    source = raw.select(*(name for name in COLUMNS if name in raw.columns))
    typed = source.select("*", *(_typed(source, name).alias(_TYPED + name) for name in COLUMNS))
    reason = sf.coalesce(*(sf.when(rule, sf.lit(name)) for name, rule in rules(source, run_date).items()))
    flagged = typed.withColumn("reason", reason)
    # A fixed order over every column picks the same survivor among duplicates on every run.
    tie_break = [sf.col(_TYPED + name).asc_nulls_first() for name in COLUMNS if name not in KEY]
    tie_break += [sf.col(name).cast("string").asc_nulls_first() for name in source.columns]
    window = Window.partitionBy(*(_TYPED + k for k in KEY), sf.col("reason").isNull()).orderBy(*tie_break)
    rank = sf.row_number().over(window)
    return flagged.withColumn(
        "reason", sf.when(sf.col("reason").isNull() & (rank > 1), sf.lit(DUPLICATE)).otherwise(sf.col("reason"))
    )


def rules(source: DataFrame, run_date: dt.date) -> dict[str, Column]:
    """Quarantine rules by reason, in priority order; each is true for a row that breaks it."""

    def typed(name: str) -> Column:
        return sf.col(_TYPED + name)

    checks: dict[str, Column] = {}
    for name in COLUMNS:
        if name in source.columns:
            checks[f"uncastable_{name}"] = _uncastable(source, name)
    for name in REQUIRED:
        missing = typed(name).isNull()
        if ORDER_LINE_SCHEMA.field(name).type == pa.string():
            missing = missing | (sf.trim(typed(name)) == "")
        checks[f"missing_{name}"] = missing
    end_of_run_day = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())
    checks |= {
        "blank_customer_id": sf.trim(typed("customer_id")) == "",
        "line_no_below_1": typed("line_no") < 1,
        "nonfinite_unit_price": sf.isnan(typed("unit_price")) | (sf.abs(typed("unit_price")) == float("inf")),
        "negative_unit_price": typed("unit_price") < 0,
        "zero_quantity": typed("quantity") == 0,
        "unknown_channel": ~typed("channel").isin(*CHANNELS),
        "future_ts": typed("ts") >= sf.lit(end_of_run_day).cast("timestamp_ntz"),
    }
    # A comparison with null is null, not true: make every rule a plain boolean.
    return {reason: sf.coalesce(rule, sf.lit(False)) for reason, rule in checks.items()}


def _require_columns(raw: DataFrame) -> None:
    missing = [name for name in REQUIRED if name not in raw.columns]
    if missing:
        raise SchemaMismatchError(
            f"raw order lines lack required column(s) {', '.join(missing)}; found {', '.join(raw.columns)}"
        )


def _typed(source: DataFrame, name: str) -> Column:
    """The column cast to its schema type (null when it cannot be cast), or its default when absent."""
    target = spark_type(ORDER_LINE_SCHEMA.field(name).type)
    if name not in source.columns:
        return sf.lit(DEFAULTS.get(name)).cast(target)
    value = sf.col(name).cast(target)
    if name in DEFAULTS:
        value = sf.coalesce(value, sf.lit(DEFAULTS[name]))
    return value


def _uncastable(source: DataFrame, name: str) -> Column:
    """True where a value is present but does not survive the cast to its schema type."""
    target = spark_type(ORDER_LINE_SCHEMA.field(name).type)
    raw = sf.col(name)
    cast = raw.cast(target)
    lost = raw.isNotNull() & cast.isNull()
    if target.typeName() == "long" and dict(source.dtypes)[name] not in ("bigint", "int", "smallint", "tinyint"):
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
