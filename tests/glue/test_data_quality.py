"""Data-quality checks: each failing check raises naming the check, the column and what it saw."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import DataFrame, SparkSession

from shelfwise.churn.customer_features import feature_checks
from shelfwise.churn.features import FEATURE_NAMES
from shelfwise.data_quality import (
    DataQualityError,
    InRange,
    NullRate,
    RowCount,
    Unique,
    validate,
)

pytestmark = pytest.mark.slow

SCHEMA = "customer_id string, cutoff date, recency_days long, online_share double"
DAY = dt.date(2024, 7, 1)


def _frame(spark: SparkSession, rows: list[tuple[object, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


CHECKS = [RowCount(1), Unique(("customer_id", "cutoff")), NullRate("recency_days"), InRange("online_share", 0, 1)]


def test_clean_data_passes_every_check(spark: SparkSession) -> None:
    rows = [("C1", DAY, 3, 0.5), ("C2", DAY, None, 1.0), ("C2", dt.date(2024, 8, 1), 1, 0.0)]
    results = validate(_frame(spark, rows), [*CHECKS[:2], NullRate("recency_days", 0.5), CHECKS[3]], "features")
    assert [r.passed for r in results] == [True, True, True, True]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "check row_count on \\*: observed 0 rows"),
        ([("C1", DAY, 3, 0.5), ("C1", DAY, 4, 0.5)], "check unique on customer_id,cutoff: observed 1 duplicate rows"),
        ([("C1", DAY, None, 0.5), ("C2", DAY, 1, 0.5)], "check null_rate on recency_days: observed null rate 0.5000"),
        ([("C1", DAY, 3, 1.5)], "check range on online_share: observed min 1.5, max 1.5"),
        ([("C1", DAY, 3, math.nan)], "check range on online_share: observed min nan, max nan"),
    ],
    ids=["empty", "duplicate", "null", "out_of_range", "nan"],
)
def test_a_failing_check_names_itself(spark: SparkSession, rows: list[tuple[object, ...]], message: str) -> None:
    with pytest.raises(DataQualityError, match=message) as failure:
        validate(_frame(spark, rows), CHECKS, "features/churn/training")
    assert str(failure.value).startswith("data quality failed for features/churn/training")
    assert len(failure.value.failures) == 1


def test_a_nan_counts_as_missing(spark: SparkSession) -> None:
    with pytest.raises(DataQualityError, match="null_rate on online_share"):
        validate(_frame(spark, [("C1", DAY, 3, math.nan)]), [NullRate("online_share")], "features")


def test_a_missing_column_is_named(spark: SparkSession) -> None:
    with pytest.raises(DataQualityError, match="check range on basket_size: observed column missing"):
        validate(_frame(spark, [("C1", DAY, 3, 0.5)]), [InRange("basket_size", 0, 1)], "features")


def test_feature_checks_cover_every_feature_and_the_label() -> None:
    checked = {c.column for c in feature_checks(with_label=True) if isinstance(c, InRange)}
    assert checked == {*FEATURE_NAMES, "churned"}
    assert not any(isinstance(c, InRange) and c.column == "churned" for c in feature_checks(with_label=False))
