"""Fashion-MNIST images -> a product catalogue world (kind "fashion-mnist"): products and images, no sales.

Each valid row becomes product `SKU<row>` (row = 1-based data row, so a sku does not change when another row is
quarantined) in its class's category, with its 28x28 grey image written losslessly as `images/<sku>.png`.
The data set has no prices or dates: base prices are nominal list prices per class (`CLASSES`, flagged in the
product's attributes) and every product launches on the data set's release date, 2017-08-25.

Cleaning rules (`RULES`), applied in order; a rejected row keeps its original text (`raw`) and a `reason` in
`quarantine/<rule>.parquet`.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from PIL import Image

from shelfwise.loaders.report import CleaningRule, LoadReport
from shelfwise.loaders.world_files import (
    Manifest,
    prepare_out_dir,
    require_columns,
    to_arrow,
    write_parquet,
    write_quarantine,
)
from shelfwise.schemas import PRODUCT_SCHEMA

KIND = "fashion-mnist"
GENERATOR_VERSION = "shelfwise.loaders.fashion_mnist/1"
SIDE = 28
PIXELS = SIDE * SIDE
COLUMNS = ["label", *(f"pixel{i}" for i in range(1, PIXELS + 1))]
RELEASE_DATE = dt.date(2017, 8, 25)

#: Fashion-MNIST class id -> (class name, department, nominal list price).
CLASSES: dict[int, tuple[str, str, float]] = {
    0: ("T-shirt/top", "apparel", 14.99),
    1: ("Trouser", "apparel", 39.99),
    2: ("Pullover", "apparel", 34.99),
    3: ("Dress", "apparel", 44.99),
    4: ("Coat", "apparel", 89.99),
    5: ("Sandal", "footwear", 29.99),
    6: ("Shirt", "apparel", 29.99),
    7: ("Sneaker", "footwear", 59.99),
    8: ("Bag", "accessories", 49.99),
    9: ("Ankle boot", "footwear", 79.99),
}

RULES: tuple[CleaningRule, ...] = (
    CleaningRule("wrong_field_count", f"a row must have a label and {PIXELS} pixels"),
    CleaningRule("unknown_label", f"the label must be a class id 0..{len(CLASSES) - 1}"),
    CleaningRule("bad_pixel", "every pixel must be an integer 0..255"),
)


@dataclass(frozen=True)
class Item:
    """A valid row: its source row, class id and 28x28 grey image."""

    row: int
    label: int
    pixels: npt.NDArray[np.uint8]

    @property
    def sku(self) -> str:
        return f"SKU{self.row:05d}"


@dataclass(frozen=True)
class Rejected:
    """A row that breaks `rule`, with its original text."""

    row: int
    rule: str
    reason: str
    raw: str


def read_rows(source: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based data row, fields) of every row; fails naming any missing column of the header."""
    with gzip.open(source, "rt", newline="") if source.suffix == ".gz" else source.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        require_columns(source, header, COLUMNS)
        if header[: len(COLUMNS)] != COLUMNS:
            raise ValueError(f"{source}: columns must be {COLUMNS[0]}, {COLUMNS[1]}..{COLUMNS[-1]} in that order")
        yield from enumerate(reader, start=1)


def check_row(row: int, fields: list[str]) -> Item | Rejected:
    """The row as an item, or the first rule it breaks."""
    raw = ",".join(fields)
    if len(fields) != len(COLUMNS):
        return Rejected(row, "wrong_field_count", f"{len(fields)} fields, expected {len(COLUMNS)}", raw)
    label = fields[0].strip()
    if not label.isdigit() or int(label) not in CLASSES:
        return Rejected(row, "unknown_label", f"label {fields[0]!r} is not a class id 0..{len(CLASSES) - 1}", raw)
    try:
        values = np.array([int(v) for v in fields[1:]], dtype=np.int64)
    except ValueError:
        bad = next(i for i, v in enumerate(fields[1:], start=1) if not v.strip().lstrip("-").isdigit())
        return Rejected(row, "bad_pixel", f"pixel{bad} {fields[bad]!r} is not an integer", raw)
    out_of_range = np.flatnonzero((values < 0) | (values > 255))
    if out_of_range.size:
        first = int(out_of_range[0])
        return Rejected(row, "bad_pixel", f"pixel{first + 1} = {values[first]} is outside 0..255", raw)
    return Item(row, int(label), values.astype(np.uint8).reshape(SIDE, SIDE))


def image_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """The image as an 8-bit grey PNG (lossless)."""
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def load_fashion_mnist(source: Path, out_dir: Path) -> LoadReport:
    """Write the catalogue world at `out_dir`; returns the reconciled accounting."""
    items: list[Item] = []
    rejected: list[Rejected] = []
    for row, fields in read_rows(source):
        result = check_row(row, fields)
        if isinstance(result, Item):
            items.append(result)
        else:
            rejected.append(result)
    prepare_out_dir(out_dir)
    counts = _write_quarantine(rejected, out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for item in items:
        (out_dir / "images" / f"{item.sku}.png").write_bytes(image_png(item.pixels))
    products = build_products(items)
    write_parquet(to_arrow(products, PRODUCT_SCHEMA), out_dir / "products.parquet")
    manifest = Manifest(
        kind=KIND,
        start_date=RELEASE_DATE,
        end_date=RELEASE_DATE,
        generator_version=GENERATOR_VERSION,
        extra={
            "source": {"name": "Fashion-MNIST (Zalando, MIT)", "file": source.name, "rows": len(items) + len(rejected)},
            "images": len(items),
            "quarantine": counts,
        },
    )
    manifest.add_table("products", len(products), ["products.parquet"])
    manifest.write(out_dir)
    report = LoadReport(
        source=source,
        out_dir=out_dir,
        input_rows=len(items) + len(rejected),
        loaded_rows=len(items),
        rules=counts,
        rule_descriptions={rule.name: rule.description for rule in RULES},
    )
    report.assert_reconciles()
    return report


def _write_quarantine(rejected: list[Rejected], out_dir: Path) -> dict[str, int]:
    counts = {rule.name: 0 for rule in RULES}
    for rule in RULES:
        rows = [r for r in rejected if r.rule == rule.name]
        counts[rule.name] = len(rows)
        if rows:
            frame = pd.DataFrame({"source_row": [r.row for r in rows], "raw": [r.raw for r in rows]})
            write_quarantine(out_dir, rule.name, frame.assign(reason=[r.reason for r in rows]))
    return counts


def build_products(items: list[Item]) -> pd.DataFrame:
    """One product per item, in its class's category and department."""
    return pd.DataFrame(
        {
            "sku": [item.sku for item in items],
            "department": [CLASSES[item.label][1] for item in items],
            "category": [CLASSES[item.label][0] for item in items],
            "brand": "",
            "base_price": [CLASSES[item.label][2] for item in items],
            "launch_date": RELEASE_DATE,
            "end_date": None,
            "image_key": [f"images/{item.sku}.png" for item in items],
            "attributes": [
                {"label": str(item.label), "price_source": "nominal list price per class"} for item in items
            ],
        }
    )
