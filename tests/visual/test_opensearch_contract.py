"""Contract tests of the OpenSearch index: every request it sends through the real opensearch-py client (serialisation,
helpers.bulk, SigV4 signing included) is captured by a Connection subclass that answers as a cluster would, and
validated against the official REST API spec in ../shared/opensearch-api-spec/: the operation exists for the method
and path, its query parameters are declared, its body validates against the operation's requestBody schema, it is not
excluded from the flavour's distribution. The k-NN parts the spec is permissive about (engine, space type, method
parameters, the `knn` query's shape, the filter) are checked explicitly.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlencode, urljoin

import jsonschema
import numpy as np
import pytest
import yaml
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from opensearchpy import Urllib3HttpConnection
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from shelfwise.loaders.sources import REPO_ROOT
from shelfwise.visual.faiss_index import FaissIndex
from shelfwise.visual.index import (
    COLUMNS,
    Catalogue,
    Filters,
    HnswParams,
    UnknownSkuError,
    knn_score,
    make_catalogue,
)
from shelfwise.visual.index_store import OPENSEARCH_POINTER, read_pointer
from shelfwise.visual.opensearch_index import (
    MANAGED,
    SERVERLESS,
    VECTOR_FIELD,
    Flavour,
    IndexLoadError,
    OpenSearchIndex,
    OpenSearchSettings,
    opensearch_client,
)

SPEC = REPO_ROOT.parent / "shared" / "opensearch-api-spec" / "spec"
DIM = 8
PARAMS = HnswParams(m=8, ef_construction=40, ef_search=32)
DISTRIBUTION = {MANAGED.name: "amazon-managed", SERVERLESS.name: "amazon-serverless"}

pytestmark = pytest.mark.skipif(not SPEC.is_dir(), reason=f"the OpenSearch API spec is not at {SPEC}")


# -- the spec ----------------------------------------------------------------------------------------------------
#: The spec's files are resources under this made-up base, so that their relative $refs resolve as URLs do.
BASE = "https://opensearch-api-spec.invalid/"


@cache
def spec_file(uri: str) -> Any:
    return yaml.load((SPEC / uri.removeprefix(BASE)).read_text(), Loader=yaml.CSafeLoader)


def registry() -> Registry:
    # Files load as their $refs reach them; each is a resource at its path, so relative $refs resolve.
    return Registry(retrieve=lambda uri: Resource.from_contents(spec_file(uri), default_specification=DRAFT202012))


@dataclass(frozen=True)
class Operation:
    uri: str  # the namespace file
    path: str
    method: str
    definition: dict[str, Any]

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """A `#/components/...` object of the operation's file."""
        while "$ref" in node:
            target = node["$ref"]
            node = spec_file(urljoin(self.uri, target.split("#", 1)[0]))
            for part in target.split("#", 1)[1].strip("/").split("/"):
                node = node[part]
        return node


@cache
def operations() -> list[Operation]:
    found = []
    for path in sorted((SPEC / "namespaces").glob("*.yaml")):
        uri = f"{BASE}namespaces/{path.name}"
        for template, methods in spec_file(uri)["paths"].items():
            for method, definition in methods.items():
                if isinstance(definition, dict) and "operationId" in definition:
                    found.append(Operation(uri, template, method.upper(), definition))
    return found


def match_operation(method: str, path: str) -> Operation | None:
    """The operation whose template matches, the one with the most literal segments winning (`/_alias/{name}`
    over `/{index}/{type}`)."""
    best: tuple[int, Operation] | None = None
    for operation in operations():
        if operation.method != method:
            continue
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(operation.path)) + "$"
        if re.match(pattern, path):
            literals = sum(1 for part in operation.path.split("/") if part and not part.startswith("{"))
            if best is None or literals > best[0]:
                best = (literals, operation)
    return best[1] if best else None


GLOBAL_PARAMETERS = {"pretty", "human", "error_trace", "source", "filter_path"}


