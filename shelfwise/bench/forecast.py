"""`shelfwise bench forecast --data world|online-retail|world:DIR|sales-csv:FILE`: DeepAR against the classics.

The world folder's order lines become daily demand per location x SKU with the Glue job's own Spark functions
(`shelfwise.demand.demand_features`), as of the day after the last order. The last `--windows` windows of 28 days
are held out; every candidate is scored on the same windows at every level of the hierarchy (see
`shelfwise.demand.backtest`), against the sales (stocked-out days left out) and, on the synthetic world, against the
true demand the stockouts hid.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from shelfwise.bench.churn import ONLINE_RETAIL, WORLD_PREFIX, resolve_data, world_range
from shelfwise.demand.backtest import (
    BASELINE,
    BOTTOM,
    CANDIDATES,
    INDEPENDENT_SUM,
    LEVELS,
    RECONCILED,
    UNCALIBRATED,
    VARIANTS,
    BacktestResult,
    BacktestSettings,
)
from shelfwise.demand.calendar import RegionalHolidays
from shelfwise.demand.models import DeepARSettings
from shelfwise.demand.pipeline import CANDIDATE_NAMES
from shelfwise.demand.series import DemandPanel, build_panel
from shelfwise.loaders.sources import ONLINE_RETAIL_CSV

DEFAULT_WORLD = "world"
#: Online Retail sells thousands of SKUs, most of them a few times a year: its best sellers are what a planner
#: forecasts daily.
ONLINE_RETAIL_TOP_SERIES = 500
SALES_CSV_PREFIX = "sales-csv:"


def demand_frames(world: Path, top: int = 0, before: dt.date | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(daily, static) demand features of a world folder as of the day after its last order, with Spark; with `top`,
    only the `top` series that sold the most units before `before` (so that the choice knows nothing of the
    windows that follow)."""
    from shelfwise.churn.customer_features import latest_snapshot
    from shelfwise.demand.demand_features import demand_features
    from shelfwise.schemas import STOCKOUT_SCHEMA
    from shelfwise.spark import local_session, read_parquet, spark_schema

    spark = local_session("bench-forecast")
    # Millions of rows come back to pandas: through Arrow, not row by row.
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    orders = read_parquet(spark, str(world / "order_lines"))
    products = latest_snapshot(read_parquet(spark, str(world / "products.parquet")))
    stores = latest_snapshot(read_parquet(spark, str(world / "stores.parquet")))
    stockouts = read_parquet(spark, str(world / "stockouts.parquet"), empty_schema=spark_schema(STOCKOUT_SCHEMA))
    listings_file = world / "listings.parquet"
    listings = read_parquet(spark, str(listings_file)) if listings_file.is_file() else None
    _, last = world_range(world)
    features = demand_features(orders, products, stores, stockouts, listings, last + dt.timedelta(days=1))
    daily, static = features.daily, features.static
    if top:
        from pyspark.sql import functions as sf

        pair = ["store_id", "sku"]
        sold = daily.where(sf.col("date") < sf.lit(before)) if before is not None else daily
        best = sold.groupBy(*pair).agg(sf.sum("units").alias("sold")).orderBy(sf.desc("sold"), *pair).limit(top)
        daily, static = (frame.join(best.select(*pair), pair, "left_semi") for frame in (daily, static))
    return daily.toPandas(), static.toPandas()


def world_holidays(world: Path) -> RegionalHolidays:
    """The world's regional holiday calendar (`regional_holidays.parquet`), or none when the world has none."""
    path = world / "regional_holidays.parquet"
    return RegionalHolidays.from_frame(pd.read_parquet(path)) if path.is_file() else RegionalHolidays()


def true_demand(world: Path, panel: DemandPanel) -> np.ndarray | None:
    """The synthetic world's uncensored demand aligned with the panel, or None for other data."""
    path = world / "truth" / "demand.parquet"
    if not path.is_file():
        return None
    truth = pd.read_parquet(path, columns=["store_id", "sku", "date", "demand"])
    rows = pd.Series(np.arange(len(panel.keys)), index=pd.MultiIndex.from_frame(panel.keys[["store_id", "sku"]]))
    row = rows.reindex(pd.MultiIndex.from_frame(truth[["store_id", "sku"]])).to_numpy()
    day = ((pd.to_datetime(truth["date"]) - pd.Timestamp(panel.start)) / pd.Timedelta(days=1)).to_numpy()
    keep = ~np.isnan(row.astype(float)) & (day >= 0) & (day < panel.n_days)
    out = np.full(panel.units.shape, np.nan, dtype=np.float32)
    out[row[keep].astype(np.int64), day[keep].astype(np.int64)] = truth["demand"].to_numpy()[keep]
    return np.where(np.isnan(panel.units), np.nan, out)


