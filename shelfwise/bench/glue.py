"""`shelfwise bench glue customer_features|demand_features`: throughput of Glue jobs' cores on local Spark, by scale.

`customer_features`: for each scale it lays a generated world's order lines out as the raw zone does (`dt=`
partitions), holding back the last day; curates every partition as a first run does and writes the curated lines by
day; then lands the held back day and curates again, as the daily run does (only the new partition:
`shelfwise.curation.incremental`); then computes the churn training set (every 28 days) and the serving features and
writes them: the work of `curate_orders` + `customer_features` without the lake copies. The baseline, measured in
the same session, is a plain Parquet copy of the same order lines (the I/O floor). Targets: four times the rows cost
at most five times the time, and a daily incremental curation costs a small fraction of a full one.

`demand_features`: curates the world's order lines (untimed: the job reads curated lines), then does what
`glue_jobs/demand_features.py` does at the run date after the last order: the daily demand of every location x SKU
and their static attributes, checked and written as the `as_of=` partition, and its counts. The baseline is a plain
Parquet copy of the curated lines. Target: four times the order lines cost at most five times the time.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

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

_Result = TypeVar("_Result")


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
    results = _run_by_scale(scales, seed, bench_world, steps=4, first_step="copy floor")
    console.print(_table(results))
    console.print(_summary(results))


@app.command("demand_features")
def demand_command(
    scales: Annotated[str, typer.Option(help="Comma-separated world scales, smallest first.")] = "default,large",
    seed: Annotated[int, typer.Option(help="World seed; worlds are generated once and reused.")] = 42,
) -> None:
    """Rows/s of the demand_features job's core on local Spark, and how the time grows with the rows."""
    results = _run_by_scale(scales, seed, bench_demand_world, steps=3, first_step="curating (untimed)")
    console.print(_demand_table(results))
    console.print(_demand_summary(results))


#: One scale's benchmark: (session, scale, world folder, scratch folder, progress report) -> its result.
BenchWorld = Callable[["SparkSession", str, Path, Path, Callable[[str], None]], _Result]


def _run_by_scale(scales: str, seed: int, bench: BenchWorld[_Result], steps: int, first_step: str) -> list[_Result]:
    """`bench` on each scale's world (generated once, then reused) in one local Spark session, with progress."""
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
            task = progress.add_task(f"{name}: {first_step}", total=steps)

            def step(done: str, name: str = name, task: TaskID = task) -> None:
                progress.update(task, description=f"{name}: {done}", advance=1)

            scratch = settings().work_dir / "bench" / "glue" / name
            results.append(bench(spark, name, world, scratch, step))
    return results


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


@dataclass(frozen=True)
class DemandBench:
    scale: str
    order_lines: int
    daily_rows: int
    static_rows: int
    copy_seconds: float
    seconds: float  # the job's work: features, checks, writes and counts

    @property
    def rows_per_second(self) -> float:
        return self.order_lines / self.seconds


def bench_demand_world(
    spark: SparkSession, scale: str, world: Path, scratch: Path, report: Callable[[str], None] = print
) -> DemandBench:
    """Curate the world's order lines (untimed), then time the copy floor and the demand_features job's work."""
    from pyspark.sql import functions as sf

    shutil.rmtree(scratch, ignore_errors=True)
    by_day = spark.read.parquet(str(world / "order_lines")).withColumn("dt", sf.to_date("ts"))
    raw, curated = str(scratch / "raw"), str(scratch / "curated")
    by_day.write.partitionBy("dt").parquet(raw)
    _curate(spark, raw, curated, str(scratch / "state"), scratch / "quarantine")
    order_lines = spark.read.parquet(curated).count()
    report("curated (untimed), copy floor")

    started = time.perf_counter()
    spark.read.parquet(curated).write.parquet(str(scratch / "copy"))
    copy_seconds = time.perf_counter() - started
    report("copy floor done, demand_features")

    started = time.perf_counter()
    daily_rows, static_rows = _demand_job(spark, world, curated, scratch / "features")
    seconds = time.perf_counter() - started
    report("done")
    shutil.rmtree(scratch, ignore_errors=True)
    return DemandBench(scale, order_lines, daily_rows, static_rows, copy_seconds, seconds)