def spec_violations(request: Request, flavour: Flavour) -> list[str]:
    """What the official spec says is wrong with the request: an empty list for a valid one."""
    operation = match_operation(request.method, request.path)
    if operation is None:
        return [f"no operation {request.method} {request.path} in the spec"]
    problems = []
    excluded = operation.definition.get("x-distributions-excluded", [])
    if DISTRIBUTION[flavour.name] in excluded:
        problems.append(f"{operation.definition['operationId']} is not available on {DISTRIBUTION[flavour.name]}")
    declared = {operation.resolve(p)["name"] for p in operation.definition.get("parameters", [])} | GLOBAL_PARAMETERS
    problems += [f"undeclared query parameter {name!r}" for name in request.params if name not in declared]
    if request.body is None:
        return problems
    if "requestBody" not in operation.definition:
        return [*problems, f"{operation.definition['operationId']} takes no body"]
    body_ref = operation.definition["requestBody"]["$ref"]
    content = operation.resolve(operation.definition["requestBody"])["content"]
    media = next(iter(content))
    pointer = body_ref.split("#", 1)[1] + f"/content/{media.replace('/', '~1')}/schema"
    validator = jsonschema.Draft202012Validator({"$ref": f"{operation.uri}#{pointer}"}, registry=registry())
    documents = request.ndjson() if media == "application/x-ndjson" else [request.json()]
    instance: Any = documents if media == "application/x-ndjson" else documents[0]
    problems += [f"body: {error.message} at {list(error.absolute_path)}" for error in validator.iter_errors(instance)]
    if media == "application/x-ndjson":
        # The items' anyOf accepts any object: check each action line against OperationContainer itself.
        action = jsonschema.Draft202012Validator(
            {"$ref": f"{BASE}schemas/_core.bulk.yaml#/components/schemas/OperationContainer"}, registry=registry()
        )
        for line in documents[::2]:
            problems += [f"bulk action: {error.message}" for error in action.iter_errors(line)]
    return problems


# -- the k-NN parts the spec leaves open -----------------------------------------------------------------------------
FIELD_TYPES = {"keyword", "float", "boolean"}


def knn_violations(request: Request, settings: OpenSearchSettings) -> list[str]:
    """Explicit checks of the k-NN mapping, bulk documents and queries."""
    problems: list[str] = []
    params = settings.params
    body = request.json() if request.body and not request.path.endswith("_bulk") else None
    if request.method == "PUT" and request.path.count("/") == 1 and body is not None:
        if body["settings"]["index"].get("knn") is not True:
            problems.append("index.knn is not true")
        properties = body["mappings"]["properties"]
        vector = properties.get(VECTOR_FIELD, {})
        method = vector.get("method", {})
        expected = {"name": "hnsw", "engine": "faiss", "space_type": params.space_type}
        problems += [f"method.{k} is {method.get(k)!r}, not {v!r}" for k, v in expected.items() if method.get(k) != v]
        if vector.get("type") != "knn_vector" or vector.get("dimension") != settings.dimension:
            problems.append(f"the vector field is not a knn_vector of dimension {settings.dimension}: {vector}")
        for name, value in (("m", params.m), ("ef_construction", params.ef_construction)):
            given = method.get("parameters", {}).get(name)
            if type(given) is not int or given != value:
                problems.append(f"method.parameters.{name} is {given!r}, not the integer {value}")
        for name in COLUMNS:
            if properties.get(name, {}).get("type") not in FIELD_TYPES:
                problems.append(f"attribute {name} is not a keyword/float/boolean field: {properties.get(name)}")
    if request.path.endswith("_bulk"):
        lines = request.ndjson()
        for document in lines[1::2]:
            if set(document) != {VECTOR_FIELD, *COLUMNS}:
                problems.append(f"bulk document fields {sorted(document)}")
            problems += _vector_problems(document.get(VECTOR_FIELD), settings.dimension, "bulk document")
    if request.path.endswith("_search") and body is not None:
        if "knn" in body:
            problems.append("a top-level knn section (Elasticsearch's syntax): OpenSearch wants query.knn")
        knn = body.get("query", {}).get("knn")
        if knn is not None:
            problems += _knn_query_problems(knn, body, settings)
    return problems


def _vector_problems(vector: Any, dimension: int, where: str) -> list[str]:
    if not isinstance(vector, list) or len(vector) != dimension:
        return [f"{where}: the vector is not a list of {dimension} numbers"]
    if not all(type(x) is float and np.isfinite(x) for x in vector):
        return [f"{where}: the vector holds non-float or non-finite values"]
    return []


