"""The vector index of the catalogue: one interface (`VectorIndex`), the types its implementations share, and the
score convention they follow.

Two implementations: `shelfwise.visual.faiss_index.FaissIndex` (embedded: the local default, and a deployment option
with zero idle cost) and `shelfwise.visual.opensearch_index.OpenSearchIndex` (the k-NN plugin's faiss engine). Both
build the same graph (faiss `HNSW{m},Flat` with the same m / ef_construction / ef_search), take the same `Filters`
and answer the same `Hit`s with the same scores.

Space type: `innerproduct` on L2-normalised vectors, which is cosine similarity. Not `cosinesimil`: OpenSearch's faiss
engine accepts it only from 2.19 (Serverless collections run 2.17), and all it does is normalise and take the inner
product, which local faiss does identically with `METRIC_INNER_PRODUCT`. Both implementations normalise every vector
they are given (catalogue and queries), so the inner product is the cosine whatever the caller sends.

Scores follow the k-NN plugin's convention for `innerproduct`: `1 + ip` for ip >= 0, else `1 / (1 - ip)`. They lie in
(0, 2], higher is closer, and they are monotonic in the cosine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pyarrow as pa

SpaceType = Literal["innerproduct"]
SPACE_TYPE: SpaceType = "innerproduct"
#: OpenSearch answers at most `index.max_result_window` (10,000) hits; the API asks for far fewer.
MAX_K = 10_000
#: The smallest ef_search of `shelfwise bench knn`'s sweep reaching recall@10 >= 0.98 on 1M clustered 128-d vectors
#: (m 16, ef_construction 100): 0.989 at 0.89x the bare faiss call's QPS (64 gave 0.965).
DEFAULT_EF_SEARCH = 128

FloatArray = npt.NDArray[np.float32]

#: The attributes stored beside each vector, in `Hit.attributes` order; the first four are filterable.
ATTRIBUTE_FIELDS: tuple[str, ...] = ("category", "department", "price", "in_stock", "brand", "colour", "pattern")
#: The columns of a catalogue (one value per vector, in the vectors' order) and their types. Plain numpy, no Arrow:
#: the embedded index loads in a Lambda that should not carry pyarrow.
COLUMNS: dict[str, type] = {
    "sku": str,
    "category": str,
    "department": str,
    "price": float,
    "in_stock": bool,
    "image_key": str,
    "brand": str,
    "colour": str,
    "pattern": str,
}


class UnknownSkuError(LookupError):
    """The index holds no product with this SKU."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown SKU {sku!r}: the index holds no product with it")
        self.sku = sku


