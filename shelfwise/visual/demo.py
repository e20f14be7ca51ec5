"""The visual search domain's part of `shelfwise demo`: three searches with their answers, as a table and as a contact
sheet, and the requests that show its API.

The first two searches use what the pipeline serves: the version `models/visual-index/CURRENT.json` names, its
query model and its embedded index (`shelfwise.visual.search_store`), as the API loads them. The third needs a
catalogue the world has not got: Fashion-MNIST's 1,000 images get a small model of their own, trained for a few epochs
on 70% of them while the demo runs (`FashionDemo`: 10 epochs, about 10 s on an idle machine and 30 s on a busy
one), and a faiss index of them all;
one of the held-out 30% is the query, so the model never saw it.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from shelfwise.domain import DemoReport, DemoRequest
from shelfwise.loaders.sources import FASHION_MNIST_CSV

if TYPE_CHECKING:
    from PIL import Image

    from shelfwise.visual.catalogue import Catalogue
    from shelfwise.visual.faiss_index import FaissIndex
    from shelfwise.visual.index import Catalogue as IndexCatalogue
    from shelfwise.visual.index import Hit
    from shelfwise.visual.index_store import BlobStore
    from shelfwise.visual.query_embedder import QueryEmbedder

UInt8Array = npt.NDArray[np.uint8]
#: Answers shown per search.
TOP = 5
#: Side in pixels of one picture on the contact sheet, and the room for its caption below it.
CELL = 128
CAPTION = 44
PAD = 8
#: Where `ingest` copies a world's product images (`images/<sku>.png` in the world folder).
RAW_IMAGES = "raw/product_images/"
#: Seeds the demo's choices (which products, which photo), so that two runs show the same searches.
SEED = 7
SAME_CATEGORY = (46, 160, 67)
OTHER_CATEGORY = (200, 200, 200)


@dataclass(frozen=True)
class FashionDemo:
    """The Fashion-MNIST search's model: small and briefly trained, so the demo stays quick (the model's default is
    90 epochs: `shelfwise bench visual --data fashion-mnist`). Its shopper photos leave out the cluttered scenes,
    which a grey catalogue image on black does not need to be found in."""

    epochs: int = 10
    width: int = 8
    dim: int = 64
    held_out: float = 0.3
    source: Path = FASHION_MNIST_CSV


FASHION_DEMO = FashionDemo()


@dataclass(frozen=True)
class Search:
    """One search as the demo shows it: the query and its answers, each with its picture."""

    title: str
    query_sku: str
    query_category: str
    query_image: UInt8Array
    hits: tuple[Hit, ...]
    hit_images: tuple[UInt8Array, ...]


@dataclass(frozen=True)
class Served:
    """The version the lake serves, loaded as the API loads it, and its products' attributes in index order."""

    version: str
    index: FaissIndex
    embedder: QueryEmbedder
    attributes: dict[str, list[Any]]

    def category(self, sku: str) -> str:
        return str(self.attributes["category"][self.attributes["sku"].index(sku)])

    def image_key(self, sku: str) -> str:
        return str(self.attributes["image_key"][self.attributes["sku"].index(sku)])


def load_served(store: BlobStore) -> Served:
    """What `models/visual-index/CURRENT.json` names; IndexNotFoundError when nothing was stored."""
    from shelfwise.visual.faiss_index import ATTRIBUTES_FILE, load_index
    from shelfwise.visual.index_store import read_blob, version_prefix
    from shelfwise.visual.search_store import current_version, read_query_model

    version = current_version(store)
    attributes = json.loads(read_blob(store, version_prefix(version) + ATTRIBUTES_FILE))
    return Served(version, load_index(store, version), read_query_model(store, version).embedder, attributes)


def demo_products(served: Served) -> tuple[str, str]:
    """The product whose look-alikes are shown and the product photographed: two different, seeded picks."""
    rng = np.random.default_rng(SEED)
    first, second = rng.choice(len(served.attributes["sku"]), size=2, replace=False)
    return str(served.attributes["sku"][first]), str(served.attributes["sku"][second])


