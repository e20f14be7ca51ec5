"""The vector index in OpenSearch (the k-NN plugin's faiss engine), through opensearch-py.

Index: `settings.index.knn: true` and a `knn_vector` field with an explicit method (hnsw, engine faiss, space type
`innerproduct`, m, ef_construction, ef_search); the product attributes as keyword / float / boolean fields to filter
on. ef_search is set where the faiss engine reads it: the method's parameters and `index.knn.algo_param.ef_search`
(where settable), and it is sent with every query (`method_parameters.ef_search`, OpenSearch 2.16+), so searches use
exactly the embedded index's ef_search whatever the index defaults.

Loading (`OpenSearchIndex.load`): a new versioned index `<name>-v<UTC time>` created with replicas 0 and refresh off,
filled by bulk, its settings restored and refreshed, its document count checked against the embeddings written (a
mismatch raises naming both numbers, deletes the new index and leaves the live one serving), then made live in one
step: one `_aliases` call moving the alias from the old index to the new, or (without aliases) the lake pointer
rewritten. The previous index stays for `rollback()`; older ones are deleted.

Search: the `knn` query with the filter inside it (efficient filtering: faiss searches only documents passing it),
results mapped to the same `Hit`s as the embedded index. OpenSearch computes the score; for `innerproduct` it is the
convention `shelfwise.visual.index.knn_score` reproduces.

Sizing: the k-NN plugin keeps each graph in native memory, about 1.1 x (4 x dimension + 8 x m) bytes per vector
(`shelfwise.visual.index.memory_bytes`), times (1 + replicas); it must fit the k-NN circuit breaker's share (by default
half) of the memory left to the plugin outside the JVM heap.

Auth: SigV4 for managed domains (service `es`) and Serverless collections (service `aoss`) alike (`opensearch_client`).
What differs between the two is stated once, in `Flavour`, and the loader asks it, never the deployment's name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shelfwise.visual.index import (
    COLUMNS,
    NO_FILTERS,
    Catalogue,
    Filters,
    FloatArray,
    Hit,
    HnswParams,
    InvalidCatalogueError,
    UnknownSkuError,
    check_k,
    query_vector,
)
from shelfwise.visual.index_store import (
    OPENSEARCH_POINTER,
    BlobStore,
    IndexNotFoundError,
    Pointer,
    new_version,
    read_pointer,
    write_pointer,
)

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

#: The knn_vector field of every document.
VECTOR_FIELD = "embedding"
#: Each attribute's field type: keyword for exact-match filters and display, float for price ranges.
ATTRIBUTE_MAPPING: dict[str, dict[str, Any]] = {
    name: {"type": {str: "keyword", float: "float", bool: "boolean"}[kind]} for name, kind in COLUMNS.items()
}
_DISPLAYED = tuple(name for name in COLUMNS if name not in ("sku", "image_key"))


class IndexLoadError(RuntimeError):
    """Loading a new index version failed; the live index was left as it was. The message says why."""


@dataclass(frozen=True)
class Flavour:
    """What one kind of OpenSearch deployment accepts. The one place where Serverless differs from a domain."""

    name: str
    #: SigV4 signing name.
    service: str
    #: Bulk may set `_id` (the SKU), which makes a retried load idempotent. Serverless vector collections (classic)
    #: refuse custom ids: documents get generated ids and the SKU lives in its own field in every flavour.
    custom_ids: bool
    #: `POST <index>/_refresh` exists. Serverless has no refresh API (documents show within its refresh interval,
    #: 10-60 s): the loader polls `_count` instead.
    refresh_api: bool
    #: `number_of_replicas`, `refresh_interval` and `knn.algo_param.ef_search` may be set. Serverless manages
    #: replicas and refresh itself and refuses them.
    index_settings: bool
    #: An alias can point at the live index and move atomically. Serverless collections have no aliases: the live
    #: index's name is in the lake pointer (`index_store.OPENSEARCH_POINTER`), read when the index object is made.
    aliases: bool
    #: Extra knn_vector mapping parameters. Serverless's newer vector collections compress vectors 32x by default;
    #: `1x` keeps float32 vectors, which the embedded index, the recall figures and the memory estimate assume.
    vector_mapping: tuple[tuple[str, str], ...] = ()


MANAGED = Flavour("opensearch", service="es", custom_ids=True, refresh_api=True, index_settings=True, aliases=True)
SERVERLESS = Flavour(
    "opensearch-serverless",
    service="aoss",
    custom_ids=False,
    refresh_api=False,
    index_settings=False,
    aliases=False,
    vector_mapping=(("compression_level", "1x"),),
)
FLAVOURS = {flavour.name: flavour for flavour in (MANAGED, SERVERLESS)}


@dataclass(frozen=True)
class OpenSearchSettings:
    """One deployment's index: its name (the alias, and the prefix of every version), shape and flavour."""

    name: str
    dimension: int
    params: HnswParams = field(default_factory=HnswParams)
    flavour: Flavour = MANAGED
    shards: int = 1
    #: Replicas once loaded (0 while loading).
    replicas: int = 1
    bulk_chunk: int = 500
    #: Without a refresh API: how long the loaded documents may take to become countable, and how often to look.
    visible_within_s: float = 120.0
    poll_every_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or self.name.startswith(("_", "-", "+")):
            raise ValueError(f"index name must be lowercase and not start with _, - or +, got {self.name!r}")
        if self.dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {self.dimension}")


