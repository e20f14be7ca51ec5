"""Partition folders become columns when the lake reads a table back."""

from __future__ import annotations

import datetime as dt

import pytest

from shelfwise.lake import partition_prefix, partition_values


def test_partition_values_parse_dates_and_strings_from_folders_only() -> None:
    key = "cutoff=2024-09-14/run=abc/part-00000-x.c000.snappy.parquet"
    assert partition_values(key) == {"cutoff": dt.date(2024, 9, 14), "run": "abc"}
    assert partition_values("part=1.parquet") == {}


def test_partition_prefix_rejects_unknown_zone() -> None:
    with pytest.raises(ValueError, match="valid zones"):
        partition_prefix("bronze", "orders")  # type: ignore[arg-type]
    assert partition_prefix("raw", "order_lines", dt.date(2024, 1, 2)) == "raw/order_lines/dt=2024-01-02/"
