"""Processing step: score every customer of the latest serving cutoff with the churn model.

Writes `predictions.parquet` (customer_id, probability, model_version, as_of, and the three features that push each
customer's risk up most with their SHAP contributions to the logit, from XGBoost's `pred_contribs`). Rows without
a customer id go to `quarantine/` with a reason; missing feature values are scored as missing, as in training.
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
    bad = data[ID].isna() | data[CUTOFF].isna()
    if bad.any():
        args.quarantine_dir.mkdir(parents=True, exist_ok=True)
        rejected = data[bad].assign(reason=np.where(data[bad][ID].isna(), f"missing {ID}", f"missing {CUTOFF}"))
        pq.write_table(pa.Table.from_pandas(rejected, preserve_index=False), args.quarantine_dir / "part-00000.parquet")
    data = data[~bad]
    as_of = data[CUTOFF].max()
    latest = data[data[CUTOFF] == as_of].sort_values(ID, kind="stable").reset_index(drop=True)
    with tempfile.TemporaryDirectory() as scratch:
        booster, features, metadata = load_booster(args.model_dir, Path(scratch))
    missing = [name for name in features if name not in latest.columns]
    if missing:
        raise SystemExit(f"serving features lack the model's features {missing}")
    args.predictions_dir.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(
        args.predictions_dir / "predictions.parquet", PREDICTION_SCHEMA, compression="zstd"
    ) as writer:
        for start in range(0, len(latest), args.batch_rows):
            rows = latest.iloc[start : start + args.batch_rows]
            probabilities, contributions = score(booster, features, rows)
            reasons, values = top_reasons(features, contributions)
            batch = {
                ID: rows[ID].astype(str).tolist(),
                "probability": probabilities,
                "model_version": [str(metadata["model_version"])] * len(rows),
                "as_of": [str(as_of.date())] * len(rows),
                "top_reasons": reasons,
                "top_contributions": values,
            }
            writer.write_table(pa.table(batch, schema=PREDICTION_SCHEMA))
    summary = {
        "scored": len(latest),
        "as_of": str(as_of.date()),
        "quarantined": int(bad.sum()),
        "older_rows": len(data) - len(latest),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