def index_body(settings: OpenSearchSettings) -> dict[str, Any]:
    """The create-index body of a new version, set up for loading (replicas 0, refresh off where settable)."""
    params, flavour = settings.params, settings.flavour
    method_parameters = {"m": params.m, "ef_construction": params.ef_construction, "ef_search": params.ef_search}
    vector = {
        "type": "knn_vector",
        "dimension": settings.dimension,
        "method": {"name": "hnsw", "engine": "faiss", "space_type": params.space_type, "parameters": method_parameters},
        **dict(flavour.vector_mapping),
    }
    index: dict[str, Any] = {"knn": True}
    if flavour.index_settings:
        index |= {
            "knn.algo_param.ef_search": params.ef_search,
            "number_of_shards": settings.shards,
            "number_of_replicas": 0,
            "refresh_interval": "-1",
        }
    return {
        "settings": {"index": index},
        "mappings": {"dynamic": "strict", "properties": {VECTOR_FIELD: vector, **ATTRIBUTE_MAPPING}},
    }


def serving_settings(settings: OpenSearchSettings) -> dict[str, Any]:
    """The settings a loaded index is given back before it serves."""
    return {"index": {"number_of_replicas": settings.replicas, "refresh_interval": "1s"}}


def filter_clause(filters: Filters, exclude_sku: str | None = None) -> dict[str, Any] | None:
    """`filters` (and a SKU to leave out) as a bool query of term / range clauses; None when nothing is filtered."""
    clauses: list[dict[str, Any]] = [
        {"term": {name: getattr(filters, name)}}
        for name in ("category", "department", "in_stock")
        if getattr(filters, name) is not None
    ]
    bounds = {op: value for op, value in (("gte", filters.price_min), ("lte", filters.price_max)) if value is not None}
    if bounds:
        clauses.append({"range": {"price": bounds}})
    query: dict[str, Any] = {}
    if clauses:
        query["filter"] = clauses
    if exclude_sku is not None:
        query["must_not"] = [{"term": {"sku": exclude_sku}}]
    return {"bool": query} if query else None


def knn_body(vector: FloatArray, k: int, ef_search: int, filter_query: dict[str, Any] | None) -> dict[str, Any]:
    """A k-NN search: the `knn` query on the vector field, the filter inside it, the vector left out of the hits."""
    knn: dict[str, Any] = {"vector": [float(x) for x in vector], "k": k, "method_parameters": {"ef_search": ef_search}}
    if filter_query is not None:
        knn["filter"] = filter_query
    return {"size": k, "_source": {"excludes": [VECTOR_FIELD]}, "query": {"knn": {VECTOR_FIELD: knn}}}


