"""Daily demand on a hand-made history, checked by hand; the point-in-time guarantee on a random one; the job end to
end through the local Glue runner."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, Row, SparkSession

from shelfwise.churn.features import VERSION_COLUMN
from shelfwise.config import settings
from shelfwise.curation.orders import curate_orders
from shelfwise.data_quality import DataQualityError, validate
from shelfwise.demand.demand_features import (
    DAILY_COLUMNS,
    FEATURE_SET_VERSION,
    STATIC_COLUMNS,
    DemandFeatures,
    daily_checks,
    demand_features,
    price_tiers,
)
from shelfwise.glue_local import JobResult, run_job
from shelfwise.lake import Lake, partition_prefix
from shelfwise.local_aws import local_aws
from shelfwise.schemas import LISTING_SCHEMA, ORDER_LINE_SCHEMA, PRODUCT_SCHEMA, STOCKOUT_SCHEMA, STORE_SCHEMA

pytestmark = pytest.mark.slow

ToSpark = Callable[[pa.Table], DataFrame]
AS_OF = dt.date(2024, 1, 10)


def _day(day: int) -> dt.date:
    return dt.date(2024, 1, day)


def _line(order: str, line_no: int, day: int, store: str, sku: str, quantity: int, price: float,
          promo: bool = False, channel: str = "store") -> dict[str, object]:  # fmt: skip
    return {
        "order_id": order, "line_no": line_no, "ts": dt.datetime.combine(_day(day), dt.time(12)), "store_id": store,
        "customer_id": None, "sku": sku, "quantity": quantity, "unit_price": price, "promo": promo, "channel": channel,
    }  # fmt: skip


#: S2 opens mid-period, S5 after AS_OF; S9 is the online store.
STORES = [
    ("S1", "north", "flagship", dt.date(2020, 1, 1)),
    ("S2", "south", "mall", _day(5)),
    ("S5", "west", "outlet", dt.date(2024, 1, 20)),
    ("S9", "national", "online", dt.date(2020, 1, 1)),
]
#: A sells throughout, B launches mid-period, C ends mid-period, F launches after AS_OF.
PRODUCTS = [
    ("A", 10.0, dt.date(2023, 1, 1), None),
    ("B", 20.0, _day(4), None),
    ("C", 30.0, dt.date(2023, 6, 1), _day(6)),
    ("F", 1.0, dt.date(2024, 1, 12), None),
]
HISTORY = [
    _line("O1", 1, 1, "S1", "A", 2, 10.0),
    _line("O2", 1, 2, "S1", "A", 3, 8.0, promo=True),
    _line("O3", 1, 3, "S1", "A", 2, 10.0),
    _line("O3", 2, 3, "S1", "A", -1, 8.0, promo=True),  # a return of a promotional sale
    _line("R4", 1, 4, "S1", "A", -2, 10.0),  # more returned than sold that day
    _line("O5", 1, 5, "S1", "B", 1, 20.0, channel="online"),  # a web order booked to a shop
    _line("O6", 1, 5, "S9", "A", 4, 10.0, channel="online"),
    _line("O7", 1, 10, "S1", "A", 5, 10.0),  # on AS_OF
    _line("O8", 1, 11, "S1", "A", 5, 10.0),
]
STOCKOUTS = [("S1", "A", _day(2)), ("S1", "A", _day(10))]


def _stores(rows: list[tuple[str, str, str, dt.date]]) -> pa.Table:
    fields = ("store_id", "region", "format", "open_date")
    return pa.Table.from_pylist([dict(zip(fields, row, strict=True)) for row in rows], schema=STORE_SCHEMA)


def _products(rows: list[tuple[str, float, dt.date, dt.date | None]], category: str = "tops") -> pa.Table:
    return _without_attributes(
        [
            {"sku": sku, "department": "apparel", "category": category, "brand": "b", "base_price": price,
             "launch_date": launch, "end_date": end, "image_key": None, "attributes": {}}
            for sku, price, launch, end in rows
        ]
    )  # fmt: skip


def _without_attributes(products: list[dict[str, Any]]) -> pa.Table:
    """Products without their map column, which the job does not read (and Spark cannot take as a list)."""
    return pa.Table.from_pylist(products, schema=PRODUCT_SCHEMA).drop_columns(["attributes"])


def _listings(rows: list[tuple[str, str, dt.date, dt.date | None]]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(LISTING_SCHEMA.names, row, strict=True)) for row in rows], LISTING_SCHEMA)


def _stockouts(rows: list[tuple[str, str, dt.date]]) -> pa.Table:
    return pa.Table.from_pylist([{"store_id": s, "sku": k, "date": d} for s, k, d in rows], schema=STOCKOUT_SCHEMA)


@dataclass(frozen=True)
class Inputs:
    orders: DataFrame
    products: DataFrame
    stores: DataFrame
    stockouts: DataFrame

    def features(self, listings: DataFrame | None = None, stores: DataFrame | None = None) -> DemandFeatures:
        stores = self.stores if stores is None else stores
        return demand_features(self.orders, self.products, stores, self.stockouts, listings, AS_OF)


@pytest.fixture(scope="module")
def inputs(arrow_to_spark: ToSpark) -> Inputs:
    return Inputs(
        orders=arrow_to_spark(pa.Table.from_pylist(HISTORY, schema=ORDER_LINE_SCHEMA)),
        products=arrow_to_spark(_products(PRODUCTS)),
        stores=arrow_to_spark(_stores(STORES)),
        stockouts=arrow_to_spark(_stockouts(STOCKOUTS)),
    )


Daily = dict[tuple[str, str, dt.date], Row]
Static = dict[tuple[str, str], Row]


def _by_key(frame: DataFrame) -> Daily:
    return {(r["store_id"], r["sku"], r["date"]): r for r in frame.collect()}


def _by_pair(frame: DataFrame) -> Static:
    return {(r["store_id"], r["sku"]): r for r in frame.collect()}


def _lives(daily: Daily) -> dict[tuple[str, str], tuple[dt.date, dt.date, int]]:
    """(first day, last day, days) of each location x SKU."""
    days: dict[tuple[str, str], list[dt.date]] = {}
    for store, sku, day in daily:
        days.setdefault((store, sku), []).append(day)
    return {pair: (min(d), max(d), len(d)) for pair, d in days.items()}


@dataclass(frozen=True)
class Computed:
    daily: Daily
    static: Static


@pytest.fixture(scope="module")
def default(inputs: Inputs) -> Computed:
    """The features of the hand-made history without listings."""
    features = inputs.features()
    return Computed(_by_key(features.daily), _by_pair(features.static))


def test_returns_are_netted_into_their_day_and_never_below_zero(default: Computed) -> None:
    rows = [default.daily[("S1", "A", _day(d))] for d in (1, 2, 3, 4, 5)]
    assert [r["units"] for r in rows] == [2, 3, 1, 0, 0]
    # Price and promotion come from the day's sales: the return on the 3rd carries its sale's promo and price.
    assert [r["price_ratio"] for r in rows] == [1.0, 0.8, 1.0, None, None]
    assert [r["promo"] for r in rows] == [False, True, False, False, False]
    assert list(rows[0].asDict()) == list(DAILY_COLUMNS)


def test_rows_cover_exactly_the_selling_life_before_as_of(default: Computed) -> None:
    first, last = _day(1), _day(9)  # the first order day, and the day before AS_OF
    expected = {}
    for store, opened in (("S1", first), ("S2", _day(5)), ("S9", first)):
        expected[(store, "A")] = (opened, last)
        expected[(store, "B")] = (max(opened, _day(4)), last)
        expected[(store, "C")] = (opened, _day(6))
    assert _lives(default.daily) == {pair: (a, b, (b - a).days + 1) for pair, (a, b) in expected.items()}
    assert set(default.static) == set(expected)
    assert sum(r["units"] for r in default.daily.values()) == 2 + 3 + 1 + 1 + 4  # nothing from AS_OF on


def test_listings_replace_the_default_life(inputs: Inputs, arrow_to_spark: ToSpark) -> None:
    listings = _listings(
        [
            ("S1", "A", _day(3), _day(5)),
            ("S1", "A", _day(5), _day(6)),  # overlaps the one before: each day once
            ("S2", "C", _day(8), None),  # ended for the product on the 6th, but listed: the listing decides
            ("S1", "B", AS_OF, None),  # starts on AS_OF
            ("S1", "F", _day(1), None),  # launched after AS_OF
            ("S7", "A", _day(1), None),  # a store the stores table lacks
        ]
    )
    features = inputs.features(arrow_to_spark(listings))
    assert _lives(_by_key(features.daily)) == {("S1", "A"): (_day(3), _day(6), 4), ("S2", "C"): (_day(8), _day(9), 2)}
    # Sales on unlisted days are reported, not published.
    outside = {(r["store_id"], r["sku"], r["date"]): r["units"] for r in features.sold_outside_life.collect()}
    assert outside == {
        ("S1", "A", _day(1)): 2,
        ("S1", "A", _day(2)): 3,
        ("S9", "A", _day(5)): 4,
        ("S9", "B", _day(5)): 1,
    }


def test_stockout_days_are_censored_and_keep_their_sales(default: Computed) -> None:
    censored = {key: row["units"] for key, row in default.daily.items() if row["censored"]}
    assert censored == {("S1", "A", _day(2)): 3}


def test_online_is_a_location_of_its_own(default: Computed) -> None:
    daily, static = default.daily, default.static
    # The web order booked to S1 counts at the online store, not at the shop.
    assert daily[("S9", "B", _day(5))]["units"] == 1
    assert daily[("S1", "B", _day(5))]["units"] == 0
    assert daily[("S9", "A", _day(5))]["units"] == 4
    assert (static[("S9", "A")]["region"], static[("S9", "A")]["format"]) == ("national", "online")


def test_without_an_online_store_online_sales_get_a_location_from_their_first_sale(
    inputs: Inputs, arrow_to_spark: ToSpark
) -> None:
    shops = arrow_to_spark(_stores([s for s in STORES if s[2] != "online"]))
    features = inputs.features(stores=shops)
    daily = _by_key(features.daily)
    assert {pair: life for pair, life in _lives(daily).items() if pair[0] == "online"} == {
        ("online", "A"): (_day(5), _day(9), 5),
        ("online", "B"): (_day(5), _day(9), 5),
        ("online", "C"): (_day(5), _day(6), 2),
    }
    assert (daily[("online", "A", _day(5))]["units"], daily[("online", "B", _day(5))]["units"]) == (4, 1)
    static = _by_pair(features.static)
    assert (static[("online", "A")]["region"], static[("online", "A")]["format"]) == ("national", "online")


def test_static_attributes_and_tiers_of_products_launched_before_as_of(default: Computed) -> None:
    row = default.static[("S2", "B")]
    assert list(row.asDict()) == list(STATIC_COLUMNS)
    assert (row["region"], row["format"], row["department"], row["category"], row["brand"]) == (
        "south", "mall", "apparel", "tops", "b",
    )  # fmt: skip
    assert row["launch_date"] == _day(4)
    # F, the cheapest, launches after AS_OF: counted, it would push A and B down a tier.
    assert {sku: default.static[("S1", sku)]["price_tier"] for sku in "ABC"} == {"A": "low", "B": "mid", "C": "high"}


def test_price_tiers_are_terciles_within_each_category(arrow_to_spark: ToSpark) -> None:
    launch = dt.date(2023, 1, 1)
    catalogue = pa.concat_tables(
        [
            _products([(f"T{p}", float(p), launch, None) for p in range(1, 7)], "tops"),
            _products([(f"E{i}", p, launch, None) for i, p in enumerate([5.0, 5.0, 5.0, 6.0, 7.0, 8.0])], "shoes"),
            _products([("B0", 3.0, launch, None)], "bags"),
        ]
    )
    tiers = {r["sku"]: r["price_tier"] for r in price_tiers(arrow_to_spark(catalogue)).collect()}
    assert [tiers[f"T{p}"] for p in range(1, 7)] == ["low", "low", "mid", "mid", "high", "high"]
    # Equal prices share a tier; a category of one SKU is in the middle.
    assert [tiers[f"E{i}"] for i in range(6)] == ["low", "low", "low", "mid", "high", "high"]
    assert tiers["B0"] == "mid"


def test_daily_checks_name_what_is_wrong(spark: SparkSession) -> None:
    schema = "store_id string, sku string, date date, units long, censored boolean, promo boolean, price_ratio double"
    bad = spark.createDataFrame(
        [("S1", "A", _day(1), -1, False, False, None), ("S1", "A", _day(1), 2, False, False, 25.0)], schema
    )
    with pytest.raises(DataQualityError) as failed:
        validate(bad, daily_checks(), "daily demand")
    message = str(failed.value)
    assert "unique on store_id,sku,date: observed 1 duplicate rows" in message
    assert "range on units: observed min -1" in message
    assert "range on price_ratio: observed min 25, max 25" in message


# -- point in time ----------------------------------------------------------------------------------------------
CUTOFF = dt.date(2024, 7, 1)


def _changed_after(orders: list[dict[str, Any]], cutoff: dt.date) -> list[dict[str, Any]]:
    """Lines on or after the cutoff changed (other quantities, prices, promos, stores, web orders booked to a
    shop) or deleted (every third), plus returns on the cutoff of sales before it."""
    before = [r for r in orders if r["ts"].date() < cutoff]
    after = [r for r in orders if r["ts"].date() >= cutoff]
    changed = [
        {**r, "quantity": r["quantity"] * 3, "unit_price": r["unit_price"] + 7,
         "store_id": "S001", "promo": True, "channel": "online"}
        for i, r in enumerate(after) if i % 3
    ]  # fmt: skip
    cutoff_ts = dt.datetime.combine(cutoff, dt.time(8))
    returns = [{**r, "order_id": f"RET{i}", "ts": cutoff_ts, "quantity": -50} for i, r in enumerate(before[-20:])]
    return before + changed + returns


@dataclass(frozen=True)
class PitInputs(Inputs):
    listings: DataFrame


@pytest.fixture(scope="module")
def curated_lines(raw_tables: dict[str, pa.Table], arrow_to_spark: ToSpark) -> list[dict[str, Any]]:
    """The conftest world's order lines, curated."""
    curated = curate_orders(arrow_to_spark(raw_tables["order_lines"]), dt.date(2025, 1, 1)).curated.drop("dt")
    return [r.asDict() for r in curated.collect()]