def lake_image(lake: Any, image_key: str) -> bytes | None:
    """A product's image file at the lake key the index names, else where ingest copies a world's images; None when
    neither holds it."""
    from botocore.exceptions import ClientError

    for key in (image_key, RAW_IMAGES + PurePosixPath(image_key).name):
        try:
            data: bytes = lake.get_bytes(key)
            return data
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
    return None


def catalogue_image(lake: Any, world_dir: Path, image_key: str) -> UInt8Array:
    """A product's picture as (H, W, 3) uint8, from the lake (`lake_image`) or else the world folder, whose products
    table names its images' keys inside it."""
    data = lake_image(lake, image_key)
    if data is None:
        local = world_dir / image_key
        if not local.is_file():
            raise FileNotFoundError(f"no image at lake key {image_key!r}, under {RAW_IMAGES} or at {local}")
        data = local.read_bytes()
    return _rgb(data)


def _rgb(data: bytes) -> UInt8Array:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.array(image.convert("RGB"), dtype=np.uint8)  # a copy: torch warns of read-only arrays


def _png(image: UInt8Array) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def shopper_photo_of(image: UInt8Array) -> UInt8Array:
    """The demo's shopper photo of a catalogue image (seeded)."""
    from shelfwise.visual.augment import shopper_photo

    return shopper_photo(image, np.random.default_rng(SEED))


def similar_search(lake: Any, world_dir: Path, served: Served, sku: str) -> Search:
    hits = tuple(served.index.neighbours(sku, TOP))
    return Search(
        "look-alikes of a product",
        sku,
        served.category(sku),
        catalogue_image(lake, world_dir, served.image_key(sku)),
        hits,
        tuple(catalogue_image(lake, world_dir, hit.image_key) for hit in hits),
    )


def photo_search(lake: Any, world_dir: Path, served: Served, sku: str) -> Search:
    """A shopper photo of the product, embedded by the served model as the API embeds an upload."""
    from shelfwise.visual.images import decode_image, to_model_input

    photo = shopper_photo_of(catalogue_image(lake, world_dir, served.image_key(sku)))
    pixels = to_model_input(decode_image(_png(photo), "image/png"), served.embedder.image_size)
    hits = tuple(served.index.search(served.embedder.embed(pixels), TOP))
    return Search(
        "a shopper's photo of a product",
        sku,
        served.category(sku),
        photo,
        hits,
        tuple(catalogue_image(lake, world_dir, hit.image_key) for hit in hits),
    )


@dataclass(frozen=True)
class FashionResult:
    search: Search
    train_seconds: float
    trained_on: int
    learned_p1: float
    pixels_p1: float


def fashion_search(settings: FashionDemo) -> FashionResult:
    """Train the small model on part of Fashion-MNIST, index every image, and search with a held-out one; with the
    held-out images' category precision@1 of the model and of raw pixels."""
    from shelfwise.visual.augment import PhotoSettings
    from shelfwise.visual.baselines import raw_pixels
    from shelfwise.visual.catalogue import fashion_mnist_catalogue, split_by_sku
    from shelfwise.visual.embedding import EmbeddingSettings
    from shelfwise.visual.faiss_index import FaissIndex
    from shelfwise.visual.retrieval import similar_product_scores

    catalogue = fashion_mnist_catalogue(settings.source)
    split = split_by_sku(catalogue, settings.held_out, seed=SEED)
    embedding = EmbeddingSettings(
        image_size=catalogue.images.shape[1],
        dim=settings.dim,
        width=settings.width,
        epochs=settings.epochs,
        seed=SEED,
        photo=PhotoSettings(scene_probability=0.0, clutter=0),
    )
    started = time.perf_counter()
    model = embedding.train(catalogue.subset(split.train))
    train_seconds = time.perf_counter() - started
    vectors = model.embed_images(catalogue.images)
    index = FaissIndex.build(_fashion_index_catalogue(catalogue, vectors))
    query = int(np.random.default_rng(SEED).choice(split.test))
    sku = catalogue.skus[query]
    hits = tuple(index.neighbours(sku, TOP))
    rows = {s: i for i, s in enumerate(catalogue.skus)}
    codes = catalogue.category_codes
    search = Search(
        "a Fashion-MNIST image the model never saw",
        sku,
        catalogue.category[query],
        catalogue.images[query],
        hits,
        tuple(catalogue.images[rows[hit.sku]] for hit in hits),
    )
    learned = similar_product_scores(vectors, codes, split.test).precision_at_1
    side = catalogue.images.shape[1]
    pixels = similar_product_scores(raw_pixels(catalogue.images, side), codes, split.test).precision_at_1
    return FashionResult(search, train_seconds, len(split.train), learned, pixels)


