"""One small world per test session, and its tables read once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from shelfwise.world import generate_world

SEED = 7


@dataclass(frozen=True)
class WorldTables:
    root: Path
    stores: pd.DataFrame
    products: pd.DataFrame
    customers: pd.DataFrame
    order_lines: pd.DataFrame
    clickstream: pd.DataFrame
    stockouts: pd.DataFrame
    demand: pd.DataFrame  # truth/demand with department, category and store format joined
    truth_customers: pd.DataFrame
    promotions: pd.DataFrame
    categories: pd.DataFrame
    holidays: pd.DataFrame


@pytest.fixture(scope="session")
def world_seed() -> int:
    return SEED


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("worlds") / f"small-{SEED}"
    generate_world("small", SEED, out)
    return out


@pytest.fixture(scope="session")
def world(small_world: Path) -> WorldTables:
    def read(name: str) -> pd.DataFrame:
        return pd.read_parquet(small_world / name)

    products, stores = read("products.parquet"), read("stores.parquet")
    demand = read("truth/demand.parquet")
    demand = demand.merge(products[["sku", "department", "category"]], on="sku").merge(
        stores[["store_id", "region", "format"]], on="store_id"
    )
    demand["date"] = pd.to_datetime(demand["date"])
    return WorldTables(
        root=small_world,
        stores=stores,
        products=products,
        customers=read("customers.parquet"),
        order_lines=read("order_lines"),
        clickstream=read("clickstream"),
        stockouts=read("stockouts.parquet"),
        demand=demand,
        truth_customers=read("truth/customers.parquet"),
        promotions=read("truth/promotions.parquet"),
        categories=read("truth/categories.parquet"),
        holidays=read("truth/holidays.parquet"),
    )
