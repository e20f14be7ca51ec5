"""The churn features of `shelfwise.churn.features`, computed with Spark at many cutoffs at once.

Also the cold-start labels: at each cutoff, the registered customers who had not bought yet, and whether they
bought within the horizon. They measure the prior the API gives a customer without history.

Point in time: every feature at cutoff `c` is computed from rows joined to `c` on `ts < c` (or `day < c`) and
nothing else, and the label reads only purchases in `[c, c + horizon)`. Cutoffs are vectorised by joining the
(small, broadcast) table of cutoffs to the facts, so a training set with twenty cutoffs is one Spark job, not twenty.

Terms used below:
- a *purchase* is an order with at least one line of positive quantity; an order of returns only is not one;
- *gross* spend counts positive lines (quantity x unit price); returns are subtracted only in `monetary`;
- a *category* comes from the latest products snapshot (SKUs missing from it fall in `unknown`);
- a *stockout met*: the customer's *top categories* at the cutoff are the (up to) three categories with the most
  gross spend before the cutoff (ties by category name). A *visit* is a distinct (store, day) on which the customer
  placed an order of any kind at that store in the 90 days before the cutoff. The visit met a stockout when the
  store had a stockout that day of a SKU in one of those top categories. `stockouts_met_90d` counts such visits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.window import Window

from shelfwise.churn.features import (
    CUTOFF,
    FEATURE_NAMES,
    FEATURES,
    FEATURES_BY_NAME,
    LABEL,
    LABEL_HORIZON_DAYS,
)
from shelfwise.data_quality import Check, InRange, NullRate, RowCount, Unique

UNKNOWN_CATEGORY = "unknown"
TOP_CATEGORIES = 3
ONLINE = "online"


def customer_features(
    orders: DataFrame,
    products: DataFrame,
    customers: DataFrame,
    stockouts: DataFrame,
    cutoffs: Sequence[dt.date],
) -> DataFrame:
    """`customer_id`, `cutoff` and every feature, for each cutoff and each customer with a purchase before it."""
    cutoff_table = _cutoff_table(orders, cutoffs)
    categories = _categories(products)
    orders = orders.where(sf.col("customer_id").isNotNull())
    facts = order_facts(orders)
    history = facts.join(sf.broadcast(cutoff_table), sf.col("ts") < sf.col("cutoff_ts"))
    activity = _order_aggregates(history).where(sf.col("frequency") > 0)
    category_ranks = _category_ranks(orders, categories, cutoff_table)
    features = (
        activity.join(_signups(customers), "customer_id", "left")
        .join(_diversity(category_ranks), ["customer_id", CUTOFF], "left")
        .join(
            _stockouts_met(facts, stockouts, categories, category_ranks, cutoff_table), ["customer_id", CUTOFF], "left"
        )
    )
    return features.select("customer_id", CUTOFF, *(_feature(name).alias(name) for name in FEATURE_NAMES))


def training_set(
    orders: DataFrame,
    products: DataFrame,
    customers: DataFrame,
    stockouts: DataFrame,
    cutoffs: Sequence[dt.date],
    horizon_days: int = LABEL_HORIZON_DAYS,
) -> DataFrame:
    """The features at each cutoff with the label `churned`: 1 if no purchase in `[cutoff, cutoff + horizon)`."""
    features = customer_features(orders, products, customers, stockouts, cutoffs)
    return with_labels(features, orders, cutoffs, horizon_days)


def with_labels(features: DataFrame, orders: DataFrame, cutoffs: Sequence[dt.date], horizon_days: int) -> DataFrame:
    """The rows of `features` at `cutoffs`, with the label `churned` computed from `orders`."""
    active = churn_labels(orders, cutoffs, horizon_days)
    return (
        features.where(sf.col(CUTOFF).isin(*sorted(set(cutoffs))))
        .join(active, ["customer_id", CUTOFF], "left")
        .select(
            "customer_id",
            CUTOFF,
            *FEATURE_NAMES,
            sf.when(sf.col("active"), sf.lit(0)).otherwise(sf.lit(1)).cast("int").alias(LABEL),
        )
    )


def churn_labels(orders: DataFrame, cutoffs: Sequence[dt.date], horizon_days: int) -> DataFrame:
    """(`customer_id`, `cutoff`, `active`=true) for customers with a purchase in `[cutoff, cutoff + horizon)`."""
    cutoff_table = _cutoff_table(orders, cutoffs).withColumn(
        "horizon_end_ts", sf.date_add(CUTOFF, horizon_days).cast("timestamp_ntz")
    )
    purchases = orders.where(sf.col("customer_id").isNotNull() & (sf.col("quantity") > 0)).select("customer_id", "ts")
    in_horizon = (sf.col("ts") >= sf.col("cutoff_ts")) & (sf.col("ts") < sf.col("horizon_end_ts"))
    return (
        purchases.join(sf.broadcast(cutoff_table), in_horizon)
        .select("customer_id", CUTOFF)
        .distinct()
        .withColumn("active", sf.lit(True))
    )


def cold_start_labels(
    orders: DataFrame, customers: DataFrame, cutoffs: Sequence[dt.date], horizon_days: int = LABEL_HORIZON_DAYS
) -> DataFrame:
    """(`customer_id`, `cutoff`, `churned`) for customers signed up before the cutoff without a purchase before it:
    `churned` is 1 unless they bought in `[cutoff, cutoff + horizon)`."""
    cutoff_table = _cutoff_table(orders, cutoffs)
    purchases = orders.where(sf.col("customer_id").isNotNull() & (sf.col("quantity") > 0))
    first_purchase = purchases.groupBy("customer_id").agg(sf.min("ts").alias("first_ts"))
    registered = _signups(customers).join(sf.broadcast(cutoff_table), sf.col("signup_date") < sf.col(CUTOFF))
    without_history = registered.join(first_purchase, "customer_id", "left").where(
        sf.col("first_ts").isNull() | (sf.col("first_ts") >= sf.col("cutoff_ts"))
    )
    active = churn_labels(orders, cutoffs, horizon_days)
    return without_history.join(active, ["customer_id", CUTOFF], "left").select(
        "customer_id",
        CUTOFF,
        sf.when(sf.col("active"), sf.lit(0)).otherwise(sf.lit(1)).cast("int").alias(LABEL),
    )


def order_facts(orders: DataFrame) -> DataFrame:
    """One row per customer order with its spend, units and `gap_days` since the customer's previous purchase.

    `gap_days` is null for an order that is not a purchase and for a customer's first purchase. It depends only
    on earlier orders, so it is point in time at any cutoff after the order.
    """
    value = sf.col("quantity") * sf.col("unit_price")
    bought = sf.col("quantity") > 0
    facts = orders.groupBy("customer_id", "order_id").agg(
        sf.min("ts").alias("ts"),
        sf.min("store_id").alias("store_id"),
        sf.min("channel").alias("channel"),
        sf.sum(sf.when(bought, value).otherwise(0.0)).alias("gross"),
        sf.sum(sf.when(~bought, -value).otherwise(0.0)).alias("returned_value"),
        sf.sum(sf.when(bought, sf.col("quantity")).otherwise(0)).alias("units"),
        sf.sum(sf.when(~bought, -sf.col("quantity")).otherwise(0)).alias("returned_units"),
        sf.sum(sf.when(bought & sf.col("promo"), value).otherwise(0.0)).alias("promo_gross"),
    )
    facts = facts.withColumn("day", sf.to_date("ts")).withColumn("is_purchase", sf.col("units") > 0)
    earlier = Window.partitionBy("customer_id").orderBy("ts", "order_id").rowsBetween(Window.unboundedPreceding, -1)
    previous_purchase = sf.last(sf.when(sf.col("is_purchase"), sf.col("day")), ignorenulls=True).over(earlier)
    return facts.withColumn("gap_days", sf.when(sf.col("is_purchase"), sf.datediff("day", previous_purchase)))


def _order_aggregates(history: DataFrame) -> DataFrame:
    """Per customer and cutoff: counts, spend and gaps of the orders before the cutoff."""
    purchase = sf.col("is_purchase")

    def within(days: int) -> Column:
        return sf.col("day") >= sf.date_sub(CUTOFF, days)

    def count(condition: Column) -> Column:
        return sf.sum(sf.when(condition, 1).otherwise(0))

    gap = sf.when(purchase, sf.col("gap_days"))
    return history.groupBy("customer_id", CUTOFF).agg(
        count(purchase).alias("frequency"),
        sf.max(sf.when(purchase, sf.col("day"))).alias("last_purchase"),
        sf.min(sf.when(purchase, sf.col("day"))).alias("first_purchase"),
        sf.sum("gross").alias("gross"),
        sf.sum("returned_value").alias("returned_value"),
        sf.sum("units").alias("units"),
        sf.sum("returned_units").alias("returned_units"),
        sf.sum("promo_gross").alias("promo_gross"),
        count(purchase & within(30)).alias("orders_30d"),
        count(purchase & within(90)).alias("orders_90d"),
        sf.sum(sf.when(within(30), sf.col("gross")).otherwise(0.0)).alias("spend_30d"),
        sf.sum(sf.when(within(90), sf.col("gross")).otherwise(0.0)).alias("spend_90d"),
        count(purchase & (sf.col("channel") == ONLINE)).alias("online_orders"),
        sf.count(gap).alias("gaps"),
        sf.avg(gap).alias("gap_mean"),
        sf.stddev_samp(gap).alias("gap_std"),
        sf.max(gap).alias("gap_max"),
    )


def _category_ranks(orders: DataFrame, categories: DataFrame, cutoff_table: DataFrame) -> DataFrame:
    """Per customer, cutoff and category bought before the cutoff: its `rank` by gross spend (ties by name) and
    the customer's number of categories (`category_diversity`)."""
    daily = (
        orders.where(sf.col("quantity") > 0)
        .join(sf.broadcast(categories), "sku", "left")
        .select(
            "customer_id",
            sf.coalesce("category", sf.lit(UNKNOWN_CATEGORY)).alias("category"),
            sf.to_date("ts").alias("day"),
            (sf.col("quantity") * sf.col("unit_price")).alias("gross"),
        )
        .groupBy("customer_id", "category", "day")
        .agg(sf.sum("gross").alias("gross"))
    )
    spend = (
        daily.join(sf.broadcast(cutoff_table), sf.col("day") < sf.col(CUTOFF))
        .groupBy("customer_id", CUTOFF, "category")
        .agg(sf.sum("gross").alias("gross"))
    )
    customer = Window.partitionBy("customer_id", CUTOFF)
    return spend.select(
        "customer_id",
        CUTOFF,
        "category",
        sf.row_number().over(customer.orderBy(sf.desc("gross"), sf.asc("category"))).alias("rank"),
        sf.count(sf.lit(1)).over(customer).alias("category_diversity"),
    )


