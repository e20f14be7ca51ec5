"""The entities of a retailer's data, as pydantic models (for validation) and Arrow schemas (for Parquet).

The Arrow schema of each table is derived from its model, so the two cannot drift apart. Bump `SCHEMA_VERSION`
when a field changes meaning or type; it is written into every Parquet file's metadata.
"""

from __future__ import annotations

import datetime as dt
import types
from typing import Annotated, Literal, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"

StoreFormat = Literal["flagship", "mall", "neighborhood", "outlet", "online"]
Channel = Literal["store", "online"]
EventType = Literal["view", "add_to_cart", "purchase", "search"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Store(_Record):
    store_id: str = Field(min_length=1)
    region: str = Field(min_length=1)
    format: StoreFormat
    open_date: dt.date


class Product(_Record):
    sku: str = Field(min_length=1)
    department: str = Field(min_length=1)
    category: str = Field(min_length=1)
    brand: str
    base_price: float = Field(gt=0)
    launch_date: dt.date
    end_date: dt.date | None = None
    image_key: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


class Customer(_Record):
    customer_id: str = Field(min_length=1)
    signup_date: dt.date
    region: str = Field(min_length=1)
    channel: Channel


class OrderLine(_Record):
    order_id: str = Field(min_length=1)
    line_no: Annotated[int, Field(ge=1)]
    ts: dt.datetime
    store_id: str = Field(min_length=1)
    customer_id: str | None = None  # None = walk-in
    sku: str = Field(min_length=1)
    quantity: int  # negative = return
    unit_price: float = Field(ge=0)
    promo: bool = False
    channel: Channel


class ClickEvent(_Record):
    event_id: str = Field(min_length=1)
    event_type: EventType
    session_id: str = Field(min_length=1)
    customer_id: str | None = None
    sku: str | None = None  # None for searches
    ts: dt.datetime
    query: str | None = None  # the search text, for searches


class StockoutDay(_Record):
    """A store-day on which a SKU was out of stock (from the inventory system); sales that day are censored."""

    store_id: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    date: dt.date


class Listing(_Record):
    """The period a SKU is on sale at a location (`end_date` inclusive, null = still on sale).

    Zero-filling of demand happens only inside it: a day without sales there is a day of zero demand, outside it
    the SKU was not on offer. When a world has no listings table, every SKU is on sale at every store from its
    launch to its end.
    """

    store_id: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    start_date: dt.date
    end_date: dt.date | None = None


class RegionalHoliday(_Record):
    """A public holiday of one region (a retailer's calendar, known years ahead): the demand forecasts learn its lift.

    `region` is spelt as in the stores table; a holiday of a region no store is in changes nothing.
    """

    region: str = Field(min_length=1)
    date: dt.date
    name: str


_ARROW_TYPES: dict[object, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    dt.date: pa.date32(),
    dt.datetime: pa.timestamp("us"),
}


def _arrow_type(annotation: object) -> tuple[pa.DataType, bool]:
    """Arrow type of a model field's annotation, and whether it is nullable."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _arrow_type(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _arrow_type(inner[0])[0], True
    if origin is Literal:
        return pa.string(), False
    if origin is dict:
        return pa.map_(pa.string(), pa.string()), False
    return _ARROW_TYPES[annotation], False


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    """The Parquet schema of a table, with the schema version in its metadata."""
    fields = []
    for name, info in model.model_fields.items():
        arrow_type, nullable = _arrow_type(info.annotation)
        fields.append(pa.field(name, arrow_type, nullable=nullable))
    return pa.schema(fields, metadata={"shelfwise.schema_version": SCHEMA_VERSION, "shelfwise.entity": model.__name__})


#: Every raw table, by the source name used in the lake (`raw/<source>/`).
TABLES: dict[str, type[_Record]] = {
    "stores": Store,
    "products": Product,
    "customers": Customer,
    "order_lines": OrderLine,
    "clickstream": ClickEvent,
    "stockouts": StockoutDay,
    "listings": Listing,
    "regional_holidays": RegionalHoliday,
}

STORE_SCHEMA = arrow_schema(Store)
PRODUCT_SCHEMA = arrow_schema(Product)
CUSTOMER_SCHEMA = arrow_schema(Customer)
ORDER_LINE_SCHEMA = arrow_schema(OrderLine)
CLICK_EVENT_SCHEMA = arrow_schema(ClickEvent)
STOCKOUT_SCHEMA = arrow_schema(StockoutDay)
LISTING_SCHEMA = arrow_schema(Listing)
REGIONAL_HOLIDAY_SCHEMA = arrow_schema(RegionalHoliday)
