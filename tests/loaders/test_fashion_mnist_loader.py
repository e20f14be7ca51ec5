"""The Fashion-MNIST catalogue loader: products per class, lossless images, bad rows quarantined."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from shelfwise.loaders.fashion_mnist import CLASSES, COLUMNS, load_fashion_mnist
from shelfwise.loaders.sources import FASHION_MNIST_CSV
from shelfwise.loaders.world_files import MissingColumnsError

needs_data = pytest.mark.skipif(not FASHION_MNIST_CSV.is_file(), reason=f"{FASHION_MNIST_CSV} not present")


def source_rows() -> list[list[str]]:
    with gzip.open(FASHION_MNIST_CSV, "rt") as handle:
        return [line.rstrip("\n").split(",") for line in handle][1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")
    return path


@needs_data
def test_real_file_gives_1000_products_in_10_classes_with_exact_images(tmp_path: Path) -> None:
    report = load_fashion_mnist(FASHION_MNIST_CSV, tmp_path)
    report.assert_reconciles()
    assert (report.input_rows, report.loaded_rows) == (1_000, 1_000)
    products = pd.read_parquet(tmp_path / "products.parquet")
    assert len(products) == 1_000
    assert products["sku"].is_unique
    assert set(products["category"]) == {name for name, _, _ in CLASSES.values()}
    assert set(products["department"]) == {"apparel", "footwear", "accessories"}
    assert (products["base_price"] > 0).all()
    by_sku = products.set_index("sku")
    for row, fields in enumerate(source_rows(), start=1):
        sku = f"SKU{row:05d}"
        assert by_sku.at[sku, "category"] == CLASSES[int(fields[0])][0]
        assert dict(by_sku.at[sku, "attributes"])["label"] == fields[0]
        with Image.open(tmp_path / by_sku.at[sku, "image_key"]) as image:
            assert image.mode == "L"
            pixels = np.asarray(image)
        np.testing.assert_array_equal(pixels, np.array(fields[1:], dtype=np.uint8).reshape(28, 28))


@needs_data
def test_corrupted_rows_are_quarantined_with_their_text_and_reason(tmp_path: Path) -> None:
    good = source_rows()[:3]
    short = good[0][:-1]
    unknown_label = ["12", *good[0][1:]]
    too_bright = [good[1][0], "300", *good[1][2:]]
    not_a_number = [good[2][0], *good[2][1:10], "x", *good[2][11:]]
    source = write_csv(tmp_path / "fm.csv", COLUMNS, [good[0], short, unknown_label, good[1], too_bright, not_a_number])
    report = load_fashion_mnist(source, tmp_path / "world")
    report.assert_reconciles()
    assert report.loaded_rows == 2
    assert report.rules == {"wrong_field_count": 1, "unknown_label": 1, "bad_pixel": 2}
    products = pd.read_parquet(tmp_path / "world" / "products.parquet")
    assert products["sku"].tolist() == ["SKU00001", "SKU00004"]  # skus follow source rows
    bad_pixels = pd.read_parquet(tmp_path / "world" / "quarantine" / "bad_pixel.parquet")
    assert bad_pixels["source_row"].tolist() == [5, 6]
    assert bad_pixels["reason"].tolist() == ["pixel1 = 300 is outside 0..255", "pixel10 'x' is not an integer"]
    assert bad_pixels.at[0, "raw"] == ",".join(too_bright)
    short_rows = pd.read_parquet(tmp_path / "world" / "quarantine" / "wrong_field_count.parquet")
    assert short_rows.at[0, "reason"] == "784 fields, expected 785"


def test_missing_pixel_column_is_named(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "fm.csv", COLUMNS[:-1], [["1", *["0"] * 783]])
    with pytest.raises(MissingColumnsError, match="pixel784"):
        load_fashion_mnist(source, tmp_path / "world")


def test_a_header_without_pixels_is_named_briefly(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "fm.csv", ["label", "image"], [["1", "x"]])
    with pytest.raises(MissingColumnsError, match=r"pixel1, pixel2, .*, pixel10 and 774 more$"):
        load_fashion_mnist(source, tmp_path / "world")