def _pit_inputs(curated: list[dict[str, Any]], raw: dict[str, pa.Table], to_spark: ToSpark, future: bool) -> PitInputs:
    """The conftest world's inputs, with stores and listings; with `future`, other data on or after CUTOFF:
    orders, stockouts, an online store and a product (the cheapest of its category) opened and launched on it,
    listings starting on it and listings running past it ending elsewhere."""
    # A web order booked to a shop before the cutoff: where it goes depends on which online stores exist.
    lines = [*curated, {**curated[0], "order_id": "WEB", "ts": dt.datetime(2024, 1, 15, 12), "store_id": "S001",
                        "channel": "online"}]  # fmt: skip
    stores = [
        ("S001", "north", "flagship", dt.date(2020, 1, 1)),
        ("S002", "south", "mall", dt.date(2024, 3, 1)),
        ("S003", "national", "online", dt.date(2020, 1, 1)),
    ]
    products = raw["products"].to_pylist()
    stockouts = raw["stockouts"].to_pylist()
    listings = [(s, p["sku"], dt.date(2024, 2, 1), dt.date(2024, 9, 1)) for s, *_ in stores for p in products[::2]]
    if future:
        lines = _changed_after(lines, CUTOFF)
        stores.append(("S004", "national", "online", CUTOFF))
        products.append({**products[0], "sku": "SKUNEW", "base_price": 0.5, "launch_date": CUTOFF})
        stockouts = [s for s in stockouts if s["date"] < CUTOFF] + [
            {"store_id": "S001", "sku": p["sku"], "date": CUTOFF + dt.timedelta(days=d)}
            for p in products for d in range(3)
        ]  # fmt: skip
        listings = [(s, k, a, dt.date(2024, 12, 1)) for s, k, a, _ in listings] + [
            (s, p["sku"], CUTOFF, None) for s, *_ in stores for p in products
        ]
    return PitInputs(
        orders=to_spark(pa.Table.from_pylist(lines, schema=ORDER_LINE_SCHEMA)),
        products=to_spark(_without_attributes(products)),
        stores=to_spark(_stores(stores)),
        stockouts=to_spark(pa.Table.from_pylist(stockouts, schema=STOCKOUT_SCHEMA)),
        listings=to_spark(_listings(listings)),
    )


