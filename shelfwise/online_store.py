"""The online store: each entity's latest features and scores in DynamoDB, for key lookups by the API.

One item per entity and feature set: `pk` = `<entity>#<id>` (`customer#C000123`), `sk` = the feature set
(`churn`), then `as_of` (the cutoff the values were computed at, `YYYY-MM-DD`), `feature_set_version`, the
domain's attributes, and `expires_at` (epoch seconds, the table's TTL attribute).

Writes are monotonic: an item is never replaced by one with an older `as_of`, so a redrive of an old run cannot
roll an entity back; the older write is counted as `skipped_older`, not an error. Conditional puts alone would
guarantee it, but they cannot be batched: one `PutItem` per entity does not fit a million customers into a
Lambda's 15 minutes. So publishers of a feature set take turns, and the one in turn batches what it may:

- a lease item (`pk` = `_publication`, `sk` = the feature set) names the writer in turn until `lease_until`, and
  records `newest_as_of`, the latest `as_of` any writer has written: no item is newer;
- the writer in turn raises `newest_as_of` to its own latest `as_of` before it writes, then writes its items at
  least as new as the old `newest_as_of` with `BatchWriteItem` (they cannot be older than what is stored), and
  its older items (a redrive) with conditional puts, which need no turn;
- the lease outlives any request (renewed well before it runs out, checked before every batch), so no two writers
  ever batch at once; a writer that finds the turn taken waits for it, then gives up with `PublicationBusyError`.

Retries back off with jitter on throttling. Pure boto3 and the standard library: the Lambdas import it without
pandas or pyarrow. Nothing here knows churn.
"""

from __future__ import annotations

import math
import numbers
import os
import random
import socket
import threading
import time
import uuid
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
BATCH_ITEMS = 25  # BatchWriteItem's maximum
#: The lease item's partition key (entities' keys are `<entity>#<id>`, never starting with "_").
PUBLICATION_PK = "_publication"
#: A turn lasts this long unless renewed; renewed when less than LEASE_RENEW_S is left, which is more than one
#: request can take with botocore's own retries, so a turn never runs out under a live writer.
LEASE_S = 900.0
LEASE_RENEW_S = 600.0
#: How long a writer waits for another's turn to end before PublicationBusyError (whose caller retries later: a
#: crashed writer's turn ends when its lease runs out).
LEASE_WAIT_S = 120.0
LEASE_POLL_S = 5.0
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
    clock: Callable[[], float] = time.time,
) -> WriteReport:
    """Write each item unless the table holds a later `as_of` for its entity; see the module doc."""
    table = table or settings().online_table
    client = client or _client("dynamodb")
    now = now or datetime.now(UTC)
    report = WriteReport()
    by_feature_set: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        try:
            request = to_item(item, expires_at(as_date(item.as_of), now, ttl_days))
        except ValueError as exc:
            report.rejected.append((item.entity_id, str(exc)))
            continue
        by_feature_set.setdefault(item.feature_set, []).append(request)
    throttled = 0
    for feature_set, requests in by_feature_set.items():
        with Lease(client, table, feature_set, sleep=sleep, clock=clock) as lease:
            newest = lease.newest_as_of
            lease.record_newest(max(r["as_of"]["S"] for r in requests))
            batched = [r for r in requests if newest is None or r["as_of"]["S"] >= newest]
            throttled += _batch_write(client, table, batched, lease, report, writers=writers, sleep=sleep)
        older = [r for r in requests if newest is not None and r["as_of"]["S"] < newest]
        throttled += _conditional_puts(client, table, older, report, writers=writers, sleep=sleep)
    if throttled:
        total = sum(len(requests) for requests in by_feature_set.values())
        raise ThrottledError(throttled, total, table)
    return report


class PublicationBusyError(RuntimeError):
    """Another writer holds the feature set's turn and did not finish in time; rerunning later is safe."""


class LeaseLostError(RuntimeError):
    """The turn ran out before the writer renewed it; nothing more was batched, and rerunning is safe."""