def _demand_job(spark: SparkSession, world: Path, curated: str, out: Path) -> tuple[int, int]:
    """What `glue_jobs/demand_features.py` does at its default run date (the day after the last order), reading
    the world's tables where the job reads the raw zone's: returns the daily and static rows written."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as sf

    from shelfwise.churn.customer_features import latest_snapshot, order_day_range
    from shelfwise.churn.features import VERSION_COLUMN
    from shelfwise.data_quality import validate
    from shelfwise.demand.demand_features import (
        AS_OF,
        FEATURE_SET_VERSION,
        daily_checks,
        demand_features,
        static_checks,
    )

    orders = spark.read.parquet(curated).persist(StorageLevel.MEMORY_AND_DISK)
    products = latest_snapshot(spark.read.parquet(str(world / "products.parquet")))
    stores = latest_snapshot(spark.read.parquet(str(world / "stores.parquet")))
    stockouts = spark.read.parquet(str(world / "stockouts.parquet"))
    as_of = order_day_range(orders)[1] + dt.timedelta(days=1)
    # The worlds have no listings table: every SKU is on sale at every store, the job's default.
    features = demand_features(orders, products, stores, stockouts, None, as_of)
    daily = features.daily.persist(StorageLevel.MEMORY_AND_DISK)
    static = features.static.persist(StorageLevel.MEMORY_AND_DISK)
    for frame, checks, name in ((daily, daily_checks(), "daily"), (static, static_checks(), "static")):
        validate(frame, checks, name)
        stamped = frame.withColumn(VERSION_COLUMN, sf.lit(FEATURE_SET_VERSION)).withColumn(AS_OF, sf.lit(as_of))
        stamped.repartition(AS_OF).write.partitionBy(AS_OF).parquet(str(out / name))
    # The job's counts line reads these too, so they are part of its work.
    daily.agg(sf.count(sf.lit(1)), sf.sum(sf.col("censored").cast("long"))).collect()
    features.sold_outside_life.count()
    rows = daily.count(), static.count()
    for frame in (static, daily, orders):
        frame.unpersist()
    return rows


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


def _demand_table(results: list[DemandBench]) -> Table:
    table = Table(title="demand_features on local Spark (local[2])")
    for column in ("scale", "order lines", "daily rows", "static rows", "floor s", "job s", "rows/s", "/floor"):
        table.add_column(column, justify="left" if column == "scale" else "right")
    for r in results:
        table.add_row(
            r.scale,
            f"{r.order_lines:,}",
            f"{r.daily_rows:,}",
            f"{r.static_rows:,}",
            f"{r.copy_seconds:.1f}",
            f"{r.seconds:.1f}",
            f"{r.rows_per_second:,.0f}",
            f"{r.seconds / r.copy_seconds:.1f}x",
        )
    return table


def _demand_summary(results: list[DemandBench]) -> str:
    figures = "; ".join(
        f"{r.scale} {r.order_lines:,} lines -> {r.daily_rows:,} daily rows in {r.seconds:.1f} s "
        f"({r.rows_per_second:,.0f} lines/s, {r.seconds / r.copy_seconds:.1f}x the copy floor)"
        for r in results
    )
    if len(results) < 2:
        return f"glue demand_features: {figures}"
    small, big = results[0], results[-1]
    rows_ratio = big.order_lines / small.order_lines
    time_ratio = big.seconds / small.seconds
    verdict = "meets" if time_ratio <= SCALING_TARGET * rows_ratio else "misses"
    # The output grid (locations x SKUs x days) need not grow as the order lines do; say how it grew.
    return (
        f"glue demand_features: {figures}; {big.scale}/{small.scale}: {rows_ratio:.2f}x the order lines "
        f"({big.daily_rows / small.daily_rows:.2f}x the daily rows) took {time_ratio:.2f}x the time ({verdict} the "
        f"target of at most {SCALING_TARGET:.2f}x the order lines ratio)"
    )