def _sorted_rows(features: DemandFeatures) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    return sorted(tuple(r) for r in features.daily.collect()), sorted(tuple(r) for r in features.static.collect())


@pytest.mark.parametrize("with_listings", [False, True], ids=["default-life", "listings"])
def test_nothing_on_or_after_as_of_changes_the_output(
    curated_lines: list[dict[str, Any]], raw_tables: dict[str, pa.Table], arrow_to_spark: ToSpark, with_listings: bool
) -> None:
    def run(future: bool) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        i = _pit_inputs(curated_lines, raw_tables, arrow_to_spark, future)
        listings = i.listings if with_listings else None
        return _sorted_rows(demand_features(i.orders, i.products, i.stores, i.stockouts, listings, CUTOFF))

    (daily, static), (daily_changed, static_changed) = run(future=False), run(future=True)
    assert len(daily) > 1000
    assert any(row[DAILY_COLUMNS.index("censored")] for row in daily)  # stockouts are read
    assert daily == daily_changed
    assert static == static_changed


# -- the job end to end ------------------------------------------------------------------------------------------
RAW_SNAPSHOT = dt.date(2024, 12, 31)


@dataclass(frozen=True)
class JobRun:
    result: JobResult
    daily: dict[str, pa.Table]
    static: dict[str, pa.Table]


