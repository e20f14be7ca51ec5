"""Arrow tables of the world: the raw tables in the `shelfwise.schemas` schemas, and the truth tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shelfwise.schemas import (
    CLICK_EVENT_SCHEMA,
    CUSTOMER_SCHEMA,
    ORDER_LINE_SCHEMA,
    PRODUCT_SCHEMA,
    REGIONAL_HOLIDAY_SCHEMA,
    STOCKOUT_SCHEMA,
    STORE_SCHEMA,
)
from shelfwise.world.arrays import BoolArray, IntArray
from shelfwise.world.calendar import CHANNELS, Calendar, HolidayEffects, regional_holiday, weekly_profile
from shelfwise.world.catalog import CATEGORIES, Products, Stores
from shelfwise.world.clickstream import EVENT_TYPES
from shelfwise.world.customers import NEVER, Customers
from shelfwise.world.images import Style
from shelfwise.world.pricing import DIP_DAYS, Promotions
from shelfwise.world.simulate import MonthCells, MonthEvents, MonthLines

TRUTH_DEMAND_SCHEMA = pa.schema(
    [
        pa.field("store_id", pa.string(), nullable=False),
        pa.field("sku", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("demand", pa.int64(), nullable=False),  # units wanted, before stockouts
        pa.field("sales", pa.int64(), nullable=False),
        pa.field("stockout", pa.bool_(), nullable=False),
        pa.field("promo", pa.bool_(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),  # price paid (after any promotional discount)
    ]
)
TRUTH_CATEGORY_SCHEMA = pa.schema(
    [
        pa.field("department", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("elasticity", pa.float64(), nullable=False),
        pa.field("weekly_store", pa.list_(pa.float64()), nullable=False),  # Monday first, mean 1
        pa.field("weekly_online", pa.list_(pa.float64()), nullable=False),
        pa.field("yearly_amplitude", pa.float64(), nullable=False),
        pa.field("yearly_peak_day", pa.int64(), nullable=False),
        pa.field("black_friday_sensitivity", pa.float64(), nullable=False),
        pa.field("christmas_sensitivity", pa.float64(), nullable=False),
        pa.field("easter_sensitivity", pa.float64(), nullable=False),
        pa.field("january_sensitivity", pa.float64(), nullable=False),
        pa.field("promo_display_uplift", pa.float64(), nullable=False),
        pa.field("post_promo_dip", pa.float64(), nullable=False),
        pa.field("return_rate", pa.float64(), nullable=False),
    ]
)
TRUTH_PROMOTION_SCHEMA = pa.schema(
    [
        pa.field("sku", pa.string(), nullable=False),
        pa.field("store_id", pa.string()),  # null = every store
        pa.field("start", pa.date32(), nullable=False),
        pa.field("end", pa.date32(), nullable=False),
        pa.field("discount", pa.float64(), nullable=False),
        pa.field("uplift", pa.float64(), nullable=False),  # demand multiplier while on promotion
        pa.field("post_promo_dip", pa.float64(), nullable=False),  # demand lost on the first day after (share)
        pa.field("dip_days", pa.int64(), nullable=False),
    ]
)
TRUTH_CUSTOMER_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("purchase_rate", pa.float64(), nullable=False),  # expected orders a day at ordinary traffic
        pa.field("churn_date", pa.date32()),  # first day without activity; null = still active
        pa.field("stockouts_met", pa.int64(), nullable=False),
        pa.field("home_store_id", pa.string(), nullable=False),
        pa.field("online_share", pa.float64(), nullable=False),
    ]
)
TRUTH_HOLIDAY_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("region", pa.string()),  # null = national
        pa.field("store_multiplier", pa.float64(), nullable=False),
        pa.field("online_multiplier", pa.float64(), nullable=False),
    ]
)


def numbered(prefix: str, numbers: IntArray, width: int) -> pa.Array:
    """Ids such as `O00000042` from integers, vectorised in Arrow."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def customer_ids(index: IntArray) -> pa.Array:
    """`C000001`-style ids from 0-based customer indices; -1 becomes null."""
    ids = numbered("C", index + 1, 6)
    return pc.if_else(pa.array(index < 0), pa.scalar(None, pa.string()), ids)


def lookup(names: tuple[str, ...], index: IntArray) -> pa.Array:
    """names[index], null where index is -1."""
    return pa.array(names, pa.string()).take(pa.array(index, pa.int64(), mask=index < 0))


