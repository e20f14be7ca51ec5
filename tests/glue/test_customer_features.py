"""Churn features on a hand-made history, computed by hand; and the point-in-time guarantee on a random one."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable

import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, Row

from shelfwise.churn.customer_features import customer_features, cutoff_range, labelled_cutoffs, training_set
from shelfwise.churn.features import CUTOFF, FEATURE_NAMES, LABEL
from shelfwise.curation.orders import curate_orders
from shelfwise.schemas import CUSTOMER_SCHEMA, ORDER_LINE_SCHEMA, STOCKOUT_SCHEMA

pytestmark = pytest.mark.slow

ToSpark = Callable[[pa.Table], DataFrame]
CUT = dt.date(2024, 7, 1)
CATEGORY = {"SKU_A": "tops", "SKU_B": "shoes", "SKU_C": "bags", "SKU_D": "home", "SKU_E": "bags"}


def _line(order: str, line_no: int, day: str, store: str, customer: str | None, sku: str, quantity: int,
          price: float, promo: bool = False) -> dict[str, object]:  # fmt: skip
    return {
        "order_id": order, "line_no": line_no, "ts": dt.datetime.fromisoformat(f"{day} 12:00:00"),
        "store_id": store, "customer_id": customer, "sku": sku, "quantity": quantity, "unit_price": price,
        "promo": promo, "channel": "online" if store == "S9" else "store",
    }  # fmt: skip


#: C1 buys four times before the cutoff (one order online), returns twice (once in an order of returns only) and
#: buys again after it; C2 buys once, online, the day before the cutoff; C3 only after it; and a walk-in.
HISTORY = [
    _line("O1", 1, "2024-01-10", "S1", "C1", "SKU_A", 2, 10.0),
    _line("O1", 2, "2024-01-10", "S1", "C1", "SKU_B", 1, 30.0, promo=True),
    _line("O1", 3, "2024-01-10", "S1", "C1", "SKU_D", 1, 1.0),
    _line("O2", 1, "2024-03-10", "S9", "C1", "SKU_A", 1, 10.0),
    _line("O3", 1, "2024-06-10", "S1", "C1", "SKU_C", 4, 5.0),
    _line("O3", 2, "2024-06-10", "S1", "C1", "SKU_A", -1, 10.0),
    _line("O4", 1, "2024-06-25", "S1", "C1", "SKU_B", 1, 30.0, promo=True),
    _line("R5", 1, "2024-06-28", "S1", "C1", "SKU_B", -1, 30.0),
    _line("O6", 1, "2024-07-15", "S1", "C1", "SKU_A", 1, 10.0),
    _line("O7", 1, "2024-06-30", "S9", "C2", "SKU_A", 1, 10.0),
    _line("O8", 1, "2024-07-02", "S1", "C3", "SKU_A", 1, 10.0),
    _line("O9", 1, "2024-06-30", "S1", None, "SKU_A", 5, 10.0),
]
#: Store-days with a SKU out of stock. C1's top three categories at the cutoff are shoes (60), tops (30), bags (20),
#: not home (1); its visits in the 90 days before are S1 on 06-10, 06-25 and 06-28.
STOCKOUTS = [
    ("S1", "SKU_C", "2024-06-10"),  # bags at a visit: met
    ("S1", "SKU_E", "2024-06-10"),  # bags again, same visit: still one
    ("S1", "SKU_D", "2024-06-25"),  # home, not a top category: not met
    ("S2", "SKU_A", "2024-06-28"),  # another store: not met
    ("S1", "SKU_A", "2024-06-28"),  # tops at a visit to return something: met
    ("S1", "SKU_A", "2024-03-01"),  # more than 90 days before the cutoff
    ("S1", "SKU_B", "2024-07-15"),  # after the cutoff
]


@pytest.fixture(scope="module")
def inputs(arrow_to_spark: ToSpark) -> dict[str, DataFrame]:
    products = pa.table({"sku": list(CATEGORY), "category": list(CATEGORY.values())})
    customers = pa.Table.from_pylist(
        [{"customer_id": "C1", "signup_date": dt.date(2024, 1, 1), "region": "north", "channel": "store"}],
        schema=CUSTOMER_SCHEMA,
    )
    stockouts = pa.Table.from_pylist(
        [{"store_id": s, "sku": k, "date": dt.date.fromisoformat(d)} for s, k, d in STOCKOUTS], schema=STOCKOUT_SCHEMA
    )
    return {
        "orders": arrow_to_spark(pa.Table.from_pylist(HISTORY, schema=ORDER_LINE_SCHEMA)),
        "products": arrow_to_spark(products),
        "customers": arrow_to_spark(customers),
        "stockouts": arrow_to_spark(stockouts),
    }


EARLY = dt.date(2024, 3, 11)


@pytest.fixture(scope="module")
def labelled(inputs: dict[str, DataFrame]) -> dict[str, Row]:
    """The training rows at the cutoff, by customer."""
    rows = training_set(**inputs, cutoffs=[CUT], horizon_days=90).collect()
    return {row["customer_id"]: row for row in rows}


@pytest.fixture(scope="module")
def at_two_cutoffs(inputs: dict[str, DataFrame]) -> list[Row]:
    """The features at an early cutoff and at the cutoff, computed together."""
    return customer_features(**inputs, cutoffs=[CUT, EARLY]).collect()


def test_only_customers_with_a_purchase_before_the_cutoff_get_features(labelled: dict[str, Row]) -> None:
    assert sorted(labelled) == ["C1", "C2"]
    assert list(labelled["C1"].asDict()) == ["customer_id", CUTOFF, *FEATURE_NAMES, LABEL]


def test_features_match_a_hand_computation(labelled: dict[str, Row]) -> None:
    gaps = [60, 92, 15]  # 01-10 -> 03-10 -> 06-10 -> 06-25 (the order of returns on 06-28 is not a purchase)
    expected = {
        "recency_days": 6,
        "tenure_days": 182,  # from signup on 2024-01-01 (a leap year)
        "frequency": 4,
        "monetary": 111.0 - 40.0,  # gross 51 + 10 + 20 + 30, returns 10 + 30
        "avg_order_value": 111.0 / 4,
        "orders_30d": 2,
        "orders_90d": 2,
        "spend_30d": 50.0,
        "spend_90d": 50.0,
        "trend_30_90": 3.0,
        "ipt_mean_days": statistics.mean(gaps),
        "ipt_std_days": statistics.stdev(gaps),
        "ipt_max_days": 92.0,
        "basket_size": 10 / 4,
        "category_diversity": 4,
        "discount_share": 60.0 / 111.0,
        "returns_rate": 2 / 10,
        "stockouts_met_90d": 2,
        "online_share": 1 / 4,
    }
    row = labelled["C1"]
    assert {name: row[name] for name in expected} == pytest.approx(expected)
    assert row[CUTOFF] == CUT
    assert row[LABEL] == 0  # bought on 07-15, inside the horizon


def test_a_single_purchase_gives_the_documented_defaults(labelled: dict[str, Row]) -> None:
    row = labelled["C2"]
    assert row["tenure_days"] == 1  # not in the customer table: tenure runs from the first purchase
    assert (row["ipt_mean_days"], row["ipt_std_days"], row["ipt_max_days"]) == (-1.0, -1.0, -1.0)
    assert (row["online_share"], row["trend_30_90"], row["stockouts_met_90d"]) == (1.0, 3.0, 0)
    assert row[LABEL] == 1


def test_two_purchases_have_a_mean_gap_but_no_spread(at_two_cutoffs: list[Row]) -> None:
    row = next(r for r in at_two_cutoffs if r[CUTOFF] == EARLY)
    assert (row["ipt_mean_days"], row["ipt_std_days"], row["ipt_max_days"]) == (60.0, -1.0, 60.0)
    # One order in the last 30 days against two in 90 (a steady pace would be 2 / 3 in 30 days).
    assert (row["orders_30d"], row["orders_90d"], row["trend_30_90"]) == (1, 2, 1.5)


def test_many_cutoffs_at_once_equal_one_cutoff_at_a_time(at_two_cutoffs: list[Row], labelled: dict[str, Row]) -> None:
    together = sorted(tuple(r) for r in at_two_cutoffs if r[CUTOFF] == CUT)
    alone = sorted(tuple(r[name] for name in ["customer_id", CUTOFF, *FEATURE_NAMES]) for r in labelled.values())
    assert together == alone
    assert {r["customer_id"] for r in at_two_cutoffs if r[CUTOFF] == EARLY} == {"C1"}


def test_cutoff_helpers() -> None:
    assert cutoff_range(dt.date(2024, 1, 1), dt.date(2024, 1, 29), 14) == [
        dt.date(2024, 1, 1),
        dt.date(2024, 1, 15),
        dt.date(2024, 1, 29),
    ]
    # A 90-day horizon from 10-03 ends on 12-31: covered by data up to 12-31; from 10-04 it is not.
    last = dt.date(2024, 12, 31)
    assert labelled_cutoffs([dt.date(2024, 10, 4), dt.date(2024, 10, 3)], last, 90) == [dt.date(2024, 10, 3)]
    with pytest.raises(ValueError, match="step_days"):
        cutoff_range(dt.date(2024, 1, 1), dt.date(2024, 2, 1), 0)


def _before(table: pa.Table, column: str, cutoff: dt.date) -> pa.Table:
    values = table.column(column).cast(pa.date32()).to_pylist()
    return table.filter(pa.array([v < cutoff for v in values]))


def _perturbed_after(orders: pa.Table, cutoff: dt.date) -> pa.Table:
    """Every row on or after the cutoff changed: those of every other customer deleted, the others with other
    prices, quantities, promos and stores, plus orders of a new customer."""
    rows = orders.to_pylist()
    after = [r for r in rows if r["ts"].date() >= cutoff]
    customers = sorted({r["customer_id"] for r in after if r["customer_id"]})
    dropped = set(customers[::2])
    changed = [
        {**r, "quantity": r["quantity"] * 3, "unit_price": r["unit_price"] + 7, "store_id": "S002", "promo": True}
        for r in after
        if r["customer_id"] not in dropped
    ]
    newcomer = [{**after[0], "order_id": f"ONEW{n}", "customer_id": "CNEW", "line_no": 1} for n in range(3)]
    kept = [r for r in rows if r["ts"].date() < cutoff]
    return pa.Table.from_pylist(kept + changed + newcomer, schema=orders.schema)


def test_features_are_point_in_time(raw_tables: dict[str, pa.Table], arrow_to_spark: ToSpark) -> None:
    cutoff = dt.date(2024, 7, 1)
    products = arrow_to_spark(raw_tables["products"].select(["sku", "category"]))
    customers = arrow_to_spark(raw_tables["customers"])
    orders = curate_orders(arrow_to_spark(raw_tables["order_lines"]), dt.date(2025, 1, 1)).curated
    full_orders = pa.Table.from_pylist([r.asDict() for r in orders.drop("dt").collect()], schema=ORDER_LINE_SCHEMA)

    def labelled_at(order_table: pa.Table, stockout_table: pa.Table) -> dict[str, Row]:
        frames = {"products": products, "customers": customers, "stockouts": arrow_to_spark(stockout_table)}
        rows = training_set(arrow_to_spark(order_table), **frames, cutoffs=[cutoff], horizon_days=90).collect()
        return {r["customer_id"]: r for r in rows}

    original = labelled_at(full_orders, raw_tables["stockouts"])
    perturbed = labelled_at(_perturbed_after(full_orders, cutoff), _before(raw_tables["stockouts"], "date", cutoff))

    assert len(original) > 10
    assert sorted(original) == sorted(perturbed)
    for customer, row in original.items():
        assert [row[n] for n in FEATURE_NAMES] == [perturbed[customer][n] for n in FEATURE_NAMES], customer
    # Sanity: the label does read the future. Customers whose later purchases were deleted now churn.
    flipped = [c for c in original if original[c][LABEL] == 0 and perturbed[c][LABEL] == 1]
    assert flipped
    assert all(perturbed[c][LABEL] == original[c][LABEL] for c in original if c not in flipped)