def _partitions(lake: Lake, prefix: str) -> dict[str, pa.Table]:
    """The Parquet files under `prefix`, by partition folder name."""
    parts: dict[str, list[pa.Table]] = {}
    for obj in lake.list(prefix):
        if obj.key.endswith(".parquet"):
            folder = obj.key[len(prefix) :].split("/")[0]
            parts.setdefault(folder, []).append(pq.read_table(io.BytesIO(lake.get_bytes(obj.key))))
    return {folder: pa.concat_tables(tables) for folder, tables in parts.items()}


@pytest.fixture(scope="module")
def job_run(
    curated_lines: list[dict[str, Any]], raw_tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JobRun]:
    """`demand_features` on a moto lake holding the conftest world's curated orders, stockouts and products, and
    stores (S003 sells online); no listings."""
    stores = _stores(
        [
            ("S001", "north", "flagship", dt.date(2020, 1, 1)),
            ("S002", "south", "mall", dt.date(2020, 1, 1)),
            ("S003", "national", "online", dt.date(2020, 1, 1)),
        ]
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHELFWISE_WORK_DIR", str(tmp_path_factory.mktemp("work")))
        settings.cache_clear()
        with local_aws():
            lake = Lake()
            curated = pa.Table.from_pylist(curated_lines, schema=ORDER_LINE_SCHEMA)
            lake.write_partitioned(curated, "curated", "order_lines", "ts")
            lake.write_partitioned(raw_tables["stockouts"], "raw", "stockouts", "date")
            lake.write_table(raw_tables["products"], partition_prefix("raw", "products", RAW_SNAPSHOT))
            lake.write_table(stores, partition_prefix("raw", "stores", RAW_SNAPSHOT))
            result = run_job("demand_features", lake)
            yield JobRun(
                result, _partitions(lake, "features/demand/daily/"), _partitions(lake, "features/demand/static/")
            )
        settings.cache_clear()


def test_the_job_publishes_daily_and_static_tables_as_of_the_day_after_the_last_order(
    job_run: JobRun, curated_lines: list[dict[str, Any]], raw_tables: dict[str, pa.Table]
) -> None:
    days = sorted({line["ts"].date() for line in curated_lines})
    partition = f"as_of={days[-1] + dt.timedelta(days=1)}"
    assert list(job_run.daily) == list(job_run.static) == [partition]
    daily, static = job_run.daily[partition], job_run.static[partition]
    assert daily.column_names == [*DAILY_COLUMNS, VERSION_COLUMN]
    assert static.column_names == [*STATIC_COLUMNS, VERSION_COLUMN]
    assert set(daily.column(VERSION_COLUMN).to_pylist()) == {FEATURE_SET_VERSION}
    # No listings: every SKU at every store on every day from the first order to the last.
    pairs = 3 * raw_tables["products"].num_rows
    counts = job_run.result.counts
    assert static.num_rows == counts["static_rows"] == pairs
    assert daily.num_rows == counts["daily_rows"] == pairs * ((days[-1] - days[0]).days + 1)
    assert 0 < counts["censored_days"] == sum(daily.column("censored").to_pylist())
    assert min(daily.column("units").to_pylist()) == 0
    assert counts["sold_days_outside_life"] == 0
