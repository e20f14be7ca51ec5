"""A small raw zone (products, customers, order lines, stockouts) for the Glue job tests, made by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession

from shelfwise.schemas import CUSTOMER_SCHEMA, ORDER_LINE_SCHEMA, PRODUCT_SCHEMA, STOCKOUT_SCHEMA
from shelfwise.spark import spark_schema

START = dt.date(2024, 1, 1)
DAYS = 366
SNAPSHOT = START + dt.timedelta(days=DAYS - 1)
STORES = ("S001", "S002", "S003")
CATEGORIES = ("tops", "shoes", "bags", "home", "toys")
#: Days on which the shops trade: few enough to keep the number of dt= partition files (and Spark tasks) small.
TRADING_DAYS = tuple(range(0, DAYS, 9))
#: Bad rows added to the clean history, each breaking one rule.
BAD_ROWS = 4


def make_raw_tables(n_customers: int = 40, n_orders: int = 1500, seed: int = 7) -> dict[str, pa.Table]:
    """A year of orders of `n_customers` (plus walk-ins) at three stores, with returns, promos and stockouts."""
    rng = np.random.default_rng(seed)
    skus = [f"SKU{i:05d}" for i in range(20)]
    products = pa.Table.from_pylist(
        [
            {
                "sku": sku,
                "department": "dept",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "brand": "brand",
                "base_price": 5.0 + i,
                "launch_date": START,
                "end_date": None,
                "image_key": None,
                "attributes": {},
            }
            for i, sku in enumerate(skus)
        ],
        schema=PRODUCT_SCHEMA,
    )
    customer_ids = [f"C{i:06d}" for i in range(n_customers)]
    # Registered customers who never buy: the cold starts at every cutoff after they sign up.
    never_buy = [f"N{i:06d}" for i in range(3)]
    customers = pa.Table.from_pylist(
        [
            {"customer_id": c, "signup_date": START - dt.timedelta(days=int(rng.integers(0, 400))), "region": "north",
             "channel": "store"}
            for c in [*customer_ids, *never_buy]
        ],
        schema=CUSTOMER_SCHEMA,
    )  # fmt: skip
    # Half of the customers stop buying somewhere in the year, so the label has both classes.
    stop_day = {c: int(rng.integers(60, DAYS)) if i % 2 else DAYS for i, c in enumerate(customer_ids)}
    lines = []
    for n in range(n_orders):
        day = int(rng.choice(TRADING_DAYS))
        buyers = [c for c in customer_ids if stop_day[c] > day]
        customer = str(rng.choice(buyers)) if buyers and rng.random() < 0.8 else None
        store = str(rng.choice(STORES))
        ts = dt.datetime.combine(START + dt.timedelta(days=day), dt.time(9)) + dt.timedelta(
            minutes=int(rng.integers(0, 600))
        )
        for line_no in range(1, int(rng.integers(1, 4)) + 1):
            sku = skus[int(rng.integers(0, len(skus)))]
            quantity = int(rng.integers(1, 4)) * (-1 if rng.random() < 0.05 else 1)
            lines.append(
                {"order_id": f"O{n:08d}", "line_no": line_no, "ts": ts, "store_id": store, "customer_id": customer,
                 "sku": sku, "quantity": quantity, "unit_price": round(float(rng.uniform(2, 40)), 2),
                 "promo": bool(rng.random() < 0.2), "channel": "online" if store == "S003" else "store"}
            )  # fmt: skip
    bad = dict(lines[0])
    lines += [
        dict(lines[1]),  # an exact duplicate of a line
        {**bad, "order_id": "OBAD1", "unit_price": -1.0},
        {**bad, "order_id": "OBAD2", "channel": "fax"},
        {**bad, "order_id": "OBAD3", "quantity": 0},
    ]
    assert len(lines) - n_orders >= BAD_ROWS
    stockouts = pa.Table.from_pylist(
        [
            {"store_id": str(rng.choice(STORES)), "sku": skus[int(rng.integers(0, len(skus)))],
             "date": START + dt.timedelta(days=int(rng.choice(TRADING_DAYS)))}
            for _ in range(400)
        ],
        schema=STOCKOUT_SCHEMA,
    )  # fmt: skip
    order_lines = pa.Table.from_pylist(lines, schema=ORDER_LINE_SCHEMA)
    return {"products": products, "customers": customers, "order_lines": order_lines, "stockouts": stockouts}


def write_partitioned(table: pa.Table, root: Path, date_column: str | None) -> None:
    """Write `table` as `root/dt=YYYY-MM-DD/part-00000.parquet`, by `date_column` or as one snapshot."""
    if date_column is None:
        days = np.full(table.num_rows, np.datetime64(SNAPSHOT, "D"))
    else:
        days = table.column(date_column).cast(pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    for day in np.unique(days):
        folder = root / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.array(days == day)), folder / "part-00000.parquet")


def write_raw_zone(tables: dict[str, pa.Table], raw: Path) -> None:
    """The raw zone layout of docs/contracts.md on a local folder."""
    write_partitioned(tables["order_lines"], raw / "order_lines", "ts")
    write_partitioned(tables["stockouts"], raw / "stockouts", "date")
    write_partitioned(tables["products"], raw / "products", None)
    write_partitioned(tables["customers"], raw / "customers", None)


@pytest.fixture(scope="session")
def raw_tables() -> dict[str, pa.Table]:
    return make_raw_tables()


@pytest.fixture(scope="session")
def raw_zone(tmp_path_factory: pytest.TempPathFactory, raw_tables: dict[str, pa.Table]) -> Path:
    """A local raw zone: `<root>/order_lines/dt=.../`, `products/dt=...`, `customers/dt=...`, `stockouts/dt=...`."""
    root = tmp_path_factory.mktemp("raw")
    write_raw_zone(raw_tables, root)
    return root


def to_spark(spark: SparkSession, table: pa.Table) -> DataFrame:
    """A Spark DataFrame of an Arrow table with the Spark types of its schema (timestamps stay naive)."""
    return spark.createDataFrame(table.to_pylist(), schema=spark_schema(table.schema))


@pytest.fixture(scope="session")
def arrow_to_spark(spark: SparkSession) -> Callable[[pa.Table], DataFrame]:
    """`to_spark` bound to the session, for test modules (which cannot import this conftest)."""
    return lambda table: to_spark(spark, table)


@pytest.fixture(scope="session")
def raw_frames(spark: SparkSession, raw_tables: dict[str, pa.Table]) -> dict[str, DataFrame]:
    """The raw tables as Spark DataFrames (products without their map column)."""
    tables = dict(raw_tables)
    tables["products"] = tables["products"].select(["sku", "category"])
    return {name: to_spark(spark, table) for name, table in tables.items()}
