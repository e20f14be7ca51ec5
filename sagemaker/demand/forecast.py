"""Processing step: the batch forecast of every active store x SKU with the approved demand model it is given.

The model archive is checked against the sha256 recorded at its registration, and its manifest against the running
versions of gluonts, torch and pandas (`shelfwise.demand.model_store`: a mismatch fails naming them) and the
features' feature-set version. The features must be one `as_of` (the partitions the day's feature job wrote).

Active: on sale on the last day of the history (a SKU off sale is not forecast). A series with less than four weeks
of history is a cold start: whichever forecaster was selected, its forecast is the attribute model's, fitted on the
same history (`shelfwise.demand.cold_start`: store, category, price tier and age, and what the series and its SKU sold
so far), and it says `cold_start: true`.

Writes `forecasts.parquet` (store_id, sku, date, mean, p05 .. p95, cold_start, model_version, as_of: the 28 days
from as_of) and `online_records.jsonl` (what the online store holds: one line per series and per sum, see
`shelfwise.demand.publish.online_line`). Rows the features cannot use go to `quarantine/` with a reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import sys
from pathlib import Path

import pandas as pd
from prepare import AS_OF, PAIR, VERSION_COLUMN, daily_reasons, one_as_of, read_features, read_holidays
from step_io import install_wheelhouse, registered_archive, unpack_archive, write_parquet

BASE = Path("/opt/ml/processing")
ONLINE_RECORDS = "online_records.jsonl"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=BASE / "model", help="holds model.tar.gz")
    parser.add_argument("--model-sha256", default="", help="the sha256 recorded when the package was registered")
    parser.add_argument("--model-package", default="", help="the package's ARN, recorded with the forecasts")
    parser.add_argument("--daily-dir", type=Path, default=BASE / "input" / "daily")
    parser.add_argument("--static-dir", type=Path, default=BASE / "input" / "static")
    parser.add_argument("--wheels-dir", type=Path, default=BASE / "input" / "wheels")
    parser.add_argument("--holidays-dir", type=Path, default=BASE / "input" / "holidays")
    parser.add_argument("--predictions-dir", type=Path, default=BASE / "predictions")
    parser.add_argument("--quarantine-dir", type=Path, default=BASE / "quarantine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--daily-partition", default="", help="the S3 URI of the daily features' partition")
    return parser.parse_args(argv)


def verified_model(model_dir: Path, expected_sha256: str, work: Path) -> Path:
    """The model archive unpacked into `work`, after checking its bytes are the registered ones."""
    return unpack_archive(registered_archive(model_dir, expected_sha256), work)


def main(argv: list[str]) -> str:
    args = parse_args(argv)
    install_wheelhouse(args.wheels_dir)
    from shelfwise.demand import model_store
    from shelfwise.demand.batch_forecast import (
        aggregate_records,
        forecast_active,
        forecast_frame,
        series_records,
        served_paths,
    )
    from shelfwise.demand.calendar import RegionalHolidays
    from shelfwise.demand.keys import FEATURE_SET_VERSION
    from shelfwise.demand.publish import online_line
    from shelfwise.demand.series import build_panel

    work = args.predictions_dir.parent / "forecast-work"
    model_dir = verified_model(args.model_dir, args.model_sha256, work / "model")
    manifest = model_store.load_manifest(model_dir)
    if manifest.feature_set_version != FEATURE_SET_VERSION:
        raise SystemExit(
            f"the model was trained on feature-set version {manifest.feature_set_version}; "
            f"this code reads {FEATURE_SET_VERSION}"
        )
    daily = read_features(args.daily_dir, args.daily_partition)
    static = read_features(args.static_dir, args.daily_partition)
    as_of = dt.date.fromisoformat(one_as_of([daily, static], FEATURE_SET_VERSION))
    static = static.drop_duplicates(PAIR).dropna(subset=PAIR)
    static[PAIR] = static[PAIR].astype(str)
    reasons = daily_reasons(daily, pd.MultiIndex.from_frame(static[PAIR]))
    holidays, bad_holidays = read_holidays(args.holidays_dir)
    quarantined = pd.concat(
        [daily[reasons != ""].assign(reason=reasons[reasons != ""], table="daily"), bad_holidays], ignore_index=True
    )
    if len(quarantined):
        write_parquet(quarantined.astype(str), args.quarantine_dir / "rows.parquet")
    daily = daily[reasons == ""].copy()
    daily[PAIR] = daily[PAIR].astype(str)
    panel = build_panel(
        daily, static.drop(columns=[AS_OF, VERSION_COLUMN], errors="ignore"), RegionalHolidays.from_frame(holidays)
    )
    if panel.end != as_of:
        print(f"note: the history ends {panel.end - dt.timedelta(days=1)}, forecasts start on it + 1 day", flush=True)

    deepar = model_store.load_predictor(model_dir, model_store.FINAL_PREDICTOR)
    batch = forecast_active(panel, manifest.forecaster, deepar, manifest.n_paths, args.seed)
    panel, cold = batch.panel, batch.cold_start
    paths = served_paths(batch, manifest.spread, manifest.reconcile_to_total, args.seed)
    first_day = panel.end
    args.predictions_dir.mkdir(parents=True, exist_ok=True)
    frame = forecast_frame(panel.keys, paths, first_day, cold).assign(
        model_version=manifest.model_version, as_of=as_of.isoformat()
    )
    write_parquet(frame, args.predictions_dir / "forecasts.parquet")
    lines = 0
    with (args.predictions_dir / ONLINE_RECORDS).open("w", encoding="utf-8") as online:
        records = itertools.chain(  # streamed: a record is 3,000 numbers, a run 10,000s of records
            series_records(panel.keys, paths, first_day, manifest.model_version, cold),
            aggregate_records(
                panel.keys, paths, panel.units, first_day, manifest.model_version, cold, args.seed, manifest.spread
            ),
        )
        for record in records:
            online.write(json.dumps(online_line(record), separators=(",", ":")) + "\n")
            lines += 1
    return (
        f"forecast {len(panel.keys):,} series ({int(cold.sum()):,} cold starts) with {manifest.forecaster} "
        f"{manifest.model_version}: {lines:,} online records"
    )


if __name__ == "__main__":
    print(main(sys.argv[1:]))
