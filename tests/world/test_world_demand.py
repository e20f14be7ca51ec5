"""Demand in the small world has the shapes of real retail: seasons, holidays, promotions, prices, stockouts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from shelfwise.retail_calendar import black_friday, cyber_monday, easter_sunday
from shelfwise.world.calendar import regional_holiday
from shelfwise.world.catalog import GENERAL_MERCHANDISE

if TYPE_CHECKING:
    from .conftest import WorldTables


def _sales(world: WorldTables) -> pd.DataFrame:
    """Units sold per order line (returns excluded), with the product's department and category."""
    lines = world.order_lines[world.order_lines["quantity"] > 0]
    lines = lines.merge(world.products[["sku", "department", "category"]], on="sku")
    return lines.assign(date=lines["ts"].dt.normalize())


def test_black_friday_week_sells_at_least_half_again_the_median_week(world: WorldTables) -> None:
    sales = _sales(world)
    general = sales[sales["department"].isin(GENERAL_MERCHANDISE)]
    weekly = general.groupby(general["date"].dt.to_period("W-SUN"))["quantity"].sum()
    weekly = weekly.iloc[1:-1]  # partial first and last weeks
    for year in (2023, 2024):
        week = pd.Period(pd.Timestamp(black_friday(year)), "W-SUN")
        assert weekly[week] >= 1.5 * weekly.median(), (year, weekly[week], weekly.median())


def test_cyber_monday_is_mostly_an_online_day(world: WorldTables) -> None:
    sales = _sales(world)
    online_units = sales["quantity"].where(sales["channel"] == "online", 0)
    online_share = online_units.groupby(sales["date"]).sum() / sales.groupby("date")["quantity"].sum()
    mondays = online_share[online_share.index.dayofweek == 0]
    for year in (2023, 2024):
        assert online_share[pd.Timestamp(cyber_monday(year))] > 1.5 * mondays.median()


def test_toys_peak_in_december_and_swimwear_in_summer(world: WorldTables) -> None:
    sales = _sales(world)
    month = sales["date"].dt.month
    toys = sales[sales["category"] == "toys"].groupby(month)["quantity"].sum()
    assert toys[12] >= 2 * toys[7]
    swim = sales[sales["category"] == "swimwear"].groupby(month)["quantity"].sum()
    assert swim[7] >= 3 * swim[1]
    # Staples stay nearly flat (SKUs on sale the whole time, so launches do not count as seasonality).
    p = world.products
    always = p.loc[(pd.to_datetime(p["launch_date"]) < "2023-01-01") & p["end_date"].isna(), "sku"]
    staples = world.demand[(world.demand["category"] == "pantry staples") & world.demand["sku"].isin(always)]
    monthly = staples.groupby(staples["date"].dt.month)["demand"].sum()
    assert monthly.max() / monthly.min() < 1.5


def test_stores_peak_on_saturday_and_online_has_its_own_week(world: WorldTables) -> None:
    sales = _sales(world)
    by_day = sales.groupby(["channel", sales["date"].dt.dayofweek])["quantity"].sum().unstack()
    assert by_day.loc["store"].idxmax() == 5
    assert by_day.loc["online"].idxmax() in (0, 6)
    assert by_day.loc["online", 0] > by_day.loc["online", 5]


def test_christmas_run_up_then_a_january_drop(world: WorldTables) -> None:
    sales = _sales(world)
    daily = sales[sales["department"].isin(GENERAL_MERCHANDISE)].groupby("date")["quantity"].sum()
    for year in (2023, 2024):
        run_up = daily[f"{year}-12-10" : f"{year}-12-23"].mean()
        january = daily[f"{year}-01-08" : f"{year}-01-21"].mean()
        october = daily[f"{year}-10-08" : f"{year}-10-21"].mean()
        assert run_up > 1.5 * october, (year, run_up, october)
        assert january < 0.9 * october, (year, january, october)
        assert daily.get(pd.Timestamp(f"{year}-12-25"), 0) < 0.3 * october  # stores shut, online only


