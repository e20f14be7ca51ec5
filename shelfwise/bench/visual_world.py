"""The serving fixture of the visual API, shared by `shelfwise bench serving visual` and the API tests: a synthetic
catalogue of product images, an embedding model trained briefly on it and exported to ONNX, and the index of the
catalogue's embeddings, stored in the lake as the batch-embed step stores them (`store_search_version`).

The catalogue is embedded exactly as a query is (PNG bytes -> `decode_image` -> `to_model_input` -> ONNX Runtime), so
searching with a catalogue image finds its own product first with score 2 whatever the model learned.
"""

from __future__ import annotations

import functools
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shelfwise.visual.faiss_index import FaissIndex
    from shelfwise.visual.index_store import BlobStore

#: (category, department, shape) of the catalogue's products, drawn in turn.
KINDS = (
    ("shirts", "apparel", "rect"),
    ("balls", "sports", "disc"),
    ("bottles", "grocery", "bar"),
    ("pillows", "home", "ring"),
)
BACKGROUND = (242, 242, 240)


@dataclass(frozen=True)
class VisualWorld:
    """What the lake holds: the served version, and each product's PNG and attributes."""

    version: str
    skus: tuple[str, ...]
    pngs: dict[str, bytes]
    attributes: dict[str, dict[str, Any]]
    model: bytes
    index: FaissIndex


def draw_product(shape: str, colour: tuple[int, int, int], size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size, 3) uint8 picture of one product: a coloured shape with a stripe, on the studio background."""
    v, u = np.mgrid[0:size, 0:size] / size
    cu, cv = rng.uniform(0.4, 0.6, 2)
    r = np.hypot(u - cu, v - cv)
    mask = {
        "rect": (abs(u - cu) < 0.3) & (abs(v - cv) < 0.35),
        "disc": r < 0.32,
        "bar": (abs(u - cu) < 0.12) & (abs(v - cv) < 0.4),
        "ring": (r < 0.35) & (r > 0.18),
    }[shape]
    stripe = np.sin(u * rng.uniform(8, 30) + v * rng.uniform(-10, 10)) > 0.3
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    image[mask] = colour
    image[mask & stripe] = (np.asarray(colour) * 0.5).astype(np.uint8)
    return image


def catalogue_images(n: int, size: int, seed: int) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """`n` SKUs, their pictures and their attributes (category, department, price, stock, brand, colour, pattern)."""
    rng = np.random.default_rng(seed)
    skus = [f"SKU{i:05d}" for i in range(n)]
    images, rows = [], []
    for i in range(n):
        category, department, shape = KINDS[i % len(KINDS)]
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        images.append(draw_product(shape, colour, size, rng))  # type: ignore[arg-type]
        rows.append(
            {"category": category, "department": department, "price": round(float(rng.uniform(5, 80)), 2),
             "in_stock": i % 3 != 0, "brand": f"brand{i % 5}", "colour": f"c{colour[0]:02x}", "pattern": "stripe",
             "image_key": f"raw/images/{skus[i]}.png"}
        )  # fmt: skip
    return skus, np.stack(images), rows


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def onnx_model(images: np.ndarray, categories: list[str], dim: int, epochs: int, seed: int, width: int = 8) -> bytes:
    """An embedding model of `width` (`EmbeddingSettings.width`) trained `epochs` epochs on the pictures, exported to
    ONNX."""
    from shelfwise.visual.catalogue import Catalogue
    from shelfwise.visual.embedding import EmbeddingSettings, export_onnx

    n = len(images)
    catalogue = Catalogue(
        images, tuple(f"S{i}" for i in range(n)), tuple(categories), tuple(categories), tuple({} for _ in range(n))
    )
    settings = EmbeddingSettings(
        image_size=images.shape[1], dim=dim, width=width, epochs=epochs, batch_size=32, seed=seed
    )
    model = settings.train(catalogue)
    with tempfile.TemporaryDirectory() as tmp:
        return export_onnx(model, Path(tmp) / "model.onnx").read_bytes()


@functools.cache
def world_model(products: int, size: int, dim: int, epochs: int, seed: int, width: int = 8) -> bytes:
    """The ONNX model of the catalogue these arguments draw; trained once per process (training is deterministic
    on CPU for a seed, and the API tests of several modules share it)."""
    _, images, rows = catalogue_images(products, size, seed)
    return onnx_model(images, [row["category"] for row in rows], dim, epochs, seed, width)


def prepare_visual_world(
    store: BlobStore,
    products: int = 40,
    size: int = 64,
    dim: int = 32,
    epochs: int = 1,
    seed: int = 3,
    width: int = 8,
) -> VisualWorld:
    """Draw, train, export, embed every product's PNG through the query path, build the index and store it all."""
    from shelfwise.visual.faiss_index import FaissIndex
    from shelfwise.visual.images import decode_image, to_model_input
    from shelfwise.visual.index import make_catalogue
    from shelfwise.visual.query_embedder import QueryEmbedder
    from shelfwise.visual.search_store import store_search_version

    skus, images, rows = catalogue_images(products, size, seed)
    model = world_model(products, size, dim, epochs, seed, width)
    embedder = QueryEmbedder.from_bytes(model)
    pngs = {sku: png_bytes(image) for sku, image in zip(skus, images, strict=True)}
    vectors = [
        embedder.embed(to_model_input(decode_image(pngs[sku], "image/png"), embedder.image_size)) for sku in skus
    ]
    columns = {name: [row[name] for row in rows] for name in rows[0]} | {"sku": skus}
    index = FaissIndex.build(make_catalogue(np.stack(vectors), columns))
    version = store_search_version(store, index, model)
    return VisualWorld(version, tuple(skus), pngs, dict(zip(skus, rows, strict=True)), model, index)