def bulk_actions(catalogue: Catalogue, index: str, custom_ids: bool) -> Iterator[dict[str, Any]]:
    """One index action per product, for `opensearchpy.helpers.bulk`."""
    for row in range(catalogue.size):
        document: dict[str, Any] = catalogue.row(row)
        document[VECTOR_FIELD] = [float(x) for x in catalogue.vectors[row]]
        action: dict[str, Any] = {"_index": index, "_source": document}
        if custom_ids:
            action["_id"] = document["sku"]
        yield action


def hit_from_source(hit: dict[str, Any]) -> Hit:
    source = hit["_source"]
    return Hit(
        sku=str(source["sku"]),
        score=float(hit["_score"]),
        attributes={name: COLUMNS[name](source[name]) for name in _DISPLAYED},
        image_key=str(source["image_key"]),
    )


class OpenSearchIndex:
    """A `VectorIndex` in OpenSearch, and the loader of its versions. `pointer_store` (the lake) is needed by flavours
    without aliases: it names the live index."""

    def __init__(
        self,
        client: OpenSearch,
        settings: OpenSearchSettings,
        pointer_store: BlobStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not settings.flavour.aliases and pointer_store is None:
            raise ValueError(
                f"{settings.flavour.name} has no aliases: give a pointer store (the lake) to name the index"
            )
        self.client = client
        self.settings = settings
        self.pointer_store = pointer_store
        self._sleep = sleep
        self._target: str | None = None

    # -- VectorIndex ---------------------------------------------------------------------------------------------
    @property
    def params(self) -> HnswParams:
        return self.settings.params

    @property
    def dimension(self) -> int:
        return self.settings.dimension

    def search(self, vector: npt.ArrayLike, k: int, filters: Filters | None = None) -> list[Hit]:
        query = query_vector(vector, self.dimension)[0]
        return self._knn(query, check_k(k), filter_clause(filters or NO_FILTERS))

    def neighbours(self, sku: str, k: int, filters: Filters | None = None) -> list[Hit]:
        k = check_k(k)
        return self._knn(self.vector(sku), k, filter_clause(filters or NO_FILTERS, exclude_sku=sku))

    def vector(self, sku: str) -> FloatArray:
        body = {"size": 1, "query": {"term": {"sku": sku}}, "_source": {"includes": [VECTOR_FIELD]}}
        hits = self.client.search(index=self.target, body=body)["hits"]["hits"]
        if not hits:
            raise UnknownSkuError(sku)
        return np.asarray(hits[0]["_source"][VECTOR_FIELD], dtype=np.float32)

    @property
    def target(self) -> str:
        """What searches name: the alias, or the index the lake pointer named when first asked."""
        if self._target is None:
            if self.settings.flavour.aliases:
                self._target = self.settings.name
            else:
                live = self.live_index()
                if live is None:
                    raise IndexLoadError(f"no version of index {self.settings.name} has been loaded yet")
                self._target = live
        return self._target

    def _knn(self, vector: FloatArray, k: int, filter_query: dict[str, Any] | None) -> list[Hit]:
        body = knn_body(vector, k, self.params.ef_search, filter_query)
        response = self.client.search(index=self.target, body=body)
        return [hit_from_source(hit) for hit in response["hits"]["hits"]]

    # -- versions ------------------------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Every version index of this name, oldest first."""
        found = self.client.indices.get(index=f"{self.settings.name}-v*")
        return sorted(found)

    def live_index(self) -> str | None:
        """The index searches reach now, or None before the first load."""
        if self.settings.flavour.aliases:
            from opensearchpy import NotFoundError

            try:
                holders: list[str] = sorted(self.client.indices.get_alias(name=self.settings.name))
                return holders[-1]
            except NotFoundError:
                return None
        assert self.pointer_store is not None
        try:
            return read_pointer(self.pointer_store, OPENSEARCH_POINTER).version
        except IndexNotFoundError:
            return None

    def load(self, catalogue: Catalogue) -> str:
        """Load `catalogue` into a new version and make it live; returns its name. On any failure the new index is
        deleted and the live one keeps serving."""
        if catalogue.dimension != self.dimension:
            raise InvalidCatalogueError(
                f"the catalogue's vectors have {catalogue.dimension} dimensions, the index {self.dimension}"
            )
        new = f"{self.settings.name}-v{new_version()}"
        self.client.indices.create(index=new, body=index_body(self.settings))
        try:
            self._fill(new, catalogue)
        except Exception:
            self.client.indices.delete(index=new)
            raise
        previous = self.live_index()
        self._make_live(new, previous)
        self._prune(keep={new, previous})
        return new

    def rollback(self) -> str:
        """Make the version before the live one live again; returns its name."""
        live = self.live_index()
        older = [name for name in self.versions() if live is None or name < live]
        if live is None or not older:
            raise IndexLoadError(f"no version older than {live} of index {self.settings.name} to roll back to")
        self._make_live(older[-1], live)
        return older[-1]

    def _fill(self, index: str, catalogue: Catalogue) -> None:
        from opensearchpy import helpers

        flavour = self.settings.flavour
        actions = bulk_actions(catalogue, index, flavour.custom_ids)
        written, _ = helpers.bulk(self.client, actions, chunk_size=self.settings.bulk_chunk, max_retries=3)
        if flavour.index_settings:
            self.client.indices.put_settings(index=index, body=serving_settings(self.settings))
        if flavour.refresh_api:
            self.client.indices.refresh(index=index)
        counted = self._count_when_visible(index, catalogue.size)
        if counted != catalogue.size or written != catalogue.size:
            raise IndexLoadError(
                f"index {index} holds {counted} documents ({written} acknowledged) but {catalogue.size} embeddings "
                f"were written: the live index was left as it was"
            )

    def _count_when_visible(self, index: str, expected: int) -> int:
        count = int(self.client.count(index=index)["count"])
        if self.settings.flavour.refresh_api:
            return count
        deadline = time.monotonic() + self.settings.visible_within_s
        while count < expected and time.monotonic() < deadline:
            self._sleep(self.settings.poll_every_s)
            count = int(self.client.count(index=index)["count"])
        return count

    def _make_live(self, new: str, old: str | None) -> None:
        if self.settings.flavour.aliases:
            actions: list[dict[str, Any]] = [{"remove": {"index": old, "alias": self.settings.name}}] if old else []
            actions.append({"add": {"index": new, "alias": self.settings.name}})
            self.client.indices.update_aliases(body={"actions": actions})
        else:
            assert self.pointer_store is not None
            write_pointer(self.pointer_store, OPENSEARCH_POINTER, Pointer(new, old))
        self._target = self.settings.name if self.settings.flavour.aliases else new

    def _prune(self, keep: set[str | None]) -> None:
        stale = [name for name in self.versions() if name not in keep]
        if stale:
            self.client.indices.delete(index=",".join(stale))


def opensearch_client(
    endpoint: str, region: str, flavour: Flavour, credentials: Any = None, **options: Any
) -> OpenSearch:
    """A client signing every request with SigV4 for the flavour's service (`es` or `aoss`): the urllib3 signer with
    the default urllib3 connection (mixing the requests signer with it fails with a misleading ConnectionError). Make
    it once per Lambda container. `options` go to `OpenSearch` (e.g. `timeout`, or `connection_class` in tests)."""
    import boto3
    from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth

    host = endpoint.removeprefix("https://").rstrip("/")
    auth = Urllib3AWSV4SignerAuth(credentials or boto3.Session().get_credentials(), region, flavour.service)
    return OpenSearch(
        hosts=[{"host": host, "port": 443}],
        http_auth=auth,
        use_ssl=True,
        verify_certs=True,
        **({"timeout": 10} | options),
    )
