"""Ingestion of world folders into the raw zone of a lake on a real moto server."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shelfwise.ingest import MANIFEST_KEY, WorldError, ingest_world
from shelfwise.lake import Lake
from shelfwise.loaders.fashion_mnist import COLUMNS, load_fashion_mnist
from shelfwise.loaders.online_retail import load_online_retail
from shelfwise.loaders.sources import ONLINE_RETAIL_CSV

FACT_DATES = {"order_lines": "ts", "clickstream": "ts", "stockouts": "date"}


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=repr)


def day_of(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def raw_keys(lake: Lake) -> list[str]:
    return sorted(obj.key for obj in lake.list("raw/"))


def test_ingested_sources_read_back_equal_to_the_world(lake: Lake, small_world: Any) -> None:
    progress: list[float] = []
    report = ingest_world(small_world.root, lake, progress=lambda _stage, fraction: progress.append(fraction))

    assert report.rows == {name: table.num_rows for name, table in small_world.tables.items()}
    assert report.images == 3
    assert progress[-1] == 1.0
    assert progress == sorted(progress)
    for name, source in small_world.tables.items():
        back = lake.read_table(f"raw/{name}/")
        assert rows(back.drop_columns(["dt"])) == rows(source), name
        days = back.column("dt").to_pylist()
        if name in FACT_DATES:
            assert days == [day_of(value) for value in back.column(FACT_DATES[name]).to_pylist()], name
        else:
            assert set(days) == {dt.date(2024, 1, 3)}, name  # the snapshot is dated the world's end date
    for name, data in small_world.images.items():
        assert lake.get_bytes(f"raw/product_images/{name}") == data
    assert json.loads(lake.get_bytes(MANIFEST_KEY))["ingest"]["rows"] == report.rows
    assert report.objects == len(raw_keys(lake))


def test_chunks_sharing_a_day_do_not_overwrite_each_other(lake: Lake, small_world: Any) -> None:
    ingest_world(small_world.root, lake)
    day_two = sorted(obj.key for obj in lake.list("raw/order_lines/dt=2024-01-02/"))
    assert day_two == [
        "raw/order_lines/dt=2024-01-02/part-00000-0000.parquet",
        "raw/order_lines/dt=2024-01-02/part-00001-0000.parquet",
    ]
    assert lake.read_table("raw/order_lines/dt=2024-01-02/").num_rows == 2


def test_reingesting_is_idempotent(lake: Lake, small_world: Any) -> None:
    first = ingest_world(small_world.root, lake)
    keys = raw_keys(lake)
    second = ingest_world(small_world.root, lake)
    assert raw_keys(lake) == keys
    assert (second.rows, second.objects) == (first.rows, first.objects)
    assert lake.read_table("raw/order_lines/").num_rows == small_world.tables["order_lines"].num_rows


def test_another_world_replaces_the_previous_one(lake: Lake, small_world: Any, tmp_path: Path) -> None:
    ingest_world(small_world.root, lake)
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text("\n".join(",".join(row) for row in [COLUMNS, ["8", *["7"] * 784], ["5", *["0"] * 784]]))
    load_fashion_mnist(catalogue, tmp_path / "fm")

    report = ingest_world(tmp_path / "fm", lake)

    assert (report.kind, report.rows, report.images) == ("fashion-mnist", {"products": 2}, 2)
    assert list(lake.list("raw/order_lines/")) == []
    assert sorted(o.key for o in lake.list("raw/product_images/")) == [
        "raw/product_images/SKU00001.png",
        "raw/product_images/SKU00002.png",
    ]
    assert lake.read_table("raw/products/").column("category").to_pylist() == ["Bag", "Sandal"]


def test_a_world_with_a_wrong_column_type_fails_before_the_lake_changes(lake: Lake, small_world: Any) -> None:
    ingest_world(small_world.root, lake)
    keys = raw_keys(lake)
    chunk = small_world.root / "order_lines" / "part-00001.parquet"
    table = pq.read_table(chunk)
    pq.write_table(table.set_column(6, "quantity", table.column("quantity").cast(pa.string())), chunk)

    with pytest.raises(WorldError, match=r"part-00001\.parquet: column quantity is string, expected int64"):
        ingest_world(small_world.root, lake)
    assert raw_keys(lake) == keys


def test_a_manifest_that_disagrees_with_its_files_is_refused(lake: Lake, small_world: Any) -> None:
    path = small_world.root / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["tables"]["stockouts"]["rows"] = 5
    path.write_text(json.dumps(manifest))
    with pytest.raises(WorldError, match="manifest says stockouts has 5 rows, its files hold 2"):
        ingest_world(small_world.root, lake)
    (small_world.root / "stockouts.parquet").unlink()
    with pytest.raises(WorldError, match=r"stockouts\.parquet is listed in the manifest but does not exist"):
        ingest_world(small_world.root, lake)


def test_a_folder_without_manifest_is_not_a_world(lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(WorldError, match=r"manifest\.json is missing"):
        ingest_world(tmp_path, lake)


@pytest.mark.slow
@pytest.mark.skipif(not ONLINE_RETAIL_CSV.is_file(), reason=f"{ONLINE_RETAIL_CSV} not present")
def test_online_retail_world_reconciles_through_the_lake(lake: Lake, tmp_path: Path) -> None:
    loaded = load_online_retail(ONLINE_RETAIL_CSV, tmp_path / "retail")
    report = ingest_world(tmp_path / "retail", lake)
    assert report.rows["order_lines"] == loaded.loaded_rows
    back = lake.read_table("raw/order_lines/")
    assert back.num_rows == loaded.loaded_rows
    days = back.column("dt").to_pylist()
    assert min(days) == dt.date(2010, 12, 1)
    assert max(days) == dt.date(2011, 12, 9)
    assert lake.read_table("raw/customers/").num_rows == report.rows["customers"]


def test_a_fact_without_event_time_fails_and_leaves_no_manifest(lake: Lake, small_world: Any) -> None:
    chunk = small_world.root / "order_lines" / "part-00000.parquet"
    table = pq.read_table(chunk)
    no_ts = pa.array([None] * table.num_rows, pa.timestamp("us"))
    pq.write_table(table.set_column(2, pa.field("ts", pa.timestamp("us")), no_ts), chunk)

    with pytest.raises(WorldError, match=r"part-00000\.parquet: 3 rows have no ts"):
        ingest_world(small_world.root, lake)
    assert list(lake.list(MANIFEST_KEY)) == []  # no manifest: the raw zone holds no complete world
