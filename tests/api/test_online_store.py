"""The online store: batched writes with retried unprocessed items, and the reader, against a fake and moto."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shelfwise.local_aws import LocalAws
from shelfwise.online_store import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    MAX_ATTEMPTS,
    ChurnRecord,
    UnprocessedItemsError,
    expires_at,
    get_customer,
    write_churn_records,
)

TABLE = "test-table"


class FlakyDynamo:
    """Answers the first `failures` BatchWriteItem calls with their last two items unprocessed."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[list[dict[str, Any]]] = []

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803 (boto3 name)
        items = RequestItems[TABLE]
        self.requests.append(items)
        if len(self.requests) <= self.failures:
            return {"UnprocessedItems": {TABLE: items[-2:]}}
        return {"UnprocessedItems": {}}


def records(n: int, prefix: str = "C") -> list[ChurnRecord]:
    return [
        ChurnRecord(f"{prefix}{i:05d}", {"recency_days": float(i), "monetary": 10.5 + i}, date(2024, 1, 31), 0.25, "v1")
        for i in range(n)
    ]


def test_unprocessed_items_are_retried_with_growing_jittered_backoff() -> None:
    client, sleeps = FlakyDynamo(failures=3), []
    report = write_churn_records(records(10), TABLE, client, sleep=sleeps.append, rng=random.Random(0))

    assert report.written == 10
    assert report.retries == 3
    assert [len(r) for r in client.requests] == [10, 2, 2, 2]
    assert client.requests[1] == client.requests[0][-2:]  # only the unprocessed items go again
    assert len(sleeps) == 3
    for attempt, pause in enumerate(sleeps, start=1):
        assert 0 <= pause <= min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)


def test_write_gives_up_after_the_bound_naming_how_many_failed() -> None:
    client, sleeps = FlakyDynamo(failures=10**6), []
    with pytest.raises(UnprocessedItemsError, match=r"37 of 60 churn records were not written") as raised:
        write_churn_records(records(60), TABLE, client, sleep=sleeps.append, rng=random.Random(0))
    # 2 items of the first batch stayed unprocessed and the 35 of the later batches were never sent.
    assert raised.value.failed == 37
    assert len(client.requests) == MAX_ATTEMPTS
    assert len(sleeps) == MAX_ATTEMPTS - 1


def test_records_go_in_batches_of_25_and_the_last_record_of_a_customer_wins() -> None:
    client = FlakyDynamo(failures=0)
    duplicated = [*records(60), ChurnRecord("C00000", None, date(2024, 2, 1))]
    report = write_churn_records(duplicated, TABLE, client)
    assert [len(r) for r in client.requests] == [25, 25, 10]
    assert (report.written, report.batches) == (60, 3)
    first = client.requests[0][0]["PutRequest"]["Item"]
    assert first["pk"] == {"S": "customer#C00000"}
    assert first["features"] == {"NULL": True}
    assert first["as_of"] == {"S": "2024-02-01"}


def test_bad_records_are_rejected_with_a_reason_and_the_rest_written() -> None:
    client = FlakyDynamo(failures=0)
    bad = [
        ChurnRecord("C1", {"recency_days": math.nan}, date(2024, 1, 1), 0.1, "v1"),
        ChurnRecord("C2", {"recency_days": 1.0}, date(2024, 1, 1), 1.5, "v1"),
        ChurnRecord("C3", {"recency_days": 1.0}, "not a date", 0.1, "v1"),
        ChurnRecord("", {"recency_days": 1.0}, date(2024, 1, 1), 0.1, "v1"),
    ]
    report = write_churn_records([*bad, *records(3)], TABLE, client)
    assert report.written == 3
    reasons = dict(report.rejected)
    assert set(reasons) == {"C1", "C2", "C3", ""}
    assert "features.recency_days" in reasons["C1"]
    assert "probability" in reasons["C2"]
    assert "customer_id" in reasons[""]


def test_ttl_counts_from_the_snapshot_or_from_now_for_old_snapshots() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert expires_at(date(2025, 7, 1), now, 10) == int(datetime(2025, 7, 11, tzinfo=UTC).timestamp())
    assert expires_at(date(2011, 12, 9), now, 10) == int((now + timedelta(days=10)).timestamp())


def test_write_and_read_back_through_dynamodb(aws: LocalAws) -> None:
    features = {"recency_days": 12.0, "monetary": 0.1, "discount_share": 0.333333}
    report = write_churn_records(
        [
            ChurnRecord("R1", features, date(2024, 3, 1), 0.42, "v7"),
            ChurnRecord("R2", None, date(2024, 3, 1), 0.3, "v7"),
            ChurnRecord("R3", None, "2024-03-01"),
        ],
        ttl_days=5,
    )
    assert report.written == 3

    scored = get_customer("R1")
    assert scored is not None
    assert scored.features == features
    assert (scored.as_of, scored.probability, scored.model_version) == ("2024-03-01", 0.42, "v7")
    assert scored.cold_start is False
    assert scored.expires_at > datetime.now(UTC).timestamp()
    cold = get_customer("R2")
    assert cold is not None
    assert cold.cold_start is True
    unscored = get_customer("R3")
    assert unscored is not None
    assert (unscored.probability, unscored.model_version) == (None, None)
    assert get_customer("nobody") is None


def test_expired_items_read_as_absent(aws: LocalAws) -> None:
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    write_churn_records([ChurnRecord("OLD", {"x": 1.0}, date(2001, 1, 1), 0.5, "v0")], now=long_ago, ttl_days=1)
    assert get_customer("OLD") is None
