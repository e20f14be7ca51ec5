"""Daily demand per location x SKU and the static attributes of each: the pure core of the Glue job `demand_features`.

The outputs are those of the contract in `shelfwise.demand`. Terms used below:
- a *location* is a store, and the online channel is a location of its own. The synthetic world books online lines
  to its online store (format `online`); data that books an online line to a store of another format (web orders
  credited to a shop) has the line moved to the online location (`online_location`);
- the *selling life* of a SKU at a location: the periods of its listings when a listings table is given, otherwise
  from max(the SKU's launch, the store's opening) to the SKU's end date; always cut to [first order day, `as_of`).
  A day inside it without sales is a day of zero demand; a day outside it is no demand at all and has no row.

Point in time: only order lines dated before `as_of`, the products launched before it and the stores opened before
it are read, and listings and stockouts are read only for days before it, so nothing on or after `as_of` changes
any output.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.window import Window

from shelfwise.data_quality import Check, InRange, NullRate, RowCount, Unique

# Carried by every row written; bump it (in keys.py) when a column changes meaning.
from shelfwise.demand.keys import FEATURE_SET_VERSION as FEATURE_SET_VERSION

AS_OF = "as_of"
PAIR = ("store_id", "sku")
KEY = (*PAIR, "date")
DAILY_COLUMNS = (*KEY, "units", "censored", "promo", "price_ratio")
STATIC_COLUMNS = (*PAIR, "region", "format", "department", "category", "brand", "price_tier", "launch_date")
ONLINE = "online"
#: The region of an online location the stores table lacks: it sells to every region.
NATIONAL = "national"
PRICE_TIERS = ("low", "mid", "high")
#: Amounts are summed in this type (see `daily_sales`).
MONEY = "decimal(38,6)"
#: Paying more than ten times the base price is a unit or currency error, not a price.
MAX_PRICE_RATIO = 10.0


@dataclass(frozen=True)
class DemandFeatures:
    daily: DataFrame
    """`DAILY_COLUMNS`: one row per location x SKU x day of the selling life before `as_of`."""
    static: DataFrame
    """`STATIC_COLUMNS`: one row per location x SKU of `daily`."""
    sold_outside_life: DataFrame
    """`store_id, sku, date, units`: days with units sold outside every selling life, which `daily` lacks."""


def demand_features(
    orders: DataFrame,
    products: DataFrame,
    stores: DataFrame,
    stockouts: DataFrame,
    listings: DataFrame | None,
    as_of: dt.date,
) -> DemandFeatures:
    """The daily demand and static tables at `as_of` (see the module docstring); `listings` is None for a retailer
    who keeps none."""
    lines = orders.withColumn("date", sf.to_date("ts")).where(sf.col("date") < sf.lit(as_of))
    first_day = _first_day(lines, as_of)
    opened = stores.where(sf.col("open_date") < sf.lit(as_of))
    online = online_location(opened)
    lines = locate(lines, opened, online)
    locations = _locations(opened, lines, online)
    catalogue = products.where(sf.col("launch_date") < sf.lit(as_of))
    periods = (
        default_periods(locations, catalogue) if listings is None else listing_periods(listings, locations, catalogue)
    )
    periods = within(periods, first_day, as_of)
    days = selling_days(periods)
    sales = daily_sales(lines, catalogue)
    stocked_out = stockouts.select(*KEY).distinct().withColumn("censored", sf.lit(True))
    daily = (
        days.join(sales, list(KEY), "left")
        .join(stocked_out, list(KEY), "left")
        .select(
            *KEY,
            sf.coalesce("units", sf.lit(0)).alias("units"),
            sf.coalesce("censored", sf.lit(False)).alias("censored"),
            sf.coalesce("promo", sf.lit(False)).alias("promo"),
            "price_ratio",
        )
    )
    static = (
        periods.select(*PAIR)
        .distinct()
        .join(sf.broadcast(locations), "store_id", "left")
        .join(sf.broadcast(catalogue.join(price_tiers(catalogue), "sku")), "sku", "left")
        .select(*STATIC_COLUMNS)
    )
    # Against `daily`, not `days`: a job that caches `daily` then does not explode the periods again.
    sold_outside = sales.where(sf.col("units") > 0).join(daily, list(KEY), "left_anti").select(*KEY, "units")
    return DemandFeatures(daily=daily, static=static, sold_outside_life=sold_outside)


def online_location(stores: DataFrame) -> str:
    """Where online lines booked to another store go: the one online store, else a location named `online`
    (the id the orders-CSV loader gives online lines without a store)."""
    ids = [row[0] for row in stores.where(sf.col("format") == ONLINE).select("store_id").distinct().limit(2).collect()]
    return ids[0] if len(ids) == 1 else ONLINE


def locate(lines: DataFrame, stores: DataFrame, online: str) -> DataFrame:
    """`lines` with `store_id` their location: an online line booked to a store that is not an online store moves
    to `online`."""
    online_stores = stores.where(sf.col("format") == ONLINE).select("store_id", sf.lit(True).alias("_online_store"))
    moved = (sf.col("channel") == ONLINE) & sf.col("_online_store").isNull()
    return (
        lines.join(sf.broadcast(online_stores), "store_id", "left")
        .withColumn("store_id", sf.when(moved, sf.lit(online)).otherwise(sf.col("store_id")))
        .drop("_online_store")
    )


def _locations(stores: DataFrame, lines: DataFrame, online: str) -> DataFrame:
    """`store_id, region, format, open_date` of the stores, plus the online location when lines moved to it and no
    store has its id: open from its first sale."""
    added = (
        lines.where(sf.col("store_id") == sf.lit(online))
        .groupBy("store_id")
        .agg(sf.min("date").alias("open_date"))
        .join(stores, "store_id", "left_anti")
        .select("store_id", sf.lit(NATIONAL).alias("region"), sf.lit(ONLINE).alias("format"), "open_date")
    )
    return stores.select("store_id", "region", "format", "open_date").unionByName(added)


def default_periods(locations: DataFrame, catalogue: DataFrame) -> DataFrame:
    """`store_id, sku, start, end` (inclusive; `end` null while on sale): every SKU at every location, from
    max(launch, opening) to the SKU's end date."""
    return locations.crossJoin(sf.broadcast(catalogue.select("sku", "launch_date", "end_date"))).select(
        *PAIR, sf.greatest("launch_date", "open_date").alias("start"), sf.col("end_date").alias("end")
    )