class Lease:
    """A writer's turn at batching one feature set (see the module doc); a context manager that gives it back."""

    def __init__(
        self, client: Any, table: str, feature_set: str, *, sleep: Callable[[float], None], clock: Callable[[], float]
    ) -> None:
        self.client, self.table, self.sleep, self.clock = client, table, sleep, clock
        self.key = {"pk": {"S": PUBLICATION_PK}, "sk": {"S": feature_set}}
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self.until = 0.0
        self.newest_as_of: str | None = None
        self.renewing = threading.Lock()

    def __enter__(self) -> Lease:
        deadline = self.clock() + LEASE_WAIT_S
        while True:
            try:
                attributes = self._update(
                    "SET #holder = :me, #until = :until",
                    "attribute_not_exists(#until) OR #until < :now OR #holder = :me",
                )
                break
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
                if self.clock() >= deadline:
                    raise PublicationBusyError(
                        f"another writer of {self.key['sk']['S']!r} in {self.table} kept its turn for more than "
                        f"{LEASE_WAIT_S:.0f} s; run again once it has finished"
                    ) from None
                self.sleep(LEASE_POLL_S)
        newest = attributes.get("newest_as_of", {}).get("S")
        self.newest_as_of = str(newest) if newest else None
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self.key,
                UpdateExpression="REMOVE #holder, #until",
                ConditionExpression="#holder = :me",
                ExpressionAttributeNames={"#holder": "holder", "#until": "lease_until"},
                ExpressionAttributeValues={":me": {"S": self.holder}},
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":  # not ours any more: nothing to give back
                raise

    def record_newest(self, as_of: str) -> None:
        """Raise `newest_as_of` to `as_of` before writing anything that new."""
        if self.newest_as_of is None or as_of > self.newest_as_of:
            self._update("SET #newest = :as_of, #until = :until", "#holder = :me AND #until > :now", as_of=as_of)

    def keep(self) -> None:
        """Renew the turn unless more than LEASE_RENEW_S of it is left; raise LeaseLostError if it ran out."""
        with self.renewing:  # the writer threads share the turn
            if self.until - self.clock() > LEASE_RENEW_S:
                return
            self._update("SET #until = :until", "#holder = :me AND #until > :now")

    def _update(self, expression: str, condition: str, as_of: str | None = None) -> dict[str, Any]:
        now = self.clock()
        until = now + LEASE_S
        names = {"#holder": "holder", "#until": "lease_until"}
        values = {":me": {"S": self.holder}, ":now": {"N": f"{now:.3f}"}}
        if ":until" in expression:
            values[":until"] = {"N": f"{until:.3f}"}
        if as_of is not None:
            names["#newest"] = "newest_as_of"
            values[":as_of"] = {"S": as_of}
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=self.key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException" and self.until:
                raise LeaseLostError(f"the turn at {self.key['sk']['S']!r} in {self.table} ran out") from None
            raise
        self.until = until
        return dict(response.get("Attributes", {}))


def _batch_write(
    client: Any,
    table: str,
    requests: list[dict[str, Any]],
    lease: Lease,
    report: WriteReport,
    *,
    writers: int,
    sleep: Callable[[float], None],
) -> int:
    """BatchWriteItem in groups of 25 on a few threads, within the turn; returns how many were not written."""
    # One request may not name a key twice; a repeated entity keeps its last item, as puts in order would.
    latest = {(r["pk"]["S"], r["sk"]["S"]): r for r in requests}
    report.written += len(requests) - len(latest)
    unique = list(latest.values())
    batches = [unique[i : i + BATCH_ITEMS] for i in range(0, len(unique), BATCH_ITEMS)]

    def write(batch: list[dict[str, Any]]) -> tuple[int, int]:
        rng = random.Random()
        pending = [{"PutRequest": {"Item": r}} for r in batch]
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                sleep(rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))
            lease.keep()  # every batch starts with most of the turn still ahead of it
            try:
                response = client.batch_write_item(RequestItems={table: pending})
            except ClientError as exc:
                if _code(exc) not in _THROTTLED:
                    raise
                continue
            pending = response.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                return len(batch), attempt
        return len(batch) - len(pending), MAX_ATTEMPTS

    unwritten = 0
    with ThreadPoolExecutor(max_workers=max(1, writers)) as pool:
        for (written, retries), batch in zip(pool.map(write, batches), batches, strict=True):
            report.written += written
            report.retries += retries
            unwritten += len(batch) - written
    return unwritten


def _conditional_puts(
    client: Any,
    table: str,
    requests: list[dict[str, Any]],
    report: WriteReport,
    *,
    writers: int,
    sleep: Callable[[float], None],
) -> int:
    """One conditional put per item, on a few threads; returns the unwritten."""

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
                code = _code(exc)
                if code == "ConditionalCheckFailedException":
                    return "skipped_older", attempt
                if code not in _THROTTLED:
                    raise
        return "throttled", MAX_ATTEMPTS

    unwritten = 0
    with ThreadPoolExecutor(max_workers=max(1, writers)) as pool:
        for outcome, retries in pool.map(put, requests):
            report.retries += retries
            if outcome == "written":
                report.written += 1
            elif outcome == "skipped_older":
                report.skipped_older += 1
            else:
                unwritten += 1
    return unwritten


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


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
    """Numbers as Decimals (through str, so 0.1 stays 0.1), maps and lists recursively (a forecast is lists of
    numbers); strings, booleans and None as they are."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _storable(f"{name}.{k}", v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if not isinstance(value, numbers.Real | Decimal) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return Decimal(str(value))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _client(service: str) -> Any:
    cfg = settings()
    return boto3.client(service, region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)  # type: ignore[call-overload]
