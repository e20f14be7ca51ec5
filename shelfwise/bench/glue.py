"""`shelfwise bench glue customer_features`: throughput of the two Glue jobs' cores on local Spark, by world scale.

For each scale it lays a generated world's order lines out as the raw zone does (`dt=` partitions), holding back
the last day; curates every partition as a first run does and writes the curated lines by day; then lands the held
back day and curates again, as the daily run does (only the new partition: `shelfwise.curation.incremental`);
then computes the churn training set (every 28 days) and the serving features and writes them: the work of
`curate_orders` + `customer_features` without the lake copies. The baseline, measured in the same session, is a
plain Parquet copy of the same order lines (the I/O floor). Targets: four times the rows cost at most five times
the time, and a daily incremental curation costs a small fraction of a full one.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

app = typer.Typer(no_args_is_help=True)
console = Console()

STEP_DAYS = 28
#: Time may grow at most this much faster than the rows (4x rows in at most 5x the time).
SCALING_TARGET = 5 / 4


@dataclass(frozen=True)
class GlueBench:
    scale: str
    order_lines: int
    cutoffs: int
    training_rows: int
    curate_seconds: float
    features_seconds: float
    copy_seconds: float
    daily_seconds: float  # curate_orders on the day after, incrementally
    daily_lines: int
    partitions: int

    @property
    def seconds(self) -> float:
        return self.curate_seconds + self.features_seconds

    @property
    def rows_per_second(self) -> float:
        return self.order_lines / self.seconds


@app.command("customer_features")
def command(
    scales: Annotated[str, typer.Option(help="Comma-separated world scales, smallest first.")] = "default,large",
    seed: Annotated[int, typer.Option(help="World seed; worlds are generated once and reused.")] = 42,
) -> None:
    """Rows/s of curate_orders + customer_features on local Spark, and how the time grows with the rows."""
    from shelfwise.config import settings
    from shelfwise.spark import local_session
    from shelfwise.world import scale_spec

    names = [name.strip() for name in scales.split(",") if name.strip()]
    try:
        for name in names:
            scale_spec(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scales") from None
    worlds = {name: _world(name, seed, settings().work_dir / "worlds" / f"{name}-{seed}") for name in names}
    spark = local_session("shelfwise-bench-glue", shuffle_partitions=8, driver_memory="8g")
    results = []
    columns = (TextColumn("{task.description:<40}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        for name, world in worlds.items():
            task = progress.add_task(f"{name}: copy floor", total=4)

            def step(done: str, name: str = name, task: TaskID = task) -> None:
                progress.update(task, description=f"{name}: {done}", advance=1)

            scratch = settings().work_dir / "bench" / "glue" / name
            results.append(bench_world(spark, name, world, scratch, step))
    console.print(_table(results))
    console.print(_summary(results))


def bench_world(
    spark: SparkSession, scale: str, world: Path, scratch: Path, report: Callable[[str], None] = print
) -> GlueBench:
    """Time the copy floor, a full and a daily curation, and features on one world folder; outputs go to `scratch`."""
    from pyspark.sql import functions as sf

    from shelfwise.churn.customer_features import (
        customer_features,
        cutoff_range,
        labelled_cutoffs,
        order_day_range,
        with_labels,
    )
    from shelfwise.churn.features import LABEL_HORIZON_DAYS

    shutil.rmtree(scratch, ignore_errors=True)
    source = str(world / "order_lines")
    order_lines = spark.read.parquet(source).count()

    started = time.perf_counter()
    spark.read.parquet(source).write.parquet(str(scratch / "copy"))
    copy_seconds = time.perf_counter() - started
    report("copy floor done, full curate_orders")

    raw = str(scratch / "raw")
    last_day = spark.read.parquet(source).agg(sf.max(sf.to_date("ts"))).collect()[0][0]
    by_day = spark.read.parquet(source).withColumn("dt", sf.to_date("ts"))
    by_day.where(sf.col("dt") < sf.lit(last_day)).write.partitionBy("dt").parquet(raw)
    curated_path, state = str(scratch / "curated"), str(scratch / "state")
    started = time.perf_counter()
    partitions = _curate(spark, raw, curated_path, state, scratch / "quarantine")
    curate_seconds = time.perf_counter() - started
    report("full curate_orders done, daily curate_orders")

    by_day.where(sf.col("dt") == sf.lit(last_day)).write.mode("append").partitionBy("dt").parquet(raw)
    daily_lines = spark.read.parquet(f"{raw}/dt={last_day.isoformat()}").count()
    started = time.perf_counter()
    daily_partitions = _curate(spark, raw, curated_path, state, scratch / "quarantine")
    daily_seconds = time.perf_counter() - started
    if daily_partitions != 1:
        raise RuntimeError(f"the daily run curated {daily_partitions} partitions, expected the new day only")
    report("daily curate_orders done, customer_features")

    started = time.perf_counter()
    orders = spark.read.parquet(curated_path)
    first, last = order_day_range(orders)
    horizon = LABEL_HORIZON_DAYS
    cutoffs = labelled_cutoffs(cutoff_range(first + dt.timedelta(days=horizon), last, STEP_DAYS), last, horizon)
    serving_cutoff = last + dt.timedelta(days=1)
    products = spark.read.parquet(str(world / "products.parquet"))
    customers = spark.read.parquet(str(world / "customers.parquet"))
    stockouts = spark.read.parquet(str(world / "stockouts.parquet"))
    features = customer_features(orders, products, customers, stockouts, [*cutoffs, serving_cutoff]).cache()
    training = with_labels(features, orders, cutoffs, horizon)
    training.repartition("cutoff").write.partitionBy("cutoff").parquet(str(scratch / "training"))
    features.where(sf.col("cutoff") == sf.lit(serving_cutoff)).write.parquet(str(scratch / "serving"))
    training_rows = spark.read.parquet(str(scratch / "training")).count()
    features.unpersist()
    features_seconds = time.perf_counter() - started
    report("done")
    shutil.rmtree(scratch, ignore_errors=True)
    return GlueBench(
        scale,
        order_lines,
        len(cutoffs),
        training_rows,
        curate_seconds,
        features_seconds,
        copy_seconds,
        daily_seconds,
        daily_lines,
        partitions,
    )


def _curate(spark: SparkSession, raw: str, curated: str, state: str, quarantine: Path) -> int:
    """What `glue_jobs/curate_orders.py` does: curate the partitions new or changed since the state; returns
    how many it curated."""
    from shelfwise.curation.incremental import (
        changed_partitions,
        partition_fingerprints,
        read_partitions,
        read_state,
        write_state,
    )
    from shelfwise.curation.orders import curate_orders

    plan = changed_partitions(partition_fingerprints(spark, raw, "dt"), read_state(spark, state))
    if plan.changed:
        curation = curate_orders(read_partitions(spark, raw, "dt", plan.changed).drop("dt"), dt.date(2100, 1, 1))
        curation.curated.repartition("dt").write.mode("overwrite").partitionBy("dt").parquet(curated)
        curation.quarantine.write.mode("overwrite").parquet(str(quarantine))
    write_state(spark, state, plan, "2100-01-01")
    return len(plan.changed)


def _world(scale: str, seed: int, folder: Path) -> Path:
    """The world folder of `scale` and `seed`, generated (with progress) unless it is already there."""
    if (folder / "manifest.json").exists():
        return folder
    from shelfwise.world import generate_world

    columns = (TextColumn("{task.description:<40}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(f"generating the {scale} world", total=1.0)
        generate_world(scale, seed, folder, progress=lambda stage, done: progress.update(task, completed=done))
    return folder


def _table(results: list[GlueBench]) -> Table:
    table = Table(title="Glue cores on local Spark (local[2])")
    for column in ("scale", "lines", "cutoffs", "train rows", "floor s", "curate s", "+1 day s", "day/full",
                   "feat. s", "total s", "rows/s", "/floor"):  # fmt: skip
        table.add_column(column, justify="left" if column == "scale" else "right")
    for r in results:
        table.add_row(
            r.scale,
            f"{r.order_lines:,}",
            str(r.cutoffs),
            f"{r.training_rows:,}",
            f"{r.copy_seconds:.1f}",
            f"{r.curate_seconds:.1f}",
            f"{r.daily_seconds:.1f}",
            f"{r.daily_seconds / r.curate_seconds:.2f}",
            f"{r.features_seconds:.1f}",
            f"{r.seconds:.1f}",
            f"{r.rows_per_second:,.0f}",
            f"{r.seconds / r.copy_seconds:.1f}x",
        )
    return table


def _summary(results: list[GlueBench]) -> str:
    figures = "; ".join(
        f"{r.scale} {r.order_lines:,} lines in {r.seconds:.1f} s ({r.rows_per_second:,.0f} rows/s), the next day "
        f"({r.daily_lines:,} lines, 1 of {r.partitions + 1} partitions) curated in {r.daily_seconds:.1f} s = "
        f"{r.daily_seconds / r.curate_seconds:.0%} of the full curation"
        for r in results
    )
    if len(results) < 2:
        return f"glue customer_features: {figures}"
    small, big = results[0], results[-1]
    rows_ratio = big.order_lines / small.order_lines
    time_ratio = big.seconds / small.seconds
    verdict = "meets" if time_ratio <= SCALING_TARGET * rows_ratio else "misses"
    return (
        f"glue customer_features: {figures}; {big.scale}/{small.scale}: {rows_ratio:.2f}x rows took "
        f"{time_ratio:.2f}x the time ({verdict} the target of at most {SCALING_TARGET:.2f}x the rows ratio)"
    )
