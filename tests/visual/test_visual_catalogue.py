"""The visual catalogue: loading from a world folder and from the Fashion-MNIST CSV, and the split by SKU."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from shelfwise.visual.catalogue import (
    Catalogue,
    CatalogueError,
    fashion_mnist_catalogue,
    split_by_sku,
    world_catalogue,
)


def _catalogue(counts: dict[str, int]) -> Catalogue:
    category = tuple(c for c, n in counts.items() for _ in range(n))
    n = len(category)
    return Catalogue(
        images=np.zeros((n, 4, 4, 3), dtype=np.uint8),
        skus=tuple(f"SKU{i:05d}" for i in range(n)),
        category=category,
        department=("d",) * n,
        attributes=({},) * n,
    )


def test_the_split_never_puts_a_sku_on_both_sides_and_keeps_every_category_on_both() -> None:
    catalogue = _catalogue({"a": 10, "b": 7, "c": 2, "d": 30})
    split = split_by_sku(catalogue, test_fraction=0.3, seed=3)
    train = {catalogue.skus[i] for i in split.train}
    test = {catalogue.skus[i] for i in split.test}
    assert not train & test
    assert train | test == set(catalogue.skus)
    for side in (split.train, split.test):
        assert {catalogue.category[i] for i in side} == {"a", "b", "c", "d"}
    held_out = pd.Series([catalogue.category[i] for i in split.test]).value_counts().to_dict()
    assert held_out == {"a": 3, "b": 2, "c": 1, "d": 9}


def test_the_split_is_seeded() -> None:
    catalogue = _catalogue({"a": 20, "b": 20})
    first, again, other = (split_by_sku(catalogue, seed=s) for s in (1, 1, 2))
    assert np.array_equal(first.test, again.test)
    assert not np.array_equal(first.test, other.test)


def test_a_bad_test_fraction_is_refused() -> None:
    with pytest.raises(CatalogueError, match="test_fraction"):
        split_by_sku(_catalogue({"a": 4}), test_fraction=1.0)


def test_a_world_folder_loads_as_rgb_with_its_attributes(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(tmp_path / "images" / "SKU00002.png")
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L").save(tmp_path / "images" / "SKU00001.png")
    pd.DataFrame(
        {
            "sku": ["SKU00002", "SKU00001"],
            "department": ["home", "apparel"],
            "category": ["kitchen", "t-shirts"],
            "image_key": ["images/SKU00002.png", "images/SKU00001.png"],
            "attributes": [[("color", "red")], [("color", "blue"), ("pattern", "stripes")]],
        }
    ).to_parquet(tmp_path / "products.parquet")
    catalogue = world_catalogue(tmp_path)
    assert catalogue.skus == ("SKU00001", "SKU00002")
    assert catalogue.images.shape == (2, 8, 8, 3)
    assert np.array_equal(catalogue.images[0, :, :, 2], np.arange(64).reshape(8, 8))  # grey -> RGB
    assert catalogue.attributes[0] == {"color": "blue", "pattern": "stripes"}
    assert catalogue.categories == ("kitchen", "t-shirts")
    assert list(catalogue.category_codes) == [1, 0]


def test_a_missing_image_is_named(tmp_path: Path) -> None:
    pd.DataFrame({"sku": ["S1"], "department": ["d"], "category": ["c"], "image_key": ["images/S1.png"]}).to_parquet(
        tmp_path / "products.parquet"
    )
    with pytest.raises(CatalogueError, match=r"S1\.png: image missing"):
        world_catalogue(tmp_path)


def test_fashion_mnist_rows_become_rgb_products_and_bad_rows_are_left_out(tmp_path: Path) -> None:
    header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
    good = "7," + ",".join(str(i % 256) for i in range(784))
    bad = "12," + ",".join("0" for _ in range(784))
    source = tmp_path / "fm.csv.gz"
    with gzip.open(source, "wt") as handle:
        handle.write("\n".join([header, good, bad, good.replace("7,", "8,", 1)]) + "\n")
    catalogue = fashion_mnist_catalogue(source)
    assert catalogue.skus == ("SKU00001", "SKU00003")
    assert catalogue.category == ("Sneaker", "Bag")
    assert catalogue.department == ("footwear", "accessories")
    assert catalogue.images.shape == (2, 28, 28, 3)
    assert np.array_equal(catalogue.images[0, 0, :3], [[0, 0, 0], [1, 1, 1], [2, 2, 2]])
