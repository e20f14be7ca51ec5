"""The daily sales CSV loader on a small hand-written file: ids kept exactly, zero days as listings, one row per
dirty case, and the world it writes ingests into a local lake."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from shelfwise.cli.world_load import app
from shelfwise.ingest import ingest_world
from shelfwise.lake import Lake
from shelfwise.loaders.report import LoadReport
from shelfwise.loaders.sales_csv import RULES, load_sales_csv, order_ids
from shelfwise.loaders.world_files import MissingColumnsError
from shelfwise.local_aws import local_aws
from shelfwise.schemas import CUSTOMER_SCHEMA, LISTING_SCHEMA, ORDER_LINE_SCHEMA, PRODUCT_SCHEMA, STORE_SCHEMA

REQUIRED_HEADER = "date,store_id,sku,units"
HEADER = REQUIRED_HEADER + ",unit_price,promo,category,department,region,note"  # `note` is ignored
ROWS = [
    "2024-01-30,007,A-1 ,3,2.50,yes,snacks,food,north,a",  # 1 loaded; "007" and "A-1 " kept as written
    "2024-01-30,007,a-1,0,,,,,,b",  # 2 loaded: on sale, none sold (a listing, no line); "a-1" is another sku
    "2024-01-31,007,A-1 ,-1,2.50,0,,,,c",  # 3 loaded: a return
    "2024-01-31,S2,A-1 ,2,3.00,TRUE,,,south,d",  # 4 loaded
    "2024-02-01,S2,A-1 ,0,,No,,,,e",  # 5 loaded: zero on the file's last day, the listing runs on
    "2024-02-01, ,X,1,1,no,,,,f",  # 6 missing_id
    "2024-02-30,S2,X,1,1,no,,,,g",  # 7 bad_date
    "2024-02-01,S2,X,1.5,1,no,,,,h",  # 8 bad_units
    "2024-02-01,S2,X,1,-3,no,,,,i",  # 9 bad_price
    "2024-02-01,S2,X,1,1,maybe,,,,j",  # 10 bad_promo
    "2024-01-31,S2,A-1 ,5,3.00,,,,,k",  # 11 duplicate of 4
    "2024-01-29,007,A-1 ,two,,,,,,l",  # 12 bad_units, and not the kept row of its day
    "2024-01-29,007,A-1 ,1,,,,,,m",  # 13 loaded: the first readable row of its day; price and promo defaulted
]
LOADED = 6


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoadReport]:
    tmp = tmp_path_factory.mktemp("sales")
    report = load_sales_csv(write_csv(tmp / "sales.csv", HEADER, ROWS), tmp / "world")
    return tmp / "world", report


def table(world_dir: Path, name: str) -> pd.DataFrame:
    return pq.read_table(world_dir / f"{name}.parquet").to_pandas()


def order_lines(world_dir: Path) -> pd.DataFrame:
    return pq.read_table(world_dir / "order_lines").to_pandas()


def quarantine(world_dir: Path, rule: str) -> pd.DataFrame:
    return pd.read_parquet(world_dir / "quarantine" / f"{rule}.parquet")


def test_every_rule_counts_its_rows_and_the_identity_holds(world: tuple[Path, LoadReport]) -> None:
    world_dir, report = world
    assert [rule.name for rule in RULES] == [
        "missing_id",
        "bad_date",
        "bad_units",
        "bad_price",
        "bad_promo",
        "duplicate",
    ]
    assert (report.input_rows, report.loaded_rows) == (len(ROWS), LOADED)
    assert report.rules == {
        "missing_id": 1,
        "bad_date": 1,
        "bad_units": 2,
        "bad_price": 1,
        "bad_promo": 1,
        "duplicate": 1,
    }
    report.assert_reconciles()
    assert report.normalised == {
        "unit_price absent or empty -> the SKU's base price": 1,
        "promo absent or empty -> false": 1,
    }
    quarantined = {rule.name: quarantine(world_dir, rule.name)["source_row"].tolist() for rule in RULES}
    assert quarantined == {
        "missing_id": [6],
        "bad_date": [7],
        "bad_units": [8, 12],
        "bad_price": [9],
        "bad_promo": [10],
        "duplicate": [11],
    }


def test_quarantined_rows_keep_their_text_and_reason(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    reasons = {rule.name: quarantine(world_dir, rule.name)["reason"].tolist() for rule in RULES}
    assert reasons == {
        "missing_id": ["store_id is empty or blank"],
        "bad_date": ["date '2024-02-30' is not a date YYYY-MM-DD"],
        "bad_units": ["units '1.5' is not an integer", "units 'two' is not an integer"],
        "bad_price": ["unit_price '-3' is not a number at least 0"],
        "bad_promo": ["promo 'maybe' is not true, false, yes, no, 1 or 0"],
        "duplicate": ["duplicate of source row 4 (same date, store_id and sku)"],
    }
    duplicate = quarantine(world_dir, "duplicate").drop(columns="reason").to_dict("records")
    assert duplicate == [
        {
            "date": "2024-01-31",
            "store_id": "S2",
            "sku": "A-1 ",
            "units": "5",
            "unit_price": "3.00",
            "promo": "",
            "category": "",
            "department": "",
            "region": "",
            "source_row": 11,
        }
    ]


def test_zero_unit_rows_become_listings_not_order_lines(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    lines = order_lines(world_dir)
    assert (lines["quantity"] != 0).all()
    assert sorted(zip(lines["ts"].dt.date, lines["store_id"], lines["sku"], strict=True)) == [
        (dt.date(2024, 1, 29), "007", "A-1 "),
        (dt.date(2024, 1, 30), "007", "A-1 "),
        (dt.date(2024, 1, 31), "007", "A-1 "),
        (dt.date(2024, 1, 31), "S2", "A-1 "),
    ]
    listings = table(world_dir, "listings").to_dict("records")
    assert listings == [
        {"store_id": "007", "sku": "A-1 ", "start_date": dt.date(2024, 1, 29), "end_date": dt.date(2024, 1, 31)},
        # Only a zero row: on sale for that day, nothing sold.
        {"store_id": "007", "sku": "a-1", "start_date": dt.date(2024, 1, 30), "end_date": dt.date(2024, 1, 30)},
        # Its last row, a zero, is on the file's last day: still on sale.
        {"store_id": "S2", "sku": "A-1 ", "start_date": dt.date(2024, 1, 31), "end_date": None},
    ]


def test_order_lines_carry_units_returns_prices_and_promotions(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    lines = order_lines(world_dir).set_index("order_id")
    assert lines.index.is_unique
    assert lines.loc["2024-01-30:3:007:A-1 ", ["quantity", "unit_price", "promo"]].tolist() == [3, 2.5, True]
    assert lines.loc["2024-01-31:3:007:A-1 ", ["quantity", "promo"]].tolist() == [-1, False]  # a return
    assert lines.loc["2024-01-31:2:S2:A-1 ", ["quantity", "unit_price"]].tolist() == [2, 3.0]  # not the duplicate's 5
    # No price given: the SKU's base price (median of 2.50, 2.50, 3.00); no promo given: false.
    assert lines.loc["2024-01-29:3:007:A-1 ", ["quantity", "unit_price", "promo"]].tolist() == [1, 2.5, False]
    assert (lines["ts"].dt.time == dt.time(12)).all()
    assert set(lines["line_no"]) == {1}
    assert lines["customer_id"].isna().all()
    assert set(lines["channel"]) == {"store"}


def test_order_ids_are_unique_whatever_characters_the_ids_hold() -> None:
    dates = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-01"]))
    ids = order_ids(dates, pd.Series(["1:2", "1"]), pd.Series(["3", "2:3"]))
    assert ids.tolist() == ["2024-01-01:3:1:2:3", "2024-01-01:1:1:2:3"]


def test_ids_are_kept_exactly_and_join_back_to_the_source(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    lines = order_lines(world_dir).assign(date=lambda f: f["ts"].dt.strftime("%Y-%m-%d"))
    # The user's keys as their own systems hold them: text, leading zeros, blanks and case included.
    keys = pd.DataFrame([row.split(",")[:3] for row in ROWS], columns=["date", "store_id", "sku"]).drop_duplicates()
    assert len(lines.merge(keys, on=["date", "store_id", "sku"])) == len(lines)
    assert set(table(world_dir, "stores")["store_id"]) == {"007", "S2"}
    assert set(table(world_dir, "products")["sku"]) == {"A-1 ", "a-1"}


def test_dimensions_follow_the_loaded_rows(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    stores = table(world_dir, "stores").to_dict("records")
    assert stores == [
        {"store_id": "007", "region": "north", "format": "neighborhood", "open_date": dt.date(2024, 1, 29)},
        {"store_id": "S2", "region": "south", "format": "neighborhood", "open_date": dt.date(2024, 1, 31)},
    ]
    products = table(world_dir, "products").set_index("sku")
    assert products.loc["A-1 ", ["department", "category", "brand", "base_price"]].tolist() == [
        "food",
        "snacks",
        "",
        2.5,
    ]
    assert (products.at["A-1 ", "launch_date"], products.at["A-1 ", "end_date"]) == (dt.date(2024, 1, 29), None)
    # Never priced: 1.0; its last row is before the file's last day: ended.
    assert products.loc["a-1", ["department", "category", "base_price"]].tolist() == ["unknown", "unknown", 1.0]
    assert (products.at["a-1", "launch_date"], products.at["a-1", "end_date"]) == (dt.date(2024, 1, 30),) * 2
    assert len(table(world_dir, "customers")) == 0


def test_output_files_carry_the_arrow_schemas(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    for path, schema in (
        (world_dir / "stores.parquet", STORE_SCHEMA),
        (world_dir / "products.parquet", PRODUCT_SCHEMA),
        (world_dir / "customers.parquet", CUSTOMER_SCHEMA),
        (world_dir / "listings.parquet", LISTING_SCHEMA),
        *((p, ORDER_LINE_SCHEMA) for p in (world_dir / "order_lines").glob("*.parquet")),
    ):
        actual = pq.read_schema(path)
        assert actual.equals(schema), path
        assert actual.metadata == schema.metadata, path


def test_manifest_lists_the_tables_and_the_accounting(world: tuple[Path, LoadReport]) -> None:
    world_dir, report = world
    manifest = json.loads((world_dir / "manifest.json").read_text())
    assert manifest["kind"] == "sales-csv"
    assert (manifest["start_date"], manifest["end_date"]) == ("2024-01-29", "2024-02-01")
    assert {name: entry["rows"] for name, entry in manifest["tables"].items()} == {
        "listings": 3,
        "stores": 2,
        "products": 2,
        "customers": 0,
        "order_lines": 4,
    }
    assert manifest["source"] == {"name": "sales CSV", "file": "sales.csv", "rows": len(ROWS)}
    assert manifest["quarantine"] == report.rules


def test_without_optional_columns_prices_are_one_and_labels_unknown(tmp_path: Path) -> None:
    rows = ["2024-03-01,S1,X,2", "2024-03-02,S1,X,0", "2024-03-02,S2,Y,-1"]
    report = load_sales_csv(write_csv(tmp_path / "min.csv", REQUIRED_HEADER, rows), tmp_path / "world")
    assert (report.loaded_rows, report.quarantined_rows) == (3, 0)
    lines = order_lines(tmp_path / "world")
    assert lines["quantity"].tolist() == [2, -1]
    assert set(lines["unit_price"]) == {1.0}
    assert not lines["promo"].any()
    products = table(tmp_path / "world", "products")
    assert set(zip(products["department"], products["category"], products["base_price"], strict=True)) == {
        ("unknown", "unknown", 1.0)
    }
    assert set(table(tmp_path / "world", "stores")["region"]) == {"unknown"}
    assert len(table(tmp_path / "world", "listings")) == 2


def test_a_missing_required_column_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "bad.csv", "date,store_id,units,unit_price", ["2024-01-01,S1,1,2"])
    with pytest.raises(MissingColumnsError, match=r"missing required column\(s\): sku$"):
        load_sales_csv(source, tmp_path / "world")
    assert not (tmp_path / "world").exists()


def test_a_file_with_no_loadable_row_fails(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "a.csv", HEADER, [ROWS[6], ROWS[7]])
    with pytest.raises(ValueError, match=r"none of its 2 rows can be loaded \(bad_date: 1, bad_units: 1\)"):
        load_sales_csv(source, tmp_path / "world")
    assert not (tmp_path / "world").exists()


@pytest.fixture(scope="module")
def lake() -> Iterator[Lake]:
    with local_aws() as aws:
        yield Lake(aws.settings)


def test_the_world_ingests_into_the_local_lake(world: tuple[Path, LoadReport], lake: Lake) -> None:
    world_dir, _ = world
    report = ingest_world(world_dir, lake)
    assert report.rows == {"listings": 3, "stores": 2, "products": 2, "customers": 0, "order_lines": 4}
    assert report.skipped == []
    listings = lake.read_table("raw/listings/").to_pandas()
    assert sorted(zip(listings["store_id"], listings["sku"], strict=True)) == [
        ("007", "A-1 "),
        ("007", "a-1"),
        ("S2", "A-1 "),
    ]
    assert set(listings["dt"]) == {dt.date(2024, 2, 1)}  # a snapshot dated the world's end
    assert lake.read_table("raw/order_lines/").num_rows == 4
    assert lake.read_table("raw/customers/").num_rows == 0


runner = CliRunner(env={"COLUMNS": "200"})


def test_cli_loads_and_prints_the_reconciliation(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "sales.csv", HEADER, ROWS)
    result = runner.invoke(app, ["sales-csv", str(source), "--out", str(tmp_path / "world")])
    assert result.exit_code == 0, result.output
    for rule in RULES:
        assert f"quarantine/{rule.name}" in result.output
    assert "= input" in result.output
    assert f"world sales-csv: {LOADED} rows loaded, {len(ROWS) - LOADED} quarantined" in result.output
    assert (tmp_path / "world" / "listings.parquet").is_file()


def test_cli_names_a_missing_column(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "sales.csv", "date,sku,units", ["2024-01-01,X,1"])
    result = runner.invoke(app, ["sales-csv", str(source), "--out", str(tmp_path / "world")])
    assert result.exit_code == 2
    assert "missing required column(s): store_id" in result.output
    assert not (tmp_path / "world").exists()


HOLIDAY_ROWS = [
    "north,2024-03-17,North Heritage Day",  # 1 loaded
    " south ,2024-02-13,Carnival Tuesday",  # 2 loaded, the region stripped as the sales file's labels are
    ",2024-05-01,No Region",  # 3 no region
    "north,17/03/2024,Not ISO",  # 4 not an ISO date
    "north,2024-03-17,Again",  # 5 repeats row 1
]


def test_a_regional_holiday_calendar_loads_beside_the_sales_and_loses_no_row(tmp_path: Path, lake: Lake) -> None:
    sales = write_csv(tmp_path / "sales.csv", HEADER, ROWS)
    calendar = write_csv(tmp_path / "holidays.csv", "region,date,name", HOLIDAY_ROWS)
    report = load_sales_csv(sales, tmp_path / "world", holidays=calendar)
    (holidays,) = report.companions
    assert (holidays.input_rows, holidays.loaded_rows, holidays.quarantined_rows) == (5, 2, 3)
    loaded = table(tmp_path / "world", "regional_holidays")
    assert sorted(zip(loaded["region"], loaded["date"], strict=True)) == [
        ("north", dt.date(2024, 3, 17)),
        ("south", dt.date(2024, 2, 13)),
    ]
    reasons = quarantine(tmp_path / "world", "regional_holidays").set_index("source_row")["reason"]
    assert reasons.to_dict() == {
        3: "region is missing",
        4: "date is not an ISO date (YYYY-MM-DD)",
        5: "a second row for the same region and date",
    }
    ingest_world(tmp_path / "world", lake)
    assert lake.read_table("raw/regional_holidays/").num_rows == 2


def test_cli_prints_the_holiday_calendars_reconciliation(tmp_path: Path) -> None:
    sales = write_csv(tmp_path / "sales.csv", HEADER, ROWS)
    calendar = write_csv(tmp_path / "holidays.csv", "region,date", ["north,2024-03-17"])
    out = tmp_path / "world"
    result = runner.invoke(app, ["sales-csv", str(sales), "--out", str(out), "--regional-holidays", str(calendar)])
    assert result.exit_code == 0, result.output
    assert "Load of holidays.csv" in result.output
    assert (out / "regional_holidays.parquet").is_file()


def test_a_holiday_calendar_without_a_date_column_is_named(tmp_path: Path) -> None:
    sales = write_csv(tmp_path / "sales.csv", HEADER, ROWS)
    calendar = write_csv(tmp_path / "holidays.csv", "region,day", ["north,2024-03-17"])
    with pytest.raises(MissingColumnsError, match="date"):
        load_sales_csv(sales, tmp_path / "world", holidays=calendar)
    assert not (tmp_path / "world").exists()
