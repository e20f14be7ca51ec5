"""Publishing a batch run's online records: valid lines become online-store items, every other line is rejected with
its line number and reason, counts reconcile, and lines stream through in bounded chunks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shelfwise.churn.features import FEATURE_SET
from shelfwise.churn.publish import MalformedLineError, Rejection, parse_line, publish_lines

TABLE = "online"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
VERSION = FEATURE_SET.qualified_version


class FakeDynamoDB:
    """The writer's calls on a dict keyed like the table (the turn always granted, nothing stored yet, so every
    record goes in batches); remembers the order of the writes."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.puts: list[str] = []

    def update_item(self, TableName: str, **_: Any) -> dict[str, Any]:  # noqa: N803 (boto3)
        assert TableName == TABLE
        return {"Attributes": {}}

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803
        for request in RequestItems[TABLE]:
            item = request["PutRequest"]["Item"]
            self.puts.append(item["pk"]["S"])
            self.items[item["pk"]["S"]] = item
        return {"UnprocessedItems": {}}


def line(customer_id: str, **fields: Any) -> str:
    return json.dumps({"customer_id": customer_id, "as_of": "2024-12-31", "feature_set_version": VERSION} | fields)


def scored(customer_id: str, probability: float = 0.25, **features: float) -> str:
    values = features or {"recency_days": 12.0, "monetary": 80.5}
    return line(customer_id, features=values, probability=probability, model_version="v1")


def cold(customer_id: str) -> str:
    return line(customer_id, features=None)


def publish(lines: list[str | bytes], **kwargs: Any) -> tuple[Any, FakeDynamoDB, list[Rejection]]:
    client, rejected = FakeDynamoDB(), []
    report = publish_lines(lines, table=TABLE, client=client, on_reject=rejected.append, now=NOW, **kwargs)
    return report, client, rejected


def test_scored_and_cold_start_lines_become_online_store_items() -> None:
    report, client, rejected = publish([scored("C1", 0.8), scored("C2"), cold("C3")])
    assert (report.lines, report.written, report.cold_starts, report.rejected) == (3, 3, 1, 0)
    assert report.reconciles
    assert rejected == []
    c1 = client.items["customer#C1"]
    assert c1["sk"] == {"S": "churn"}
    assert c1["feature_set_version"] == {"S": VERSION}
    assert c1["probability"] == {"N": "0.8"}
    assert c1["model_version"] == {"S": "v1"}
    assert c1["as_of"] == {"S": "2024-12-31"}
    assert c1["features"]["M"] == {"recency_days": {"N": "12.0"}, "monetary": {"N": "80.5"}}
    c3 = client.items["customer#C3"]
    assert c3["features"] == {"NULL": True}
    assert c3["probability"] == {"NULL": True}
    assert int(Decimal(c3["expires_at"]["N"])) > NOW.timestamp()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty line"),
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        (json.dumps({"features": None, "as_of": "2024-12-31", "feature_set_version": VERSION}), "field 'customer_id'"),
        (line("X", features=None, score=1), "unknown field"),
        (line("", features=None), "customer_id must be a string"),
        (line(7, features=None), "customer_id must be a string"),  # type: ignore[arg-type]
        (json.dumps({"customer_id": "X", "features": None, "as_of": "2024-12-31"}), "field 'feature_set_version'"),
        (line("X", features=None, feature_set_version="churn/1"), "is 'churn/1'; this publisher serves"),
        (scored("X", recency_days=None), "features.recency_days must be a finite number, got None"),  # type: ignore[arg-type]
        (scored("X", recency_days=True), "features.recency_days must be a finite number, got True"),
        ('{"customer_id": "X", "features": {"a": NaN}, "as_of": "2024-12-31"}', "NaN is not a number"),
        (line("X", features={}), "features must be a non-empty"),
        (line("X", features=None, as_of="31/12/2024"), "as_of must be a date"),
        (scored("X", probability=1.5), "probability must be in [0, 1], got 1.5"),
        (line("X", features=None, probability=0.1), "cold start"),
        (line("X", features=None, model_version=3), "model_ver"),
    ],
)
def test_a_malformed_line_is_rejected_naming_its_line_and_field(line: str, reason: str) -> None:
    report, client, rejected = publish([scored("C1"), line, cold("C3")])
    assert (report.lines, report.written, report.rejected) == (3, 2, 1)
    assert report.reconciles
    (rejection,) = rejected
    assert rejection.line == 2
    assert rejection.reason.startswith("line 2: ")
    assert reason in rejection.reason
    assert rejection.text == line
    assert report.sample == rejected
    assert set(client.items) == {"customer#C1", "customer#C3"}
    with pytest.raises(MalformedLineError, match=r"^line 9: "):
        parse_line(line, 9)


def test_bytes_that_are_not_utf8_are_rejected_not_guessed() -> None:
    report, _, rejected = publish([b'{"customer_id": "\xff"}', scored("C1").encode()])
    assert (report.written, report.rejected) == (1, 1)
    assert "line 1: not UTF-8" in rejected[0].reason


def test_a_rejected_line_keeps_its_customer_id_when_readable() -> None:
    _, _, rejected = publish([scored("C9", probability=2.0)])
    assert rejected[0].key == "C9"
    assert json.loads(rejected[0].to_json())["customer_id"] == "C9"


def test_a_repeated_customer_is_written_twice_and_the_later_line_wins() -> None:
    report, client, _ = publish([scored("C1", 0.1), scored("C2"), scored("C1", 0.9)])
    # no line is merged away uncounted: both C1 lines are written, the later one in a later chunk
    assert (report.lines, report.written, report.rejected) == (3, 3, 0)
    assert client.puts[-1] == "customer#C1"
    assert client.items["customer#C1"]["probability"] == {"N": "0.9"}


def test_lines_stream_through_in_bounded_chunks() -> None:
    pulled: list[int] = []

    def lines() -> Iterator[str]:
        for i in range(10):
            pulled.append(i)
            yield scored(f"C{i}")

    client = FakeDynamoDB()
    pulled_at_write: list[int] = []
    original = client.batch_write_item

    def spy(**request: Any) -> dict[str, Any]:
        pulled_at_write.append(len(pulled))
        return original(**request)

    client.batch_write_item = spy  # type: ignore[method-assign]
    report = publish_lines(lines(), table=TABLE, client=client, chunk_records=3, now=NOW)
    # a chunk is written as soon as it is full: at most one line beyond it has been read
    assert pulled_at_write == [4, 7, 10, 10]
    assert report.written == 10


def test_rejections_beyond_the_sample_still_reach_the_callback_and_the_count() -> None:
    report, _, rejected = publish(["oops"] * 50)
    assert (report.rejected, len(rejected), len(report.sample)) == (50, 50, 20)
    assert report.reconciles


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk_records must be at least 1"):
        publish_lines([], table=TABLE, client=FakeDynamoDB(), chunk_records=0)