def test_easter_saturday_lifts_easter_categories_in_stores(world: WorldTables) -> None:
    sensitive = world.categories.loc[world.categories["easter_sensitivity"] >= 0.5, "category"]
    d = world.demand[(world.demand["format"] != "online") & world.demand["category"].isin(sensitive)]
    daily = d.groupby("date")["demand"].sum()
    holiday, ordinary = 0.0, 0.0
    for year in (2023, 2024):
        saturday = pd.Timestamp(easter_sunday(year)) - pd.Timedelta(days=1)
        holiday += daily[saturday]
        ordinary += daily[[saturday + pd.Timedelta(weeks=k) for k in (-3, -2, 2, 3)]].mean()
        assert daily.get(saturday + pd.Timedelta(days=1), 0) == 0  # stores shut on Easter Sunday
    assert holiday > 1.15 * ordinary, (holiday, ordinary)


def test_regional_holiday_lifts_only_that_regions_store(world: WorldTables) -> None:
    """Pooled over both years: the holiday against the same weekday two and three weeks either side."""
    demand = world.demand[world.demand["format"] != "online"]
    daily = demand.groupby(["region", "date"])["demand"].sum()
    regions = list(daily.index.levels[0])
    for region in regions:
        holiday = dict.fromkeys(regions, 0.0)
        ordinary = dict.fromkeys(regions, 0.0)
        for year in (2023, 2024):
            day = pd.Timestamp(regional_holiday(region, year)[1])
            for other in regions:
                holiday[other] += daily[other][day]
                ordinary[other] += daily[other][[day + pd.Timedelta(weeks=k) for k in (-3, -2, 2, 3)]].mean()
        lift = {other: holiday[other] / ordinary[other] for other in regions}
        assert lift[region] > 1.25, (region, lift)
        assert all(lift[other] < lift[region] for other in regions if other != region), (region, lift)


def test_promoted_days_sell_more_than_the_same_sku_unpromoted(world: WorldTables) -> None:
    d = world.demand
    means = d.groupby(["sku", "store_id", "promo"])["sales"].mean().unstack()
    means = means.dropna()
    assert len(means) >= 50
    assert (means[True] > means[False]).mean() >= 0.8
    assert means[True].sum() >= 1.2 * means[False].sum()


def test_a_promotion_is_followed_by_a_dip(world: WorldTables) -> None:
    d = world.demand.set_index(["sku", "date"]).sort_index()
    staples = set(world.products.loc[world.products["department"] == "grocery staples", "sku"])
    before, after = 0.0, 0.0
    for p in world.promotions[world.promotions["sku"].isin(staples) & world.promotions["store_id"].isna()].itertuples():
        rows = d.loc[p.sku]
        start, end = pd.Timestamp(p.start), pd.Timestamp(p.end)
        before += rows.loc[start - pd.Timedelta(days=28) : start - pd.Timedelta(days=1), "demand"].sum() / 28
        after += rows.loc[end + pd.Timedelta(days=1) : end + pd.Timedelta(days=7), "demand"].sum() / 7
    assert after < 0.9 * before


def test_log_log_regression_recovers_each_categorys_elasticity(world: WorldTables) -> None:
    """Within (SKU, store) price segments on ordinary days, with the true seasonal profile divided out."""
    d = world.demand
    hol = set(pd.to_datetime(world.holidays["date"]))
    launch = pd.to_datetime(d["sku"].map(world.products.set_index("sku")["launch_date"]))
    d = d[~d["promo"] & ~d["date"].isin(hol) & ((d["date"] - launch).dt.days > 90)]
    windows = pd.concat(
        pd.DataFrame(
            {"sku": p.sku, "date": pd.date_range(p.start, pd.Timestamp(p.end) + pd.Timedelta(days=p.dip_days))}
        )
        for p in world.promotions.itertuples()
    ).drop_duplicates()
    d = d.merge(windows.assign(window=True), on=["sku", "date"], how="left")
    d = d[d["window"].isna()]
    cats = world.categories.set_index("category").loc[d["category"]]
    dow, doy, rows = d["date"].dt.dayofweek.to_numpy(), d["date"].dt.dayofyear.to_numpy(), np.arange(len(d))
    online = (d["format"] == "online").to_numpy()
    weekly = np.where(online, np.stack(cats["weekly_online"].to_numpy())[rows, dow],
                      np.stack(cats["weekly_store"].to_numpy())[rows, dow])  # fmt: skip
    amplitude, peak = cats["yearly_amplitude"].to_numpy(), cats["yearly_peak_day"].to_numpy()
    yearly = np.exp(amplitude * np.cos(2 * np.pi * (doy - peak) / 365.25)) / np.i0(amplitude)
    d = d.assign(exposure=weekly * yearly)
    segments = d.groupby(["category", "sku", "store_id", "price"], as_index=False)[["demand", "exposure"]].sum()
    segments = segments[segments["demand"] > 0]
    for category, seg in segments.groupby("category"):
        y = np.log(seg["demand"] / seg["exposure"])
        x = np.log(seg["price"])
        group = [seg["sku"], seg["store_id"]]
        y, x = y - y.groupby(group).transform("mean"), x - x.groupby(group).transform("mean")
        estimate = (seg["demand"] * x * y).sum() / (seg["demand"] * x * x).sum()
        truth = world.categories.set_index("category").loc[category, "elasticity"]
        assert abs(estimate / truth - 1) <= 0.3, (category, estimate, truth)
    assert segments["category"].nunique() == len(world.categories)


