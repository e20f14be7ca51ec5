"""Processing step: evaluate the churn model and two baselines on the held-out test cutoff.

Baselines, on the same rows: the recency rule (score = days since the last purchase; its Brier score uses a
one-feature logistic fit of log recency on the train split, which ranks exactly like the rule) and logistic
regression on recency, frequency and monetary value fitted on the train split. Writes `evaluation.json`, which the
pipeline's condition reads (`churn.auc`, `margin_over_best_baseline`).
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
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

LABEL = "churned"
CUTOFF = "cutoff"
RFM = ["recency_days", "frequency", "monetary"]
BASE = Path("/opt/ml/processing")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=BASE / "model", help="holds model.tar.gz or its files")
    parser.add_argument("--train-dir", type=Path, default=BASE / "train")
    parser.add_argument("--test-dir", type=Path, default=BASE / "test")
    parser.add_argument("--evaluation-dir", type=Path, default=BASE / "evaluation")
    return parser.parse_args(argv)


def read_split(directory: Path) -> pd.DataFrame:
    files = sorted(directory.rglob("*.parquet"))
    if not files:
        raise SystemExit(f"no Parquet files in {directory}")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def load_booster(model_dir: Path, scratch: Path) -> tuple[xgb.Booster, list[str], dict[str, object]]:
    """The booster, its feature order and its metadata, from `model.tar.gz` or from the unpacked files."""
    archive = model_dir / "model.tar.gz"
    if archive.exists():
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(scratch, filter="data")
        model_dir = scratch
    booster = xgb.Booster(model_file=str(model_dir / "model.json"))
    features = json.loads((model_dir / "features.json").read_text(encoding="utf-8"))["features"]
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    return booster, features, metadata


def top_decile_lift(labels: np.ndarray, scores: np.ndarray) -> float:
    """Churn rate among the 10% highest scores over the overall rate (ties broken by row order)."""
    top = np.argsort(-scores, kind="stable")[: max(1, int(np.ceil(len(scores) / 10)))]
    return float(labels[top].mean() / labels.mean())


def metrics(labels: np.ndarray, scores: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Ranking metrics on `scores`, the Brier score on `probabilities`."""
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "brier": float(brier_score_loss(labels, probabilities)),
        "top_decile_lift": top_decile_lift(labels, scores),
    }


def signed_log(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


def fit_logistic(train: pd.DataFrame, columns: list[str]) -> object:
    model = make_pipeline(FunctionTransformer(signed_log), StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train[columns].to_numpy(dtype=np.float64), train[LABEL].to_numpy())
    return model


def evaluate(model_dir: Path, train: pd.DataFrame, test: pd.DataFrame, scratch: Path) -> dict[str, object]:
    booster, features, metadata = load_booster(model_dir, scratch)
    labels = test[LABEL].to_numpy(dtype=np.int64)
    if len(np.unique(labels)) < 2:
        raise SystemExit("the test cutoff has a single class; AUC is undefined")
    churn = booster.inplace_predict(test[features].to_numpy(dtype=np.float32))
    recency = test["recency_days"].to_numpy(dtype=np.float64)
    recency_model = fit_logistic(train, ["recency_days"])
    rfm_model = fit_logistic(train, RFM)
    rfm = rfm_model.predict_proba(test[RFM].to_numpy(dtype=np.float64))[:, 1]  # type: ignore[attr-defined]
    recency_p = recency_model.predict_proba(recency.reshape(-1, 1))[:, 1]  # type: ignore[attr-defined]
    baselines = {"recency": metrics(labels, recency, recency_p), "logistic_rfm": metrics(labels, rfm, rfm)}
    model_metrics = metrics(labels, churn, churn)
    best = max(b["auc"] for b in baselines.values())
    return {
        "churn": model_metrics,
        "baselines": baselines,
        "best_baseline_auc": best,
        "margin_over_best_baseline": model_metrics["auc"] - best,
        "n": len(test),
        "positives": int(labels.sum()),
        "base_rate": float(labels.mean()),
        "cutoff": str(pd.Timestamp(test[CUTOFF].max()).date()),
        "model_version": metadata["model_version"],
    }


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        report = evaluate(args.model_dir, read_split(args.train_dir), read_split(args.test_dir), Path(scratch))
    args.evaluation_dir.mkdir(parents=True, exist_ok=True)
    (args.evaluation_dir / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
