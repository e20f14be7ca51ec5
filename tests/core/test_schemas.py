"""Schemas: the Arrow schema of each table follows its pydantic model."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from pydantic import ValidationError

from shelfwise.schemas import ORDER_LINE_SCHEMA, PRODUCT_SCHEMA, SCHEMA_VERSION, TABLES, OrderLine, arrow_schema


def test_every_table_has_a_versioned_arrow_schema_with_the_model_fields() -> None:
    for model in TABLES.values():
        schema = arrow_schema(model)
        assert schema.names == list(model.model_fields)
        assert schema.metadata[b"shelfwise.schema_version"] == SCHEMA_VERSION.encode()


def test_arrow_types_and_nullability() -> None:
    assert ORDER_LINE_SCHEMA.field("ts").type == pa.timestamp("us")
    assert ORDER_LINE_SCHEMA.field("quantity").type == pa.int64()
    assert ORDER_LINE_SCHEMA.field("customer_id").nullable
    assert not ORDER_LINE_SCHEMA.field("sku").nullable
    assert PRODUCT_SCHEMA.field("attributes").type == pa.map_(pa.string(), pa.string())
    assert PRODUCT_SCHEMA.field("end_date").type == pa.date32()


def test_order_line_allows_returns_and_walk_ins() -> None:
    line = OrderLine(
        order_id="O1",
        line_no=1,
        ts=dt.datetime(2024, 11, 29, 10),
        store_id="S001",
        customer_id=None,
        sku="SKU1",
        quantity=-2,
        unit_price=9.99,
        channel="store",
    )
    assert line.quantity == -2
    assert line.customer_id is None


@pytest.mark.parametrize(
    ("field", "value"), [("line_no", 0), ("unit_price", -1.0), ("channel", "fax"), ("order_id", "")]
)
def test_order_line_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    row = {
        "order_id": "O1",
        "line_no": 1,
        "ts": dt.datetime(2024, 1, 1),
        "store_id": "S001",
        "sku": "SKU1",
        "quantity": 1,
        "unit_price": 1.0,
        "channel": "store",
    }
    row[field] = value
    with pytest.raises(ValidationError) as info:
        OrderLine(**row)  # type: ignore[arg-type]
    assert field in str(info.value)
