"""What the visual API serves, as the batch-embed step leaves it in the lake: the query model beside the index it
embedded, in one version folder under one pointer.

    models/visual-index/<version>/model.onnx       the embedding model (`shelfwise.visual.embedding.export_onnx`)
    models/visual-index/<version>/model.json       {"sha256", "image_size", "dimension"} of model.onnx
    models/visual-index/<version>/index.faiss ...  the embedded index (`shelfwise.visual.faiss_index`)
    models/visual-index/CURRENT.json               {"version", "previous"}, written last

Why beside the index and not under a pointer of its own: a query must be embedded by the model that embedded the
catalogue. With one pointer, the switch to a new model and to the vectors it made is one write, and
`faiss_index.rollback_index` rolls both back together; two pointers would leave a window (and a rollback) in which
a container pairs a model with another model's vectors, which answers confidently and wrongly. The OpenSearch
backends keep their vectors in OpenSearch and read the query model of the lake's current version: the step writes the
version folder, loads OpenSearch from the same embeddings, and a version's model never changes afterwards.

`store_search_version` is what the batch-embed step calls; `read_query_model` is what the API reads. `LakeObjects` is
the lake as a `BlobStore` with boto3 alone (`shelfwise.lake` needs pyarrow, which the Lambda bundle leaves out).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shelfwise.visual.index_store import (
    EMBEDDED_POINTER,
    INDEX_MODEL,
    BlobStore,
    IndexNotFoundError,
    new_version,
    read_blob,
    read_pointer,
    version_prefix,
)

if TYPE_CHECKING:
    from shelfwise.visual.faiss_index import FaissIndex
    from shelfwise.visual.query_embedder import QueryEmbedder

#: The lake prefix of every version and of the pointer (the CDK's `SearchIndex.lake_prefix`).
LAKE_PREFIX = f"models/{INDEX_MODEL}/"
MODEL_FILE = "model.onnx"
MODEL_META_FILE = "model.json"


class ModelIntegrityError(ValueError):
    """The stored model is not the one its metadata describes; the message names the version."""


@dataclass(frozen=True)
class QueryModel:
    """The query model of one version, loaded."""

    version: str
    embedder: QueryEmbedder


@dataclass(frozen=True)
class LakeObjects:
    """The lake bucket as a `BlobStore`, every call naming the expected owner when one is configured."""

    s3: Any
    bucket: str
    owner: dict[str, str]

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **self.owner)

    def get_bytes(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key, **self.owner)["Body"].read()
        return body


def store_search_version(store: BlobStore, index: FaissIndex, model: bytes, version: str | None = None) -> str:
    """Write the query model and the index of the catalogue it embedded as a new version, then point CURRENT.json at
    it; returns the version. Refuses a model whose embeddings do not have the index's dimension."""
    from shelfwise.visual.faiss_index import store_index
    from shelfwise.visual.query_embedder import QueryEmbedder

    embedder = QueryEmbedder.from_bytes(model)
    if embedder.dimension != index.dimension:
        raise ValueError(f"the model embeds in {embedder.dimension} dimensions, the index holds {index.dimension}")
    version = version or new_version()
    meta = {
        "sha256": hashlib.sha256(model).hexdigest(),
        "image_size": embedder.image_size,
        "dimension": index.dimension,
    }
    store.put_bytes(version_prefix(version) + MODEL_FILE, model)
    store.put_bytes(version_prefix(version) + MODEL_META_FILE, json.dumps(meta).encode(), "application/json")
    return store_index(index, store, version)  # the index's files, then the pointer


def current_version(store: BlobStore) -> str:
    """The version CURRENT.json names; IndexNotFoundError when nothing was stored."""
    return read_pointer(store, EMBEDDED_POINTER).version


def read_query_model(store: BlobStore, version: str) -> QueryModel:
    """The query model of `version`, its bytes checked against the sha256 recorded beside them."""
    from shelfwise.visual.query_embedder import QueryEmbedder

    prefix = version_prefix(version)
    try:
        meta = json.loads(read_blob(store, prefix + MODEL_META_FILE))
    except IndexNotFoundError:
        raise IndexNotFoundError(f"version {version} holds no query model ({MODEL_META_FILE} missing)") from None
    model = read_blob(store, prefix + MODEL_FILE)
    digest = hashlib.sha256(model).hexdigest()
    if digest != meta["sha256"]:
        raise ModelIntegrityError(f"the model of version {version} has sha256 {digest}, its metadata {meta['sha256']}")
    return QueryModel(version, QueryEmbedder.from_bytes(model))