def _fashion_index_catalogue(catalogue: Catalogue, vectors: npt.NDArray[np.float32]) -> IndexCatalogue:
    """The index's columns for Fashion-MNIST, which has no prices, stock or brands."""
    from shelfwise.visual.index import make_catalogue

    n = len(catalogue)
    columns: dict[str, list[Any]] = {
        "sku": list(catalogue.skus),
        "category": list(catalogue.category),
        "department": list(catalogue.department),
        "price": [0.0] * n,
        "in_stock": [True] * n,
        "image_key": [""] * n,
        "brand": [""] * n,
        "colour": [""] * n,
        "pattern": [""] * n,
    }
    return make_catalogue(vectors, columns)


# ---- the report ---------------------------------------------------------------------------------------------------


def search_row(search: Search) -> tuple[str, ...]:
    """The table's row of a search: what it is, the query, and each answer's SKU, category and score."""
    answers = [f"{hit.sku}\n{hit.attributes['category']}\n{hit.score:.4f}" for hit in search.hits]
    return (search.title, f"{search.query_sku}\n{search.query_category}", *answers, *[""] * (TOP - len(answers)))


def contact_sheet(searches: list[Search], path: Path) -> Path:
    """One row per search: the query's picture, then its answers', each captioned with SKU, category and score; an
    answer of the query's category is framed green."""
    from PIL import Image, ImageDraw

    sheet = Image.new("RGB", sheet_size(len(searches)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, search in enumerate(searches):
        top = PAD + row * (CELL + CAPTION + PAD)
        cells: list[tuple[UInt8Array, tuple[str, str, str], tuple[int, int, int] | None]] = [
            (search.query_image, ("query: " + search.query_sku, search.query_category, ""), None)
        ]
        for hit, image in zip(search.hits, search.hit_images, strict=True):
            same = hit.attributes["category"] == search.query_category
            caption = (hit.sku, str(hit.attributes["category"]), f"score {hit.score:.4f}")
            cells.append((image, caption, SAME_CATEGORY if same else OTHER_CATEGORY))
        for column, (image, caption, frame) in enumerate(cells):
            left = PAD + column * (CELL + PAD)
            sheet.paste(_cell(image), (left, top))
            if frame is not None:
                draw.rectangle((left - 3, top - 3, left + CELL + 2, top + CELL + 2), outline=frame, width=3)
            draw.multiline_text((left, top + CELL + 4), "\n".join(caption), fill="black", spacing=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def sheet_size(rows: int) -> tuple[int, int]:
    """(width, height) of a contact sheet of `rows` searches."""
    return PAD + (1 + TOP) * (CELL + PAD), PAD + rows * (CELL + CAPTION + PAD)


def _cell(image: UInt8Array) -> Image.Image:
    from PIL import Image

    # Nearest neighbour: the pixels the model saw, not a smoothed version of them.
    return Image.fromarray(image).resize((CELL, CELL), Image.Resampling.NEAREST)


def demo_report(
    lake: Any, world_dir: Path, evaluation: Mapping[str, Any], fashion: FashionDemo = FASHION_DEMO
) -> DemoReport:
    """The three searches as a table and a contact sheet in `<work dir>/reports/visual.png`."""
    from shelfwise.visual.embedding import EmbeddingSettings

    served = load_served(lake)
    similar_sku, photo_sku = demo_products(served)
    searches = [
        similar_search(lake, world_dir, served, similar_sku),
        photo_search(lake, world_dir, served, photo_sku),
    ]
    photo_rank = [hit.sku for hit in searches[1].hits]
    found = f"at rank {photo_rank.index(photo_sku) + 1}" if photo_sku in photo_rank else f"not in the top {TOP}"
    notes = [
        f"Served version {served.version} ({len(served.attributes['sku']):,} products, {served.index.dimension} "
        f"dimensions): look-alikes from the stored vector, the photo embedded by the served ONNX model; the "
        f"photographed product is {found}. Higher scores are closer: 1 + cosine for a non-negative cosine.",
    ]
    metrics = _evaluation_figures(evaluation)
    if metrics:
        notes.append(f"Evaluation of the served model: {metrics}.")
    if fashion.source.is_file():
        result = fashion_search(fashion)
        searches.append(result.search)
        notes.append(
            f"Fashion-MNIST: a {fashion.epochs}-epoch model trained on {result.trained_on} of the images in "
            f"{result.train_seconds:.0f} s; the held-out images' nearest image has their category "
            f"{result.learned_p1:.0%} of the time ({result.pixels_p1:.0%} with raw pixels; a model trained the default "
            f"{EmbeddingSettings().epochs} epochs: `shelfwise bench visual --data fashion-mnist`)."
        )
    else:
        notes.append(f"Fashion-MNIST search left out: {fashion.source} is not there.")
    picture = contact_sheet(searches, lake.cfg.work_dir / "reports" / "visual.png")
    notes.append(f"Contact sheet (query, then the top {TOP}; green frame: the query's category): {picture}")
    return DemoReport(
        title=f"Visual search: each query and its top {TOP} (SKU, category, score)",
        columns=("search", "query", *(f"#{rank}" for rank in range(1, TOP + 1))),
        rows=tuple(search_row(search) for search in searches),
        notes=tuple(notes),
        picture=picture,
    )


def _evaluation_figures(evaluation: Mapping[str, Any]) -> str:
    """The gated figures of the training run's evaluation (`sagemaker/visual/evaluate.py`) and their margins over the
    best baseline; empty when the document has no learned figures."""
    learned, margins = evaluation.get("visual", {}), evaluation.get("margins", {})
    names = {
        "photo_recall_at_1": "product from a photo, recall@1",
        "similar_from_photo_precision_at_1": "similar products from a photo, precision@1",
    }
    parts = [
        f"{label} {learned[name]:.3f}" + (f" ({margins[name]:+.3f} over the best baseline)" if name in margins else "")
        for name, label in names.items()
        if name in learned
    ]
    if "similar_precision_at_1" in learned:
        parts.append(f"similar products from the catalogue image, precision@1 {learned['similar_precision_at_1']:.3f}")
    if parts and "held_out" in evaluation and "products" in evaluation:
        parts.insert(0, f"on {evaluation['held_out']} held-out of {evaluation['products']} products")
    return "; ".join(parts)


# ---- the requests -------------------------------------------------------------------------------------------------


def demo_requests(lake: Any, predictions_prefix: str) -> list[DemoRequest]:
    """Look-alikes of the report's product (all, then in stock only), a shopper photo of the other (as it is, then
    within its category), and bad requests. The served version is read from the lake, not from the scoring run's
    output (`predictions_prefix`): the API serves what CURRENT.json names."""
    served = load_served(lake)
    similar_sku, photo_sku = demo_products(served)
    data = lake_image(lake, served.image_key(photo_sku))
    if data is None:
        raise FileNotFoundError(f"the image of {photo_sku} is not in the lake ({served.image_key(photo_sku)!r})")
    photo = shopper_photo_of(_rgb(data))
    image = base64.b64encode(_png(photo)).decode()
    path = f"/products/{quote(similar_sku, safe='')}/similar"
    category = served.category(photo_sku)
    return [
        DemoRequest("GET", f"{path}?k={TOP}", note=f"look-alikes of {similar_sku} ({served.category(similar_sku)})"),
        DemoRequest("GET", f"{path}?k={TOP}&in_stock=true", note="the same, in stock only"),
        DemoRequest("POST", "/search/visual", {"image": image, "k": TOP}, f"a shopper's photo of {photo_sku}"),
        DemoRequest(
            "POST",
            "/search/visual",
            {"image": image, "k": TOP, "filters": {"category": category}},
            f"the same photo, {category} only",
        ),
        DemoRequest("GET", f"/products/NO-SUCH-SKU/similar?k={TOP}", note="unknown SKU"),
        DemoRequest(
            "POST",
            "/search/visual",
            {"image": base64.b64encode(b"these bytes are no image").decode(), "k": TOP},
            "bad request: not an image",
        ),
        DemoRequest("GET", f"{path}?k=500", note="bad request: k above 50"),
    ]