class InvalidQueryError(ValueError):
    """A search argument is unusable; `field` names it (`k`, `vector`, `filters.price_min`, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidCatalogueError(ValueError):
    """The vectors or attributes given to build an index are unusable; the message names the problem."""


@dataclass(frozen=True)
class HnswParams:
    """The HNSW graph's parameters, identical in both implementations (OpenSearch's defaults for m and
    ef_construction; ef_search from `shelfwise bench knn`)."""

    m: int = 16
    ef_construction: int = 100
    ef_search: int = DEFAULT_EF_SEARCH
    space_type: SpaceType = SPACE_TYPE

    def __post_init__(self) -> None:
        # OpenSearch refuses m outside 2..100 ("Keep this value between 2 and 100").
        if not 2 <= self.m <= 100:
            raise ValueError(f"m must be in 2..100, got {self.m}")
        if self.ef_construction < 1 or self.ef_search < 1:
            raise ValueError(f"ef_construction and ef_search must be >= 1, got {self.ef_construction}/{self.ef_search}")
        if self.space_type != SPACE_TYPE:
            raise ValueError(f"space_type must be {SPACE_TYPE!r} (cosine on unit vectors), got {self.space_type!r}")


@dataclass(frozen=True)
class Filters:
    """What a search is restricted to; None = no restriction. Prices are inclusive bounds."""

    category: str | None = None
    department: str | None = None
    price_min: float | None = None
    price_max: float | None = None
    in_stock: bool | None = None

    def __post_init__(self) -> None:
        for name in ("price_min", "price_max"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidQueryError(f"filters.{name}", f"must be a finite price >= 0, got {value!r}")
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise InvalidQueryError(
                "filters.price_min", f"{self.price_min} is above filters.price_max {self.price_max}"
            )

    @property
    def active(self) -> bool:
        return not (
            self.category is None
            and self.department is None
            and self.price_min is None
            and self.price_max is None
            and self.in_stock is None
        )


NO_FILTERS = Filters()


@dataclass(frozen=True)
class Product:
    """One document of the index: the product's embedding and what a search filters on and displays."""

    sku: str
    vector: tuple[float, ...]
    category: str
    department: str
    price: float
    in_stock: bool
    image_key: str
    brand: str = ""
    colour: str = ""
    pattern: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result; the same shape and score from both implementations."""

    sku: str
    score: float
    attributes: dict[str, str | float | bool]
    image_key: str


Column = npt.NDArray[Any]


@dataclass(frozen=True)
class Catalogue:
    """What an index is built from: L2-normalised float32 vectors and their attribute columns (`COLUMNS`: str columns
    as object arrays, price float64, in_stock bool), row by row. Made by `make_catalogue`, `Catalogue.from_products` or
    `world_catalogue`, which check and normalise."""

    vectors: FloatArray
    columns: dict[str, Column]

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    @classmethod
    def from_products(cls, products: Sequence[Product]) -> Catalogue:
        if not products:
            raise InvalidCatalogueError("no products: an index needs at least one")
        columns = {name: [getattr(p, name) for p in products] for name in COLUMNS}
        return make_catalogue([p.vector for p in products], columns)

    def product(self, row: int) -> Product:
        c = self.columns
        return Product(
            sku=str(c["sku"][row]),
            vector=tuple(float(x) for x in self.vectors[row]),
            category=str(c["category"][row]),
            department=str(c["department"][row]),
            price=float(c["price"][row]),
            in_stock=bool(c["in_stock"][row]),
            image_key=str(c["image_key"][row]),
            brand=str(c["brand"][row]),
            colour=str(c["colour"][row]),
            pattern=str(c["pattern"][row]),
        )

    def row(self, row: int) -> dict[str, str | float | bool]:
        """The attributes of one row as plain Python values."""
        return {name: COLUMNS[name](self.columns[name][row]) for name in COLUMNS}


def normalise(vectors: npt.ArrayLike, what: str = "vector") -> FloatArray:
    """Rows scaled to unit L2 norm, as float32; InvalidQueryError for a non-finite or zero row."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] == 0:
        raise InvalidQueryError(what, f"expected a 2-d array of vectors, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InvalidQueryError(what, "holds NaN or infinite values")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidQueryError(what, "has zero length: it has no direction to compare")
    out: FloatArray = np.ascontiguousarray(array / norms, dtype=np.float32)
    return out


def query_vector(vector: npt.ArrayLike, dimension: int) -> FloatArray:
    """One query vector of the index's dimension, normalised, as a (1, dimension) array."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.shape[0] != dimension:
        raise InvalidQueryError("vector", f"expected {dimension} numbers, got shape {array.shape}")
    # One dot product checks everything a query needs: NaN or infinity make it non-finite, a zero vector zero.
    length = math.sqrt(float(np.dot(array, array)))
    if not math.isfinite(length):
        raise InvalidQueryError("vector", "holds NaN or infinite values")
    if length == 0:
        raise InvalidQueryError("vector", "has zero length: it has no direction to compare")
    unit: FloatArray = (array / np.float32(length)).reshape(1, dimension)
    return unit


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_K:
        raise InvalidQueryError("k", f"must be an integer in 1..{MAX_K}, got {k!r}")
    return int(k)


def make_catalogue(vectors: npt.ArrayLike, columns: Mapping[str, Sequence[Any] | Column]) -> Catalogue:
    """Check the columns against the vectors and the SKUs for duplicates, type the columns, normalise the vectors."""
    try:
        normalised = normalise(vectors, "catalogue vectors")
    except InvalidQueryError as error:
        raise InvalidCatalogueError(str(error)) from error
    return Catalogue(normalised, typed_columns(columns, normalised.shape[0]))


def typed_columns(columns: Mapping[str, Sequence[Any] | Column], n: int) -> dict[str, Column]:
    """The catalogue's columns as numpy arrays of their `COLUMNS` types, each checked: n values, none missing, SKUs
    unique, prices finite and >= 0."""
    missing = [name for name in COLUMNS if name not in columns]
    if missing:
        raise InvalidCatalogueError(f"the attributes lack the columns {', '.join(missing)}")
    typed: dict[str, Column] = {}
    for name, kind in COLUMNS.items():
        values = columns[name]
        if len(values) != n:
            raise InvalidCatalogueError(f"{len(values)} values of {name} for {n} vectors")
        if any(value is None for value in values):
            raise InvalidCatalogueError(f"attribute {name} has missing values")
        typed[name] = np.asarray(values, dtype=object if kind is str else kind)
    unique, counts = np.unique(typed["sku"].astype(str), return_counts=True)
    if (counts > 1).any():
        raise InvalidCatalogueError(f"duplicate SKUs, e.g. {', '.join(map(str, unique[counts > 1][:3]))}")
    if not np.isfinite(typed["price"]).all() or (typed["price"] < 0).any():
        raise InvalidCatalogueError("prices must be finite and >= 0")
    return typed


def world_catalogue(
    products: pa.Table, skus: Sequence[str], vectors: npt.ArrayLike, in_stock: Mapping[str, bool] | None = None
) -> Catalogue:
    """A catalogue of the world's `products.parquet` rows (`shelfwise.schemas.PRODUCT_SCHEMA`) for the SKUs embedded,
    in their order. `in_stock` maps SKU -> availability; a SKU it omits (or all, without it) counts as in stock."""
    rows = {row["sku"]: row for row in products.to_pylist()}
    unknown = [sku for sku in skus if sku not in rows]
    if unknown:
        raise InvalidCatalogueError(f"{len(unknown)} embedded SKUs are not in the products table, e.g. {unknown[:3]}")
    availability = in_stock or {}
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for sku in skus:
        row = rows[sku]
        extra = dict(row["attributes"] or [])
        values = {
            "sku": sku,
            "category": row["category"],
            "department": row["department"],
            "price": float(row["base_price"]),
            "in_stock": bool(availability.get(sku, True)),
            "image_key": row["image_key"] or "",
            "brand": row["brand"] or "",
            "colour": extra.get("color", extra.get("colour", "")),
            "pattern": extra.get("pattern", ""),
        }
        for name, value in values.items():
            columns[name].append(value)
    return make_catalogue(vectors, columns)


def knn_score_of(inner_product: float) -> float:
    """`knn_score` of one inner product, without numpy (it runs for every hit)."""
    return 1.0 + inner_product if inner_product >= 0 else 1.0 / (1.0 - inner_product)


def knn_score(inner_product: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The k-NN plugin's score for the `innerproduct` space: 1 + ip for ip >= 0, else 1 / (1 - ip)."""
    ip = np.asarray(inner_product, dtype=np.float64)
    return np.where(ip >= 0, 1.0 + ip, 1.0 / (1.0 - np.minimum(ip, 0.0)))


def memory_bytes(n_vectors: int, dimension: int, m: int) -> int:
    """The k-NN plugin's native memory estimate for a faiss HNSW graph: 1.1 x (4 x dimension + 8 x m) bytes per
    vector (float32 values plus about 2m neighbour links on the bottom layer). Per copy: replicas multiply it."""
    return math.ceil(1.1 * (4 * dimension + 8 * m) * n_vectors)


class VectorIndex(Protocol):
    """Nearest products by cosine similarity, filtered, in the k-NN plugin's score convention."""

    @property
    def params(self) -> HnswParams: ...

    @property
    def dimension(self) -> int: ...

    def search(self, vector: npt.ArrayLike, k: int, filters: Filters | None = None) -> list[Hit]:
        """The k products closest to `vector` that pass `filters`, closest first (fewer only if fewer pass)."""
        ...

    def neighbours(self, sku: str, k: int, filters: Filters | None = None) -> list[Hit]:
        """The k products closest to the stored vector of `sku`, the product itself left out."""
        ...

    def vector(self, sku: str) -> FloatArray:
        """The stored (normalised) vector of `sku`; UnknownSkuError if the index holds none."""
        ...