def _knn_query_problems(knn: dict[str, Any], body: dict[str, Any], settings: OpenSearchSettings) -> list[str]:
    if list(knn) != [VECTOR_FIELD]:
        return [f"the knn query names {list(knn)}, not the one vector field {VECTOR_FIELD}"]
    clause = knn[VECTOR_FIELD]
    problems = _vector_problems(clause.get("vector"), settings.dimension, "knn query")
    k = clause.get("k")
    if type(k) is not int or k < 1 or body.get("size") != k:
        problems.append(f"knn k is {k!r} (size {body.get('size')!r}): expected a positive integer equal to size")
    ef = clause.get("method_parameters", {}).get("ef_search")
    if type(ef) is not int or ef != settings.params.ef_search:
        problems.append(f"method_parameters.ef_search is {ef!r}, not {settings.params.ef_search}")
    if "filter" in clause:
        problems += _filter_problems(clause["filter"])
    return problems


def _filter_problems(query: dict[str, Any]) -> list[str]:
    if list(query) != ["bool"] or not set(query["bool"]) <= {"filter", "must_not"}:
        return [f"the filter is not a bool query of filter/must_not clauses: {query}"]
    problems = []
    for clause in query["bool"].get("filter", []):
        ((kind, target),) = clause.items()
        ((name, value),) = target.items()
        if kind == "term" and name in ("category", "department", "in_stock"):
            continue
        if kind == "range" and name == "price" and set(value) <= {"gte", "lte"} and value:
            continue
        problems.append(f"unexpected filter clause {clause}")
    for clause in query["bool"].get("must_not", []):
        if list(clause) != ["term"] or list(clause["term"]) != ["sku"]:
            problems.append(f"unexpected must_not clause {clause}")
    return problems


# -- the capturing connection and a cluster's answers ----------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: bytes | None
    headers: dict[str, str]

    def json(self) -> Any:
        assert self.body is not None
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        assert self.body is not None
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


