"""The online store: monotonic conditional puts with retries on throttling, and the reader, against fakes and moto."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from shelfwise.local_aws import LocalAws
from shelfwise.online_store import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    MAX_ATTEMPTS,
    OnlineItem,
    ThrottledError,
    expires_at,
    get_item,
    write_items,
)

TABLE = "test-table"


def item(entity_id: str, as_of: str = "2024-01-31", **attributes: Any) -> OnlineItem:
    values = attributes or {"features": {"recency_days": 3.0, "monetary": 10.5}, "probability": 0.25}
    return OnlineItem("customer", entity_id, "churn", as_of, "churn/9", values)


def items(n: int, as_of: str = "2024-01-31") -> list[OnlineItem]:
    return [item(f"C{i:05d}", as_of) for i in range(n)]


def error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "PutItem")


class FakeDynamo:
    """PutItem with the condition the writer sends, evaluated on a dict; throttles the first `throttled` calls."""

    def __init__(self, throttled: int = 0) -> None:
        self.throttled = throttled
        self.calls: list[dict[str, Any]] = []
        self.table: dict[tuple[str, str], dict[str, Any]] = {}

    def put_item(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        if len(self.calls) <= self.throttled:
            raise error("ProvisionedThroughputExceededException")
        assert request["ConditionExpression"] == "attribute_not_exists(pk) OR as_of <= :as_of"
        new = request["Item"]
        key = (new["pk"]["S"], new["sk"]["S"])
        stored = self.table.get(key)
        if stored is not None and stored["as_of"]["S"] > request["ExpressionAttributeValues"][":as_of"]["S"]:
            raise error("ConditionalCheckFailedException")
        self.table[key] = new
        return {}


def test_throttled_puts_are_retried_with_growing_jittered_backoff() -> None:
    client, sleeps = FakeDynamo(throttled=3), []
    report = write_items(items(1), TABLE, client, sleep=sleeps.append, writers=1)
    assert (report.written, report.retries) == (1, 3)
    assert len(client.calls) == 4
    for attempt, pause in enumerate(sleeps, start=1):
        assert 0 <= pause <= min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)


def test_writes_give_up_after_the_bound_naming_how_many_failed() -> None:
    client = FakeDynamo(throttled=10**6)
    with pytest.raises(ThrottledError, match=r"3 of 3 items were not written") as raised:
        write_items(items(3), TABLE, client, sleep=lambda _: None)
    assert raised.value.failed == 3
    assert len(client.calls) == 3 * MAX_ATTEMPTS


def test_other_errors_are_not_retried_or_swallowed() -> None:
    class Broken(FakeDynamo):
        def put_item(self, **request: Any) -> dict[str, Any]:
            raise error("AccessDeniedException")

    with pytest.raises(ClientError, match="AccessDeniedException"):
        write_items(items(2), TABLE, Broken())


def test_an_older_run_cannot_overwrite_a_newer_record() -> None:
    client = FakeDynamo()
    assert write_items([item("C1", "2024-03-01", probability=0.9)], TABLE, client).written == 1
    older = write_items([item("C1", "2024-02-01", probability=0.1), item("C2", "2024-02-01")], TABLE, client)
    assert (older.written, older.skipped_older) == (1, 1)
    assert client.table[("customer#C1", "churn")]["probability"] == {"N": "0.9"}
    again = write_items([item("C1", "2024-03-01", probability=0.8)], TABLE, client)  # a rerun of the same day
    assert (again.written, again.skipped_older) == (1, 0)
    assert client.table[("customer#C1", "churn")]["probability"] == {"N": "0.8"}


def test_items_carry_key_as_of_version_and_attributes() -> None:
    client = FakeDynamo()
    write_items([item("C7", "2024-02-01", features=None, probability=None)], TABLE, client)
    (stored,) = client.table.values()
    assert stored["pk"] == {"S": "customer#C7"}
    assert stored["sk"] == {"S": "churn"}
    assert stored["as_of"] == {"S": "2024-02-01"}
    assert stored["feature_set_version"] == {"S": "churn/9"}
    assert stored["features"] == {"NULL": True}


def test_bad_items_are_rejected_with_a_reason_and_the_rest_written() -> None:
    client = FakeDynamo()
    bad = [
        item("C1", features={"recency_days": math.nan}),
        item("C3", "not a date"),
        item(""),
        item("C4", as_of="2024-01-01", expires_at=3),
    ]
    report = write_items([*bad, *items(3)], TABLE, client)
    assert report.written == 3
    reasons = dict(report.rejected)
    assert set(reasons) == {"C1", "C3", "", "C4"}
    assert "features.recency_days" in reasons["C1"]
    assert "customer id" in reasons[""]
    assert "may not be named expires_at" in reasons["C4"]


def test_ttl_counts_from_the_snapshot_or_from_now_for_old_snapshots() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert expires_at(date(2025, 7, 1), now, 10) == int(datetime(2025, 7, 11, tzinfo=UTC).timestamp())
    assert expires_at(date(2011, 12, 9), now, 10) == int((now + timedelta(days=10)).timestamp())


def test_write_and_read_back_through_dynamodb(aws: LocalAws) -> None:
    features = {"recency_days": 12.0, "monetary": 0.1, "discount_share": 0.333333}
    report = write_items(
        [
            item("R1", "2024-03-01", features=features, probability=0.42, model_version="v7"),
            item("R2", "2024-03-01", features=None, probability=None, model_version=None),
        ],
        ttl_days=5,
    )
    assert report.written == 2
    scored = get_item("customer", "R1", "churn")
    assert scored is not None
    assert scored.attributes == {"features": features, "probability": 0.42, "model_version": "v7"}
    assert (scored.as_of, scored.feature_set_version) == ("2024-03-01", "churn/9")
    assert scored.expires_at > datetime.now(UTC).timestamp()
    cold = get_item("customer", "R2", "churn")
    assert cold is not None
    assert cold.attributes["features"] is None
    assert get_item("customer", "nobody", "churn") is None


def test_dynamodb_refuses_an_older_as_of_through_the_condition(aws: LocalAws) -> None:
    assert write_items([item("M1", "2024-05-01", probability=0.7)]).written == 1
    older = write_items([item("M1", "2024-04-01", probability=0.2)])
    assert (older.written, older.skipped_older) == (0, 1)
    stored = get_item("customer", "M1", "churn")
    assert stored is not None
    assert (stored.as_of, stored.attributes["probability"]) == ("2024-05-01", 0.7)


def test_expired_items_read_as_absent(aws: LocalAws) -> None:
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    write_items([item("OLD", "2001-01-01")], now=long_ago, ttl_days=1)
    assert get_item("customer", "OLD", "churn") is None