def _diversity(category_ranks: DataFrame) -> DataFrame:
    return category_ranks.where(sf.col("rank") == 1).select("customer_id", CUTOFF, "category_diversity")


def _stockouts_met(
    facts: DataFrame, stockouts: DataFrame, categories: DataFrame, category_ranks: DataFrame, cutoff_table: DataFrame
) -> DataFrame:
    """Per customer and cutoff: visits in the 90 days before the cutoff that met a stockout in a top category."""
    stockout_categories = (
        stockouts.select("store_id", "sku", sf.col("date").alias("day"))
        .join(sf.broadcast(categories), "sku", "left")
        .select("store_id", "day", sf.coalesce("category", sf.lit(UNKNOWN_CATEGORY)).alias("category"))
        .distinct()
    )
    visits = facts.select("customer_id", "store_id", "day").distinct()
    visits_at_stockouts = visits.join(stockout_categories, ["store_id", "day"])
    in_window = (sf.col("day") < sf.col(CUTOFF)) & (sf.col("day") >= sf.date_sub(CUTOFF, 90))
    return (
        visits_at_stockouts.join(sf.broadcast(cutoff_table), in_window)
        .join(
            category_ranks.where(sf.col("rank") <= TOP_CATEGORIES).select("customer_id", CUTOFF, "category"),
            ["customer_id", CUTOFF, "category"],
            "left_semi",
        )
        .groupBy("customer_id", CUTOFF)
        .agg(sf.count_distinct("store_id", "day").alias("stockouts_met_90d"))
    )