def listing_periods(listings: DataFrame, locations: DataFrame, catalogue: DataFrame) -> DataFrame:
    """`store_id, sku, start, end` of the listings of known locations and SKUs launched before `as_of`."""
    return (
        listings.join(locations.select("store_id"), "store_id", "left_semi")
        .join(catalogue.select("sku"), "sku", "left_semi")
        .select(*PAIR, sf.col("start_date").alias("start"), sf.col("end_date").alias("end"))
    )


def within(periods: DataFrame, first_day: dt.date, as_of: dt.date) -> DataFrame:
    """The periods cut to [first_day, as_of), without those left empty; `end` is then never null."""
    last_day = as_of - dt.timedelta(days=1)
    start = sf.greatest("start", sf.lit(first_day))
    end = sf.least(sf.coalesce("end", sf.lit(last_day)), sf.lit(last_day))
    return periods.select(*PAIR, start.alias("start"), end.alias("end")).where(sf.col("start") <= sf.col("end"))


def selling_days(periods: DataFrame) -> DataFrame:
    """`store_id, sku, date`: each day of the (non-empty) periods, once, since listings may overlap."""
    return periods.select(*PAIR, sf.explode(sf.sequence("start", "end")).alias("date")).distinct()


def daily_sales(lines: DataFrame, catalogue: DataFrame) -> DataFrame:
    """`store_id, sku, date, units, promo, price_ratio` of each location x SKU x day with order lines.

    Returns are netted into the day they happen and net units are clipped at 0: a day of more returns than sales
    had no demand, not negative demand. `promo` and `price_ratio` read the sales alone, since a return carries the
    promotion and price of the day of its sale.
    """
    sold = sf.col("quantity") > 0
    # Summed as decimals: a sum of doubles depends on the order Spark adds them in, and so would a rerun's ratios.
    paid = sf.sum(sf.when(sold, (sf.col("quantity") * sf.col("unit_price")).cast(MONEY))).cast("double")
    sold_units = sf.sum(sf.when(sold, sf.col("quantity")))
    return (
        lines.groupBy(*KEY)
        .agg(
            sf.sum("quantity").alias("net_units"),
            sf.bool_or(sf.when(sold, sf.col("promo"))).alias("promo"),
            (paid / sold_units).alias("price_paid"),
        )
        .join(sf.broadcast(catalogue.select("sku", "base_price")), "sku", "left")
        .select(
            *KEY,
            sf.greatest("net_units", sf.lit(0)).alias("units"),
            "promo",
            (sf.col("price_paid") / sf.col("base_price")).alias("price_ratio"),
        )
    )


def price_tiers(catalogue: DataFrame) -> DataFrame:
    """`sku, price_tier`: the tercile (low, mid, high) of the SKU's base price within its category.

    A SKU's position is the share of its category priced below it plus half the share at its price, so SKUs of
    equal price share a tier (the one of the middle of their run) and a category of one SKU is `mid`.
    """
    category = Window.partitionBy("category")
    cheaper = sf.rank().over(category.orderBy("base_price")) - 1
    same_price = sf.count(sf.lit(1)).over(Window.partitionBy("category", "base_price"))
    skus = sf.count(sf.lit(1)).over(category)
    # Whole numbers until the one division, whose floor is then exact.
    tier = sf.floor(len(PRICE_TIERS) * (2 * cheaper + same_price) / (2 * skus))
    names = sf.array(*(sf.lit(name) for name in PRICE_TIERS))
    return catalogue.select("sku", sf.element_at(names, (tier + 1).cast("int")).alias("price_tier"))


def daily_checks() -> list[Check]:
    """Rows, one row per location x SKU x day, no missing values, units never negative, sane price ratios."""
    return [
        RowCount(1),
        Unique(KEY),
        *(NullRate(column) for column in DAILY_COLUMNS if column != "price_ratio"),
        InRange("units", 0, float("inf")),
        InRange("price_ratio", 0, MAX_PRICE_RATIO),
    ]


def static_checks() -> list[Check]:
    """Rows, one row per location x SKU, every attribute present."""
    return [RowCount(1), Unique(PAIR), *(NullRate(column) for column in STATIC_COLUMNS)]


def _first_day(lines: DataFrame, as_of: dt.date) -> dt.date:
    first: dt.date | None = lines.agg(sf.min("date")).collect()[0][0]
    if first is None:
        raise ValueError(f"no order lines before as_of {as_of}: no demand to compute")
    return first
