"""Glue job `demand_features`: daily demand per location x SKU and their static attributes, at one run date.

Arguments (Glue `--name value`): inputs `--orders_path` (curated/order_lines/), `--products_path` (raw/products/),
`--stores_path` (raw/stores/), `--stockouts_path` (raw/stockouts/; may be empty), `--listings_path`
(raw/listings/; may be empty or absent: every SKU is then on sale at every store); outputs `--daily_path`
(features/demand/daily/) and `--static_path` (features/demand/static/), both written as `as_of=YYYY-MM-DD/` with
`feature_set_version` on every row. `--as_of` (default: the day after the last order; the daily chain passes the
run's date): nothing dated on or after it is read. The computation is `shelfwise.demand.demand_features`.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf

from shelfwise.churn.customer_features import latest_snapshot, order_day_range
from shelfwise.churn.features import VERSION_COLUMN
from shelfwise.data_quality import Check, validate
from shelfwise.demand.demand_features import (
    AS_OF,
    FEATURE_SET_VERSION,
    daily_checks,
    demand_features,
    static_checks,
)
from shelfwise.glue_args import JobArgumentError, parse_date, resolve_args
from shelfwise.job_log import counts_line
from shelfwise.schemas import STOCKOUT_SCHEMA
from shelfwise.spark import MissingInputError, job_session, read_parquet, spark_schema

JOB = "demand_features"
INPUTS = ["orders_path", "products_path", "stores_path", "stockouts_path", "listings_path"]
OUTPUTS = ["daily_path", "static_path"]
OPTIONS = {"as_of": ""}


def main(argv: list[str]) -> dict[str, int]:
    started = time.monotonic()
    args = resolve_args(argv, [*INPUTS, *OUTPUTS], OPTIONS)
    spark = job_session(JOB)

    orders = read_parquet(spark, args["orders_path"]).persist(StorageLevel.MEMORY_AND_DISK)
    products = latest_snapshot(read_parquet(spark, args["products_path"]))
    stores = latest_snapshot(read_parquet(spark, args["stores_path"]))
    stockouts = read_parquet(spark, args["stockouts_path"], empty_schema=spark_schema(STOCKOUT_SCHEMA))
    listings = _listings(spark, args["listings_path"])
    first_day, last_day = order_day_range(orders)
    as_of = parse_date("as_of", args["as_of"]) if args["as_of"] else last_day + dt.timedelta(days=1)
    if as_of <= first_day:
        raise JobArgumentError(f"--as_of: {as_of} is not after the first order day {first_day}")

    features = demand_features(orders, products, stores, stockouts, listings, as_of)
    daily = features.daily.persist(StorageLevel.MEMORY_AND_DISK)
    static = features.static.persist(StorageLevel.MEMORY_AND_DISK)
    _publish(daily, args["daily_path"], daily_checks(), as_of)
    _publish(static, args["static_path"], static_checks(), as_of)
    totals = daily.agg(sf.count(sf.lit(1)), sf.sum(sf.col("censored").cast("long"))).collect()[0]
    counts = {
        "input_order_lines": orders.count(),
        "daily_rows": int(totals[0]),
        "censored_days": int(totals[1] or 0),
        "static_rows": static.count(),
        "sold_days_outside_life": features.sold_outside_life.count(),
    }
    static.unpersist()
    daily.unpersist()
    orders.unpersist()
    print(counts_line(JOB, time.monotonic() - started, counts), flush=True)
    return counts


def _listings(spark: SparkSession, path: str) -> DataFrame | None:
    """The latest listings snapshot; None when there is none or it is empty."""
    try:
        listings = latest_snapshot(read_parquet(spark, path))
    except MissingInputError:
        return None
    return None if listings.isEmpty() else listings


def _publish(features: DataFrame, path: str, checks: list[Check], as_of: dt.date) -> None:
    """Check `features`, then write them with the feature-set version as the `as_of=` partition (one file)."""
    validate(features, checks, path)
    stamped = features.withColumn(VERSION_COLUMN, sf.lit(FEATURE_SET_VERSION)).withColumn(AS_OF, sf.lit(as_of))
    stamped.repartition(AS_OF).write.mode("overwrite").partitionBy(AS_OF).parquet(path)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except JobArgumentError as exc:
        sys.exit(f"{JOB}: {exc}")