def _feature(name: str) -> Column:
    """The expression of one feature over the joined aggregates."""
    frequency, orders_90d = sf.col("frequency"), sf.col("orders_90d")
    expressions: dict[str, Column] = {
        "recency_days": sf.datediff(CUTOFF, "last_purchase"),
        "tenure_days": sf.datediff(CUTOFF, sf.least("signup_date", "first_purchase")),
        "first_purchase_days": sf.datediff(CUTOFF, "first_purchase"),
        "frequency": frequency,
        "monetary": sf.col("gross") - sf.col("returned_value"),
        "avg_order_value": sf.col("gross") / frequency,
        "orders_30d": sf.col("orders_30d"),
        "orders_90d": sf.col("orders_90d"),
        "spend_30d": sf.col("spend_30d"),
        "spend_90d": sf.col("spend_90d"),
        "trend_30_90": sf.when(orders_90d > 0, sf.col("orders_30d") * 3.0 / orders_90d).otherwise(0.0),
        "ipt_mean_days": sf.when(sf.col("gaps") >= 1, sf.col("gap_mean")).otherwise(-1.0),
        "ipt_std_days": sf.when(sf.col("gaps") >= 2, sf.col("gap_std")).otherwise(-1.0),
        "ipt_max_days": sf.when(sf.col("gaps") >= 1, sf.col("gap_max")).otherwise(-1.0),
        "basket_size": sf.col("units") / frequency,
        "category_diversity": sf.coalesce("category_diversity", sf.lit(0)),
        "discount_share": sf.when(sf.col("gross") > 0, sf.col("promo_gross") / sf.col("gross")).otherwise(0.0),
        "returns_rate": sf.col("returned_units") / sf.col("units"),
        "stockouts_met_90d": sf.coalesce("stockouts_met_90d", sf.lit(0)),
        "online_share": sf.col("online_orders") / frequency,
    }
    spark_type = "long" if FEATURES_BY_NAME[name].dtype == "int" else "double"
    return expressions[name].cast(spark_type)


