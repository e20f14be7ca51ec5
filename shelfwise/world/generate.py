"""`generate_world`: build a synthetic retailer from a scale and a seed and write its world folder."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shelfwise.schemas import SCHEMA_VERSION, STOCKOUT_SCHEMA
from shelfwise.world import clickstream, customers, demand, images, tables
from shelfwise.world.calendar import Calendar, HolidayEffects, holiday_effects
from shelfwise.world.catalog import build_products, build_stores
from shelfwise.world.pricing import PricePlan, plan_promotions, shelf_prices
from shelfwise.world.scales import ScaleSpec, scale_spec
from shelfwise.world.simulate import Month, World, simulate
from shelfwise.world.writer import PartWriter, StreamWriter, write_manifest, write_parquet

GENERATOR_VERSION = "1.1"
#: Share of the progress bar each stage takes.
_SETUP, _IMAGES, _SIMULATE = 0.04, 0.04, 0.88
_ACTIVE_SHARE = 0.55  # rough share of customers active on an average day (growth and churn), for calibration
_MAX_MEAN_RATE = 1 / 12  # customers order every twelve days at most on average; a small base leaves more walk-ins

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class WorldSummary:
    out_dir: Path
    scale: str
    seed: int
    start_date: dt.date
    end_date: dt.date
    rows: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class _Setup:
    world: World
    styles: tuple[images.Style, ...]
    effects: HolidayEffects
    prices: PricePlan


def _build(spec: ScaleSpec, seed: int) -> tuple[_Setup, np.random.Generator]:
    """Everything fixed before the first day, each part from its own random stream."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    cal = Calendar(spec.start, spec.end)
    stores = build_stores(spec, streams[0])
    products = build_products(spec, streams[1])
    styles = images.draw_styles(products, streams[2])
    prices = PricePlan(
        shelf_prices(products, cal.n_days, streams[3]),
        plan_promotions(products, spec.n_physical_stores, cal.n_days, streams[3]),
    )
    effects = holiday_effects(cal, stores.regions)
    model = demand.build_model(cal, stores, products, prices, effects)
    model, totals = demand.with_volume(model, demand.line_totals(model, cal.month_chunks()), spec.orders_per_store_day)
    orders_per_day = float((totals / (1.0 + np.take(demand.EXTRA_LINES, stores.channel))).sum(axis=1).mean())
    mean_rate = min(spec.customer_order_share * orders_per_day / (spec.n_customers * _ACTIVE_SHARE), _MAX_MEAN_RATE)
    base = customers.build_customers(spec.n_customers, cal.n_days, stores, totals.sum(axis=1), mean_rate, streams[4])
    world = World(
        cal, stores, products, images.colour_index(styles), model, totals, base, spec.browse_sessions_per_order
    )
    return _Setup(world, styles, effects, prices), streams[5]


class _MonthSink:
    """Writes each simulated month as it arrives."""

    def __init__(self, root: Path, setup: _Setup) -> None:
        self.setup = setup
        self.vocabulary = clickstream.vocabulary()
        self.order_lines = PartWriter(root, "order_lines")
        self.clickstream = PartWriter(root, "clickstream")
        self.stockouts = StreamWriter(root, "stockouts.parquet", STOCKOUT_SCHEMA)
        self.demand = StreamWriter(root, "truth/demand.parquet", tables.TRUTH_DEMAND_SCHEMA)

    def __call__(self, month: Month) -> None:
        w = self.setup.world
        self.order_lines.write(tables.order_lines_table(month.lines, w.stores, w.products))
        self.clickstream.write(tables.clickstream_table(month.events, w.products, self.vocabulary))
        self.stockouts.write(tables.stockouts_table(month.cells, w.stores, w.products, w.cal))
        self.demand.write(tables.truth_demand_table(month.cells, w.stores, w.products, w.cal))

    def close(self) -> None:
        self.stockouts.close()
        self.demand.close()


def _write_images(root: Path, setup: _Setup, report: Callable[[float], None]) -> None:
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    products = setup.world.products
    for k, (category, style) in enumerate(zip(products.category, setup.styles, strict=True)):
        (folder / f"{products.ids[k]}.png").write_bytes(images.png_bytes(images.render(int(category), style)))
        if k % 50 == 0:
            report(k / products.n)


