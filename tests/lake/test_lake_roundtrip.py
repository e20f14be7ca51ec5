"""The lake's partitioned writes and reads through a real moto server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shelfwise.lake import Lake, LakeDeleteError


def test_write_partitioned_then_list_and_read_back_with_dt(lake: Lake) -> None:
    stamps = [dt.datetime(2024, 3, day, hour) for day, hour in ((1, 9), (2, 23), (1, 0), (3, 12), (2, 1))]
    table = pa.table({"ts": pa.array(stamps, pa.timestamp("us")), "value": list(range(5))})

    keys = lake.write_partitioned(table, "curated", "roundtrip", "ts", part="part-00007")

    assert keys == [f"curated/roundtrip/dt=2024-03-0{day}/part-00007.parquet" for day in (1, 2, 3)]
    assert sorted(obj.key for obj in lake.list("curated/roundtrip/")) == keys
    back = lake.read_table("curated/roundtrip/").to_pylist()
    assert sorted(back, key=lambda row: row["value"]) == [
        {"ts": stamp, "value": value, "dt": stamp.date()} for value, stamp in enumerate(stamps)
    ]


def test_a_prefix_that_is_one_objects_key_downloads_as_that_file(lake: Lake, tmp_path: Path) -> None:
    """As SageMaker lays out an S3Prefix input naming one object: the scoring step's model input."""
    lake.put_bytes("models/churn/run-1/model.tar.gz", b"archive")
    assert lake.download_prefix("models/churn/run-1/model.tar.gz", tmp_path / "model") == 1
    assert (tmp_path / "model" / "model.tar.gz").read_bytes() == b"archive"


def test_deleting_a_prefix_raises_when_s3_refuses_objects(lake: Lake) -> None:
    """`delete_objects` reports refusals in its answer, not as an exception: they must not pass unnoticed."""
    lake.put_bytes("quarantine/delete-me/a.json", b"{}")
    refused = {"Errors": [{"Key": "quarantine/delete-me/a.json", "Code": "AccessDenied", "Message": "Access Denied"}]}
    stubborn = Lake(lake.cfg, client=_Refusing(lake.s3, refused))
    with pytest.raises(
        LakeDeleteError, match=r"1 of 1 objects under quarantine/delete-me/ were not deleted: .*AccessDenied"
    ):
        stubborn.delete_prefix("quarantine/delete-me/")
    assert lake.delete_prefix("quarantine/delete-me/") == 1
    assert list(lake.list("quarantine/delete-me/")) == []


class _Refusing:
    """A real S3 client whose `delete_objects` answers with refusals (as S3 does for keys it may not delete)."""

    def __init__(self, client: Any, answer: dict[str, Any]) -> None:
        self.client, self.answer = client, answer

    def delete_objects(self, **_: Any) -> dict[str, Any]:
        return self.answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_every_lake_call_names_the_expected_bucket_owner(lake: Lake) -> None:
    calls: list[dict[str, Any]] = []

    class Recording(_Refusing):
        def put_object(self, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return self.client.put_object(**kwargs)

    owned = Lake(lake.cfg.model_copy(update={"lake_bucket_owner": "123456789012"}), client=Recording(lake.s3, {}))
    owned.put_bytes("raw/owner-check/x.json", b"{}")
    assert calls[0]["ExpectedBucketOwner"] == "123456789012"
