"""The online store: batched writes in turn, conditional puts for older runs, retries on throttling, and the reader."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from shelfwise.config import settings
from shelfwise.local_aws import LocalAws
from shelfwise.online_store import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    LEASE_S,
    MAX_ATTEMPTS,
    PUBLICATION_PK,
    Lease,
    LeaseLostError,
    OnlineItem,
    PublicationBusyError,
    ThrottledError,
    expires_at,
    get_item,
    write_items,
)

TABLE = "test-table"


def item(entity_id: str, as_of: str = "2024-01-31", **attributes: Any) -> OnlineItem:
    values = attributes or {"features": {"recency_days": 3.0, "monetary": 10.5}, "probability": 0.25}
    return OnlineItem("customer", entity_id, "churn", as_of, "churn/9", values)


def items(n: int, as_of: str = "2024-01-31", prefix: str = "C") -> list[OnlineItem]:
    return [item(f"{prefix}{i:05d}", as_of) for i in range(n)]


def error(code: str, operation: str = "PutItem") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class FakeDynamo:
    """The three calls the writer makes, on dicts: the turn always granted, `newest_as_of` as the test sets it,
    batches throttled (`throttled` calls) or partly unprocessed (`unprocessed` calls), puts with the condition."""

    def __init__(self, throttled: int = 0, unprocessed: int = 0, newest_as_of: str | None = None) -> None:
        self.throttled, self.unprocessed = throttled, unprocessed
        self.newest_as_of = newest_as_of
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.table: dict[tuple[str, str], dict[str, Any]] = {}

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("update_item", request))
        if ":as_of" in request["ExpressionAttributeValues"]:
            self.newest_as_of = request["ExpressionAttributeValues"][":as_of"]["S"]
        return {"Attributes": {"newest_as_of": {"S": self.newest_as_of}} if self.newest_as_of else {}}

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(("batch_write_item", RequestItems))
        (requests,) = RequestItems.values()
        assert len(requests) <= 25
        keys = [(r["PutRequest"]["Item"]["pk"]["S"], r["PutRequest"]["Item"]["sk"]["S"]) for r in requests]
        assert len(set(keys)) == len(keys), "BatchWriteItem refuses a key named twice"
        if self.throttled:
            self.throttled -= 1
            raise error("ProvisionedThroughputExceededException", "BatchWriteItem")
        kept = requests
        if self.unprocessed:
            self.unprocessed -= 1
            kept, requests = requests[:1], requests[1:]
        for r in kept:
            new = r["PutRequest"]["Item"]
            self.table[(new["pk"]["S"], new["sk"]["S"])] = new
        return {"UnprocessedItems": {TABLE: requests} if kept is not requests else {}}

    def put_item(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("put_item", request))
        if self.throttled:
            self.throttled -= 1
            raise error("ProvisionedThroughputExceededException")
        assert request["ConditionExpression"] == "attribute_not_exists(pk) OR as_of <= :as_of"
        new = request["Item"]
        key = (new["pk"]["S"], new["sk"]["S"])
        stored = self.table.get(key)
        if stored is not None and stored["as_of"]["S"] > request["ExpressionAttributeValues"][":as_of"]["S"]:
            raise error("ConditionalCheckFailedException")
        self.table[key] = new
        return {}

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.calls if name == operation)


def test_items_as_new_as_the_newest_written_go_in_batches_of_25() -> None:
    client = FakeDynamo(newest_as_of="2024-01-30")
    report = write_items(items(60), TABLE, client)
    assert report.written == 60
    assert len(client.table) == 60
    assert (client.count("batch_write_item"), client.count("put_item")) == (3, 0)
    assert client.newest_as_of == "2024-01-31"


def test_throttled_batches_are_retried_with_growing_jittered_backoff() -> None:
    client, sleeps = FakeDynamo(throttled=3), []
    report = write_items(items(1), TABLE, client, sleep=sleeps.append, writers=1)
    assert (report.written, report.retries) == (1, 3)
    assert client.count("batch_write_item") == 4
    for attempt, pause in enumerate(sleeps, start=1):
        assert 0 <= pause <= min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)


def test_unprocessed_items_are_sent_again_until_written() -> None:
    client = FakeDynamo(unprocessed=2)
    report = write_items(items(5), TABLE, client, sleep=lambda _: None, writers=1)
    assert (report.written, report.retries) == (5, 2)
    assert len(client.table) == 5


def test_writes_give_up_after_the_bound_naming_how_many_failed() -> None:
    client = FakeDynamo(throttled=10**6)
    with pytest.raises(ThrottledError, match=r"3 of 3 items were not written") as raised:
        write_items(items(3), TABLE, client, sleep=lambda _: None)
    assert raised.value.failed == 3
    assert client.count("batch_write_item") == MAX_ATTEMPTS


def test_throttled_conditional_puts_of_an_older_run_are_retried() -> None:
    client = FakeDynamo(throttled=2, newest_as_of="2024-03-01")
    report = write_items(items(1, "2024-02-01"), TABLE, client, sleep=lambda _: None, writers=1)
    assert (report.written, report.retries) == (1, 2)
    assert (client.count("batch_write_item"), client.count("put_item")) == (0, 3)
    assert client.newest_as_of == "2024-03-01"  # an older run never lowers it


def test_other_errors_are_not_retried_or_swallowed() -> None:
    class Broken(FakeDynamo):
        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
            raise error("AccessDeniedException", "BatchWriteItem")

    with pytest.raises(ClientError, match="AccessDeniedException"):
        write_items(items(2), TABLE, Broken())


def test_a_repeated_entity_is_written_once_per_batch_and_its_last_item_wins() -> None:
    client = FakeDynamo()
    report = write_items([item("C1", probability=0.1), item("C2"), item("C1", probability=0.7)], TABLE, client)
    assert report.written == 3
    assert client.table[("customer#C1", "churn")]["probability"] == {"N": "0.7"}


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


def test_an_older_run_cannot_overwrite_a_newer_record(aws: LocalAws) -> None:
    assert write_items([item("C1", "2024-03-01", probability=0.9)]).written == 1
    older = write_items([item("C1", "2024-02-01", probability=0.1), item("C2", "2024-02-01")])
    assert (older.written, older.skipped_older) == (1, 1)
    assert _probability("C1") == 0.9
    again = write_items([item("C1", "2024-03-01", probability=0.8)])  # a rerun of the same day
    assert (again.written, again.skipped_older) == (1, 0)
    assert _probability("C1") == 0.8


def test_a_writer_that_stopped_halfway_still_fences_older_runs(aws: LocalAws) -> None:
    """The newest as_of is recorded before the batches: what a crashed run did write cannot be rolled back."""
    client = boto3.client("dynamodb")

    class CrashingAfterOneBatch:
        batches = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def batch_write_item(self, **request: Any) -> dict[str, Any]:
            self.batches += 1
            if self.batches > 1:
                raise error("InternalServerError", "BatchWriteItem")
            return dict(client.batch_write_item(**request))

    def run(as_of: str) -> list[OnlineItem]:  # a feature set of its own, so its lease is this test's alone
        return [replace(i, feature_set="fenced") for i in items(30, as_of, prefix="X")]

    with pytest.raises(ClientError, match="InternalServerError"):
        write_items(run("2024-04-01"), client=CrashingAfterOneBatch(), writers=1)
    assert _lease("fenced")["newest_as_of"]["S"] == "2024-04-01"
    assert "holder" not in _lease("fenced")  # the turn was given back despite the error
    redrive = write_items(run("2024-03-15"))
    assert (redrive.written, redrive.skipped_older) == (5, 25)


def test_a_second_writer_waits_for_the_turn_then_gives_up_naming_it(aws: LocalAws) -> None:
    clock = FakeClock()
    first = Lease(boto3.client("dynamodb"), aws.settings.online_table, "churn", sleep=clock.sleep, clock=clock)
    with first:
        with pytest.raises(PublicationBusyError, match="another writer of 'churn'"):
            write_items(items(2, prefix="W"), sleep=clock.sleep, clock=clock)
        assert get_item("customer", "W00000", "churn") is None
    assert write_items(items(2, prefix="W"), sleep=clock.sleep, clock=clock).written == 2


def test_a_turn_that_ran_out_is_taken_over_and_the_late_writer_stops(aws: LocalAws) -> None:
    clock = FakeClock()
    table = aws.settings.online_table
    late = Lease(boto3.client("dynamodb"), table, "churn", sleep=clock.sleep, clock=clock)
    with late:
        clock.now += LEASE_S + 1  # the late writer stalled past its turn; another takes it
        assert write_items(items(1, prefix="T"), sleep=clock.sleep, clock=clock).written == 1
        with pytest.raises(LeaseLostError):
            late.keep()
    assert "holder" not in _lease()


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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _probability(entity_id: str) -> float:
    stored = get_item("customer", entity_id, "churn")
    assert stored is not None
    return float(stored.attributes["probability"])


def _lease(feature_set: str = "churn") -> dict[str, Any]:
    key = {"pk": {"S": PUBLICATION_PK}, "sk": {"S": feature_set}}
    return dict(boto3.client("dynamodb").get_item(TableName=settings().online_table, Key=key)["Item"])