def _prepare(out_dir: Path) -> Path:
    """A fresh staging folder next to `out_dir`; refuses to overwrite a folder that is not a world."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").exists():
        raise FileExistsError(f"{out_dir} exists and is not a world folder (no manifest.json); not overwriting it")
    staging = out_dir.parent / f".{out_dir.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def generate_world(scale: str, seed: int, out_dir: Path, progress: Progress | None = None) -> WorldSummary:
    """Generate the `scale` world for `seed` into `out_dir` (replacing a world already there).

    The same scale and seed always give byte-identical files. `progress(stage, fraction)` is called as work
    advances, with the overall fraction done.
    """
    spec = scale_spec(scale)
    started = time.perf_counter()
    report = progress or (lambda stage, fraction: None)
    out_dir = Path(out_dir)
    staging = _prepare(out_dir)
    report("building catalogue and customers", 0.0)
    setup, rng = _build(spec, seed)
    w = setup.world
    write_parquet(tables.stores_table(w.stores, w.cal), staging / "stores.parquet")
    write_parquet(tables.products_table(w.products, setup.styles, w.cal), staging / "products.parquet")
    holidays = tables.regional_holidays_table(w.stores.regions, w.cal)
    write_parquet(holidays, staging / "regional_holidays.parquet")
    _write_images(staging, setup, lambda f: report("drawing product images", _SETUP + _IMAGES * f))
    sink = _MonthSink(staging, setup)
    simulate(w, rng, sink, lambda f: report("simulating days", _SETUP + _IMAGES + _SIMULATE * f))
    sink.close()
    report("writing ground truth", _SETUP + _IMAGES + _SIMULATE)
    truth = {
        "truth/categories.parquet": tables.truth_categories_table(),
        "truth/promotions.parquet": tables.truth_promotions_table(setup.prices.promotions, w.stores, w.products, w.cal),
        "truth/customers.parquet": tables.truth_customers_table(w.customers, w.stores, w.cal),
        "truth/holidays.parquet": tables.truth_holidays_table(setup.effects),
    }
    for relative, table in truth.items():
        write_parquet(table, staging / relative)
    write_parquet(tables.customers_table(w.customers, w.stores, w.cal), staging / "customers.parquet")
    rows = {
        "stores": w.stores.n,
        "products": w.products.n,
        "customers": w.customers.n,
        "order_lines": sink.order_lines.rows,
        "clickstream": sink.clickstream.rows,
        "stockouts": sink.stockouts.rows,
        "regional_holidays": holidays.num_rows,
    }
    files = {
        "stores": ["stores.parquet"],
        "products": ["products.parquet"],
        "customers": ["customers.parquet"],
        "order_lines": sink.order_lines.files,
        "clickstream": sink.clickstream.files,
        "stockouts": ["stockouts.parquet"],
        "regional_holidays": ["regional_holidays.parquet"],
    }
    truth_rows = {relative: table.num_rows for relative, table in truth.items()}
    truth_rows[sink.demand.relative] = sink.demand.rows
    manifest: dict[str, Any] = {
        "kind": "synthetic",
        "scale": spec.name,
        "seed": seed,
        "start_date": spec.start.isoformat(),
        "end_date": spec.end.isoformat(),
        "generator_version": GENERATOR_VERSION,
        "schema_version": SCHEMA_VERSION,
        "tables": {name: {"rows": rows[name], "files": files[name]} for name in rows},
        "images": {"count": w.products.n, "prefix": "images/", "width": images.SIZE, "height": images.SIZE},
        "truth": {relative: {"rows": n} for relative, n in sorted(truth_rows.items())},
    }
    write_manifest(staging / "manifest.json", manifest)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    report("done", 1.0)
    all_rows = {**rows, **{relative.removesuffix(".parquet"): n for relative, n in truth_rows.items()}}
    return WorldSummary(out_dir, spec.name, seed, spec.start, spec.end, all_rows, time.perf_counter() - started)