def dates(cal: Calendar, day: IntArray, missing: BoolArray | None = None) -> pa.Array:
    """Dates of day indices; null where `missing`."""
    start = int(np.datetime64(cal.start, "D").astype(np.int64))
    return pa.array((start + day).astype(np.int32), pa.date32(), mask=missing)


def stores_table(stores: Stores, cal: Calendar) -> pa.Table:
    return pa.table(
        {
            "store_id": pa.array(stores.ids),
            "region": pa.array([stores.region_name(s) for s in range(stores.n)]),
            "format": pa.array(stores.formats),
            "open_date": dates(cal, stores.open_day),
        },
        schema=STORE_SCHEMA,
    )


def products_table(products: Products, styles: tuple[Style, ...], cal: Calendar) -> pa.Table:
    specs = [CATEGORIES[c] for c in products.category]
    ended = products.end_day < cal.n_days
    attributes = [[("color", s.colour), ("pattern", spec.texture)] for s, spec in zip(styles, specs, strict=True)]
    return pa.table(
        {
            "sku": pa.array(products.ids),
            "department": pa.array([s.department for s in specs]),
            "category": pa.array([s.name for s in specs]),
            "brand": pa.array(products.brand),
            "base_price": pa.array(products.base_price),
            "launch_date": dates(cal, products.launch_day),
            "end_date": dates(cal, products.end_day, missing=~ended),
            "image_key": pa.array([f"images/{sku}.png" for sku in products.ids]),
            "attributes": pa.array(attributes, PRODUCT_SCHEMA.field("attributes").type),
        },
        schema=PRODUCT_SCHEMA,
    )


def customers_table(c: Customers, stores: Stores, cal: Calendar) -> pa.Table:
    return pa.table(
        {
            "customer_id": customer_ids(np.arange(c.n, dtype=np.int64)),
            "signup_date": dates(cal, c.signup_day),
            "region": lookup(tuple(stores.region_name(s) for s in range(stores.n)), c.home_store),
            "channel": lookup(CHANNELS, c.prefers_online.astype(np.int64)),
        },
        schema=CUSTOMER_SCHEMA,
    )


def order_lines_table(lines: MonthLines, stores: Stores, products: Products) -> pa.Table:
    return pa.table(
        {
            "order_id": numbered("O", lines.order, 8),
            "line_no": pa.array(lines.line_no, pa.int64()),
            "ts": pa.array(lines.ts, pa.timestamp("us")),
            "store_id": lookup(stores.ids, lines.store),
            "customer_id": customer_ids(lines.customer),
            "sku": lookup(products.ids, lines.sku),
            "quantity": pa.array(lines.quantity, pa.int64()),
            "unit_price": pa.array(lines.unit_price, pa.float64()),
            "promo": pa.array(lines.promo, pa.bool_()),
            "channel": lookup(CHANNELS, lines.channel),
        },
        schema=ORDER_LINE_SCHEMA,
    )


def clickstream_table(events: MonthEvents, products: Products, vocabulary: tuple[str, ...]) -> pa.Table:
    return pa.table(
        {
            "event_id": numbered("E", events.event, 10),
            "event_type": lookup(EVENT_TYPES, events.kind),
            "session_id": numbered("W", events.session, 9),
            "customer_id": customer_ids(events.customer),
            "sku": lookup(products.ids, events.sku),
            "ts": pa.array(events.ts, pa.timestamp("us")),
            "query": lookup(vocabulary, events.query),
        },
        schema=CLICK_EVENT_SCHEMA,
    )


def stockouts_table(cells: MonthCells, stores: Stores, products: Products, cal: Calendar) -> pa.Table:
    out = np.flatnonzero(cells.stockout)
    return pa.table(
        {
            "store_id": lookup(stores.ids, cells.store[out]),
            "sku": lookup(products.ids, cells.sku[out]),
            "date": dates(cal, cells.day[out]),
        },
        schema=STOCKOUT_SCHEMA,
    )


def truth_demand_table(cells: MonthCells, stores: Stores, products: Products, cal: Calendar) -> pa.Table:
    return pa.table(
        {
            "store_id": lookup(stores.ids, cells.store),
            "sku": lookup(products.ids, cells.sku),
            "date": dates(cal, cells.day),
            "demand": pa.array(cells.demand, pa.int64()),
            "sales": pa.array(cells.sales, pa.int64()),
            "stockout": pa.array(cells.stockout, pa.bool_()),
            "promo": pa.array(cells.promo, pa.bool_()),
            "price": pa.array(cells.price, pa.float64()),
        },
        schema=TRUTH_DEMAND_SCHEMA,
    )