def resolve_world(data: str) -> tuple[str, Path]:
    """(label, world folder) of `--data`; generates the default world or loads a sales CSV when needed."""
    from shelfwise.config import settings

    if data == DEFAULT_WORLD:
        from shelfwise.world.generate import GENERATOR_VERSION, generate_world

        world = settings().work_dir / "worlds" / "default-42"
        manifest = world / "manifest.json"
        # A world of an older generator lacks what this code reads (e.g. the regional holidays): made again.
        if not manifest.is_file() or json.loads(manifest.read_text())["generator_version"] != GENERATOR_VERSION:
            generate_world("default", 42, world)
        return "default world", world
    if data.startswith(WORLD_PREFIX):
        world = Path(data[len(WORLD_PREFIX) :]).expanduser()
        if not (world / "manifest.json").is_file():
            raise typer.BadParameter(f"{world} is not a world folder (no manifest.json)", param_hint="--data")
        return str(world), world
    if data == ONLINE_RETAIL:
        return resolve_data(ONLINE_RETAIL, ONLINE_RETAIL_CSV, reload=False)
    if data.startswith(SALES_CSV_PREFIX):
        from shelfwise.loaders.sales_csv import load_sales_csv

        source = Path(data[len(SALES_CSV_PREFIX) :]).expanduser()
        if not source.is_file():
            raise typer.BadParameter(f"{source} does not exist", param_hint="--data")
        world = settings().work_dir / "worlds" / f"sales-csv-{source.stem}"
        load_sales_csv(source, world)
        return str(source), world
    raise typer.BadParameter(
        f"expected {DEFAULT_WORLD}, {ONLINE_RETAIL}, {WORLD_PREFIX}DIR or {SALES_CSV_PREFIX}FILE, got {data!r}",
        param_hint="--data",
    )


def results_table(result: BacktestResult, against: str) -> Table:
    table = Table(title=f"wQL (MASE) against {against}, mean of {len(result.windows)} windows; lower is better")
    table.add_column("model")
    for level in LEVELS:
        table.add_column(level, justify="right")
    for model in (*CANDIDATES, RECONCILED, UNCALIBRATED):
        cells = []
        for level in LEVELS:
            wql = result.mean(against, level, model, "wql")
            best = min(result.mean(against, level, m, "wql") for m in (*CANDIDATES, RECONCILED))
            text = f"{wql:.3f} ({result.mean(against, level, model, 'mase'):.2f})"
            cells.append(f"[bold]{text}[/bold]" if wql == best else text)
        table.add_row(CANDIDATE_NAMES.get(model, model), *cells)
    return table


def calibration_table(result: BacktestResult, against: str) -> Table:
    table = Table(title=f"80% interval coverage / bias against {against} (target 0.80 / 0)")
    table.add_column("model")
    for level in LEVELS:
        table.add_column(level, justify="right")
    for model in (*CANDIDATES, RECONCILED):
        table.add_row(
            CANDIDATE_NAMES.get(model, model),
            *(
                f"{result.mean(against, lv, model, 'coverage_80'):.2f} / {result.mean(against, lv, model, 'bias'):+.2f}"
                for lv in LEVELS
            ),
        )
    table.add_row(
        "DeepAR before the spread factor",
        *(f"{result.mean(against, lv, UNCALIBRATED, 'coverage_80'):.2f}" for lv in LEVELS),
    )
    aggregates = [lv for lv in LEVELS if lv != BOTTOM]
    table.add_row(
        "DeepAR, paths summed independently",
        "",
        *(f"{result.mean(against, lv, INDEPENDENT_SUM, 'coverage_80'):.2f}" for lv in aggregates),
    )
    for variant in VARIANTS:
        table.add_row(
            f"spread factor per window, {CANDIDATE_NAMES.get(variant, variant)}",
            *(" / ".join(f"{w.spread[variant][lv]:.2f}" for w in result.windows) for lv in LEVELS),
        )
    return table


