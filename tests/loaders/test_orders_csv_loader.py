"""The orders CSV loader on a small hand-written file: ids kept as given, times to UTC, one row per dirty case."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from shelfwise.cli.world_load import app
from shelfwise.loaders.orders_csv import RULES, load_orders_csv, to_naive_utc
from shelfwise.loaders.report import LoadReport
from shelfwise.loaders.world_files import MissingColumnsError
from shelfwise.schemas import CUSTOMER_SCHEMA, ORDER_LINE_SCHEMA, PRODUCT_SCHEMA, STORE_SCHEMA

REQUIRED_HEADER = "order_id,customer_id,ts,sku,quantity,unit_price"
HEADER = REQUIRED_HEADER + ",store_id,channel,note"  # `note` is an extra column: ignored
ROWS = [
    "O1,cust-007,2024-01-05 10:00,SKU-A,2,10.00,S1,store,a",  # 1 loaded
    "O1,cust-007,2024-01-05 10:00,SKU-B,1,4.50,S1,STORE,b",  # 2 loaded, channel in any case
    "O2, 42 ,2024-01-06T09:30:00+02:00,SKU-A,1,12.00, S2 ,online,c",  # 3 loaded, blanks stripped, +02:00 -> UTC
    "O3,,2024-01-07,SKU-C,3,1.25,S1,store,d",  # 4 loaded, walk-in, a date, after a line with an offset
    "R1,cust-007,2024-02-01T12:00:00Z,SKU-A,-1,10.00,S1,store,e",  # 5 loaded, a return
    "O4,cust-008,2024-02-02T23:30:00-01:00,SKU-B,1,5.00,,online,f",  # 6 loaded, no store id, UTC is the next day
    " ,cust-009,2024-13-01,SKU-A,two,abc,S1,store,g",  # 7 unparseable: order_id, ts, quantity, unit_price
    "O6,cust-009,2024-02-03 10:00,SKU-A,1,10,S2,web,h",  # 8 unknown channel
    "O1,cust-007,2024-01-05 10:00,SKU-A,2,10.00,S1,store,other note",  # 9 duplicate of 1 (the extra column differs)
    "O7,cust-009,2024-02-04 10:00,SKU-A,0,10,S2,online,i",  # 10 zero quantity
    "O8,cust-009,2024-02-05 10:00,SKU-C,1,0,S2,online,j",  # 11 zero price
    "O1,cust-007,2024-01-05 10:00,SKU-C,1,1.50,S1,store,k",  # 12 loaded, line 4 of O1 (line 3 is the duplicate)
]
READ_COLUMNS = [*REQUIRED_HEADER.split(","), "store_id", "channel"]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoadReport]:
    tmp = tmp_path_factory.mktemp("orders")
    report = load_orders_csv(write_csv(tmp / "orders.csv", HEADER, ROWS), tmp / "world")
    return tmp / "world", report


def quarantine(world_dir: Path, rule: str) -> pd.DataFrame:
    return pd.read_parquet(world_dir / "quarantine" / f"{rule}.parquet")


def order_lines(world_dir: Path) -> pd.DataFrame:
    return pq.read_table(world_dir / "order_lines").to_pandas()


def test_every_rule_counts_its_row_and_the_identity_holds(world: tuple[Path, LoadReport]) -> None:
    world_dir, report = world
    assert [rule.name for rule in RULES] == [
        "unparseable",
        "unknown_channel",
        "exact_duplicate",
        "zero_quantity",
        "non_positive_price",
    ]
    assert report.input_rows == len(ROWS)
    assert report.loaded_rows == 7
    assert report.rules == {rule.name: 1 for rule in RULES}
    assert report.input_rows == report.loaded_rows + report.quarantined_rows
    report.assert_reconciles()
    assert len(order_lines(world_dir)) == report.loaded_rows
    quarantined = sorted(row for rule in RULES for row in quarantine(world_dir, rule.name)["source_row"].tolist())
    assert quarantined == [7, 8, 9, 10, 11]


def test_quarantined_rows_keep_their_text_and_reason(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    assert quarantine(world_dir, "exact_duplicate").to_dict("records") == [
        {
            "order_id": "O1",
            "customer_id": "cust-007",
            "ts": "2024-01-05 10:00",
            "sku": "SKU-A",
            "quantity": "2",
            "unit_price": "10.00",
            "store_id": "S1",
            "channel": "store",
            "source_row": 9,
            "reason": "exact duplicate of source row 1",
        }
    ]
    bad = quarantine(world_dir, "unparseable")
    assert list(bad.columns) == [*READ_COLUMNS, "source_row", "reason"]
    assert bad.loc[0, ["order_id", "ts", "quantity", "unit_price", "source_row"]].tolist() == [
        " ",
        "2024-13-01",
        "two",
        "abc",
        7,
    ]
    channel = quarantine(world_dir, "unknown_channel")
    assert channel.loc[0, ["channel", "source_row", "reason"]].tolist() == [
        "web",
        8,
        "channel 'web' is not 'store' or 'online'",
    ]
    assert quarantine(world_dir, "zero_quantity").loc[0, "reason"] == "quantity '0' is zero"
    price = quarantine(world_dir, "non_positive_price").loc[0]
    assert (price["unit_price"], price["source_row"]) == ("0", 11)
    assert price["reason"].startswith("unit_price '0' is not positive")


def test_unparseable_reason_names_every_bad_field(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    reason = quarantine(world_dir, "unparseable").at[0, "reason"]
    parts = reason.split("; ")
    assert parts[0] == "order_id is empty"
    assert parts[1].startswith("ts '2024-13-01' is not an ISO 8601 date or date-time")
    assert parts[2:] == ["quantity 'two' is not an integer", "unit_price 'abc' is not a number"]
    assert "sku" not in reason
    assert "customer_id" not in reason


def test_order_lines_keep_ids_returns_walk_ins_and_convert_time_to_utc(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    lines = order_lines(world_dir).set_index(["order_id", "line_no"])
    assert lines.at[("O1", 1), "customer_id"] == "cust-007"
    assert lines.at[("O1", 1), "ts"] == pd.Timestamp("2024-01-05 10:00")  # no offset: taken as UTC
    assert lines.at[("O1", 2), "channel"] == "store"  # "STORE"
    assert lines.at[("O1", 4), "sku"] == "SKU-C"  # line 3 was the duplicate
    assert ("O1", 3) not in lines.index
    assert lines.at[("O2", 1), "customer_id"] == "42"  # " 42 " stripped, not renumbered
    assert lines.at[("O2", 1), "store_id"] == "S2"
    assert lines.at[("O2", 1), "ts"] == pd.Timestamp("2024-01-06 07:30")  # 09:30+02:00
    assert lines.at[("O3", 1), "customer_id"] is None  # walk-in
    assert lines.at[("O3", 1), "ts"] == pd.Timestamp("2024-01-07 00:00")  # a date, not shifted by row 3's offset
    assert lines.at[("R1", 1), "quantity"] == -1
    assert lines.at[("R1", 1), "ts"] == pd.Timestamp("2024-02-01 12:00")  # Z
    assert lines.at[("O4", 1), "ts"] == pd.Timestamp("2024-02-03 00:30")  # 23:30-01:00
    assert (lines.at[("O4", 1), "store_id"], lines.at[("O4", 1), "channel"]) == ("online", "online")
    assert not lines["promo"].any()


def test_order_lines_are_chunked_by_month_and_sorted(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    files = sorted((world_dir / "order_lines").glob("*.parquet"))
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet"]
    chunks = [pq.read_table(f).to_pandas() for f in files]
    assert [sorted(set(c["ts"].dt.month)) for c in chunks] == [[1], [2]]
    for chunk in chunks:
        assert chunk["ts"].is_monotonic_increasing


def test_dimensions_follow_the_loaded_lines(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    stores = pq.read_table(world_dir / "stores.parquet").to_pylist()
    assert [(s["store_id"], s["region"], s["format"], s["open_date"]) for s in stores] == [
        ("S1", "unknown", "neighborhood", dt.date(2024, 1, 5)),
        ("S2", "unknown", "online", dt.date(2024, 1, 6)),
        ("online", "unknown", "online", dt.date(2024, 2, 3)),
    ]
    customers = {c["customer_id"]: c for c in pq.read_table(world_dir / "customers.parquet").to_pylist()}
    assert set(customers) == {"cust-007", "42", "cust-008"}  # cust-009 has no loaded line
    assert (customers["cust-007"]["signup_date"], customers["cust-007"]["channel"]) == (dt.date(2024, 1, 5), "store")
    assert (customers["42"]["signup_date"], customers["42"]["channel"]) == (dt.date(2024, 1, 6), "online")
    assert customers["cust-008"]["signup_date"] == dt.date(2024, 2, 3)  # the UTC date
    products = {p["sku"]: p for p in pq.read_table(world_dir / "products.parquet").to_pylist()}
    assert set(products) == {"SKU-A", "SKU-B", "SKU-C"}
    assert products["SKU-A"]["base_price"] == 10.0  # median of 10, 12 and 10 (the return)
    assert products["SKU-B"]["base_price"] == 4.75
    assert products["SKU-C"]["launch_date"] == dt.date(2024, 1, 5)
    assert {(p["department"], p["category"], p["brand"], p["end_date"]) for p in products.values()} == {
        ("general", "general", "", None)
    }


def test_output_files_carry_the_arrow_schemas(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    for path, schema in (
        (world_dir / "stores.parquet", STORE_SCHEMA),
        (world_dir / "products.parquet", PRODUCT_SCHEMA),
        (world_dir / "customers.parquet", CUSTOMER_SCHEMA),
        *((p, ORDER_LINE_SCHEMA) for p in (world_dir / "order_lines").glob("*.parquet")),
    ):
        actual = pq.read_schema(path)
        assert actual.equals(schema), path
        assert actual.metadata == schema.metadata, path


def test_manifest_lists_the_tables_and_the_accounting(world: tuple[Path, LoadReport]) -> None:
    world_dir, _ = world
    manifest = json.loads((world_dir / "manifest.json").read_text())
    assert manifest["kind"] == "orders-csv"
    assert (manifest["scale"], manifest["seed"]) == (None, None)
    assert (manifest["start_date"], manifest["end_date"]) == ("2024-01-05", "2024-02-03")
    assert {name: table["rows"] for name, table in manifest["tables"].items()} == {
        "stores": 3,
        "products": 3,
        "customers": 3,
        "order_lines": 7,
    }
    assert manifest["tables"]["order_lines"]["files"] == [
        "order_lines/part-00000.parquet",
        "order_lines/part-00001.parquet",
    ]
    assert manifest["source"] == {"name": "orders CSV", "file": "orders.csv", "rows": len(ROWS)}
    assert manifest["quarantine"] == {rule.name: 1 for rule in RULES}
    assert sorted(p.name for p in world_dir.iterdir()) == [
        "customers.parquet",
        "manifest.json",
        "order_lines",
        "products.parquet",
        "quarantine",
        "stores.parquet",
    ]


def test_a_file_with_only_the_required_columns_loads_as_online(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "min.csv", REQUIRED_HEADER, ["A1,c1,2024-03-01 08:00,X,1,2.5", "A2,,2024-03-02,Y,2,3"]
    )
    report = load_orders_csv(source, tmp_path / "world")
    assert (report.loaded_rows, report.quarantined_rows) == (2, 0)
    lines = order_lines(tmp_path / "world")
    assert set(zip(lines["store_id"], lines["channel"], strict=True)) == {("online", "online")}
    stores = pq.read_table(tmp_path / "world" / "stores.parquet").to_pylist()
    assert [(s["store_id"], s["format"]) for s in stores] == [("online", "online")]
    customers = pq.read_table(tmp_path / "world" / "customers.parquet").to_pylist()
    assert [(c["customer_id"], c["channel"]) for c in customers] == [("c1", "online")]


def test_without_a_channel_column_a_line_with_a_store_id_is_a_store_sale(tmp_path: Path) -> None:
    rows = ["A1,c1,2024-03-01 08:00,X,1,2.5,S9", "A2,c2,2024-03-02,Y,2,3,"]
    report = load_orders_csv(write_csv(tmp_path / "s.csv", REQUIRED_HEADER + ",store_id", rows), tmp_path / "w")
    assert report.loaded_rows == 2
    lines = order_lines(tmp_path / "w").set_index("order_id")
    assert (lines.at["A1", "store_id"], lines.at["A1", "channel"]) == ("S9", "store")
    assert (lines.at["A2", "store_id"], lines.at["A2", "channel"]) == ("online", "online")


def test_missing_columns_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "bad.csv", "order_id,customer_id,sku,quantity,store_id", ["O1,c1,X,1,S1"])
    with pytest.raises(MissingColumnsError, match=r"missing required column\(s\): ts, unit_price$"):
        load_orders_csv(source, tmp_path / "world")
    assert not (tmp_path / "world").exists()


def test_a_file_with_no_loadable_row_fails(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "a.csv", HEADER, [ROWS[9], ROWS[10]])
    with pytest.raises(
        ValueError, match=r"none of its 2 rows can be loaded \(zero_quantity: 1, non_positive_price: 1\)"
    ):
        load_orders_csv(source, tmp_path / "world")
    assert not (tmp_path / "world").exists()
    with pytest.raises(ValueError, match="no rows after the header"):
        load_orders_csv(write_csv(tmp_path / "b.csv", HEADER, []), tmp_path / "world")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01", "2024-03-01 00:00"),
        ("2024-03-01 14:05", "2024-03-01 14:05"),
        ("2024-03-01T14:05:09.250", "2024-03-01 14:05:09.250"),
        ("2024-03-01T14:05:00Z", "2024-03-01 14:05"),
        ("2024-03-01T14:05+02:00", "2024-03-01 12:05"),
        ("2024-03-01 14:05:00+0530", "2024-03-01 08:35"),
        ("2024-03-01 14:05:00 -05", "2024-03-01 19:05"),
        ("2024-03-01T14:05:00.5Z", "2024-03-01 14:05:00.5"),
        ("2024-03-01 14:05+25:00", None),
        ("2024", None),
        ("2024-03", None),
        ("2024-02-30", None),
        ("01/03/2024", None),
        ("2024-03-01-05", None),
        ("", None),
    ],
)
def test_timestamps_to_naive_utc(text: str, expected: str | None) -> None:
    # After an offset, so that an offset leaking into the next row would show.
    ts, _ = to_naive_utc(pd.Series(["2024-01-01T00:00+09:00", text]))
    if expected is None:
        assert pd.isna(ts.iloc[1])
    else:
        assert ts.iloc[1] == pd.Timestamp(expected)


runner = CliRunner(env={"COLUMNS": "200"})


def test_cli_loads_and_prints_the_reconciliation(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "orders.csv", HEADER, ROWS)
    result = runner.invoke(app, ["orders-csv", str(source), "--out", str(tmp_path / "world")])
    assert result.exit_code == 0, result.output
    for rule in RULES:
        assert f"quarantine/{rule.name}" in result.output
    assert "= input" in result.output
    assert "world orders-csv: 7 rows loaded, 5 quarantined" in result.output
    assert (tmp_path / "world" / "manifest.json").is_file()


def test_cli_names_a_missing_column(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "orders.csv", "order_id,customer_id,ts,sku,unit_price", ["O1,c1,2024-01-01,X,1"])
    result = runner.invoke(app, ["orders-csv", str(source), "--out", str(tmp_path / "world")])
    assert result.exit_code == 2
    assert "missing required column(s): quantity" in result.output
    assert not (tmp_path / "world").exists()


def test_cli_refuses_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["orders-csv", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "world")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