def _cutoff_table(orders: DataFrame, cutoffs: Sequence[dt.date]) -> DataFrame:
    """`cutoff` (date) and `cutoff_ts` (its midnight) for each distinct cutoff."""
    if not cutoffs:
        raise ValueError("no cutoffs to compute features at")
    rows = [(c,) for c in sorted(set(cutoffs))]
    table = orders.sparkSession.createDataFrame(rows, f"{CUTOFF} date")
    return table.withColumn("cutoff_ts", sf.col(CUTOFF).cast("timestamp_ntz"))


def _categories(products: DataFrame) -> DataFrame:
    """One category per SKU (the smallest name if a snapshot disagrees with itself)."""
    return products.groupBy("sku").agg(sf.min("category").alias("category"))


def _signups(customers: DataFrame) -> DataFrame:
    return customers.groupBy("customer_id").agg(sf.min("signup_date").alias("signup_date"))


def latest_snapshot(table: DataFrame, column: str = "dt") -> DataFrame:
    """The rows of the latest `dt=` snapshot of a dimension table (all rows if it has no such column)."""
    if column not in table.columns:
        return table
    latest = table.agg(sf.max(column)).collect()[0][0]
    return table.where(sf.col(column) == sf.lit(latest))


def order_day_range(orders: DataFrame) -> tuple[dt.date, dt.date]:
    """The dates of the first and the last order in the data; raises if there are none."""
    row = orders.agg(sf.min(sf.to_date("ts")), sf.max(sf.to_date("ts"))).collect()[0]
    if row[0] is None:
        raise ValueError("no orders: cannot place cutoffs")
    return row[0], row[1]


def cutoff_range(first: dt.date, last: dt.date, step_days: int) -> list[dt.date]:
    """`first`, `first + step`, ... up to and including `last`."""
    if step_days < 1:
        raise ValueError(f"step_days must be at least 1, got {step_days}")
    if last < first:
        raise ValueError(f"last cutoff {last} is before first cutoff {first}")
    return [first + dt.timedelta(days=d) for d in range(0, (last - first).days + 1, step_days)]


def labelled_cutoffs(cutoffs: Sequence[dt.date], last_day: dt.date, horizon_days: int) -> list[dt.date]:
    """The cutoffs whose whole label horizon `[cutoff, cutoff + horizon)` lies on or before `last_day`."""
    return sorted(c for c in set(cutoffs) if c + dt.timedelta(days=horizon_days - 1) <= last_day)


def feature_checks(with_label: bool) -> list[Check]:
    """The checks on a churn feature table: rows, one row per customer and cutoff, no nulls, values in range."""
    checks: list[Check] = [RowCount(1), Unique(("customer_id", CUTOFF)), NullRate("customer_id"), NullRate(CUTOFF)]
    for feature in FEATURES:
        checks += [NullRate(feature.name), InRange(feature.name, feature.minimum, feature.maximum)]
    if with_label:
        checks += [NullRate(LABEL), InRange(LABEL, 0, 1)]
    return checks