def event_weeks(result: BacktestResult, holidays: RegionalHolidays) -> dict[str, dict[str, float]]:
    """wQL against sales at the store x SKU level over the retail peaks inside the scored windows (Thanksgiving week
    to Cyber Monday, the week before Christmas) and over the regional holidays and their eves at the stores of
    their region; {days: {model: wQL}}, days with no scored series left out."""
    from shelfwise.demand.metrics import QUANTILES, weighted_quantile_loss
    from shelfwise.demand.models import vincentize
    from shelfwise.retail_calendar import black_friday, cyber_monday

    cells: dict[str, list[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]] = {}
    for window in result.sampled:
        n_series, horizon = window.sales.shape
        year = window.cutoff.year
        masks = {}
        for week, (first, last) in {
            "Black Friday week": (black_friday(year) - dt.timedelta(days=4), cyber_monday(year)),
            "week before Christmas": (dt.date(year, 12, 18), dt.date(year, 12, 24)),
        }.items():
            first_day, last_day = (first - window.cutoff).days, (last - window.cutoff).days
            if first_day >= 0 and last_day < horizon:
                masks[week] = np.zeros((n_series, horizon), dtype=bool)
                masks[week][:, first_day : last_day + 1] = True
        regional = np.zeros((n_series, horizon), dtype=bool)
        for i, region in enumerate(window.keys["region"].astype(str)):
            regional[i] = holidays.covariates(region, window.cutoff, horizon).any(axis=0)
        if regional.any():
            masks["regional holidays and eves"] = regional
        paths = {**window.paths, "deepar+autoets": vincentize(window.paths["deepar"], window.paths["autoets"])}
        for name, mask in masks.items():
            cells.setdefault(name, []).append((window.sales, paths, mask))
    out: dict[str, dict[str, float]] = {}
    for name, parts in cells.items():
        actual = np.concatenate([np.where(mask, sales, np.nan)[mask.any(axis=1)] for sales, _, mask in parts])
        out[name] = {}
        for model in (*CANDIDATES, RECONCILED):
            quantiles = np.concatenate(
                [np.quantile(p[model], QUANTILES, axis=1)[:, mask.any(axis=1)] for _, p, mask in parts], axis=1
            )
            out[name][model] = weighted_quantile_loss(actual, quantiles, np.isfinite(actual))
    return out


def event_table(weeks: dict[str, dict[str, float]]) -> Table:
    table = Table(title="wQL (store x SKU, against sales) over the retail peaks; margin: 1 - DeepAR / seasonal naive")
    table.add_column("days")
    for model in (*CANDIDATES, RECONCILED):
        table.add_column(CANDIDATE_NAMES.get(model, model), justify="right")
    table.add_column("DeepAR's margin (plain / reconciled)", justify="right")
    for week, wql in weeks.items():
        margins = " / ".join(f"{1 - wql[m] / wql[BASELINE]:+.1%}" for m in ("deepar", RECONCILED))
        table.add_row(week, *(f"{wql[m]:.3f}" for m in (*CANDIDATES, RECONCILED)), margins)
    return table


def key_line(result: BacktestResult) -> str:
    def wql(model: str, level: str = BOTTOM) -> float:
        return result.mean("sales", level, model, "wql")

    def coverage(model: str, level: str) -> float:
        return result.mean("sales", level, model, "coverage_80")

    best = min(CANDIDATES, key=wql)
    return (
        f"forecast: {result.series:,} series, windows from {', '.join(str(w.cutoff) for w in result.windows)}; "
        f"store x SKU wQL: best {CANDIDATE_NAMES[best]} {wql(best):.3f}, DeepAR {wql('deepar'):.3f} "
        f"({1 - wql('deepar') / wql(BASELINE):+.1%} vs seasonal naive, "
        f"{1 - wql('deepar') / wql('autoets'):+.1%} vs AutoETS); total wQL DeepAR {wql('deepar', 'total'):.3f}, "
        f"AutoETS {wql('autoets', 'total'):.3f}, DeepAR reconciled {wql(RECONCILED, 'total'):.3f}; "
        f"DeepAR's 80% coverage {coverage('deepar', BOTTOM):.2f} (store x SKU) to {coverage('deepar', 'total'):.2f} "
        f"(total), reconciled {coverage(RECONCILED, BOTTOM):.2f} to {coverage(RECONCILED, 'total'):.2f}; "
        f"DeepAR training {result.seconds['deepar training']:.0f} s, "
        f"predicting {result.seconds['deepar predict']:.0f} s"
    )


