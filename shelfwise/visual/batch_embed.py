"""The index build's core: every catalogue image embedded the way the API embeds a query, and the index's catalogue
(vectors and attributes) from the products table.

A catalogue image goes through exactly the query path (PNG bytes -> `decode_image` -> `to_model_input` ->
`QueryEmbedder`), so a shopper uploading the catalogue's own image of a product finds it first, and the stored vector
of a SKU is what the served model gives for its image.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shelfwise.visual.index import Catalogue, FloatArray, make_catalogue

if TYPE_CHECKING:
    import pandas as pd
    from opensearchpy import OpenSearch

    from shelfwise.visual.index_store import BlobStore
    from shelfwise.visual.query_embedder import QueryEmbedder

#: Where the index is served from (`shelfwise.visual.service.Backend`, the CDK's `shelfwise:searchBackend`).
BACKENDS = ("embedded", "opensearch", "opensearch-serverless")


@dataclass(frozen=True)
class Embedded:
    """The SKUs whose image embedded, their (n, dim) vectors in the same order, and (sku, reason) of the others."""

    skus: tuple[str, ...]
    vectors: FloatArray
    rejected: tuple[dict[str, str], ...]


def embed_products(embedder: QueryEmbedder, products: pd.DataFrame, images: Mapping[str, bytes]) -> Embedded:
    """Embed the image of every product (`images`: file name -> bytes, the file name of its `image_key`), in SKU
    order; a product without an image, or whose image does not decode, is rejected with the reason."""
    from shelfwise.visual.images import to_model_input
    from shelfwise.visual.training_data import decode_catalogue_image, product_image

    skus: list[str] = []
    vectors: list[FloatArray] = []
    rejected: list[dict[str, str]] = []
    for row in products.sort_values("sku", kind="stable").itertuples(index=False):
        found = product_image(row.image_key, images)
        image = found if isinstance(found, str) else decode_catalogue_image(*found)
        if isinstance(image, str):
            rejected.append({"sku": str(row.sku), "reason": image})
            continue
        skus.append(str(row.sku))
        vectors.append(embedder.embed(to_model_input(image, embedder.image_size)))
    stacked = np.stack(vectors) if vectors else np.zeros((0, embedder.dimension), dtype=np.float32)
    return Embedded(tuple(skus), stacked.astype(np.float32), tuple(rejected))


def index_catalogue(products: pd.DataFrame, embedded: Embedded, image_prefix: str, as_of: dt.date) -> Catalogue:
    """The index's catalogue: the embedded SKUs' vectors and attributes (`shelfwise.visual.index.COLUMNS`) from their
    products rows; `image_key` is the image's lake key under `image_prefix`. `in_stock` is whether the product is on
    sale on `as_of` (launched, not discontinued): store stock levels are not read, so a product sold out somewhere
    still counts as in stock."""
    rows = {str(row["sku"]): row for row in products.to_dict("records")}
    columns: dict[str, list[Any]] = {}
    for sku in embedded.skus:
        row = rows[sku]
        extra = _attributes(row.get("attributes"))
        values = {
            "sku": sku,
            "category": str(row["category"]),
            "department": str(row["department"]),
            "price": float(row["base_price"]),
            "in_stock": on_sale(row.get("launch_date"), row.get("end_date"), as_of),
            "image_key": image_prefix + Path(str(row["image_key"])).name,
            "brand": str(row.get("brand") or ""),
            "colour": extra.get("color", extra.get("colour", "")),
            "pattern": extra.get("pattern", ""),
        }
        for name, value in values.items():
            columns.setdefault(name, []).append(value)
    return make_catalogue(embedded.vectors, columns)


def on_sale(launch: object, end: object, as_of: dt.date) -> bool:
    """Launched on or before `as_of` and not ended before it; a missing launch date counts as launched long ago."""
    launched, ended = _day(launch), _day(end)
    return (launched is None or launched <= as_of) and (ended is None or ended >= as_of)


def _day(value: object) -> dt.date | None:
    """A products table's date as pandas reads it back (ISO text, a date, a timestamp) or None when missing."""
    if value is None or value != value:  # NaN and NaT are not equal to themselves
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _attributes(value: object) -> dict[str, str]:
    """A product's attributes as pandas reads them back: a map as (key, value) pairs, a struct as a dict, or none."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return {str(k): str(v) for k, v in value}
    return {}


def load_opensearch(client: OpenSearch, backend: str, index_name: str, catalogue: Catalogue, store: BlobStore) -> str:
    """Load the catalogue into a new version of the OpenSearch index `index_name` and make it live (the alias, or
    the lake pointer of a Serverless collection); returns the version. The settings are the ones the API searches
    with (`shelfwise.visual.service`)."""
    from shelfwise.visual.opensearch_index import FLAVOURS, OpenSearchIndex, OpenSearchSettings

    if backend not in FLAVOURS:
        raise ValueError(f"backend must be one of {', '.join(FLAVOURS)}, got {backend!r}")
    flavour = FLAVOURS[backend]
    settings = OpenSearchSettings(index_name, catalogue.dimension, flavour=flavour)
    return OpenSearchIndex(client, settings, pointer_store=store).load(catalogue)
