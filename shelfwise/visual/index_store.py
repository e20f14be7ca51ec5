"""Where the vector index's versions live in the lake, and the pointer that names the current one.

    models/visual-index/<version>/...         one built version (the embedded index's files)
    models/visual-index/CURRENT.json          {"version": ..., "previous": ...} of the embedded index
    models/visual-index/opensearch/CURRENT.json  the same for OpenSearch flavours without aliases (Serverless)

A pointer is written after everything it names, so a reader that follows it never sees a half-written version; the
version it replaced stays for rollback.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Protocol

INDEX_MODEL = "visual-index"
EMBEDDED_POINTER = f"models/{INDEX_MODEL}/CURRENT.json"
OPENSEARCH_POINTER = f"models/{INDEX_MODEL}/opensearch/CURRENT.json"


class IndexNotFoundError(LookupError):
    """No index version has been written where one was looked for; the message names the key."""


class BlobStore(Protocol):
    """What the index needs of the lake (`shelfwise.lake.Lake` is one): keyed bytes in one bucket."""

    def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...


@dataclass(frozen=True)
class Pointer:
    version: str
    previous: str | None = None


def version_prefix(version: str) -> str:
    return f"models/{INDEX_MODEL}/{version}/"


def new_version(now: dt.datetime | None = None) -> str:
    """A version name that sorts by build time (UTC, microseconds) and is a valid OpenSearch index-name suffix."""
    return f"{(now or dt.datetime.now(dt.UTC)):%Y%m%d%H%M%S%f}"


def read_blob(store: BlobStore, key: str) -> bytes:
    """The object at `key`; IndexNotFoundError naming it when there is none."""
    from botocore.exceptions import ClientError

    try:
        return store.get_bytes(key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise IndexNotFoundError(f"no object at {key}: no vector index has been stored there") from error
        raise


def read_pointer(store: BlobStore, key: str) -> Pointer:
    fields = json.loads(read_blob(store, key))
    return Pointer(fields["version"], fields.get("previous"))


def write_pointer(store: BlobStore, key: str, pointer: Pointer) -> None:
    body = json.dumps({"version": pointer.version, "previous": pointer.previous}).encode()
    store.put_bytes(key, body, "application/json")
