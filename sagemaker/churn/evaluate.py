"""Processing step: evaluate the churn model and the classic baselines on the held-out test cutoff.

Baselines, on the same rows:
- the recency rule: score = days since the last purchase (its Brier score uses a one-feature logistic fit of log
  recency on the train split, which ranks exactly like the rule);
- logistic regression on recency, frequency and monetary value, fitted on the train split;
- BG/NBD (Fader, Hardie and Lee 2005): fitted on the test cutoff's customers (their purchase counts and ages, no
  label), scored as the probability of no purchase within the label horizon.
The logistic baselines learn from the same history as the model's final fit (the `train` input is prepare's refit
split). The margin over the best baseline comes with a 95% interval from a paired bootstrap of the test customers,
so a difference within the noise of one cutoff reads as such. Also the cold-start prior of the model against the
registered customers without history at the test cutoff.

Writes `evaluation.json`, which the pipeline's gate reads (`churn.auc`, `margin_lower_95`: the lower end of the
margin's interval) and the RegisterModel step records (`artifact.sha256`, `model_version`, `feature_set_version`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from step_io import read_channel, sha256_of, write_json

from shelfwise.churn import bgnbd, scoring
from shelfwise.churn.features import CUTOFF, FEATURE_SET, LABEL

RFM = ["recency_days", "frequency", "monetary"]
BASE = Path("/opt/ml/processing")
BOOTSTRAP_SAMPLES = 200
COLD_START_FILE = "cold_start.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=BASE / "model", help="holds model.tar.gz")
    parser.add_argument("--train-dir", type=Path, default=BASE / "train")
    parser.add_argument("--test-dir", type=Path, default=BASE / "test")
    parser.add_argument("--evaluation-dir", type=Path, default=BASE / "evaluation")
    return parser.parse_args(argv)


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
    return np.asarray(np.sign(values) * np.log1p(np.abs(values)))


def fit_logistic(train: pd.DataFrame, columns: list[str]) -> Any:
    model = make_pipeline(FunctionTransformer(signed_log), StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train[columns].to_numpy(dtype=np.float64), train[LABEL].to_numpy())
    return model


def bgnbd_baseline(test: pd.DataFrame) -> tuple[np.ndarray, dict[str, float]]:
    """P(no purchase within the horizon) of each test customer under BG/NBD fitted on the test cutoff's customers."""
    x, t_x, age = scoring.bgnbd_inputs({name: test[name].to_numpy() for name in scoring.BGNBD_INPUTS})
    keep = age > 0
    params = bgnbd.fit(x[keep], t_x[keep], age[keep])
    probability = bgnbd.probability_no_purchase(params, x, t_x, age, FEATURE_SET.label_horizon_days)
    return probability, {k: float(v) for k, v in vars(params).items()}


def margin_interval(labels: np.ndarray, model: np.ndarray, baseline: np.ndarray, seed: int = 0) -> list[float]:
    """95% interval of AUC(model) - AUC(baseline) over customers resampled with replacement (paired)."""
    rng = np.random.default_rng(seed)
    margins = []
    for _ in range(BOOTSTRAP_SAMPLES):
        pick = rng.integers(0, len(labels), len(labels))
        if labels[pick].min() == labels[pick].max():
            continue
        margins.append(roc_auc_score(labels[pick], model[pick]) - roc_auc_score(labels[pick], baseline[pick]))
    low, high = np.percentile(margins, [2.5, 97.5])
    return [float(low), float(high)]


def cold_start_check(test_dir: Path, prior: float) -> dict[str, Any]:
    """The model's cold-start prior against the customers without history at the test cutoff."""
    path = test_dir / COLD_START_FILE
    summary = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"customers": 0, "churned": 0}
    observed = summary["churned"] / summary["customers"] if summary["customers"] else None
    return {**summary, "prior": prior, "observed_rate": observed}


def evaluate(archive: Path, train: pd.DataFrame, test: pd.DataFrame, test_dir: Path) -> dict[str, Any]:
    model = scoring.load_archive(archive)
    labels = test[LABEL].to_numpy(dtype=np.int64)
    if len(np.unique(labels)) < 2:
        raise SystemExit("the test cutoff has a single class; AUC is undefined")
    churn = scoring.predict(model, {name: test[name].to_numpy() for name in model.stored_features})
    recency = test["recency_days"].to_numpy(dtype=np.float64)
    recency_p = fit_logistic(train, ["recency_days"]).predict_proba(recency.reshape(-1, 1))[:, 1]
    rfm = fit_logistic(train, RFM).predict_proba(test[RFM].to_numpy(dtype=np.float64))[:, 1]
    no_purchase, bgnbd_params = bgnbd_baseline(test)
    scores = {"recency": recency, "logistic_rfm": rfm, "bgnbd": no_purchase}
    baselines = {
        "recency": metrics(labels, recency, recency_p),
        "logistic_rfm": metrics(labels, rfm, rfm),
        "bgnbd": metrics(labels, no_purchase, no_purchase),
    }
    model_metrics = metrics(labels, churn, churn)
    best = max(baselines, key=lambda name: baselines[name]["auc"])
    interval = margin_interval(labels, churn, scores[best])
    return {
        "churn": model_metrics,
        "baselines": baselines,
        "best_baseline": best,
        "best_baseline_auc": baselines[best]["auc"],
        "margin_over_best_baseline": model_metrics["auc"] - baselines[best]["auc"],
        "margin_interval_95": interval,
        # what the gate reads: the model must beat the best baseline beyond the noise of one cutoff
        "margin_lower_95": interval[0],
        "bgnbd_params_at_test_cutoff": bgnbd_params,
        "cold_start": cold_start_check(test_dir, model.cold_start_rate),
        "n": len(test),
        "positives": int(labels.sum()),
        "base_rate": float(labels.mean()),
        "cutoff": str(pd.Timestamp(test[CUTOFF].max()).date()),
        "train_cutoffs": sorted({str(pd.Timestamp(c).date()) for c in train[CUTOFF]}),
        "label_horizon_days": FEATURE_SET.label_horizon_days,
        "model_version": model.model_version,
        "feature_set_version": model.feature_set_version,
        "artifact": {"sha256": sha256_of(archive)},
    }


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    archive = args.model_dir / "model.tar.gz"
    if not archive.is_file():
        raise SystemExit(f"no model.tar.gz in {args.model_dir}")
    report = evaluate(archive, read_channel(args.train_dir), read_channel(args.test_dir), args.test_dir)
    write_json(report, args.evaluation_dir / "evaluation.json")
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
