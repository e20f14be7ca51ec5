"""Data-quality checks that a Glue job runs on what it is about to publish; a failure fails the job.

Checks are data (dataclasses); `validate` computes every statistic they need in one aggregation pass (plus one
distinct count per uniqueness check) and raises `DataQualityError` naming each failed check, column and observed
value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf


class DataQualityError(Exception):
    """One or more checks failed; the message names each check, column and observed value."""

    def __init__(self, dataset: str, failures: Sequence[CheckResult]) -> None:
        self.dataset = dataset
        self.failures = tuple(failures)
        super().__init__(f"data quality failed for {dataset}: " + "; ".join(f.describe() for f in failures))


@dataclass(frozen=True)
class RowCount:
    """At least `minimum` rows."""

    minimum: int = 1


@dataclass(frozen=True)
class Unique:
    """No two rows share the values of `columns`."""

    columns: tuple[str, ...]


@dataclass(frozen=True)
class NullRate:
    """At most `maximum` of the rows have a null (or NaN) in `column`."""

    column: str
    maximum: float = 0.0


@dataclass(frozen=True)
class InRange:
    """Every non-null value of `column` lies in [minimum, maximum] (NaN fails)."""

    column: str
    minimum: float
    maximum: float


Check = RowCount | Unique | NullRate | InRange


@dataclass(frozen=True)
class CheckResult:
    check: str
    column: str
    observed: str
    passed: bool

    def describe(self) -> str:
        return f"check {self.check} on {self.column}: observed {self.observed}"


def validate(df: DataFrame, checks: Sequence[Check], dataset: str) -> list[CheckResult]:
    """Run `checks` on `df`; return their results, or raise `DataQualityError` if any failed."""
    missing = [(check, column) for check in checks for column in _columns(check) if column not in df.columns]
    if missing:
        raise DataQualityError(
            dataset, [CheckResult(_name(c), column, "column missing", False) for c, column in missing]
        )
    stats = _statistics(df, checks)
    results = [_judge(check, stats) for check in checks]
    failures = [r for r in results if not r.passed]
    if failures:
        raise DataQualityError(dataset, failures)
    return results


def _statistics(df: DataFrame, checks: Sequence[Check]) -> dict[str, float | None]:
    """Row count, null counts and min/max as named by the checks; None where a column has no values."""
    types = dict(df.dtypes)
    aggs = [sf.count(sf.lit(1)).alias("rows")]
    for check in checks:
        if isinstance(check, NullRate):
            missing = sf.col(check.column).isNull()
            if types[check.column] in ("double", "float"):
                missing = missing | sf.isnan(check.column)
            aggs.append(sf.sum(missing.cast("long")).alias(f"nulls:{check.column}"))
        elif isinstance(check, InRange):
            value = sf.col(check.column).cast("double")
            aggs.append(sf.min(value).alias(f"min:{check.column}"))
            # Spark orders NaN above every number, so a NaN shows up as the maximum and fails the check.
            aggs.append(sf.max(value).alias(f"max:{check.column}"))
    row = df.agg(*aggs).collect()[0].asDict()
    stats: dict[str, float | None] = {key: None if value is None else float(value) for key, value in row.items()}
    for check in checks:
        if isinstance(check, Unique):
            stats[f"distinct:{','.join(check.columns)}"] = float(df.select(*check.columns).distinct().count())
    return stats


def _judge(check: Check, stats: dict[str, float | None]) -> CheckResult:
    rows = stats["rows"] or 0.0
    if isinstance(check, RowCount):
        return CheckResult("row_count", "*", f"{rows:.0f} rows (minimum {check.minimum})", rows >= check.minimum)
    if isinstance(check, Unique):
        key = ",".join(check.columns)
        duplicates = rows - (stats[f"distinct:{key}"] or 0.0)
        return CheckResult("unique", key, f"{duplicates:.0f} duplicate rows", duplicates == 0)
    if isinstance(check, NullRate):
        rate = (stats[f"nulls:{check.column}"] or 0.0) / rows if rows else 0.0
        return CheckResult(
            "null_rate", check.column, f"null rate {rate:.4f} (maximum {check.maximum})", rate <= check.maximum
        )
    low, high = stats[f"min:{check.column}"], stats[f"max:{check.column}"]
    if low is None or high is None:  # no values at all: nothing out of range (NullRate and RowCount judge that)
        return CheckResult("range", check.column, "no values", True)
    # Comparisons with NaN are false, so a NaN fails here.
    passed = check.minimum <= low <= check.maximum and check.minimum <= high <= check.maximum
    return CheckResult(
        "range", check.column, f"min {low:g}, max {high:g} (allowed [{check.minimum:g}, {check.maximum:g}])", passed
    )


def _columns(check: Check) -> tuple[str, ...]:
    if isinstance(check, RowCount):
        return ()
    if isinstance(check, Unique):
        return check.columns
    return (check.column,)


def _name(check: Check) -> str:
    names: dict[type, str] = {RowCount: "row_count", Unique: "unique", NullRate: "null_rate", InRange: "range"}
    return names[type(check)]