def command(
    data: Annotated[
        str,
        typer.Option("--data", help=f"{DEFAULT_WORLD}, {ONLINE_RETAIL}, {WORLD_PREFIX}DIR or {SALES_CSV_PREFIX}FILE."),
    ] = DEFAULT_WORLD,
    windows: Annotated[int, typer.Option(help="Held-out windows of 28 days, ending with the data.")] = 2,
    sample_series: Annotated[int, typer.Option(help="Store x SKU series scored by every model.")] = 300,
    epochs: Annotated[int, typer.Option(help="DeepAR training epochs (of each network).")] = 10,
    networks: Annotated[int, typer.Option(min=1, help="DeepAR networks whose paths are pooled.")] = 3,
    seed: Annotated[int, typer.Option()] = 0,
    top_series: Annotated[
        int,
        typer.Option(
            min=0,
            help="Keep the N best-selling series (units before the windows); 0: every series "
            f"({ONLINE_RETAIL_TOP_SERIES} for {ONLINE_RETAIL}).",
        ),
    ] = 0,
    forecast_out: Annotated[
        Path | None,
        typer.Option(
            help="Then train on all of the history and write the next 28 days of every series on sale to this CSV "
            "(store_id, sku, date, mean, p05 .. p95) with the forecaster the backtest found best."
        ),
    ] = None,
    regional_holidays: Annotated[
        bool,
        typer.Option(help="Give DeepAR the regional holidays as covariates (off: to measure what they bring)."),
    ] = True,
) -> None:
    """wQL, MASE, RMSSE, interval coverage and bias of DeepAR and the classic forecasters, per hierarchy level."""
    from shelfwise.config import settings
    from shelfwise.demand.backtest import CALIBRATION_WINDOWS, run_backtest
    from shelfwise.demand.models import HORIZON

    console = Console()
    label, world = resolve_world(data)
    started = time.perf_counter()
    top = top_series or (ONLINE_RETAIL_TOP_SERIES if data == ONLINE_RETAIL else 0)
    _, last = world_range(world)
    before = last + dt.timedelta(days=1 - HORIZON * (windows + CALIBRATION_WINDOWS))
    with console.status("demand features (Spark)"):
        daily, static = demand_frames(world, top, before)
        holidays = world_holidays(world)
        panel = build_panel(daily, static, holidays if regional_holidays else None)
        truth = true_demand(world, panel)
    features_s = time.perf_counter() - started
    span = f"{panel.start} .. {panel.end - dt.timedelta(days=1)}"
    chosen = f", the best sellers before {before}" if top else ""
    console.print(
        f"{label}: {len(panel.keys):,} location x SKU series{chosen}, {span} (features {features_s:.0f} s); "
        f"regional holidays of {len(holidays.dates)} region(s), "
        + ("given to DeepAR" if regional_holidays else "NOT given to DeepAR (--no-regional-holidays)")
    )
    work = settings().work_dir / "bench" / "forecast"
    work.mkdir(parents=True, exist_ok=True)
    backtest = BacktestSettings(
        windows=windows,
        sample_series=sample_series,
        seed=seed,
        deepar=DeepARSettings(epochs=epochs, seed=seed, networks=networks),
    )
    with console.status("backtest") as status:
        result = run_backtest(panel, backtest, work, truth=truth, progress=status.update)
    for against in result.windows[0].scores:
        console.print(results_table(result, against))
        console.print(calibration_table(result, against))
    weeks = event_weeks(result, holidays)
    if weeks:
        console.print(event_table(weeks))
    console.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    console.print(key_line(result), soft_wrap=True)
    if forecast_out is not None:
        best = min(CANDIDATES, key=lambda m: result.mean("sales", BOTTOM, m, "wql"))
        with console.status(f"{CANDIDATE_NAMES[best]} on all of the history"):
            rows = write_forecasts(
                panel,
                best,
                DeepARSettings(epochs=epochs, seed=seed, networks=networks),
                work,
                forecast_out,
                seed,
                result,
            )
        console.print(
            f"{rows:,} rows ({CANDIDATE_NAMES[best]}, the next 28 days of every series on sale) -> {forecast_out}"
        )


def write_forecasts(
    panel: DemandPanel,
    forecaster: str,
    settings: DeepARSettings,
    work: Path,
    out: Path,
    seed: int,
    backtest: BacktestResult | None = None,
) -> int:
    """The next 28 days of every series on sale on the panel's last day, as the batch forecast computes them (with
    the reconciliation and spread factors `backtest` chose, if given)."""
    from shelfwise.demand.batch_forecast import forecast_active, forecast_frame, served_paths
    from shelfwise.demand.models import train_deepar

    batch = forecast_active(panel, forecaster, train_deepar(panel, settings, work / "all-history"), 200, seed)
    spread, reconcile = backtest.serving(forecaster) if backtest is not None else ({}, False)
    paths = served_paths(batch, spread, reconcile, seed)
    frame = forecast_frame(batch.panel.keys, paths, panel.end, batch.cold_start).drop(columns=["cold_start"])
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, float_format="%.3f")
    return len(frame)
