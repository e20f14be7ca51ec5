"""Glue job `curate_orders`: raw order lines -> curated order lines by order date, rejected rows -> quarantine.

Arguments (Glue `--name value`): `--input_path` (raw/order_lines/), `--output_path` (curated/order_lines/),
`--quarantine_path` (quarantine/curate_orders/; this run writes `dt=<run_date>/` under it) and optionally
`--run_date` (YYYY-MM-DD, default today in UTC; rows stamped after it are quarantined as `future_ts`).
S3 URIs in Glue, local folders locally.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from pyspark import StorageLevel

from shelfwise.data_quality import curated_order_checks, validate
from shelfwise.glue_args import JobArgumentError, parse_date, resolve_args
from shelfwise.job_log import counts_line
from shelfwise.orders_curation import CurationCounts, count_outcome, flag_order_lines, split_flagged
from shelfwise.spark import job_session, read_parquet

JOB = "curate_orders"


def main(argv: list[str]) -> CurationCounts:
    started = time.monotonic()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    args = resolve_args(argv, ["input_path", "output_path", "quarantine_path"], {"run_date": today})
    run_date = parse_date("run_date", args["run_date"])
    spark = job_session(JOB)

    raw = read_parquet(spark, args["input_path"])
    flagged = flag_order_lines(raw, run_date).persist(StorageLevel.MEMORY_AND_DISK)
    by_reason = {row["reason"]: int(row["count"]) for row in flagged.groupBy("reason").count().collect()}
    counts = count_outcome(
        input_rows=sum(by_reason.values()),
        curated_rows=by_reason.pop(None, 0),
        reasons=by_reason,
    )
    curation = split_flagged(flagged)
    validate(curation.curated, curated_order_checks(), "curated order lines")

    # One task per order date, so each dt= partition is one file rather than one per shuffle partition.
    curation.curated.repartition("dt").write.mode("overwrite").partitionBy("dt").parquet(args["output_path"])
    quarantine_day = f"{args['quarantine_path'].rstrip('/')}/dt={run_date.isoformat()}"
    curation.quarantine.coalesce(1).write.mode("overwrite").parquet(quarantine_day)
    flagged.unpersist()

    print(counts_line(JOB, time.monotonic() - started, counts.as_dict()), flush=True)
    return counts


if __name__ == "__main__":
    try:
        main(sys.argv)
    except JobArgumentError as exc:
        sys.exit(f"{JOB}: {exc}")
