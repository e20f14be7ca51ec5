"""The Online Retail loader's rules on a small hand-written CSV: one row per dirty case, each counted and kept."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from shelfwise.loaders.online_retail import RULES, categorise, load_online_retail, to_naive_utc
from shelfwise.loaders.report import LoadReport
from shelfwise.loaders.world_files import MissingColumnsError
from shelfwise.schemas import CUSTOMER_SCHEMA, ORDER_LINE_SCHEMA, PRODUCT_SCHEMA, STORE_SCHEMA

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",  # 1 loaded
    "536366,71053,WHITE METAL LANTERN,2,2011-07-01 10:00:00,3.39,,France",  # 2 loaded, walk-in, BST
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",  # 3 dup
    "C536379,85123A,WHITE HANGING HEART T-LIGHT HOLDER,-1,2010-12-02 09:41:00,2.55,17850.0,United Kingdom",  # 4 return
    "536367,POST,POSTAGE,1,2010-12-01 09:00:00,18.0,12583.0,France",  # 5 non-product
    "536368,gift_0001_20,Dotcomgiftshop Gift Voucher £20.00,1,2010-12-01 09:10:00,16.67,,United Kingdom",  # 6
    "536369,21275,damaged,-10,2010-12-01 09:20:00,0.0,,United Kingdom",  # 7 stock adjustment
    "536370,22139,,56,2010-12-01 09:30:00,0.0,,United Kingdom",  # 8 zero price
    "A563186,B,Adjust bad debt,1,2011-08-12 14:51:00,-11062.06,,United Kingdom",  # 9 bad debt
    "536371,85123A,X,six,2010-13-01 08:00,abc,17850.5,United Kingdom",  # 10 unparseable
    "C536380,85123A,WHITE HANGING HEART T-LIGHT HOLDER,3,2010-12-02 10:00:00,2.55,17850.0,United Kingdom",  # 11
    "536372,85123A,WHITE HANGING HEART T-LIGHT HOLDER,0,2010-12-02 11:00:00,2.55,17850.0,United Kingdom",  # 12
    "536373,85123a,WHITE HANGING HEART T-LIGHT HOLDER,1,2010-12-03 10:00:00,2.95,17851.0,United Kingdom",  # 13 loaded
]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoadReport]:
    tmp = tmp_path_factory.mktemp("retail")
    report = load_online_retail(write_csv(tmp / "retail.csv.gz", HEADER, ROWS), tmp / "world")
    return tmp / "world", report


def quarantine(world_dir: Path, rule: str) -> pd.DataFrame:
    return pd.read_parquet(world_dir / "quarantine" / f"{rule}.parquet")


def test_every_rule_counts_its_row_and_the_identity_holds(world: tuple[Path, LoadReport]) -> None:
    _, report = world
    assert report.input_rows == len(ROWS)
    assert report.loaded_rows == 4
    assert report.rules == {rule.name: 2 if rule.name == "non_product_code" else 1 for rule in RULES}
    report.assert_reconciles()


def test_quarantined_row_keeps_its_values_and_reason(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    dup = quarantine(world_dir, "exact_duplicate")
    assert dup.to_dict("records") == [
        {
            "InvoiceNo": "536365",
            "StockCode": "85123A",
            "Description": "WHITE HANGING HEART T-LIGHT HOLDER",
            "Quantity": "6",
            "InvoiceDate": "2010-12-01 08:26:00",
            "UnitPrice": "2.55",
            "CustomerID": "17850.0",
            "Country": "United Kingdom",
            "source_row": 3,
            "reason": "exact duplicate of source row 1",
        }
    ]
    non_products = quarantine(world_dir, "non_product_code")
    assert non_products["StockCode"].tolist() == ["POST", "gift_0001_20"]
    assert non_products["reason"].tolist() == [
        "non-product stock code 'POST' (postage)",
        "non-product stock code 'gift_0001_20' (gift voucher)",
    ]
    assert "damaged" in quarantine(world_dir, "stock_adjustment").at[0, "reason"]


def test_unparseable_reason_names_every_bad_field(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    reason = quarantine(world_dir, "unparseable").at[0, "reason"]
    for field in ("Quantity 'six'", "InvoiceDate '2010-13-01 08:00'", "UnitPrice 'abc'", "CustomerID '17850.5'"):
        assert field in reason
    assert "InvoiceNo" not in reason
    assert "Country" not in reason


def test_order_lines_map_ids_returns_walk_ins_and_time(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    lines = pq.read_table(world_dir / "order_lines").to_pandas().sort_values("ts").reset_index(drop=True)
    by_order = lines.set_index("order_id")
    assert by_order.at["536365", "customer_id"] == "17850"
    assert by_order.at["536365", "ts"] == pd.Timestamp("2010-12-01 08:26")  # GMT = UTC
    assert by_order.at["536366", "ts"] == pd.Timestamp("2011-07-01 09:00")  # BST = UTC+1
    assert by_order.at["536366", "customer_id"] is None
    assert by_order.at["C536379", "quantity"] == -1
    assert by_order.at["536373", "sku"] == "85123A"
    assert by_order.at["536373", "line_no"] == 1
    assert (lines["unit_price"] > 0).all()


def test_dimensions_follow_the_loaded_lines(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    stores = pq.read_table(world_dir / "stores.parquet").to_pylist()
    assert [(s["store_id"], s["region"], s["format"]) for s in stores] == [
        ("S001", "United Kingdom", "online"),
        ("S002", "France", "online"),
    ]
    customers = {c["customer_id"]: c for c in pq.read_table(world_dir / "customers.parquet").to_pylist()}
    assert set(customers) == {"17850", "17851"}
    assert customers["17850"]["signup_date"] == dt.date(2010, 12, 1)
    products = {p["sku"]: p for p in pq.read_table(world_dir / "products.parquet").to_pylist()}
    assert set(products) == {"85123A", "71053"}
    heart = products["85123A"]
    assert heart["base_price"] == 2.55  # median of 2.55, 2.55 (the return) and 2.95
    assert (heart["department"], heart["category"]) == ("home", "lighting")
    assert heart["launch_date"] == dt.date(2010, 12, 1)
    assert dict(heart["attributes"]) == {"description": "WHITE HANGING HEART T-LIGHT HOLDER"}


def test_output_files_carry_the_arrow_schemas(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    for path, schema in (
        (world_dir / "stores.parquet", STORE_SCHEMA),
        (world_dir / "products.parquet", PRODUCT_SCHEMA),
        (world_dir / "customers.parquet", CUSTOMER_SCHEMA),
        *((p, ORDER_LINE_SCHEMA) for p in (world_dir / "order_lines").glob("*.parquet")),
    ):
        # Parquet renames a map's entries field, which Arrow counts as metadata: compare the two separately.
        actual = pq.read_schema(path)
        assert actual.equals(schema), path
        assert actual.metadata == schema.metadata, path


def test_missing_columns_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    header = "InvoiceNo,StockCode,Description,InvoiceDate,UnitPrice,CustomerID"
    source = write_csv(tmp_path / "bad.csv.gz", header, ["536365,85123A,X,2010-12-01 08:26:00,2.55,17850.0"])
    with pytest.raises(MissingColumnsError, match=r"missing required column\(s\): Quantity, Country"):
        load_online_retail(source, tmp_path / "world")
    assert not (tmp_path / "world").exists()


def test_reload_leaves_no_stale_quarantine(tmp_path: Path) -> None:
    out = tmp_path / "world"
    load_online_retail(write_csv(tmp_path / "a.csv.gz", HEADER, ROWS), out)
    report = load_online_retail(write_csv(tmp_path / "b.csv.gz", HEADER, ROWS[:2]), out)
    assert report.loaded_rows == 2
    assert list((out / "quarantine").glob("*.parquet")) == []


def test_uk_wall_clock_to_utc_across_daylight_saving_changes() -> None:
    local = pd.Series(["2011-03-27 00:30", "2011-03-27 01:30", "2011-10-30 01:30", "2011-10-30 02:30", "nonsense"])
    assert to_naive_utc(local).tolist()[:4] == [
        pd.Timestamp("2011-03-27 00:30"),  # GMT
        pd.Timestamp("2011-03-27 01:00"),  # does not exist: shifted forward to 02:00 BST
        pd.Timestamp("2011-10-30 00:30"),  # occurs twice: read as the first (BST)
        pd.Timestamp("2011-10-30 02:30"),  # GMT again
    ]
    assert pd.isna(to_naive_utc(local).iloc[4])


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("WHITE HANGING HEART T-LIGHT HOLDER", ("home", "lighting")),
        ("SET 2 TEA TOWELS I LOVE LONDON", ("home", "textiles")),
        ("JUMBO BAG RED RETROSPOT", ("accessories", "bags")),
        ("PAPER CHAIN KIT 50'S CHRISTMAS", ("seasonal", "christmas")),
        ("EARRINGS", ("accessories", "jewellery")),
        ("INFLATABLE POLITICAL GLOBE", ("general", "general")),
        ("", ("general", "general")),
    ],
)
def test_categorise_by_description_keywords(description: str, expected: tuple[str, str]) -> None:
    assert categorise(description) == expected


def test_refuses_to_write_into_a_folder_that_holds_no_world(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no world"):
        load_online_retail(write_csv(tmp_path / "a.csv.gz", HEADER, ROWS), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv.gz", "notes.txt"]


def test_loading_over_another_world_removes_its_folders(tmp_path: Path) -> None:
    out = tmp_path / "world"
    (out / "truth").mkdir(parents=True)
    (out / "truth" / "demand.parquet").write_bytes(b"old")
    (out / "manifest.json").write_text("{}")
    load_online_retail(write_csv(tmp_path / "a.csv.gz", HEADER, ROWS), out)
    assert not (out / "truth").exists()


def test_a_file_with_no_loadable_row_fails(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="none of its 2 rows can be loaded"):
        load_online_retail(write_csv(tmp_path / "a.csv.gz", HEADER, [ROWS[4], ROWS[8]]), tmp_path / "world")
