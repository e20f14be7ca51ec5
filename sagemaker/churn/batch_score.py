"""Processing step: score every customer of the latest serving cutoff with the churn model.

Writes `predictions.parquet` (customer_id, probability, model_version, as_of, and the three features that push each
customer's risk up most with their SHAP contributions to the logit, from XGBoost's `pred_contribs`). Rows without
a customer id go to `quarantine/` with a reason; missing feature values are scored as missing, as in training.

Beside it, `online_records.jsonl` holds exactly what the online store needs, one JSON object per line: each scored
customer's `features` (null for a missing value), `as_of`, `probability` and `model_version`, and, when the
customers channel is given, a cold-start line (`features` null, no score) for every registered customer without
serving features. The publish Lambda streams this file into DynamoDB without pyarrow.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xgboost as xgb

ID = "customer_id"
CUTOFF = "cutoff"
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
    parser.add_argument("--model-dir", type=Path, default=BASE / "model", help="holds model.tar.gz or its files")
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


def read_feature_dir(root: Path) -> pd.DataFrame:
    """Every Parquet file under `root`; `cutoff` comes from the file or from its `cutoff=YYYY-MM-DD` folder."""
    files = sorted(p for p in root.rglob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        raise SystemExit(f"no Parquet files under {root}")
    frames = []
    for path in files:
        frame = pq.read_table(path).to_pandas()
        if CUTOFF not in frame.columns:
            folder = next((p.name for p in path.parents if p.name.startswith(f"{CUTOFF}=")), None)
            if folder is None:
                raise SystemExit(f"{path} has no {CUTOFF!r} column and is not under a {CUTOFF}=... folder")
            frame[CUTOFF] = folder.split("=", 1)[1]
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    data[CUTOFF] = pd.to_datetime(data[CUTOFF], errors="coerce").dt.normalize()
    return data


def read_customer_ids(root: Path) -> tuple[list[str], int]:
    """Registered customer ids of the newest `dt=` snapshot under `root` (all files if unpartitioned), sorted and
    unique, and the number of rows without an id."""
    files = sorted(p for p in root.rglob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        raise SystemExit(f"no Parquet files under {root}")
    snapshots = {path: _partition_value(path, DATE_PARTITION) for path in files}
    newest = max((day for day in snapshots.values() if day is not None), default=None)
    ids = pa.concat_arrays(
        [
            pq.read_table(path, columns=[ID]).column(ID).combine_chunks().cast(pa.string())
            for path, day in snapshots.items()
            if day == newest
        ]
    )
    without_id = ids.null_count
    return sorted({str(c) for c in ids.drop_null().to_pylist()}), without_id


def _partition_value(path: Path, name: str) -> str | None:
    folder = next((p.name for p in path.parents if p.name.startswith(f"{name}=")), None)
    return None if folder is None else folder.split("=", 1)[1]


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
            "probability": float(probability),
            "model_version": model_version,
        }
        lines.append(json.dumps(record, allow_nan=False) + "\n")
    return lines


def cold_start_lines(customer_ids: list[str], as_of: str) -> list[str]:
    """A line per registered customer without serving features: no features, no score (the API answers them with
    the model's base rate)."""
    return [json.dumps({ID: c, "features": None, "as_of": as_of}) + "\n" for c in customer_ids]


def load_booster(model_dir: Path, scratch: Path) -> tuple[xgb.Booster, list[str], dict[str, object]]:
    archive = model_dir / "model.tar.gz"
    if archive.exists():
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(scratch, filter="data")
        model_dir = scratch
    booster = xgb.Booster(model_file=str(model_dir / "model.json"))
    features = json.loads((model_dir / "features.json").read_text(encoding="utf-8"))["features"]
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    return booster, features, metadata


def score(booster: xgb.Booster, features: list[str], rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and per-feature contributions (last column: the bias) for `rows`."""
    matrix = xgb.DMatrix(rows[features].to_numpy(dtype=np.float32), feature_names=features)
    return booster.predict(matrix).astype(np.float64), booster.predict(matrix, pred_contribs=True)


def top_reasons(features: list[str], contributions: np.ndarray) -> tuple[list[list[str]], list[list[float]]]:
    """Per row, up to REASONS features with the largest positive contributions, largest first."""
    order = np.argsort(-contributions[:, :-1], axis=1, kind="stable")[:, :REASONS]
    names, values = [], []
    for row, picks in zip(contributions, order, strict=True):
        kept = [i for i in picks if row[i] > 0]
        names.append([features[i] for i in kept])
        values.append([float(row[i]) for i in kept])
    return names, values


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    data = read_feature_dir(args.features_dir)
    customers, customers_without_id = (
        read_customer_ids(args.customers_dir) if args.customers_dir.exists() else (None, 0)
    )
    bad = data[ID].isna() | data[CUTOFF].isna()
    if bad.any():
        args.quarantine_dir.mkdir(parents=True, exist_ok=True)
        rejected = data[bad].assign(reason=np.where(data[bad][ID].isna(), f"missing {ID}", f"missing {CUTOFF}"))
        pq.write_table(pa.Table.from_pandas(rejected, preserve_index=False), args.quarantine_dir / "part-00000.parquet")
    data = data[~bad]
    as_of = data[CUTOFF].max()
    as_of_text = str(as_of.date())
    latest = data[data[CUTOFF] == as_of].sort_values(ID, kind="stable").reset_index(drop=True)
    with tempfile.TemporaryDirectory() as scratch:
        booster, features, metadata = load_booster(args.model_dir, Path(scratch))
    missing = [name for name in features if name not in latest.columns]
    if missing:
        raise SystemExit(f"serving features lack the model's features {missing}")
    model_version = str(metadata["model_version"])
    args.predictions_dir.mkdir(parents=True, exist_ok=True)
    with (
        pq.ParquetWriter(args.predictions_dir / "predictions.parquet", PREDICTION_SCHEMA, compression="zstd") as writer,
        (args.predictions_dir / ONLINE_RECORDS).open("w", encoding="utf-8") as online,
    ):
        for start in range(0, len(latest), args.batch_rows):
            rows = latest.iloc[start : start + args.batch_rows]
            probabilities, contributions = score(booster, features, rows)
            reasons, values = top_reasons(features, contributions)
            batch = {
                ID: rows[ID].astype(str).tolist(),
                "probability": probabilities,
                "model_version": [model_version] * len(rows),
                "as_of": [as_of_text] * len(rows),
                "top_reasons": reasons,
                "top_contributions": values,
            }
            writer.write_table(pa.table(batch, schema=PREDICTION_SCHEMA))
            online.writelines(online_lines(rows, features, probabilities, model_version, as_of_text))
        cold = sorted(set(customers) - set(latest[ID].astype(str))) if customers is not None else []
        online.writelines(cold_start_lines(cold, as_of_text))
    summary = {
        "scored": len(latest),
        "as_of": as_of_text,
        "quarantined": int(bad.sum()),
        "older_rows": len(data) - len(latest),
        "cold_starts": len(cold) if customers is not None else None,
        "customers_without_id": customers_without_id,
        "online_records": len(latest) + len(cold),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