def test_stockouts_censor_sales_and_are_flagged(world: WorldTables) -> None:
    d = world.demand
    out = d[d["stockout"]]
    assert 0.005 < d["stockout"].mean() < 0.1
    assert (out["sales"] <= out["demand"]).all()
    assert (out["sales"] < out["demand"]).mean() > 0.5
    assert (d.loc[~d["stockout"], "sales"] == d.loc[~d["stockout"], "demand"]).all()
    flagged = world.stockouts.assign(date=pd.to_datetime(world.stockouts["date"]))
    keys = ["store_id", "sku", "date"]
    assert flagged.sort_values(keys).reset_index(drop=True).equals(out[keys].sort_values(keys).reset_index(drop=True))


def test_order_lines_add_up_to_the_sales_in_truth(world: WorldTables) -> None:
    lines = _sales(world)
    sold = lines.groupby(["store_id", "sku", lines["date"].astype("datetime64[ns]")])["quantity"].sum().sort_index()
    truth = world.demand.set_index(["store_id", "sku", "date"])["sales"]
    truth = truth[truth > 0].sort_index()
    assert len(sold) == len(truth) > 0
    assert sold.index.equals(truth.index)
    assert (sold.to_numpy() == truth.to_numpy()).all()


def test_slow_movers_have_intermittent_demand(world: WorldTables) -> None:
    zero_share = world.demand.groupby(["sku", "store_id"])["demand"].apply(lambda s: (s == 0).mean())
    assert (zero_share > 0.5).sum() >= 10
    assert (zero_share < 0.05).sum() >= 10


def test_products_launch_in_every_quarter_and_some_are_discontinued(world: WorldTables) -> None:
    p = world.products
    launch = pd.to_datetime(p["launch_date"])
    in_history = launch[(launch >= "2023-01-01") & (launch <= "2024-12-31")]
    assert in_history.dt.to_period("Q").nunique() == 8
    assert (launch < "2023-01-01").sum() > len(p) / 2
    ended = pd.to_datetime(p["end_date"]).dropna()
    assert len(ended) >= 3
    assert (ended <= "2024-12-31").all()
    sold = _sales(world).merge(p[["sku", "launch_date", "end_date"]], on="sku")
    assert (sold["date"] >= pd.to_datetime(sold["launch_date"])).all()
    assert (sold["end_date"].isna() | (sold["date"] <= pd.to_datetime(sold["end_date"]))).all()


def test_new_products_ramp_up_after_launch(world: WorldTables) -> None:
    p = world.products.assign(launch=pd.to_datetime(world.products["launch_date"]))
    new = p[(p["launch"] >= "2023-01-01") & (p["launch"] <= "2024-09-30")]
    d = world.demand.merge(new[["sku", "launch"]], on="sku")
    age = (d["date"] - d["launch"]).dt.days
    first, later = d[age < 14]["demand"].sum() / 14, d[(age >= 60) & (age < 74)]["demand"].sum() / 14
    assert first < 0.8 * later
