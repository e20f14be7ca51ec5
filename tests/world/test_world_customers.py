"""Customers: acquired over time, heterogeneous, loyal to a channel, churning for reasons, returning goods."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from shelfwise.world.customers import NEVER, Customers, end_day

if TYPE_CHECKING:
    from .conftest import WorldTables


def _population(n: int, last_purchase: int, rate: float = 0.05) -> Customers:
    return Customers(
        signup_day=np.zeros(n, dtype=np.int64),
        home_store=np.zeros(n, dtype=np.int64),
        prefers_online=np.zeros(n, dtype=bool),
        online_share=np.zeros(n),
        rate=np.full(n, rate),
        last_purchase=np.full(n, last_purchase, dtype=np.int64),
        churn_day=np.full(n, NEVER, dtype=np.int64),
        stockouts_met=np.zeros(n, dtype=np.int64),
        bad=np.zeros(n),
    )


def _churned_share(c: Customers, days: range, met: np.ndarray, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    nobody = np.zeros(0, dtype=np.int64)
    for day in days:
        end_day(c, day, nobody, met if day == days[0] else nobody, rng)
    return float((c.churn_day != NEVER).mean())


def test_churn_hazard_rises_with_time_since_the_last_purchase() -> None:
    recent = _churned_share(_population(20_000, last_purchase=100), range(100, 130), np.zeros(0, dtype=np.int64))
    lapsed = _churned_share(_population(20_000, last_purchase=0), range(100, 130), np.zeros(0, dtype=np.int64))
    assert lapsed > 3 * recent > 0


def test_churn_hazard_rises_after_stockouts_met() -> None:
    n = 20_000
    unlucky = np.arange(n // 2, dtype=np.int64)
    c = _population(n, last_purchase=100)
    _churned_share(c, range(100, 160), np.repeat(unlucky, 3))
    assert (c.churn_day[: n // 2] != NEVER).mean() > 1.5 * (c.churn_day[n // 2 :] != NEVER).mean()
    assert (c.stockouts_met[: n // 2] == 3).all()


def test_nobody_buys_on_or_after_their_churn_date(world: WorldTables) -> None:
    lines = world.order_lines.merge(world.truth_customers[["customer_id", "churn_date"]], on="customer_id")
    churned = lines[lines["churn_date"].notna()]
    assert len(churned) > 0
    assert (churned["ts"].dt.normalize() < pd.to_datetime(churned["churn_date"])).all()


def test_a_fair_share_churns_and_churners_had_lapsed(world: WorldTables) -> None:
    truth = world.truth_customers
    assert 0.1 < truth["churn_date"].notna().mean() < 0.6
    last = world.order_lines[world.order_lines["quantity"] > 0].groupby("customer_id")["ts"].max().dt.normalize()
    t = truth.set_index("customer_id").join(last.rename("last"), how="inner")
    churned = t[t["churn_date"].notna()]
    active = t[t["churn_date"].isna()]
    skipped_at_churn = (pd.to_datetime(churned["churn_date"]) - churned["last"]).dt.days * churned["purchase_rate"]
    skipped_now = (pd.Timestamp("2025-01-01") - active["last"]).dt.days * active["purchase_rate"]
    assert skipped_at_churn.median() > 1.5 * skipped_now.median()


def test_purchase_rates_are_heterogeneous_and_drive_orders(world: WorldTables) -> None:
    rate = world.truth_customers.set_index("customer_id")["purchase_rate"]
    assert rate.std() / rate.mean() > 0.6
    orders = world.order_lines[world.order_lines["quantity"] > 0].groupby("customer_id")["order_id"].nunique()
    joined = pd.concat([rate, orders.rename("orders")], axis=1).fillna(0)
    assert joined.corr(method="spearman").loc["purchase_rate", "orders"] > 0.5


def test_customers_sign_up_throughout_the_history(world: WorldTables) -> None:
    signup = pd.to_datetime(world.customers["signup_date"])
    assert (signup < "2023-01-01").mean() > 0.2
    in_history = signup[signup >= "2023-01-01"]
    assert in_history.dt.to_period("Q").nunique() == 8
    first_order = world.order_lines.groupby("customer_id")["ts"].min().dt.normalize()
    joined = world.customers.set_index("customer_id").join(first_order.rename("first"), how="inner")
    assert (joined["first"] >= pd.to_datetime(joined["signup_date"])).all()


def test_customers_shop_in_their_region_and_channel(world: WorldTables) -> None:
    truth = world.truth_customers.merge(world.customers, on="customer_id")
    home = truth.merge(world.stores, left_on="home_store_id", right_on="store_id", suffixes=("", "_store"))
    assert (home["region"] == home["region_store"]).all()
    sales = world.order_lines[world.order_lines["quantity"] > 0].merge(world.customers, on="customer_id")
    online_share = (sales["channel_x"] == "online").groupby(sales["channel_y"]).mean()
    assert online_share["online"] > 0.6 > 0.2 > online_share["store"]
    stores = sales[sales["channel_x"] == "store"].merge(world.stores, on="store_id", suffixes=("", "_store"))
    assert (stores["region"] == stores["region_store"]).all()


def test_walk_ins_have_no_customer(world: WorldTables) -> None:
    orders = world.order_lines.drop_duplicates("order_id")
    walk_in = orders["customer_id"].isna().mean()
    assert 0.05 < walk_in < 0.95


def test_returns_follow_a_purchase_of_the_same_customer_sku_and_store(world: WorldTables) -> None:
    lines = world.order_lines
    returns = lines[lines["quantity"] < 0]
    assert 0.005 < len(returns) / len(lines) < 0.1
    assert (returns["order_id"].isin(lines.loc[lines["quantity"] > 0, "order_id"])).sum() == 0
    known = returns[returns["customer_id"].notna()]
    keys = ["customer_id", "sku", "store_id"]
    bought = lines[lines["quantity"] > 0].groupby(keys).agg(first=("ts", "min"), units=("quantity", "sum"))
    matched = known.join(bought, on=keys, how="left")
    assert matched["first"].notna().all()
    assert (matched["ts"] > matched["first"]).all()
    returned = known.groupby(keys)["quantity"].sum().abs()
    assert (returned <= bought.loc[returned.index, "units"]).all()
