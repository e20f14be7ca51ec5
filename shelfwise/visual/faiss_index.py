"""The embedded vector index: a faiss HNSW graph built as OpenSearch's faiss engine builds it (`HNSW{m},Flat`, inner
product, the same m / ef_construction / ef_search), the row -> SKU map and the attributes, stored in the lake.

Lake layout (see `shelfwise.visual.index_store`), one folder per version, the pointer written last:

    models/visual-index/<version>/index.faiss      `faiss.serialize_index` of the graph; faiss ids are catalogue rows
    models/visual-index/<version>/attributes.json  the catalogue's columns, in row order
    models/visual-index/<version>/manifest.json    params, dimension, count, faiss version
    models/visual-index/CURRENT.json               {"version", "previous"}

Filtered search works as the k-NN plugin's efficient filtering does: the filter becomes a faiss ID selector applied
inside the graph search; when few products pass it (or the graph search finds fewer than k of them) the k are found
by exact search over the products that pass, so a filter never returns fewer than k hits when k products match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shelfwise.visual.index import (
    COLUMNS,
    MAX_K,
    NO_FILTERS,
    Catalogue,
    Column,
    Filters,
    FloatArray,
    Hit,
    HnswParams,
    UnknownSkuError,
    check_k,
    knn_score_of,
    query_vector,
    typed_columns,
)
from shelfwise.visual.index_store import (
    EMBEDDED_POINTER,
    BlobStore,
    IndexNotFoundError,
    Pointer,
    new_version,
    read_blob,
    read_pointer,
    version_prefix,
    write_pointer,
)

# faiss's bundled type stubs lack the HNSW search parameters and the flat index's raw accessors: those few calls are
# typed Any or ignored below.
if TYPE_CHECKING:
    import faiss

INDEX_FILE = "index.faiss"
ATTRIBUTES_FILE = "attributes.json"
MANIFEST_FILE = "manifest.json"
#: Up to this many (vectors passing a filter x dimension) an exact scan is as cheap as a filtered graph walk and exact
#: besides: 2,000 products of 128 floats scan in about 60 us here; 5,000 took 1-8 ms (the vectors no longer stay in
#: cache), where the graph walk takes about 0.15 ms.
EXACT_SCAN_WORK = 256_000
_FILTER_COLUMNS = ("category", "department")
#: Filters whose selections an index remembers (a few hundred kB each for a million products).
SELECTIONS_KEPT = 64
#: Rows and their inner products, nearest first.
Neighbours = tuple[list[int], list[float]]


class FaissIndex:
    """A `VectorIndex` in process memory. Build with `FaissIndex.build`, store with `store_index`, load with
    `load_index`. Searches are single-threaded when the caller sets `faiss.omp_set_num_threads(1)`, as serving should
    (several threads make one query slower)."""

    def __init__(
        self,
        graph: faiss.IndexHNSWFlat,
        catalogue_columns: dict[str, Column],
        params: HnswParams,
        exact_scan_work: int = EXACT_SCAN_WORK,
    ) -> None:
        import faiss

        self._graph = graph
        self.exact_scan_work = exact_scan_work
        self._params = params
        self._n = int(graph.ntotal)
        self._columns = catalogue_columns
        # Python lists of Python values: a hit's attributes are read from them without numpy scalar conversions.
        self._lists: dict[str, list[Any]] = {name: column.tolist() for name, column in catalogue_columns.items()}
        storage: Any = faiss.downcast_index(graph.storage)
        # A view of the graph's own float32 copy of the vectors: no second copy in memory.
        self._vectors: FloatArray = faiss.rev_swig_ptr(storage.get_xb(), self._n * graph.d).reshape(self._n, graph.d)
        self._rows = {str(sku): row for row, sku in enumerate(catalogue_columns["sku"])}
        self._codes: dict[str, tuple[npt.NDArray[np.int32], dict[str, int]]] = {}
        for name in _FILTER_COLUMNS:
            values, codes = np.unique(catalogue_columns[name].astype(str), return_inverse=True)
            self._codes[name] = (codes.astype(np.int32), {str(v): i for i, v in enumerate(values)})
        self._selections: dict[Filters, Selection] = {}
        self._unfiltered = faiss.SearchParametersHNSW(efSearch=params.ef_search)  # type: ignore[attr-defined]

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls, catalogue: Catalogue, params: HnswParams | None = None, exact_scan_work: int = EXACT_SCAN_WORK
    ) -> FaissIndex:
        import faiss

        params = params or HnswParams()
        graph = faiss.IndexHNSWFlat(catalogue.dimension, params.m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = params.ef_construction
        graph.hnsw.efSearch = params.ef_search
        graph.add(catalogue.vectors)
        return cls(graph, catalogue.columns, params, exact_scan_work)

    def tuned(self, ef_search: int) -> FaissIndex:
        """The same graph and attributes searched with another ef_search (a shallow copy: nothing is rebuilt)."""
        import copy

        import faiss

        other = copy.copy(self)
        other._params = replace(self._params, ef_search=ef_search)
        other._unfiltered = faiss.SearchParametersHNSW(efSearch=ef_search)  # type: ignore[attr-defined]
        return other

    def to_files(self) -> dict[str, bytes]:
        """The version's files (name -> bytes)."""
        import faiss

        attributes = {name: [COLUMNS[name](v) for v in self._columns[name]] for name in COLUMNS}
        manifest = {
            "m": self._params.m,
            "ef_construction": self._params.ef_construction,
            "ef_search": self._params.ef_search,
            "space_type": self._params.space_type,
            "dimension": self.dimension,
            "count": self._n,
            "faiss_version": faiss.__version__,
        }
        return {
            INDEX_FILE: faiss.serialize_index(self._graph).tobytes(),
            ATTRIBUTES_FILE: json.dumps(attributes, separators=(",", ":")).encode(),
            MANIFEST_FILE: json.dumps(manifest, indent=2).encode(),
        }

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> FaissIndex:
        import faiss

        manifest = json.loads(files[MANIFEST_FILE])
        graph: Any = faiss.deserialize_index(np.frombuffer(files[INDEX_FILE], dtype=np.uint8))
        attributes = json.loads(files[ATTRIBUTES_FILE])
        if graph.ntotal != manifest["count"] or len(attributes["sku"]) != manifest["count"]:
            raise ValueError(
                f"the stored index is inconsistent: manifest {manifest['count']} vectors, graph {graph.ntotal}, "
                f"attributes {len(attributes['sku'])}"
            )
        params = HnswParams(manifest["m"], manifest["ef_construction"], manifest["ef_search"], manifest["space_type"])
        return cls(graph, typed_columns(attributes, int(graph.ntotal)), params)

    # -- VectorIndex ---------------------------------------------------------------------------------------------
    @property
    def params(self) -> HnswParams:
        return self._params

    @property
    def dimension(self) -> int:
        return int(self._graph.d)

    @property
    def size(self) -> int:
        return self._n

    @property
    def graph(self) -> faiss.IndexHNSWFlat:
        """The bare faiss index (for benchmarks against the raw call)."""
        return self._graph

    def search(self, vector: npt.ArrayLike, k: int, filters: Filters | None = None) -> list[Hit]:
        query = query_vector(vector, self.dimension)
        return self._hits(*self._nearest(query, check_k(k), self._selection(filters or NO_FILTERS)))

    def neighbours(self, sku: str, k: int, filters: Filters | None = None) -> list[Hit]:
        row = self._row(sku)
        k = check_k(k)
        query = self._vectors[row : row + 1]
        selection = self._selection(filters or NO_FILTERS)
        if selection is None:
            # One more than asked, then the product itself dropped: cheaper than a selector over every row.
            rows, ips = self._nearest(query, k + 1, None)
            kept = [(r, ip) for r, ip in zip(rows, ips, strict=True) if r != row][:k]
            return self._hits([r for r, _ in kept], [ip for _, ip in kept])
        return self._hits(*self._nearest(query, k, selection.without(row)))

    def vector(self, sku: str) -> FloatArray:
        stored: FloatArray = self._vectors[self._row(sku)].copy()
        return stored

    # -- internals -------------------------------------------------------------------------------------------------
    def _row(self, sku: str) -> int:
        row = self._rows.get(sku)
        if row is None:
            raise UnknownSkuError(sku)
        return row

    def _selection(self, filters: Filters) -> Selection | None:
        """The rows passing `filters` (None when nothing is filtered), remembered for the last `SELECTIONS_KEPT`
        filters: computing one costs about a millisecond on a million products, more than the search."""
        if not filters.active:
            return None
        selection = self._selections.pop(filters, None)
        if selection is None:
            selection = Selection.of(self._mask(filters), self.exact_scan_work // self.dimension)
            if len(self._selections) >= SELECTIONS_KEPT:
                del self._selections[next(iter(self._selections))]
        self._selections[filters] = selection  # most recently used last
        return selection

    def _mask(self, filters: Filters) -> npt.NDArray[np.bool_]:
        mask = np.ones(self._n, dtype=bool)
        for name in _FILTER_COLUMNS:
            wanted = getattr(filters, name)
            if wanted is not None:
                codes, lookup = self._codes[name]
                code = lookup.get(wanted)
                mask &= codes == code if code is not None else False
        price = self._columns["price"]
        if filters.price_min is not None:
            mask &= price >= filters.price_min
        if filters.price_max is not None:
            mask &= price <= filters.price_max
        if filters.in_stock is not None:
            mask &= self._columns["in_stock"] == filters.in_stock
        return mask

    def _nearest(self, query: FloatArray, k: int, selection: Selection | None) -> Neighbours:
        """The k nearest rows of `selection` (all when None) and their inner products, nearest first."""
        if selection is None:
            return self._graph_search(query, k, self._unfiltered)
        if selection.count <= k or selection.count * self.dimension <= self.exact_scan_work:
            return self._exact(query, k, selection.passing())
        import faiss

        # The selector reads the bitmap through a raw pointer: both stay referenced here until the search returns.
        selector = faiss.IDSelectorBitmap(self._n, faiss.swig_ptr(selection.bitmap))
        params = faiss.SearchParametersHNSW(efSearch=self._params.ef_search, sel=selector)  # type: ignore[attr-defined]
        found = self._graph_search(query, k, params)
        return found if len(found[0]) == k else self._exact(query, k, selection.passing())

    def _graph_search(self, query: FloatArray, k: int, params: Any) -> Neighbours:
        ips, rows = self._graph.search(query, k, params=params)
        # Plain lists from here: this runs on every request. faiss pads the end with -1 when it finds fewer than k.
        found, products = rows[0].tolist(), ips[0].tolist()
        if found and found[-1] < 0:
            kept = found.index(-1)
            return found[:kept], products[:kept]
        return found, products

    def _exact(self, query: FloatArray, k: int, allowed: npt.NDArray[np.int64]) -> Neighbours:
        ips = self._vectors[allowed] @ query[0]
        top = np.argpartition(-ips, k - 1)[:k] if allowed.size > k else np.arange(allowed.size)
        order = top[np.lexsort((allowed[top], -ips[top]))]
        return allowed[order].tolist(), ips[order].tolist()

    def _hits(self, rows: list[int], ips: list[float]) -> list[Hit]:
        skus, keys, shown = self._lists["sku"], self._lists["image_key"], [self._lists[n] for n in _DISPLAYED]
        return [
            Hit(
                sku=skus[row],
                score=knn_score_of(ip),
                attributes={name: column[row] for name, column in zip(_DISPLAYED, shown, strict=True)},
                image_key=keys[row],
            )
            for row, ip in zip(rows, ips, strict=True)
        ]


_DISPLAYED = tuple(name for name in COLUMNS if name not in ("sku", "image_key"))


@dataclass(frozen=True)
class Selection:
    """The rows a filter lets through: as the bitmap faiss's selector reads (bit i of byte i // 8, little-endian) and,
    when few enough to scan exactly, as row numbers."""

    bitmap: npt.NDArray[np.uint8]
    count: int
    rows: npt.NDArray[np.int64] | None

    @classmethod
    def of(cls, mask: npt.NDArray[np.bool_], scan_rows: int) -> Selection:
        count = int(np.count_nonzero(mask))
        rows = np.flatnonzero(mask) if count <= max(scan_rows, MAX_K) else None
        return cls(np.packbits(mask, bitorder="little"), count, rows)

    def passing(self) -> npt.NDArray[np.int64]:
        if self.rows is not None:
            return self.rows
        return np.flatnonzero(np.unpackbits(self.bitmap, bitorder="little").astype(bool))

    def without(self, row: int) -> Selection:
        """The same rows but `row`."""
        byte, bit = divmod(row, 8)
        if not self.bitmap[byte] >> bit & 1:
            return self
        bitmap = self.bitmap.copy()
        bitmap[byte] &= ~np.uint8(1 << bit)
        rows = None if self.rows is None else self.rows[self.rows != row]
        return Selection(bitmap, self.count - 1, rows)


def store_index(index: FaissIndex, store: BlobStore, version: str | None = None) -> str:
    """Write a new version of the index under its own prefix, then point CURRENT.json at it; returns the version."""
    version = version or new_version()
    for name, data in index.to_files().items():
        store.put_bytes(version_prefix(version) + name, data)
    try:
        previous: str | None = read_pointer(store, EMBEDDED_POINTER).version
    except IndexNotFoundError:
        previous = None
    write_pointer(store, EMBEDDED_POINTER, Pointer(version, previous))
    return version


def load_index(store: BlobStore, version: str | None = None) -> FaissIndex:
    """The version CURRENT.json names (or `version`); IndexNotFoundError when none was stored."""
    version = version or read_pointer(store, EMBEDDED_POINTER).version
    prefix = version_prefix(version)
    return FaissIndex.from_files({name: read_blob(store, prefix + name) for name in _FILES})


def rollback_index(store: BlobStore) -> str:
    """Point CURRENT.json back at the previous version; returns it. ValueError when there is none."""
    pointer = read_pointer(store, EMBEDDED_POINTER)
    if pointer.previous is None:
        raise ValueError(f"version {pointer.version} has no previous version to roll back to")
    write_pointer(store, EMBEDDED_POINTER, Pointer(pointer.previous, None))
    return pointer.previous


_FILES = (INDEX_FILE, ATTRIBUTES_FILE, MANIFEST_FILE)
