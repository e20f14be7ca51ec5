"""The product images a visual model trains and is evaluated on, with their attributes, and the split by SKU.

Two sources: a world folder (`products.parquet` + `images/<SKU>.png`: the synthetic world, or any loaded world such as
Fashion-MNIST's) and the Fashion-MNIST CSV itself. Grey images become RGB, so every catalogue is (n, H, W, 3) uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

UInt8Array = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]


class CatalogueError(ValueError):
    """A catalogue that cannot be loaded or split: names the file, field or problem."""


@dataclass(frozen=True)
class Catalogue:
    """Product images (n, H, W, 3) uint8 with one SKU, category and department each, in the same order."""

    images: UInt8Array
    skus: tuple[str, ...]
    category: tuple[str, ...]
    department: tuple[str, ...]
    attributes: tuple[dict[str, str], ...]

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[3] != 3 or self.images.dtype != np.uint8:
            raise CatalogueError(f"images must be (n, H, W, 3) uint8, got {self.images.shape} {self.images.dtype}")
        n = self.images.shape[0]
        for name in ("skus", "category", "department", "attributes"):
            if len(getattr(self, name)) != n:
                raise CatalogueError(f"{name} has {len(getattr(self, name))} entries for {n} images")
        if len(set(self.skus)) != n:
            raise CatalogueError("skus must be unique")

    def __len__(self) -> int:
        return len(self.skus)

    @property
    def categories(self) -> tuple[str, ...]:
        """The distinct categories, sorted: the class order of the category codes."""
        return tuple(sorted(set(self.category)))

    @property
    def category_codes(self) -> IntArray:
        index = {name: i for i, name in enumerate(self.categories)}
        return np.array([index[c] for c in self.category], dtype=np.int64)

    def subset(self, rows: IntArray) -> Catalogue:
        return Catalogue(
            images=self.images[rows],
            skus=tuple(self.skus[i] for i in rows),
            category=tuple(self.category[i] for i in rows),
            department=tuple(self.department[i] for i in rows),
            attributes=tuple(self.attributes[i] for i in rows),
        )


@dataclass(frozen=True)
class SkuSplit:
    """Row indices into a catalogue: the SKUs a model trains on and the held-out SKUs it is evaluated on."""

    train: IntArray
    test: IntArray


def split_by_sku(catalogue: Catalogue, test_fraction: float = 0.3, seed: int = 0) -> SkuSplit:
    """A seeded split of the SKUs, stratified by category: each category with at least two SKUs puts
    round(test_fraction x its SKUs), at least one, in the held-out side and keeps at least one for training."""
    if not 0.0 < test_fraction < 1.0:
        raise CatalogueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    codes = catalogue.category_codes
    test: list[int] = []
    for code in range(len(catalogue.categories)):
        rows = rng.permutation(np.flatnonzero(codes == code))
        if rows.size < 2:
            continue
        n_test = min(rows.size - 1, max(1, round(test_fraction * rows.size)))
        test.extend(int(r) for r in rows[:n_test])
    held_out = np.zeros(len(catalogue), dtype=bool)
    held_out[test] = True
    return SkuSplit(train=np.flatnonzero(~held_out), test=np.flatnonzero(held_out))


def _read_png(path: Path) -> UInt8Array:
    from PIL import Image

    if not path.is_file():
        raise CatalogueError(f"{path}: image missing")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def world_catalogue(world: Path) -> Catalogue:
    """The catalogue of a world folder: every product of `products.parquet` (its latest `dt` snapshot if it has
    snapshots) with the image its `image_key` names, converted to RGB. All images must have the same size."""
    import pandas as pd

    table = world / "products.parquet"
    if not table.exists():
        raise CatalogueError(f"{world} is not a world folder (no products.parquet)")
    products = pd.read_parquet(table)
    if "dt" in products.columns:
        products = products[products["dt"] == products["dt"].max()]
    missing = {"sku", "category", "department", "image_key"} - set(products.columns)
    if missing:
        raise CatalogueError(f"{table}: missing column(s) {sorted(missing)}")
    products = products.sort_values("sku", kind="stable")
    images = [_read_png(world / str(key)) for key in products["image_key"]]
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise CatalogueError(f"{world}: images differ in size: {sorted(shapes)}")
    attributes = products["attributes"] if "attributes" in products.columns else [None] * len(products)
    return Catalogue(
        images=np.stack(images) if images else np.zeros((0, 1, 1, 3), dtype=np.uint8),
        skus=tuple(str(s) for s in products["sku"]),
        category=tuple(str(c) for c in products["category"]),
        department=tuple(str(d) for d in products["department"]),
        attributes=tuple(_attributes(a) for a in attributes),
    )


def _attributes(value: object) -> dict[str, str]:
    """A product's attributes as read back from parquet: a map comes back as (key, value) pairs, a struct as a
    dict, a missing one as None."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return {str(k): str(v) for k, v in value}
    return {}


def fashion_mnist_catalogue(source: Path) -> Catalogue:
    """The valid rows of the Fashion-MNIST CSV as a catalogue (SKUs, categories and departments as the
    `fashion-mnist` world loader names them), grey 28x28 repeated into RGB; invalid rows are left out."""
    from shelfwise.loaders.fashion_mnist import CLASSES, Item, check_row, read_rows

    items = [item for row, fields in read_rows(source) if isinstance(item := check_row(row, fields), Item)]
    if not items:
        raise CatalogueError(f"{source}: no valid image rows")
    grey = np.stack([item.pixels for item in items])
    return Catalogue(
        images=np.repeat(grey[..., None], 3, axis=3),
        skus=tuple(item.sku for item in items),
        category=tuple(CLASSES[item.label][0] for item in items),
        department=tuple(CLASSES[item.label][1] for item in items),
        attributes=tuple({"label": str(item.label)} for item in items),
    )
