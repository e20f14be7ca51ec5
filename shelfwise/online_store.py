"""The online store: each entity's latest features and scores in DynamoDB, for key lookups by the API.

One item per entity and feature set: `pk` = `<entity>#<id>` (`customer#C000123`), `sk` = the feature set
(`churn`), then `as_of` (the cutoff the values were computed at, `YYYY-MM-DD`), `feature_set_version`, the
domain's attributes, and `expires_at` (epoch seconds, the table's TTL attribute).

Writes are monotonic: an item is replaced only by one whose `as_of` is the same or later (a conditional put), so
a redrive of an old run can never roll an entity back; the older write is counted as `skipped_older`, not an
error. Puts run on a few threads (conditional writes cannot be batched) with backoff on throttling.

Pure boto3 and the standard library: the Lambdas import it without pandas or pyarrow. Nothing here knows churn.
"""

from __future__ import annotations

import math
import numbers
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from shelfwise.config import settings

DEFAULT_TTL_DAYS = 35
MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0
WRITERS = 8
#: Attributes every item has besides the key; a domain's attributes must not reuse these names.
RESERVED = frozenset({"pk", "sk", "as_of", "feature_set_version", "expires_at"})
_THROTTLED = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
_NEWER_OR_SAME = "attribute_not_exists(pk) OR as_of <= :as_of"

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


class ThrottledError(RuntimeError):
    """DynamoDB kept throttling a write after every retry; rerunning the publish is safe (writes are idempotent)."""

    def __init__(self, failed: int, total: int, table: str) -> None:
        super().__init__(
            f"{failed} of {total} items were not written to {table}: still throttled after {MAX_ATTEMPTS} attempts"
        )
        self.failed = failed


@dataclass(frozen=True)
class OnlineItem:
    """What a publisher writes for one entity: values computed at `as_of` with a feature-set version."""

    entity: str
    entity_id: str
    feature_set: str
    as_of: date | str
    feature_set_version: str
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class StoredItem:
    """What a reader gets back."""

    entity_id: str
    as_of: str
    feature_set_version: str
    attributes: dict[str, Any]
    expires_at: int


@dataclass
class WriteReport:
    written: int = 0
    #: Items not written because the table already holds a later `as_of` for the entity.
    skipped_older: int = 0
    #: Items that could not be turned into a DynamoDB item, with the reason (nothing is dropped silently).
    rejected: list[tuple[str, str]] = field(default_factory=list)
    retries: int = 0


def item_key(entity: str, entity_id: str, feature_set: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"{entity}#{entity_id}"}, "sk": {"S": feature_set}}


def expires_at(as_of: date, now: datetime, ttl_days: int) -> int:
    """TTL epoch seconds: `ttl_days` after the snapshot, counted from now if the snapshot is older.

    Counting from now for old snapshots keeps historical data sets (whose as_of lies years back) from expiring the
    moment they are written.
    """
    start = max(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC), now)
    return int((start + timedelta(days=ttl_days)).timestamp())


def to_item(item: OnlineItem, expiry: int) -> dict[str, Any]:
    """The DynamoDB item (attribute-value form); raises ValueError naming a bad field."""
    if not item.entity_id or len(item.entity_id) > 128:
        raise ValueError(f"{item.entity} id must be 1-128 characters, got {item.entity_id!r}")
    clashes = sorted(RESERVED & set(item.attributes))
    if clashes:
        raise ValueError(f"attributes may not be named {', '.join(clashes)}")
    values: dict[str, Any] = {
        "as_of": as_date(item.as_of).isoformat(),
        "feature_set_version": item.feature_set_version,
        "expires_at": expiry,
        **{name: _storable(name, value) for name, value in item.attributes.items()},
    }
    return item_key(item.entity, item.entity_id, item.feature_set) | {
        k: _SERIALIZER.serialize(v) for k, v in values.items()
    }


def write_items(
    items: Iterable[OnlineItem],
    table: str | None = None,
    client: Any = None,
    *,
    ttl_days: int = DEFAULT_TTL_DAYS,
    now: datetime | None = None,
    writers: int = WRITERS,
    sleep: Callable[[float], None] = time.sleep,
) -> WriteReport:
    """Put each item unless the table holds a later `as_of` for its entity; see the module doc."""
    table = table or settings().online_table
    client = client or _client("dynamodb")
    now = now or datetime.now(UTC)
    report = WriteReport()
    lock = threading.Lock()
    requests = []
    for item in items:
        try:
            requests.append(to_item(item, expires_at(as_date(item.as_of), now, ttl_days)))
        except ValueError as exc:
            report.rejected.append((item.entity_id, str(exc)))

    def put(request: dict[str, Any]) -> tuple[str, int]:
        rng = random.Random()
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                sleep(rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))
            try:
                client.put_item(
                    TableName=table,
                    Item=request,
                    ConditionExpression=_NEWER_OR_SAME,
                    ExpressionAttributeValues={":as_of": request["as_of"]},
                )
                return "written", attempt
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ConditionalCheckFailedException":
                    return "skipped_older", attempt
                if code not in _THROTTLED:
                    raise
        return "throttled", MAX_ATTEMPTS

    throttled = 0
    with ThreadPoolExecutor(max_workers=max(1, writers)) as pool:
        for outcome, retries in pool.map(put, requests):
            with lock:
                report.retries += retries
                if outcome == "written":
                    report.written += 1
                elif outcome == "skipped_older":
                    report.skipped_older += 1
                else:
                    throttled += 1
    if throttled:
        raise ThrottledError(throttled, len(requests), table)
    return report


def get_item(
    entity: str, entity_id: str, feature_set: str, table: str | None = None, client: Any = None
) -> StoredItem | None:
    """The entity's item, or None if there is none or it has expired (TTL deletion lags by hours)."""
    response = (client or _client("dynamodb")).get_item(
        TableName=table or settings().online_table, Key=item_key(entity, entity_id, feature_set)
    )
    raw = response.get("Item")
    if raw is None:
        return None
    values = {k: _DESERIALIZER.deserialize(v) for k, v in raw.items()}
    expiry = int(values.pop("expires_at", 0))
    if expiry and expiry < time.time():
        return None
    for key in ("pk", "sk"):
        values.pop(key, None)
    return StoredItem(
        entity_id=entity_id,
        as_of=str(values.pop("as_of")),
        feature_set_version=str(values.pop("feature_set_version", "")),
        attributes={name: _plain(value) for name, value in values.items()},
        expires_at=expiry,
    )


def as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(value[:10])


def _storable(name: str, value: Any) -> Any:
    """Numbers as Decimals (through str, so 0.1 stays 0.1), maps recursively; strings and None as they are."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _storable(f"{name}.{k}", v) for k, v in value.items()}
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return Decimal(str(value))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _client(service: str) -> Any:
    cfg = settings()
    return boto3.client(service, region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)  # type: ignore[call-overload]
