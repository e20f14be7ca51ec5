"""The lake's partitioned writes and reads through a real moto server."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from shelfwise.lake import Lake


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