def truth_categories_table() -> pa.Table:
    return pa.table(
        {
            "department": [c.department for c in CATEGORIES],
            "category": [c.name for c in CATEGORIES],
            "elasticity": [c.elasticity for c in CATEGORIES],
            "weekly_store": [weekly_profile(0, c.weekly_strength).tolist() for c in CATEGORIES],
            "weekly_online": [weekly_profile(1, c.weekly_strength).tolist() for c in CATEGORIES],
            "yearly_amplitude": [c.yearly_amplitude for c in CATEGORIES],
            "yearly_peak_day": [c.yearly_peak_day for c in CATEGORIES],
            "black_friday_sensitivity": [c.black_friday for c in CATEGORIES],
            "christmas_sensitivity": [c.christmas for c in CATEGORIES],
            "easter_sensitivity": [c.easter for c in CATEGORIES],
            "january_sensitivity": [c.january for c in CATEGORIES],
            "promo_display_uplift": [c.promo_display for c in CATEGORIES],
            "post_promo_dip": [c.post_promo_dip for c in CATEGORIES],
            "return_rate": [c.return_rate for c in CATEGORIES],
        },
        schema=TRUTH_CATEGORY_SCHEMA,
    )


def truth_promotions_table(promos: Promotions, stores: Stores, products: Products, cal: Calendar) -> pa.Table:
    elasticity = np.array([CATEGORIES[products.category[k]].elasticity for k in promos.sku])
    uplift = promos.display * (1.0 - promos.discount) ** elasticity
    return pa.table(
        {
            "sku": lookup(products.ids, promos.sku),
            "store_id": lookup(stores.ids, promos.store),
            "start": dates(cal, promos.start),
            "end": dates(cal, promos.end),
            "discount": pa.array(promos.discount, pa.float64()),
            "uplift": pa.array(uplift, pa.float64()),
            "post_promo_dip": pa.array(promos.dip, pa.float64()),
            "dip_days": pa.array(np.full(promos.n, DIP_DAYS, dtype=np.int64)),
        },
        schema=TRUTH_PROMOTION_SCHEMA,
    )


def truth_customers_table(c: Customers, stores: Stores, cal: Calendar) -> pa.Table:
    churned = c.churn_day != NEVER
    return pa.table(
        {
            "customer_id": customer_ids(np.arange(c.n, dtype=np.int64)),
            "purchase_rate": pa.array(c.rate, pa.float64()),
            "churn_date": dates(cal, np.where(churned, c.churn_day, 0), missing=~churned),
            "stockouts_met": pa.array(c.stockouts_met, pa.int64()),
            "home_store_id": lookup(stores.ids, c.home_store),
            "online_share": pa.array(c.online_share, pa.float64()),
        },
        schema=TRUTH_CUSTOMER_SCHEMA,
    )


def regional_holidays_table(regions: tuple[str, ...], cal: Calendar) -> pa.Table:
    """The regions' public holidays, as a retailer's calendar lists them: the world's years and the next one, so the
    forecasts' horizon past the world's end is covered. The dates only; how much each lifts demand is the truth's."""
    rows = sorted(
        (date, region, name)
        for year in range(cal.start.year, cal.end.year + 2)
        for region in regions
        for name, date in [regional_holiday(region, year)]
    )
    return pa.table(
        {
            "region": [region for _, region, _ in rows],
            "date": pa.array([date for date, _, _ in rows], pa.date32()),
            "name": [name for _, _, name in rows],
        },
        schema=REGIONAL_HOLIDAY_SCHEMA,
    )


def truth_holidays_table(effects: HolidayEffects) -> pa.Table:
    days = effects.days
    return pa.table(
        {
            "date": pa.array([d.date for d in days], pa.date32()),
            "event": [d.event for d in days],
            "name": [d.name for d in days],
            "region": pa.array([d.region for d in days], pa.string()),
            "store_multiplier": [d.store_multiplier for d in days],
            "online_multiplier": [d.online_multiplier for d in days],
        },
        schema=TRUTH_HOLIDAY_SCHEMA,
    )
