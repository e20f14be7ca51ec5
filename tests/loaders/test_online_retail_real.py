"""The Online Retail loader on the real UCI file: every one of the 541,909 rows is accounted for."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from shelfwise.loaders.online_retail import load_online_retail
from shelfwise.loaders.report import LoadReport
from shelfwise.loaders.sources import ONLINE_RETAIL_CSV
from shelfwise.schemas import CUSTOMER_SCHEMA, ORDER_LINE_SCHEMA, PRODUCT_SCHEMA, STORE_SCHEMA

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ONLINE_RETAIL_CSV.is_file(), reason=f"{ONLINE_RETAIL_CSV} not present"),
]

INPUT_ROWS = 541_909
MISSING_CUSTOMER_ROWS = 135_080  # per the data set's README


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoadReport]:
    out = tmp_path_factory.mktemp("online_retail")
    return out, load_online_retail(ONLINE_RETAIL_CSV, out)


@pytest.fixture(scope="module")
def lines(loaded: tuple[Path, LoadReport]) -> pd.DataFrame:
    return pq.read_table(loaded[0] / "order_lines").to_pandas()


def quarantined(out: Path) -> pd.DataFrame:
    return pd.concat(
        [pd.read_parquet(path).assign(rule=path.stem) for path in sorted((out / "quarantine").glob("*.parquet"))]
    )


def test_every_input_row_is_loaded_or_quarantined(loaded: tuple[Path, LoadReport], lines: pd.DataFrame) -> None:
    out, report = loaded
    report.assert_reconciles()
    assert report.input_rows == INPUT_ROWS
    assert report.loaded_rows == len(lines)
    rejected = quarantined(out)
    assert rejected.groupby("rule").size().to_dict() == {k: v for k, v in report.rules.items() if v}
    # Each source row appears exactly once, either loaded or quarantined.
    assert rejected["source_row"].is_unique
    assert len(lines) + len(rejected) == INPUT_ROWS
    assert rejected["reason"].str.len().min() > 0


def test_rules_fire_where_the_data_has_such_rows(loaded: tuple[Path, LoadReport]) -> None:
    rules = loaded[1].rules
    assert rules["bad_debt_adjustment"] == 3
    assert rules["stock_adjustment"] == 1_336  # every negative quantity on a sales invoice
    for rule in ("non_product_code", "exact_duplicate", "non_positive_price"):
        assert rules[rule] > 0, rule
    for rule in ("unparseable", "cancellation_positive_quantity", "zero_quantity"):
        assert rules[rule] == 0, rule  # the file has no such rows
    assert 0.97 * INPUT_ROWS < loaded[1].loaded_rows < INPUT_ROWS


def test_walk_ins_have_no_customer_and_ids_are_whole_numbers(
    loaded: tuple[Path, LoadReport], lines: pd.DataFrame
) -> None:
    rejected = quarantined(loaded[0])
    walk_ins_quarantined = int((rejected["CustomerID"] == "").sum())
    assert lines["customer_id"].isna().sum() == MISSING_CUSTOMER_ROWS - walk_ins_quarantined
    assert lines["customer_id"].dropna().str.fullmatch(r"\d{5}").all()
    customers = pd.read_parquet(loaded[0] / "customers.parquet")
    assert customers["customer_id"].is_unique
    assert set(lines["customer_id"].dropna()) == set(customers["customer_id"])


def test_cancellations_are_returns(lines: pd.DataFrame) -> None:
    cancelled = lines["order_id"].str.startswith("C")
    assert cancelled.sum() > 8_000
    assert (lines.loc[cancelled, "quantity"] < 0).all()
    assert (lines.loc[~cancelled, "quantity"] > 0).all()


def test_lines_reference_dimensions_and_are_sorted_in_chunks(loaded: tuple[Path, LoadReport]) -> None:
    out = loaded[0]
    products = pd.read_parquet(out / "products.parquet")
    stores = pd.read_parquet(out / "stores.parquet")
    assert products["sku"].is_unique
    assert (products["base_price"] > 0).all()
    assert (products["end_date"].dropna() >= products.loc[products["end_date"].notna(), "launch_date"]).all()
    assert products["category"].nunique() > 5
    assert stores.at[0, "region"] == "United Kingdom"
    for path in sorted((out / "order_lines").glob("*.parquet")):
        chunk = pd.read_parquet(path)
        assert chunk["ts"].is_monotonic_increasing, path
        assert set(chunk["sku"]) <= set(products["sku"])
        assert set(chunk["store_id"]) <= set(stores["store_id"])
        assert not chunk.duplicated(["order_id", "line_no"]).any()


def test_files_match_the_arrow_schemas(loaded: tuple[Path, LoadReport]) -> None:
    out = loaded[0]
    expected = {"stores": STORE_SCHEMA, "products": PRODUCT_SCHEMA, "customers": CUSTOMER_SCHEMA}
    paths = [(out / f"{name}.parquet", schema) for name, schema in expected.items()]
    paths += [(path, ORDER_LINE_SCHEMA) for path in (out / "order_lines").glob("*.parquet")]
    for path, schema in paths:
        actual = pq.read_schema(path)
        assert actual.equals(schema), path
        assert actual.metadata == schema.metadata, path
