"""Fixtures for lake tests: a real moto server on loopback per test module, and a small hand-built world folder
in the format of docs/contracts.md."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shelfwise.lake import Lake
from shelfwise.local_aws import local_aws
from shelfwise.schemas import (
    CLICK_EVENT_SCHEMA,
    CUSTOMER_SCHEMA,
    ORDER_LINE_SCHEMA,
    PRODUCT_SCHEMA,
    SCHEMA_VERSION,
    STOCKOUT_SCHEMA,
    STORE_SCHEMA,
)


@pytest.fixture(scope="module")
def lake() -> Iterator[Lake]:
    with local_aws() as aws:
        yield Lake(aws.settings)


END = dt.date(2024, 1, 3)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))  # the bytes are copied as they are, so any content will do


def ts(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, 15)


def line(
    order: str, no: int, when: dt.datetime, sku: str, quantity: int = 1, customer: str | None = "C000001"
) -> dict[str, Any]:
    return {
        "order_id": order,
        "line_no": no,
        "ts": when,
        "store_id": "S001",
        "customer_id": customer,
        "sku": sku,
        "quantity": quantity,
        "unit_price": 9.5,
        "promo": False,
        "channel": "store",
    }


TABLES: dict[str, list[tuple[str, pa.Schema, list[dict[str, Any]]]]] = {
    "stores": [
        (
            "stores.parquet",
            STORE_SCHEMA,
            [
                {"store_id": "S001", "region": "north", "format": "mall", "open_date": dt.date(2020, 1, 1)},
                {"store_id": "S002", "region": "south", "format": "online", "open_date": dt.date(2021, 5, 1)},
            ],
        )
    ],
    "products": [
        (
            "products.parquet",
            PRODUCT_SCHEMA,
            [
                {
                    "sku": f"SKU0000{i}",
                    "department": "home",
                    "category": "kitchen",
                    "brand": "acme",
                    "base_price": 9.5,
                    "launch_date": dt.date(2023, 1, i),
                    "end_date": None,
                    "image_key": f"images/SKU0000{i}.png",
                    "attributes": [("colour", "red")],
                }
                for i in (1, 2, 3)
            ],
        )
    ],
    "customers": [
        (
            "customers.parquet",
            CUSTOMER_SCHEMA,
            [
                {"customer_id": "C000001", "signup_date": dt.date(2023, 6, 1), "region": "north", "channel": "store"},
                {"customer_id": "C000002", "signup_date": dt.date(2023, 7, 1), "region": "south", "channel": "online"},
            ],
        )
    ],
    # Two chunks that both hold 2 January: ingesting the second must not overwrite the first's partition file.
    "order_lines": [
        (
            "order_lines/part-00000.parquet",
            ORDER_LINE_SCHEMA,
            [
                line("O00000001", 1, ts(1, 9), "SKU00001"),
                line("O00000001", 2, ts(1, 9), "SKU00002", 3),
                line("O00000002", 1, ts(2, 8), "SKU00003", customer=None),
            ],
        ),
        (
            "order_lines/part-00001.parquet",
            ORDER_LINE_SCHEMA,
            [line("O00000003", 1, ts(2, 18), "SKU00001", -1), line("O00000004", 1, ts(3, 12), "SKU00002")],
        ),
    ],
    "clickstream": [
        (
            "clickstream/part-00000.parquet",
            CLICK_EVENT_SCHEMA,
            [
                {
                    "event_id": f"E{i}",
                    "event_type": "search" if i == 0 else "view",
                    "session_id": "X1",
                    "customer_id": None,
                    "sku": None if i == 0 else "SKU00001",
                    "ts": ts(1 + i % 3, 10),
                    "query": "mug" if i == 0 else None,
                }
                for i in range(4)
            ],
        )
    ],
    "stockouts": [
        (
            "stockouts.parquet",
            STOCKOUT_SCHEMA,
            [
                {"store_id": "S001", "sku": "SKU00003", "date": dt.date(2024, 1, 2)},
                {"store_id": "S001", "sku": "SKU00003", "date": dt.date(2024, 1, 3)},
            ],
        )
    ],
}


def build_world(root: Path, kind: str = "synthetic") -> Path:
    """Write the world and return its folder."""
    manifest_tables = {}
    for name, files in TABLES.items():
        for path, schema, rows in files:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / path)
        manifest_tables[name] = {"rows": sum(len(rows) for _, _, rows in files), "files": [p for p, _, _ in files]}
    (root / "images").mkdir(exist_ok=True)
    for i in (1, 2, 3):
        (root / "images" / f"SKU0000{i}.png").write_bytes(PNG + bytes([i]))
    manifest = {
        "kind": kind,
        "scale": "tiny",
        "seed": 1,
        "start_date": "2024-01-01",
        "end_date": END.isoformat(),
        "generator_version": "test",
        "schema_version": SCHEMA_VERSION,
        "tables": manifest_tables,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def source_table(name: str) -> pa.Table:
    """Every row of one source as the world holds it."""
    return pa.concat_tables([pa.Table.from_pylist(rows, schema=schema) for _, schema, rows in TABLES[name]])


@dataclass(frozen=True)
class SmallWorld:
    """A world folder of a few rows per source, and its tables as written."""

    root: Path
    tables: dict[str, pa.Table]
    images: dict[str, bytes]


@pytest.fixture
def small_world(tmp_path: Path) -> SmallWorld:
    root = build_world(tmp_path / "world")
    images = {path.name: path.read_bytes() for path in (root / "images").glob("*.png")}
    return SmallWorld(root, {name: source_table(name) for name in TABLES}, images)
