"""Glue job `curate_orders`: raw order lines -> curated order lines by order date, rejected rows -> quarantine.

Incremental: only the raw `dt=` partitions new or changed since the last run are read and curated, and only their
curated partitions are replaced (`shelfwise.curation.incremental`); `--full_refresh true` curates everything.

Arguments (Glue `--name value`): `--input_path` (raw/order_lines/), `--output_path` (curated/order_lines/),
`--quarantine_path` (quarantine/curate_orders/; this run writes `dt=<run_date>/` under it), `--state_path`
(state/curate_orders/: the fingerprints of the partitions curated so far) and optionally `--run_date`
(YYYY-MM-DD, default today in UTC; rows stamped after it are quarantined as `future_ts`). S3 URIs in Glue, local
folders locally.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from pyspark import StorageLevel

from shelfwise.curation.incremental import (
    changed_partitions,
    partition_fingerprints,
    read_partitions,
    read_state,
    write_state,
)
from shelfwise.curation.orders import (
    CurationCounts,
    count_outcome,
    curated_order_checks,
    flag_order_lines,
    split_flagged,
)
from shelfwise.data_quality import validate
from shelfwise.glue_args import JobArgumentError, parse_date, resolve_args
from shelfwise.job_log import counts_line
from shelfwise.spark import job_session

JOB = "curate_orders"
PARTITION = "dt"


def main(argv: list[str]) -> CurationCounts:
    started = time.monotonic()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    args = resolve_args(
        argv,
        ["input_path", "output_path", "quarantine_path", "state_path"],
        {"run_date": today, "full_refresh": "false"},
    )
    run_date = parse_date("run_date", args["run_date"])
    if args["full_refresh"] not in ("true", "false"):
        raise JobArgumentError(f"--full_refresh: {args['full_refresh']!r} is not true or false")
    spark = job_session(JOB)

    previous = {} if args["full_refresh"] == "true" else read_state(spark, args["state_path"])
    plan = changed_partitions(partition_fingerprints(spark, args["input_path"], PARTITION), previous)
    extra = {"partitions_curated": len(plan.changed), "partitions_unchanged": plan.unchanged}
    if not plan.changed:
        counts = count_outcome(input_rows=0, curated_rows=0, reasons={})
    else:
        raw = read_partitions(spark, args["input_path"], PARTITION, plan.changed).drop(PARTITION)
        flagged = flag_order_lines(raw, run_date).persist(StorageLevel.MEMORY_AND_DISK)
        by_reason = {row["reason"]: int(row["count"]) for row in flagged.groupBy("reason").count().collect()}
        counts = count_outcome(
            input_rows=sum(by_reason.values()),
            curated_rows=by_reason.pop(None, 0),
            reasons=by_reason,
        )
        curation = split_flagged(flagged)
        validate(curation.curated, curated_order_checks(), "curated order lines")
        # One task per order date, so each dt= partition is one file; dynamic overwrite replaces only these dates.
        curation.curated.repartition(PARTITION).write.mode("overwrite").partitionBy(PARTITION).parquet(
            args["output_path"]
        )
        quarantine_day = f"{args['quarantine_path'].rstrip('/')}/{PARTITION}={run_date.isoformat()}"
        curation.quarantine.coalesce(1).write.mode("overwrite").parquet(quarantine_day)
        flagged.unpersist()
    write_state(spark, args["state_path"], plan, run_date.isoformat())

    print(counts_line(JOB, time.monotonic() - started, {**counts.as_dict(), **extra}), flush=True)
    return counts


if __name__ == "__main__":
    try:
        main(sys.argv)
    except JobArgumentError as exc:
        sys.exit(f"{JOB}: {exc}")
