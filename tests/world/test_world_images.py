"""Product images: the category decides what a product looks like, so raw pixels already cluster by category."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from shelfwise.world.catalog import CATEGORIES
from shelfwise.world.images import Style, png_bytes, render


def test_same_category_images_are_closer_than_other_categories(small_world: Path) -> None:
    products = pd.read_parquet(small_world / "products.parquet")
    pixels = np.stack([np.asarray(Image.open(small_world / key), dtype=np.float64).ravel()
                       for key in products["image_key"]])  # fmt: skip
    squared = (pixels**2).sum(axis=1)
    distance = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * pixels @ pixels.T, 0))
    category = products["category"].to_numpy()
    same = category[:, None] == category[None, :]
    off_diagonal = ~np.eye(len(products), dtype=bool)
    assert distance[same & off_diagonal].mean() < 0.75 * distance[~same].mean()
    nearest = np.where(off_diagonal, distance, np.inf).argmin(axis=1)
    assert (category[nearest] == category).mean() > 0.9


def test_rendering_is_deterministic_and_varies_by_sku() -> None:
    style = Style(0.5, 0.7, 0.8, 1.0, 0.0, 0.0, 0.6, 1.0, True, 0.0, 0.0)
    other = Style(0.55, 0.6, 0.7, 0.95, 1.0, -1.0, 0.7, 2.0, False, 0.0, 0.0)
    for c in range(len(CATEGORIES)):
        image = render(c, style)
        assert image.shape == (64, 64, 3)
        assert image.dtype == np.uint8
        assert png_bytes(image) == png_bytes(render(c, style))
        assert not np.array_equal(image, render(c, other))
