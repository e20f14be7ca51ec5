"""The online store: each customer's latest churn features and score in DynamoDB, for key lookups by the API.

Item (contract in docs/contracts.md): `pk` = `customer#<id>`, `sk` = `churn`, `features` (map, or NULL for a
registered customer without purchase history: a cold start), `as_of`, `probability`, `model_version`,
`expires_at` (epoch seconds, the table's TTL attribute).

The writer takes plain records (no pandas) and the reader is import-light, so the Lambda can use it.
"""

from __future__ import annotations

import math
import numbers
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from shelfwise.config import settings

SORT_KEY = "churn"
BATCH_SIZE = 25  # DynamoDB's limit for one BatchWriteItem call
DEFAULT_TTL_DAYS = 35
MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


class UnprocessedItemsError(RuntimeError):
    """DynamoDB kept returning items unprocessed after every retry."""

    def __init__(self, failed: int, total: int, table: str, attempts: int) -> None:
        super().__init__(
            f"{failed} of {total} churn records were not written to {table}: "
            f"still unprocessed after {attempts} attempts (throttled?)"
        )
        self.failed = failed


@dataclass(frozen=True)
class ChurnRecord:
    """One customer's latest churn features and batch score.

    A registered customer without purchase history (a cold start) has `features=None` and may have no score.
    """

    customer_id: str
    features: Mapping[str, float] | None
    as_of: date | str
    probability: float | None = None
    model_version: str | None = None


@dataclass(frozen=True)
class OnlineRecord:
    """What the API reads back for a customer."""

    customer_id: str
    as_of: str
    probability: float | None
    model_version: str | None
    features: dict[str, float] | None
    expires_at: int

    @property
    def cold_start(self) -> bool:
        return self.features is None


@dataclass
class WriteReport:
    written: int = 0
    #: Records that could not be turned into an item, with the reason (nothing is dropped silently).
    rejected: list[tuple[str, str]] = field(default_factory=list)
    batches: int = 0
    retries: int = 0


def customer_key(customer_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"customer#{customer_id}"}, "sk": {"S": SORT_KEY}}


def expires_at(as_of: date, now: datetime, ttl_days: int) -> int:
    """TTL epoch seconds: `ttl_days` after the snapshot, counted from now if the snapshot is older.

    Counting from now for old snapshots keeps historical data sets (whose as_of lies years back) from expiring the
    moment they are written.
    """
    start = max(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC), now)
    return int((start + timedelta(days=ttl_days)).timestamp())


def to_item(record: ChurnRecord, expiry: int) -> dict[str, Any]:
    """The DynamoDB item (attribute-value form) of a record; raises ValueError naming a bad field."""
    if not record.customer_id or len(record.customer_id) > 128:
        raise ValueError(f"customer_id must be 1-128 characters, got {record.customer_id!r}")
    probability = None if record.probability is None else _decimal("probability", record.probability)
    if probability is not None and not 0 <= probability <= 1:
        raise ValueError(f"probability must be in [0, 1], got {record.probability}")
    item: dict[str, Any] = {
        "as_of": _date(record.as_of).isoformat(),
        "probability": probability,
        "model_version": record.model_version,
        "expires_at": expiry,
        "features": None
        if record.features is None
        else {name: _decimal(f"features.{name}", value) for name, value in record.features.items()},
    }
    return customer_key(record.customer_id) | {k: _SERIALIZER.serialize(v) for k, v in item.items()}


def write_churn_records(
    records: Iterable[ChurnRecord],
    table: str | None = None,
    client: Any = None,
    *,
    ttl_days: int = DEFAULT_TTL_DAYS,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> WriteReport:
    """Write records in batches of 25, retrying unprocessed items with exponential backoff and full jitter.

    A later record for the same customer replaces an earlier one. Raises `UnprocessedItemsError` when a batch still
    has unprocessed items after `MAX_ATTEMPTS` calls.
    """
    table = table or settings().online_table
    client = client or _client("dynamodb")
    now = now or datetime.now(UTC)
    rng = rng or random.Random()
    report = WriteReport()
    items: dict[str, dict[str, Any]] = {}
    for record in records:
        try:
            items[record.customer_id] = to_item(record, expires_at(_date(record.as_of), now, ttl_days))
        except ValueError as exc:
            report.rejected.append((record.customer_id, str(exc)))
    requests = [{"PutRequest": {"Item": item}} for item in items.values()]
    for start, batch in _batches(requests):
        report.retries += _write_batch(client, table, batch, sleep, rng, done=start, total=len(requests))
        report.batches += 1
        report.written += len(batch)
    return report


def get_customer(customer_id: str, table: str | None = None, client: Any = None) -> OnlineRecord | None:
    """The customer's online record, or None if there is none or it has expired (TTL deletion lags by hours)."""
    response = (client or _client("dynamodb")).get_item(
        TableName=table or settings().online_table, Key=customer_key(customer_id)
    )
    raw = response.get("Item")
    if raw is None:
        return None
    item = {k: _DESERIALIZER.deserialize(v) for k, v in raw.items()}
    expiry = int(item.get("expires_at", 0))
    if expiry and expiry < time.time():
        return None
    features = item.get("features")
    return OnlineRecord(
        customer_id=customer_id,
        as_of=str(item["as_of"]),
        probability=None if item.get("probability") is None else float(item["probability"]),
        model_version=item.get("model_version"),
        features=None if features is None else {k: float(v) for k, v in features.items()},
        expires_at=expiry,
    )


def _write_batch(
    client: Any,
    table: str,
    batch: list[dict[str, Any]],
    sleep: Callable[[float], None],
    rng: random.Random,
    done: int,
    total: int,
) -> int:
    """Write one batch; returns the number of retries it took."""
    pending = batch
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            sleep(rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))
        response = client.batch_write_item(RequestItems={table: pending})
        pending = response.get("UnprocessedItems", {}).get(table, [])
        if not pending:
            return attempt
    # Items of later batches were never attempted: they count as failed too.
    raise UnprocessedItemsError(len(pending) + total - done - len(batch), total, table, MAX_ATTEMPTS)


def _batches(requests: list[dict[str, Any]]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    for start in range(0, len(requests), BATCH_SIZE):
        yield start, requests[start : start + BATCH_SIZE]


def _decimal(name: str, value: float) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    # Through str, so 0.1 is stored as 0.1 and not as its binary expansion.
    return Decimal(str(value))


def _date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(value[:10])


def _client(service: str) -> Any:
    cfg = settings()
    return boto3.client(service, region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)  # type: ignore[call-overload]
