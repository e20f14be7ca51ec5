"""The world folder: the contract's files and schemas, a manifest that adds up, and byte-for-byte determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from shelfwise.schemas import SCHEMA_VERSION, TABLES, arrow_schema
from shelfwise.world import SCALES, generate_world, scale_spec
from shelfwise.world.tables import (
    TRUTH_CATEGORY_SCHEMA,
    TRUTH_CUSTOMER_SCHEMA,
    TRUTH_DEMAND_SCHEMA,
    TRUTH_HOLIDAY_SCHEMA,
    TRUTH_PROMOTION_SCHEMA,
)

TRUTH = {
    "truth/demand.parquet": TRUTH_DEMAND_SCHEMA,
    "truth/categories.parquet": TRUTH_CATEGORY_SCHEMA,
    "truth/promotions.parquet": TRUTH_PROMOTION_SCHEMA,
    "truth/customers.parquet": TRUTH_CUSTOMER_SCHEMA,
    "truth/holidays.parquet": TRUTH_HOLIDAY_SCHEMA,
}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_raw_table_has_its_schema_and_the_manifest_adds_up(small_world: Path, world_seed: int) -> None:
    manifest = json.loads((small_world / "manifest.json").read_text())
    assert manifest["kind"] == "synthetic"
    assert manifest["scale"] == "small"
    assert manifest["seed"] == world_seed
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert (manifest["start_date"], manifest["end_date"]) == ("2023-01-01", "2024-12-31")
    # No listings: a world without them has every SKU on sale at every store from launch to end.
    assert set(manifest["tables"]) == set(TABLES) - {"listings"}
    for name, entry in manifest["tables"].items():
        expected = arrow_schema(TABLES[name])
        rows = 0
        for relative in entry["files"]:
            schema = pq.read_schema(small_world / relative)
            assert schema.equals(expected), f"{relative}: {schema} != {expected}"
            assert schema.metadata == expected.metadata, relative
            rows += pq.read_metadata(small_world / relative).num_rows
        assert rows == entry["rows"] > 0, name
    listed = {f for entry in manifest["tables"].values() for f in entry["files"]}
    on_disk = {p.relative_to(small_world).as_posix() for p in small_world.glob("*.parquet")}
    on_disk |= {p.relative_to(small_world).as_posix() for p in small_world.glob("*/part-*.parquet")}
    assert on_disk == listed


def test_truth_tables_have_their_schemas(small_world: Path) -> None:
    manifest = json.loads((small_world / "manifest.json").read_text())
    for relative, schema in TRUTH.items():
        assert pq.read_schema(small_world / relative).equals(schema), relative
        assert manifest["truth"][relative]["rows"] == pq.read_metadata(small_world / relative).num_rows


def test_order_lines_are_chunked_by_month_and_sorted_by_time(small_world: Path) -> None:
    parts = sorted((small_world / "order_lines").glob("part-*.parquet"))
    assert len(parts) == 24
    previous_end = None
    for part in parts:
        ts = pq.read_table(part, columns=["ts"]).column("ts").to_numpy()
        assert np.all(ts[1:] >= ts[:-1]), part.name
        months = ts.astype("datetime64[M]")
        assert months.min() == months.max(), f"{part.name} spans several months"
        assert previous_end is None or ts[0] >= previous_end
        previous_end = ts[-1]


def test_every_sku_has_a_64x64_rgb_png(small_world: Path) -> None:
    products = pq.read_table(small_world / "products.parquet").to_pandas()
    for key in products["image_key"]:
        with Image.open(small_world / key) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB"
            assert image.size == (64, 64)
    assert len(list((small_world / "images").glob("*.png"))) == len(products)


@pytest.mark.slow
def test_same_seed_gives_byte_identical_files_and_another_seed_differs(
    small_world: Path, world_seed: int, tmp_path: Path
) -> None:
    again = generate_world("small", world_seed, tmp_path / "again")
    expected, actual = _files(small_world), _files(again.out_dir)
    assert sorted(actual) == sorted(expected)
    differing = [name for name in expected if expected[name] != actual[name]]
    assert differing == []
    other = _files(generate_world("small", world_seed + 1, tmp_path / "other").out_dir)
    for name in ("products.parquet", "customers.parquet", "order_lines/part-00000.parquet", "images/SKU00001.png"):
        assert other[name] != expected[name], name


def test_unknown_scale_lists_the_valid_ones(tmp_path: Path) -> None:
    assert SCALES == ("small", "demo", "default", "large")
    with pytest.raises(ValueError, match="unknown world scale 'huge'; valid scales: small, demo, default, large"):
        generate_world("huge", 1, tmp_path / "w")
    assert not (tmp_path / "w").exists()
    assert scale_spec("large").n_days == 731


def test_refuses_to_overwrite_a_folder_that_is_not_a_world(tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(FileExistsError, match="not a world folder"):
        generate_world("small", 1, precious)
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_the_regional_holiday_calendar_lists_each_regions_holiday_every_year_and_the_next(small_world: Path) -> None:
    """The calendar a retailer keeps: the dates the truth's regional lifts fall on, a year past the world's end so
    that forecasts beyond it know theirs."""
    calendar = pq.read_table(small_world / "regional_holidays.parquet").to_pandas()
    truth = pq.read_table(small_world / "truth" / "holidays.parquet").to_pandas()
    regional = truth[(truth["event"] == "regional") & ~truth["name"].str.startswith("Eve of ")]
    stores = pq.read_table(small_world / "stores.parquet").to_pandas()
    physical_regions = set(stores["region"]) - {"national"}
    assert set(calendar["region"]) == physical_regions
    assert {d.year for d in calendar["date"]} == {2023, 2024, 2025}
    assert calendar.groupby(["region", calendar["date"].map(lambda d: d.year)]).size().eq(1).all()
    within = calendar[calendar["date"].map(lambda d: d.year) <= 2024]
    assert set(zip(within["region"], within["date"], strict=True)) == set(
        zip(regional["region"], regional["date"], strict=True)
    )