@dataclass
class FakeCluster:
    """What an OpenSearch cluster answers to the requests the index sends, from its documents in memory. Searches
    are exact (scored with the k-NN plugin's innerproduct convention); `lose` documents of each bulk load vanish;
    without a refresh API, documents become countable only after `hidden_counts` count requests."""

    lose: int = 0
    hidden_counts: int = 0
    indices: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bodies: dict[str, Any] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    counts_asked: int = 0

    def answer(self, request: Request) -> tuple[int, Any]:
        method, parts = request.method, request.path.strip("/").split("/")
        if method == "PUT" and len(parts) == 1:
            self.indices[parts[0]], self.bodies[parts[0]] = [], request.json()
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": parts[0]}
        if parts == ["_bulk"]:
            return 200, self._bulk(request.ndjson())
        if parts[-1] in ("_settings", "_aliases") or method == "DELETE":
            return 200, self._change(method, parts, request)
        if parts[-1] == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if parts[-1] == "_count":
            self.counts_asked += 1
            visible = self.counts_asked > self.hidden_counts
            return 200, {"count": len(self.indices[parts[0]]) if visible else 0, "_shards": _SHARDS}
        if parts[0] == "_alias":
            holders = {index: {"aliases": {alias: {}}} for alias, index in self.aliases.items() if alias == parts[1]}
            return (200, holders) if holders else (404, {"error": f"alias [{parts[1]}] missing", "status": 404})
        if method == "GET" and len(parts) == 1:
            names = [n for n in self.indices if fnmatch.fnmatch(n, parts[0])]
            return 200, {n: {"aliases": {}, "mappings": self.bodies[n]["mappings"], "settings": {}} for n in names}
        if parts[-1] == "_search":
            return 200, self._search(self.aliases.get(parts[0], parts[0]), request.json())
        raise AssertionError(f"the fake cluster has no answer to {method} {request.path}")

    def _bulk(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        items = []
        for number, (action, document) in enumerate(zip(lines[::2], lines[1::2], strict=True)):
            target = action["index"]
            doc_id = target.get("_id", f"generated-{number}")
            self.indices[target["_index"]].append(document | {"_id": doc_id})
            items.append({"index": {"_index": target["_index"], "_id": doc_id, "status": 201, "result": "created"}})
        for index in {action["index"]["_index"] for action in lines[::2]}:
            del self.indices[index][len(self.indices[index]) - self.lose :]
        return {"took": 5, "errors": False, "items": items}

    def _change(self, method: str, parts: list[str], request: Request) -> dict[str, Any]:
        if method == "DELETE":
            for name in parts[0].split(","):
                del self.indices[name]
                self.aliases = {a: i for a, i in self.aliases.items() if i != name}
        elif parts[-1] == "_aliases":
            for action in request.json()["actions"]:
                ((kind, spec),) = action.items()
                if kind == "remove":
                    assert self.aliases.pop(spec["alias"]) == spec["index"]
                else:
                    self.aliases[spec["alias"]] = spec["index"]
        return {"acknowledged": True}

    def _search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        documents = self.indices[index]
        excludes = set(body.get("_source", {}).get("excludes", []))
        if "term" in body["query"]:
            ((name, value),) = body["query"]["term"].items()
            chosen = [(1.0, d) for d in documents if d[name] == value][: body["size"]]
        else:
            clause = body["query"]["knn"][VECTOR_FIELD]
            passing = [d for d in documents if _passes(d, clause.get("filter"))]
            ips = [float(np.dot(np.float32(d[VECTOR_FIELD]), np.float32(clause["vector"]))) for d in passing]
            order = sorted(range(len(passing)), key=lambda i: -ips[i])[: clause["k"]]
            chosen = [(float(knn_score(ips[i])), passing[i]) for i in order]
        hits = [
            {
                "_index": index,
                "_id": d["_id"],
                "_score": s,
                "_source": {k: v for k, v in d.items() if k not in excludes},
            }
            for s, d in chosen
        ]
        for hit in hits:
            del hit["_source"]["_id"]
        return {
            "took": 2,
            "timed_out": False,
            "_shards": _SHARDS,
            "hits": {"total": {"value": len(hits)}, "hits": hits},
        }


_SHARDS = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}


def _passes(document: dict[str, Any], query: dict[str, Any] | None) -> bool:
    if query is None:
        return True
    for clause in query["bool"].get("filter", []):
        ((kind, target),) = clause.items()
        ((name, value),) = target.items()
        if kind == "term" and document[name] != value:
            return False
        if kind == "range" and not value.get("gte", -np.inf) <= document[name] <= value.get("lte", np.inf):
            return False
    return not any(document["sku"] == c["term"]["sku"] for c in query["bool"].get("must_not", []))


