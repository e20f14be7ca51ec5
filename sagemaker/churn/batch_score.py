"""Processing step: score every customer of one serving partition with the approved churn model it is given.

The model is the newest approved package (the caller resolves it, `shelfwise.pipelines.registry`), verified here
against the sha256 recorded at its registration; a model trained on another feature-set version than the serving
features is refused with the two versions named. The features must be exactly one cutoff (the partition the
day's feature job wrote): a prefix holding several is refused, so a run never scores a stale partition by accident.

Writes `predictions.parquet` (customer_id, probability, model_version, as_of, and the three features that push each
customer's risk up most with their SHAP contributions to the logit) and `online_records.jsonl`, what the online
store holds, one JSON object per line: each scored customer's stored `features` (null for a missing value),
`as_of`, `feature_set_version`, `probability` and `model_version`, and, when the customers channel is given, a
cold-start line (`features` null, no score) for every registered customer without serving features. Rows without
a customer id go to `quarantine/` with a reason.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from step_io import parquet_files, partition_value, read_partitioned, registered_archive, write_parquet

from shelfwise.churn import scoring
from shelfwise.churn.features import CUTOFF, FEATURE_NAMES, FEATURE_SET, VERSION_COLUMN

ID = FEATURE_SET.entity.join_key
DATE_PARTITION = "dt"
ONLINE_RECORDS = "online_records.jsonl"
BASE = Path("/opt/ml/processing")
REASONS = 3
PREDICTION_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string(), nullable=False),
        pa.field("probability", pa.float64(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("as_of", pa.string(), nullable=False),
        pa.field("top_reasons", pa.list_(pa.string())),
        pa.field("top_contributions", pa.list_(pa.float64())),
    ]
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=BASE / "model", help="holds model.tar.gz")
    parser.add_argument("--model-sha256", default="", help="the sha256 recorded when the package was registered")
    parser.add_argument("--model-package", default="", help="the package's ARN, recorded with the predictions")
    parser.add_argument(
        "--serving-partition",
        default="",
        help="the S3 URI of the serving partition (its `cutoff=` names the date its files do not carry)",
    )
    parser.add_argument("--features-dir", type=Path, default=BASE / "input" / "features")
    parser.add_argument(
        "--customers-dir",
        type=Path,
        default=BASE / "input" / "customers",
        help="the raw customers table; cold-start lines are written only if this folder exists",
    )
    parser.add_argument("--predictions-dir", type=Path, default=BASE / "predictions")
    parser.add_argument("--quarantine-dir", type=Path, default=BASE / "quarantine")
    parser.add_argument("--batch-rows", type=int, default=200_000)
    return parser.parse_args(argv)


def read_customer_ids(root: Path) -> tuple[list[str], int]:
    """Registered customer ids of the newest `dt=` snapshot under `root` (all files if unpartitioned), sorted and
    unique, and the number of rows without an id."""
    files = parquet_files(root)
    if not files:
        raise SystemExit(f"no Parquet files under {root}")
    snapshots = {path: partition_value(path, DATE_PARTITION) for path in files}
    newest = max((day for day in snapshots.values() if day is not None), default=None)
    ids = pa.concat_arrays(
        [
            pq.read_table(path, columns=[ID]).column(ID).combine_chunks().cast(pa.string())
            for path, day in snapshots.items()
            if day == newest
        ]
    )
    return sorted({str(c) for c in ids.drop_null().to_pylist()}), ids.null_count


def online_lines(
    rows: pd.DataFrame, features: list[str], probabilities: np.ndarray, model_version: str, as_of: str
) -> list[str]:
    """One JSON line per scored customer as the online store holds it; a missing feature value is null (the
    publisher rejects that line with its reason, since the online store keeps numbers only)."""
    values = rows[features].to_numpy(dtype=np.float64)
    lines = []
    for customer_id, row, probability in zip(rows[ID].astype(str), values, probabilities, strict=True):
        record = {
            ID: customer_id,
            "features": {name: None if np.isnan(v) else float(v) for name, v in zip(features, row, strict=True)},
            "as_of": as_of,
            VERSION_COLUMN: FEATURE_SET.qualified_version,
            "probability": float(probability),
            "model_version": model_version,
        }
        lines.append(json.dumps(record, allow_nan=False) + "\n")
    return lines


def cold_start_lines(customer_ids: list[str], as_of: str) -> list[str]:
    """A line per registered customer without serving features: no features, no score (the API answers them with
    the model's cold-start prior)."""
    version = FEATURE_SET.qualified_version
    return [json.dumps({ID: c, "features": None, "as_of": as_of, VERSION_COLUMN: version}) + "\n" for c in customer_ids]


def top_reasons(features: tuple[str, ...], contributions: np.ndarray) -> tuple[list[list[str]], list[list[float]]]:
    """Per row, up to REASONS features with the largest positive contributions, largest first."""
    order = np.argsort(-contributions[:, :-1], axis=1, kind="stable")[:, :REASONS]
    names, values = [], []
    for row, picks in zip(contributions, order, strict=True):
        kept = [i for i in picks if row[i] > 0]
        names.append([features[i] for i in kept])
        values.append([float(row[i]) for i in kept])
    return names, values


def serving_rows(features_dir: Path, quarantine_dir: Path, partition_uri: str) -> tuple[pd.DataFrame, int]:
    """The serving partition's rows (exactly one cutoff) and the number quarantined for a missing id or cutoff."""
    named = re.search(rf"{CUTOFF}=(\d{{4}}-\d{{2}}-\d{{2}})", partition_uri)
    data = read_partitioned(features_dir, CUTOFF, default=named.group(1) if named else None)
    bad = data[ID].isna() | data[CUTOFF].isna()
    if bad.any():
        rejected = data[bad].assign(reason=np.where(data[bad][ID].isna(), f"missing {ID}", f"missing {CUTOFF}"))
        write_parquet(rejected, quarantine_dir / "part-00000.parquet")
    data = data[~bad]
    cutoffs = sorted({str(c.date()) for c in data[CUTOFF]})
    if len(cutoffs) != 1:
        raise SystemExit(
            f"the serving features hold {len(cutoffs)} cutoffs ({', '.join(cutoffs[:5])}); pass the exact partition "
            "(features/churn/serving/cutoff=YYYY-MM-DD/) the day's feature job wrote"
        )
    versions = set(data[VERSION_COLUMN].astype(str)) if VERSION_COLUMN in data.columns else {"unknown"}
    if versions != {FEATURE_SET.qualified_version}:
        raise SystemExit(
            f"serving features are of feature set {sorted(versions)}; this code serves {FEATURE_SET.qualified_version}"
        )
    return data.sort_values(ID, kind="stable").reset_index(drop=True), int(bad.sum())


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    archive = registered_archive(args.model_dir, args.model_sha256)
    try:
        model = scoring.load_archive(archive)
    except scoring.ArtifactError as exc:
        raise SystemExit(f"cannot serve model {args.model_package or archive}: {exc}") from None
    latest, quarantined = serving_rows(args.features_dir, args.quarantine_dir, args.serving_partition)
    customers, customers_without_id = (
        read_customer_ids(args.customers_dir) if args.customers_dir.exists() else (None, 0)
    )
    as_of = str(latest[CUTOFF].iloc[0].date()) if len(latest) else ""
    # The records keep every stored feature of the set, so any model of the same version can rescore them.
    stored = list(FEATURE_NAMES)
    missing = [name for name in stored if name not in latest.columns]
    if missing:
        raise SystemExit(f"serving features lack {', '.join(missing)}")
    args.predictions_dir.mkdir(parents=True, exist_ok=True)
    with (
        pq.ParquetWriter(args.predictions_dir / "predictions.parquet", PREDICTION_SCHEMA, compression="zstd") as writer,
        (args.predictions_dir / ONLINE_RECORDS).open("w", encoding="utf-8") as online,
    ):
        for start in range(0, len(latest), args.batch_rows):
            rows = latest.iloc[start : start + args.batch_rows]
            columns = {name: rows[name].to_numpy() for name in model.stored_features}
            contributions = scoring.predict(model, columns, contributions=True)
            probabilities = 1 / (1 + np.exp(-contributions.sum(axis=1, dtype=np.float64)))
            reasons, values = top_reasons(model.feature_names, contributions)
            batch = {
                ID: rows[ID].astype(str).tolist(),
                "probability": probabilities,
                "model_version": [model.model_version] * len(rows),
                "as_of": [as_of] * len(rows),
                "top_reasons": reasons,
                "top_contributions": values,
            }
            writer.write_table(pa.table(batch, schema=PREDICTION_SCHEMA))
            online.writelines(online_lines(rows, stored, probabilities, model.model_version, as_of))
        cold = sorted(set(customers) - set(latest[ID].astype(str))) if customers is not None else []
        online.writelines(cold_start_lines(cold, as_of))
    summary = {
        "scored": len(latest),
        "as_of": as_of,
        "model_version": model.model_version,
        "model_package": args.model_package,
        "feature_set_version": model.feature_set_version,
        "quarantined": quarantined,
        "cold_starts": len(cold) if customers is not None else None,
        "customers_without_id": customers_without_id,
        "online_records": len(latest) + len(cold),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
