"""Glue job `customer_features`: the churn training set at many cutoffs and the serving features at the latest one.

Arguments (Glue `--name value`): inputs `--orders_path` (curated/order_lines/), `--products_path` (raw/products/),
`--customers_path` (raw/customers/), `--stockouts_path` (raw/stockouts/; may be empty); outputs `--training_path`
(features/churn/training/), `--cold_start_path` (features/churn/cold_start/: registered customers without a
purchase at each training cutoff, with their label) and `--serving_path` (features/churn/serving/), all written as
`cutoff=YYYY-MM-DD/`. Every row carries `feature_set_version`.
Cutoffs: `--cutoffs` (comma-separated dates), or `--first_cutoff`, `--last_cutoff`, `--step_days` (default 28);
by default from the first order day + the label horizon to the last cutoff whose horizon the data covers (the
horizon is the feature set's, `shelfwise.churn.features.FEATURE_SET`). `--serving_cutoff` (default: the day after
the last order; the daily chain passes the run's date).
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from shelfwise.churn.customer_features import (
    cold_start_labels,
    customer_features,
    cutoff_range,
    feature_checks,
    labelled_cutoffs,
    latest_snapshot,
    order_day_range,
    with_labels,
)
from shelfwise.churn.features import CUTOFF, FEATURE_SET, LABEL, VERSION_COLUMN
from shelfwise.data_quality import Check, NullRate, RowCount, Unique, validate
from shelfwise.glue_args import JobArgumentError, parse_date, parse_int, resolve_args, split_list
from shelfwise.job_log import counts_line
from shelfwise.schemas import STOCKOUT_SCHEMA
from shelfwise.spark import job_session, read_parquet, spark_schema

JOB = "customer_features"
INPUTS = ["orders_path", "products_path", "customers_path", "stockouts_path"]
OUTPUTS = ["training_path", "cold_start_path", "serving_path"]
OPTIONS = {"cutoffs": "", "first_cutoff": "", "last_cutoff": "", "step_days": "28", "serving_cutoff": ""}


def main(argv: list[str]) -> dict[str, int]:
    started = time.monotonic()
    args = resolve_args(argv, [*INPUTS, *OUTPUTS], OPTIONS)
    horizon = FEATURE_SET.label_horizon_days
    spark = job_session(JOB)

    orders = read_parquet(spark, args["orders_path"]).persist(StorageLevel.MEMORY_AND_DISK)
    products = latest_snapshot(read_parquet(spark, args["products_path"]))
    customers = latest_snapshot(read_parquet(spark, args["customers_path"]))
    stockouts = read_parquet(spark, args["stockouts_path"], empty_schema=spark_schema(STOCKOUT_SCHEMA))
    input_rows = orders.count()
    first_day, last_day = order_day_range(orders)
    cutoffs = labelled_cutoffs(_cutoffs(args, first_day, last_day, horizon), last_day, horizon)
    if not cutoffs:
        raise JobArgumentError(
            f"no cutoff has its {horizon}-day label horizon inside the data (orders {first_day} to {last_day})"
        )
    serving_cutoff = (
        parse_date("serving_cutoff", args["serving_cutoff"])
        if args["serving_cutoff"]
        else last_day + dt.timedelta(days=1)
    )

    # One feature computation for both outputs: the training cutoffs and the serving cutoff together.
    features = customer_features(orders, products, customers, stockouts, [*cutoffs, serving_cutoff])
    features = features.persist(StorageLevel.MEMORY_AND_DISK)
    training = with_labels(features, orders, cutoffs, horizon)
    serving = features.where(sf.col(CUTOFF) == sf.lit(serving_cutoff))
    training_counts = _publish(training, args["training_path"], feature_checks(with_label=True))
    serving_counts = _publish(serving, args["serving_path"], feature_checks(with_label=False))
    cold = cold_start_labels(orders, customers, cutoffs, horizon)
    cold_checks: list[Check] = [RowCount(0), Unique(("customer_id", CUTOFF)), NullRate(LABEL)]
    cold_counts = _publish(cold, args["cold_start_path"], cold_checks)
    features.unpersist()
    orders.unpersist()

    counts = {
        "input_order_lines": input_rows,
        "training_cutoffs": len(cutoffs),
        "training_rows": training_counts["rows"],
        "training_churned": training_counts["churned"],
        "cold_start_rows": cold_counts["rows"],
        "serving_rows": serving_counts["rows"],
    }
    print(counts_line(JOB, time.monotonic() - started, counts), flush=True)
    return counts


def _cutoffs(args: dict[str, str], first_day: dt.date, last_day: dt.date, horizon: int) -> list[dt.date]:
    if args["cutoffs"]:
        return [parse_date("cutoffs", value) for value in split_list(args["cutoffs"])]
    first = (
        parse_date("first_cutoff", args["first_cutoff"])
        if args["first_cutoff"]
        else first_day + dt.timedelta(days=horizon)
    )
    last = (
        parse_date("last_cutoff", args["last_cutoff"])
        if args["last_cutoff"]
        else last_day - dt.timedelta(days=horizon - 1)
    )
    try:
        return cutoff_range(first, last, parse_int("step_days", args["step_days"]))
    except ValueError as exc:
        raise JobArgumentError(f"--first_cutoff/--last_cutoff: {exc}") from None


def _publish(features: DataFrame, path: str, checks: list[Check]) -> dict[str, int]:
    """Check `features`, write them with the feature-set version as `cutoff=` partitions; return row and churned
    counts."""
    features = features.withColumn(VERSION_COLUMN, sf.lit(FEATURE_SET.qualified_version))
    features = features.persist(StorageLevel.MEMORY_AND_DISK)
    validate(features, checks, path)
    features.repartition(CUTOFF).write.mode("overwrite").partitionBy(CUTOFF).parquet(path)
    churned = sf.sum(LABEL) if LABEL in features.columns else sf.lit(0)
    row = features.agg(sf.count(sf.lit(1)).alias("rows"), churned.alias("churned")).collect()[0]
    features.unpersist()
    return {"rows": int(row["rows"]), "churned": int(row["churned"] or 0)}


if __name__ == "__main__":
    try:
        main(sys.argv)
    except JobArgumentError as exc:
        sys.exit(f"{JOB}: {exc}")