class CapturingConnection(Urllib3HttpConnection):
    """The real client's connection with the network replaced: signs as the real one does, records the request,
    answers from the fake cluster (errors raised as the real connection raises them)."""

    def __init__(self, cluster: FakeCluster, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster

    def perform_request(
        self,
        method: str,
        url: str,
        params: Any = None,
        body: bytes | None = None,
        timeout: Any = None,
        ignore: Any = (),
        headers: Any = None,
    ) -> Any:
        full_url = self.host + url + (f"?{urlencode(params)}" if params else "")
        sent = dict(self.headers) | dict(headers or {})
        if callable(self.http_auth):
            sent |= self.http_auth(method, full_url, body)
        data = body.encode() if isinstance(body, str) else body
        request = Request(method, url, dict(params or {}), data, sent)
        self.cluster.requests.append(request)
        status, payload = self.cluster.answer(request)
        raw = json.dumps(payload)
        if not 200 <= status < 300 and status not in ignore:
            self._raise_error(status, raw, "application/json")
        return status, {"content-type": "application/json"}, raw


class DictStore:
    """The lake's get/put of bytes, in memory, failing as S3 does for a missing key."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[key] = data

    def get_bytes(self, key: str) -> bytes:
        if key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": key}}, "GetObject")
        return self.objects[key]


# -- fixtures ----------------------------------------------------------------------------------------------------
def catalogue(n: int = 60, seed: int = 0) -> Catalogue:
    rng = np.random.default_rng(seed)
    categories = np.array(["mugs", "lamps", "rugs"])[rng.integers(0, 3, n)]
    columns = {
        "sku": [f"SKU{i:05d}" for i in range(n)],
        "category": categories,
        "department": np.where(categories == "rugs", "textiles", "home"),
        "price": np.round(rng.uniform(2, 90, n), 2),
        "in_stock": rng.random(n) < 0.6,
        "image_key": [f"images/SKU{i:05d}.png" for i in range(n)],
        "brand": rng.choice(["acme", "nordic"], n),
        "colour": rng.choice(["red", "teal", "grey"], n),
        "pattern": rng.choice(["plain", "stripes"], n),
    }
    return make_catalogue(rng.standard_normal((n, DIM)), columns)


def index_for(cluster: FakeCluster, flavour: Flavour, store: DictStore | None = None) -> OpenSearchIndex:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    client = opensearch_client(
        "https://search-shelfwise.eu-west-1.es.amazonaws.com",
        "eu-west-1",
        flavour,
        credentials,
        connection_class=CapturingConnection,
        cluster=cluster,
    )
    settings = OpenSearchSettings("products", DIM, PARAMS, flavour, poll_every_s=0.0)
    return OpenSearchIndex(client, settings, pointer_store=store, sleep=lambda _: None)


def exercise(index: OpenSearchIndex, data: Catalogue) -> Iterator[Any]:
    """Searches of every kind, the filters each clause."""
    query = data.vectors[3] + 0.1
    yield index.search(query, 5)
    yield index.search(query, 4, Filters(category="mugs", price_min=10.0, price_max=60.0, in_stock=True))
    yield index.search(query, 3, Filters(department="textiles"))
    yield index.neighbours("SKU00007", 4, Filters(in_stock=False))
    yield index.vector("SKU00011")


def all_violations(cluster: FakeCluster, settings: OpenSearchSettings) -> list[str]:
    return [
        f"{r.method} {r.path}: {problem}"
        for r in cluster.requests
        for problem in spec_violations(r, settings.flavour) + knn_violations(r, settings)
    ]


# -- tests -------------------------------------------------------------------------------------------------------
def test_a_managed_domains_load_swap_rollback_and_searches_send_only_requests_the_spec_accepts() -> None:
    cluster, data = FakeCluster(), catalogue()
    index = index_for(cluster, MANAGED)

    first = index.load(data)
    second = index.load(catalogue(seed=1))
    results = list(exercise(index, data))
    assert index.rollback() == first
    third = index.load(data)

    assert all_violations(cluster, index.settings) == []
    assert all(results[:4])
    assert results[4].shape == (DIM,)
    assert sorted(cluster.indices) == [first, third]  # the previous kept, the one before it deleted
    assert cluster.aliases == {"products": third}
    swaps = [r.json()["actions"] for r in cluster.requests if r.path == "/_aliases"]
    assert swaps == [
        [{"add": {"index": first, "alias": "products"}}],
        [{"remove": {"index": first, "alias": "products"}}, {"add": {"index": second, "alias": "products"}}],
        [{"remove": {"index": second, "alias": "products"}}, {"add": {"index": first, "alias": "products"}}],
        [{"remove": {"index": first, "alias": "products"}}, {"add": {"index": third, "alias": "products"}}],
    ]
    created = next(r.json() for r in cluster.requests if r.method == "PUT" and r.path == f"/{first}")
    assert (
        created["settings"]["index"] | {"number_of_replicas": 0, "refresh_interval": "-1"}
        == created["settings"]["index"]
    )
    until_live = [f"{r.method} {r.path}" for r in cluster.requests][: cluster.requests.index(_first_swap(cluster)) + 1]
    assert until_live == [
        f"PUT /{first}",
        "POST /_bulk",
        f"PUT /{first}/_settings",
        f"POST /{first}/_refresh",
        f"POST /{first}/_count",
        "GET /_alias/products",
        "POST /_aliases",
    ]
    assert all("/es/aws4_request" in r.headers["Authorization"] for r in cluster.requests)


def _first_swap(cluster: FakeCluster) -> Request:
    return next(r for r in cluster.requests if r.path == "/_aliases")


def test_the_serverless_flavour_uses_generated_ids_no_refresh_or_settings_and_the_lake_pointer() -> None:
    cluster, store, data = FakeCluster(hidden_counts=2), DictStore(), catalogue()
    index = index_for(cluster, SERVERLESS, store)

    first = index.load(data)
    second = index.load(catalogue(seed=1))
    list(exercise(index, catalogue(seed=1)))
    assert index.rollback() == first

    assert all_violations(cluster, index.settings) == []
    sent = {f"{r.method} {r.path.split('/')[-1]}" for r in cluster.requests}
    assert not {s for s in sent if s.endswith(("_refresh", "_settings", "_aliases"))}
    assert all("_id" not in line["index"] for r in cluster.requests if r.path == "/_bulk" for line in r.ndjson()[::2])
    assert read_pointer(store, OPENSEARCH_POINTER).version == first
    assert cluster.counts_asked == 4  # the first load polled past two invisible counts
    created = next(r.json() for r in cluster.requests if r.path == f"/{second}" and r.method == "PUT")
    assert created["settings"] == {"index": {"knn": True}}
    assert created["mappings"]["properties"][VECTOR_FIELD]["compression_level"] == "1x"
    assert all("/aoss/aws4_request" in r.headers["Authorization"] for r in cluster.requests)


@pytest.mark.parametrize("flavour", [MANAGED, SERVERLESS], ids=lambda f: f.name)
def test_the_index_build_makes_its_embeddings_live_in_the_index_the_api_searches(flavour: Flavour) -> None:
    """`load_opensearch` (the pipeline's index build) loads with the settings the API searches with."""
    from shelfwise.visual.batch_embed import load_opensearch

    cluster, store, data = FakeCluster(), DictStore(), catalogue()
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    client = opensearch_client(
        "https://search-shelfwise.eu-west-1.es.amazonaws.com",
        "eu-west-1",
        flavour,
        credentials,
        connection_class=CapturingConnection,
        cluster=cluster,
    )
    live = load_opensearch(client, flavour.name, "visual-products", data, store)

    served = OpenSearchIndex(client, OpenSearchSettings("visual-products", DIM, flavour=flavour), pointer_store=store)
    assert all_violations(cluster, served.settings) == []
    assert served.live_index() == live
    (hit,) = served.search(data.vectors[5], 1)
    assert hit.sku == "SKU00005"
    with pytest.raises(ValueError, match="backend must be one of"):
        load_opensearch(client, "embedded", "visual-products", data, store)


def test_a_load_whose_count_falls_short_raises_naming_both_numbers_and_leaves_the_old_index_serving() -> None:
    cluster, data = FakeCluster(), catalogue()
    index = index_for(cluster, MANAGED)
    first = index.load(data)
    cluster.lose = 1

    with pytest.raises(IndexLoadError, match=r"holds 59 documents .* but 60 embeddings were written"):
        index.load(catalogue(seed=1))

    assert cluster.aliases == {"products": first}
    assert sorted(cluster.indices) == [first]  # the half-loaded version deleted
    assert sum(r.path == "/_aliases" for r in cluster.requests) == 1  # only the first load's
    assert [h.sku for h in index.search(data.vectors[5], 1)] == ["SKU00005"]


def test_unknown_skus_raise_a_typed_error() -> None:
    cluster = FakeCluster()
    index = index_for(cluster, MANAGED)
    index.load(catalogue())
    with pytest.raises(UnknownSkuError, match="SKU99999"):
        index.neighbours("SKU99999", 3)


def _mapping_request(settings: OpenSearchSettings) -> Request:
    cluster = FakeCluster()
    index_for(cluster, settings.flavour).load(catalogue())
    return next(r for r in cluster.requests if r.method == "PUT" and r.path.count("/") == 1)


def _search_request() -> Request:
    cluster = FakeCluster()
    index = index_for(cluster, MANAGED)
    index.load(catalogue())
    cluster.requests.clear()
    index.search(np.ones(DIM), 3, Filters(category="mugs", price_max=50.0))
    return cluster.requests[-1]


def _mutated(request: Request, change: Any) -> Request:
    body = request.json()
    change(body)
    return Request(request.method, request.path, request.params, json.dumps(body).encode(), request.headers)


def _vector(body: dict[str, Any]) -> dict[str, Any]:
    return body["mappings"]["properties"][VECTOR_FIELD]


def _knn(body: dict[str, Any]) -> dict[str, Any]:
    return body["query"]["knn"][VECTOR_FIELD]


MAPPING_FAULTS = {
    "engine lost": lambda b: _vector(b)["method"].pop("engine"),
    "engine misspelt": lambda b: _vector(b)["method"].update(engine="fais"),
    "space type changed": lambda b: _vector(b)["method"].update(space_type="l2"),
    "m sent as a string": lambda b: _vector(b)["method"]["parameters"].update(m="8"),
    "knn setting lost": lambda b: b["settings"]["index"].pop("knn"),
    "dimension as text": lambda b: _vector(b).update(dimension="8"),
}
QUERY_FAULTS = {
    "k sent as a string": lambda b: _knn(b).update(k="3"),
    "vector of strings": lambda b: _knn(b).update(vector=[str(x) for x in _knn(b)["vector"]]),
    "vector too short": lambda b: _knn(b).update(vector=_knn(b)["vector"][:-1]),
    "Elasticsearch's top-level knn": lambda b: b.update(knn=b.pop("query")["knn"]),
    "filter as a match query": lambda b: _knn(b).update(filter={"match": {"category": "mugs"}}),
    "ef_search lost": lambda b: _knn(b).pop("method_parameters"),
}


@pytest.mark.parametrize("fault", MAPPING_FAULTS)
def test_the_checks_catch_a_broken_mapping(fault: str) -> None:
    settings = OpenSearchSettings("products", DIM, PARAMS, MANAGED)
    request = _mapping_request(settings)
    assert spec_violations(request, MANAGED) + knn_violations(request, settings) == []

    broken = _mutated(request, MAPPING_FAULTS[fault])

    assert spec_violations(broken, MANAGED) + knn_violations(broken, settings) != []


@pytest.mark.parametrize("fault", QUERY_FAULTS)
def test_the_checks_catch_a_broken_knn_query(fault: str) -> None:
    settings = OpenSearchSettings("products", DIM, PARAMS, MANAGED)
    request = _search_request()
    assert spec_violations(request, MANAGED) + knn_violations(request, settings) == []

    broken = _mutated(request, QUERY_FAULTS[fault])

    assert spec_violations(broken, MANAGED) + knn_violations(broken, settings) != []


def test_the_spec_itself_refuses_k_as_a_string_and_an_unknown_operation() -> None:
    """The spec half of the checks works on its own: a schema type error and a path no operation has."""
    request = _search_request()
    broken = _mutated(request, QUERY_FAULTS["k sent as a string"])
    assert any("'3' is not of type 'integer'" in p for p in spec_violations(broken, MANAGED))
    nowhere = Request("POST", "/products/_knn_search", {}, None, {})
    assert spec_violations(nowhere, MANAGED) == ["no operation POST /products/_knn_search in the spec"]


def test_both_implementations_answer_the_same_hits_with_the_same_scores() -> None:
    """The OpenSearch side is answered by exact search in the plugin's score convention; the faiss side with an
    ef_search above the catalogue size is exact too: the mapping to Hit and the scores must agree."""
    data = catalogue(n=80)
    cluster = FakeCluster()
    opensearch = index_for(cluster, MANAGED)
    opensearch.load(data)
    embedded = FaissIndex.build(data, HnswParams(m=8, ef_construction=80, ef_search=200))
    query = np.random.default_rng(5).standard_normal(DIM)
    for filters in (Filters(), Filters(category="lamps"), Filters(price_min=20.0, in_stock=True)):
        expected = embedded.search(query, 6, filters)
        got = opensearch.search(query, 6, filters)
        assert [h.sku for h in got] == [h.sku for h in expected]
        assert [h.attributes for h in got] == [h.attributes for h in expected]
        assert [h.image_key for h in got] == [h.image_key for h in expected]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in expected], rtol=1e-5)
    same = opensearch.neighbours("SKU00002", 5)
    assert [h.sku for h in same] == [h.sku for h in embedded.neighbours("SKU00002", 5)]
