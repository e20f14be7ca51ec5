"""A retailer's regional holiday calendar (a CSV of `region, date[, name]`) -> the raw `regional_holidays` table.

`region` is spelt as in the sales file's `region` column (surrounding blanks stripped); `date` is an ISO date. A row
without a region, with a date that is not one, or repeating an earlier row's region and date goes to
`quarantine/regional_holidays.parquet` with its reason. The demand forecasts read the holidays (and their eves) of
each store's region as covariates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shelfwise.loaders.report import CleaningRule, LoadReport
from shelfwise.loaders.world_files import require_columns

REQUIRED = ["region", "date"]
RULE = CleaningRule("regional_holidays", "no region, a date that is not YYYY-MM-DD, or a repeated region and date")
#: An ISO date, nothing more (pandas alone would also take `2024` or `03/17/2024`).
ISO_DATE = r"\d{4}-\d{2}-\d{2}"


@dataclass(frozen=True)
class HolidayRows:
    """The usable holidays (`region, date, name`) and the rows that are not, with `source_row` and `reason`."""

    holidays: pd.DataFrame
    quarantined: pd.DataFrame


def read_holidays_csv(source: Path) -> HolidayRows:
    """Read and check the calendar; fails naming a missing column."""
    try:
        header = list(pd.read_csv(source, nrows=0, dtype=str).columns)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{source}: the file is empty (expected a header row: region, date[, name])") from None
    require_columns(source, header, REQUIRED)
    columns = REQUIRED + (["name"] if "name" in header else [])
    raw = pd.read_csv(source, dtype=str, na_filter=False, usecols=columns)[columns]
    raw["source_row"] = range(1, len(raw) + 1)
    region = raw["region"].str.strip()
    text = raw["date"].str.strip()
    date = pd.to_datetime(text.where(text.str.fullmatch(ISO_DATE)), format="%Y-%m-%d", errors="coerce")
    reason = pd.Series("", index=raw.index, dtype=object)
    repeated = pd.DataFrame({"region": region, "date": date}).duplicated(keep="first")
    reason[repeated & date.notna()] = "a second row for the same region and date"
    reason[date.isna()] = "date is not an ISO date (YYYY-MM-DD)"
    reason[region == ""] = "region is missing"
    good = pd.DataFrame(
        {
            "region": region,
            "date": date.dt.date,
            "name": raw["name"].str.strip() if "name" in raw else "",
        }
    )[reason == ""]
    good = good.sort_values(["date", "region"]).reset_index(drop=True)
    return HolidayRows(good, raw[reason != ""].assign(reason=reason[reason != ""]).reset_index(drop=True))


def holidays_report(source: Path, out_dir: Path, rows: HolidayRows) -> LoadReport:
    """The calendar's accounting: every row loaded or quarantined."""
    report = LoadReport(
        source=source,
        out_dir=out_dir,
        input_rows=len(rows.holidays) + len(rows.quarantined),
        loaded_rows=len(rows.holidays),
        rules={RULE.name: len(rows.quarantined)},
        rule_descriptions={RULE.name: RULE.description},
    )
    report.assert_reconciles()
    return report
