"""Processing step: the day's demand features -> one validated panel of daily series (`shelfwise.demand.series`).

Inputs are the partitions the `demand_features` job wrote for one `as_of` (daily rows and static attributes) and,
optionally, the retailer's regional holidays (raw `regional_holidays`, the newest snapshot); a folder holding several
`as_of`s is refused, so a run never mixes days. Features of another feature-set version than
this code's are refused with both versions named. Rows that cannot be used go to the quarantine output with a
`reason` (a missing key or date, units that are not a count, a duplicate day, a pair without static attributes); the
rest become `panel.npz` + `keys.parquet` + `meta.json` (as_of, series, days).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from step_io import install_wheelhouse, parquet_files, partition_value, read_partitioned, write_json, write_parquet

BASE = Path("/opt/ml/processing")
AS_OF, VERSION_COLUMN = "as_of", "feature_set_version"
PAIR = ["store_id", "sku"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--daily-dir", type=Path, default=BASE / "input" / "daily")
    parser.add_argument("--static-dir", type=Path, default=BASE / "input" / "static")
    parser.add_argument("--wheels-dir", type=Path, default=BASE / "input" / "wheels")
    parser.add_argument("--holidays-dir", type=Path, default=BASE / "input" / "holidays")
    parser.add_argument("--panel-dir", type=Path, default=BASE / "panel")
    parser.add_argument("--quarantine-dir", type=Path, default=BASE / "quarantine")
    parser.add_argument(
        "--daily-partition",
        default="",
        help="the S3 URI of the daily features' partition (its `as_of=` names the date its files do not carry)",
    )
    return parser.parse_args(argv)


def read_features(folder: Path, partition_uri: str) -> pd.DataFrame:
    """The features under `folder`; files of one partition (SageMaker lays them out without their `as_of=` folder)
    get the date from `partition_uri`."""
    found = re.search(r"as_of=(\d{4}-\d{2}-\d{2})", partition_uri)
    return read_partitioned(folder, AS_OF, default=found[1] if found else None)


def one_as_of(frames: list[pd.DataFrame], expected_version: str) -> str:
    """The single `as_of` of the inputs; SystemExit naming what is wrong otherwise."""
    days = sorted({str(d.date()) for frame in frames for d in frame[AS_OF].dropna().unique()})
    if len(days) != 1:
        raise SystemExit(f"expected the features of one as_of, found {days or 'none'}: pass one partition")
    versions = sorted({str(v) for frame in frames if VERSION_COLUMN in frame for v in frame[VERSION_COLUMN].unique()})
    if versions != [expected_version]:
        raise SystemExit(f"features are of feature-set version(s) {versions}; this pipeline reads {expected_version}")
    return days[0]


def read_holidays(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The newest snapshot of the regional holidays under `folder` (none when it is absent or empty), as usable rows
    `region, date` and the rows that are not, each with its `reason`."""
    files = parquet_files(folder) if folder.is_dir() else []
    if not files:
        return pd.DataFrame({"region": pd.Series(dtype=str), "date": pd.Series(dtype="datetime64[ns]")}), pd.DataFrame()
    snapshots = {path: partition_value(path, "dt") or "" for path in files}
    newest = max(snapshots.values())
    rows = pd.concat([pd.read_parquet(p) for p, day in snapshots.items() if day == newest], ignore_index=True)
    for column in ("region", "date"):
        if column not in rows.columns:
            raise SystemExit(f"the regional holidays under {folder} lack column {column!r}")
    dates = pd.to_datetime(rows["date"], errors="coerce")
    reasons = pd.Series("", index=rows.index, dtype=object)
    reasons[dates.isna()] = "missing or malformed date"
    reasons[rows["region"].isna() | (rows["region"].astype(str).str.strip() == "")] = "missing region"
    good = rows[reasons == ""].assign(date=dates[reasons == ""])[["region", "date"]]
    return good, rows[reasons != ""].assign(reason=reasons[reasons != ""], table="regional_holidays")


def daily_reasons(daily: pd.DataFrame, static_pairs: pd.MultiIndex) -> pd.Series:
    """The first reason each daily row cannot be used, or "" when it can."""
    units = pd.to_numeric(daily["units"], errors="coerce")
    checks = [
        (daily["store_id"].isna() | daily["sku"].isna(), "missing store_id or sku"),
        (pd.to_datetime(daily["date"], errors="coerce").isna(), "missing or malformed date"),
        (units.isna() | (units < 0), "units missing or negative"),
        (daily.duplicated([*PAIR, "date"], keep="first"), "a second row for the same store, sku and date"),
        (~pd.MultiIndex.from_frame(daily[PAIR].astype(str)).isin(static_pairs), "no static attributes for the pair"),
    ]
    reasons = pd.Series("", index=daily.index, dtype=object)
    for bad, reason in reversed(checks):
        reasons[np.asarray(bad, dtype=bool)] = reason
    return reasons


def main(argv: list[str]) -> str:
    args = parse_args(argv)
    install_wheelhouse(args.wheels_dir)
    from shelfwise.demand.calendar import RegionalHolidays
    from shelfwise.demand.keys import FEATURE_SET_VERSION
    from shelfwise.demand.series import build_panel, save_panel

    daily = read_features(args.daily_dir, args.daily_partition)
    static = read_features(args.static_dir, args.daily_partition)
    as_of = one_as_of([daily, static], FEATURE_SET_VERSION)

    bad_static = static["store_id"].isna() | static["sku"].isna() | static.duplicated(PAIR, keep="first")
    static_ok = static[~bad_static].copy()
    static_ok[PAIR] = static_ok[PAIR].astype(str)
    reasons = daily_reasons(daily, pd.MultiIndex.from_frame(static_ok[PAIR]))
    holidays, bad_holidays = read_holidays(args.holidays_dir)
    quarantined = pd.concat(
        [
            daily[reasons != ""].assign(reason=reasons[reasons != ""], table="daily"),
            static[bad_static].assign(reason="missing key or a second row for the pair", table="static"),
            bad_holidays,
        ],
        ignore_index=True,
    )
    if len(quarantined):
        write_parquet(quarantined.astype(dict.fromkeys(quarantined.columns, str)), args.quarantine_dir / "rows.parquet")
    daily_ok = daily[reasons == ""].copy()
    daily_ok[PAIR] = daily_ok[PAIR].astype(str)
    if daily_ok.empty:
        raise SystemExit(f"no usable daily demand rows ({len(quarantined)} quarantined)")
    used = pd.MultiIndex.from_frame(daily_ok[PAIR].drop_duplicates())
    static_ok = static_ok[pd.MultiIndex.from_frame(static_ok[PAIR]).isin(used)]
    panel = build_panel(
        daily_ok,
        static_ok.drop(columns=[AS_OF, VERSION_COLUMN], errors="ignore"),
        RegionalHolidays.from_frame(holidays),
    )
    save_panel(panel, args.panel_dir)
    write_json(
        {"as_of": as_of, "series": len(panel.keys), "days": panel.n_days, "start": panel.start.isoformat()},
        args.panel_dir / "meta.json",
    )
    return (
        f"panel of {len(panel.keys):,} series x {panel.n_days} days as of {as_of}, regional holidays of "
        f"{len(panel.holidays.dates)} region(s); {len(quarantined):,} rows quarantined"
    )


if __name__ == "__main__":
    print(main(sys.argv[1:]))
