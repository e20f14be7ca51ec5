"""Training step: XGBoost churn classifier with early stopping, class weighting and calibrated probabilities.

Container contract: channels `train` and `validation` (`SM_CHANNEL_*`), the model to `SM_MODEL_DIR`,
hyperparameters from `<SM_INPUT_CONFIG_DIR>/hyperparameters.json` and `--name value` arguments (arguments win).

Imbalance: positives get weight `scale_pos_weight` (default `auto` = negatives / positives on the train split) so
that splits pay equal attention to both classes. Weighting multiplies the model's odds by that weight, so the
served probabilities would be too high; the script removes the distortion by shifting the model's base margin
(calibration in the large: the intercept that makes the mean predicted probability on the validation cutoff equal
its churn rate). The shift lives in `model.json`'s base score, so anything that loads the booster serves calibrated
probabilities. The expected calibration error before and after is recorded in `metadata.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

ID = "customer_id"
CUTOFF = "cutoff"
LABEL = "churned"
NOT_FEATURES = {ID, CUTOFF, LABEL, "dt"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--train", type=Path, default=Path(os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    )
    parser.add_argument(
        "--validation",
        type=Path,
        default=Path(os.environ.get("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation")),
    )
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")))
    parser.add_argument("--features", default="", help="comma-separated feature names; default: every other column")
    parser.add_argument("--max_depth", type=int, default=4)
    parser.add_argument("--eta", type=float, default=0.05)
    parser.add_argument("--num_round", type=int, default=600)
    parser.add_argument("--early_stopping_rounds", type=int, default=40)
    parser.add_argument("--min_child_weight", type=float, default=5.0)
    parser.add_argument("--subsample", type=float, default=0.8)
    parser.add_argument("--colsample_bytree", type=float, default=0.8)
    parser.add_argument("--reg_lambda", type=float, default=1.0)
    parser.add_argument("--scale_pos_weight", default="auto", help="'auto' (negatives/positives) or a number")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nthread", type=int, default=0, help="0 = all cores")
    parser.add_argument("--label_horizon_days", type=int, default=90)
    parser.add_argument("--risk_low", type=float, default=0.3)
    parser.add_argument("--risk_high", type=float, default=0.6)
    parser.add_argument("--calibration_bins", type=int, default=10)
    parser.add_argument("--model_version", default="", help="default: derived from the data and hyperparameters")
    parser.add_argument("--trained_at", default="", help="default: the validation cutoff")
    parser.set_defaults(**hyperparameters_file(parser))
    args, _unknown = parser.parse_known_args(argv)  # sagemaker_* entries are for the container, not for us
    return args


def hyperparameters_file(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Known hyperparameters from hyperparameters.json (values are strings, JSON-quoted by some SDKs)."""
    config_dir = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"))
    path = config_dir / "hyperparameters.json"
    if not path.exists():
        return {}
    known = {action.dest for action in parser._actions}
    values: dict[str, str] = {}
    for key, raw in json.loads(path.read_text(encoding="utf-8")).items():
        if key.replace("-", "_") not in known:
            continue
        try:
            decoded = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            decoded = raw
        values[key.replace("-", "_")] = str(decoded)
    return values


def read_split(directory: Path) -> pd.DataFrame:
    files = sorted(directory.rglob("*.parquet"))
    if not files:
        raise SystemExit(f"no Parquet files in channel {directory}")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def feature_names(args: argparse.Namespace, train: pd.DataFrame) -> list[str]:
    if args.features:
        names = [n.strip() for n in args.features.split(",") if n.strip()]
        missing = [n for n in names if n not in train.columns]
        if missing:
            raise SystemExit(f"train channel lacks features {missing}")
        return names
    return [c for c in train.columns if c not in NOT_FEATURES]


def matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    return frame[features].to_numpy(dtype=np.float32)


def positive_weight(setting: str, labels: np.ndarray) -> float:
    if setting != "auto":
        return float(setting)
    positives = float(labels.sum())
    negatives = float(len(labels) - positives)
    if positives == 0 or negatives == 0:
        raise SystemExit("the train split has a single class; cannot train a churn classifier")
    return negatives / positives


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int) -> float:
    """Mean |observed rate - mean probability| over equal-width probability bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(labels[mask].mean() - probabilities[mask].mean())
    return float(error)


def intercept_shift(margins: np.ndarray, target_rate: float) -> float:
    """The constant added to every margin that makes the mean probability equal `target_rate` (bisection)."""
    low, high = -30.0, 30.0
    for _ in range(100):
        mid = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(margins + mid)))) < target_rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def with_base_margin_shift(booster: xgb.Booster, shift: float) -> xgb.Booster:
    """A copy of a binary:logistic booster whose every margin is `shift` higher (its base score moved)."""
    model = json.loads(booster.save_raw("json"))
    params = model["learner"]["learner_model_param"]
    base = float(str(params["base_score"]).strip("[]"))
    base_margin = math.log(base / (1 - base))
    params["base_score"] = f"[{1 / (1 + math.exp(-(base_margin + shift)))!r}]"
    shifted = xgb.Booster()
    shifted.load_model(bytearray(json.dumps(model).encode()))
    return shifted


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, bins: int) -> dict[str, float]:
    return {
        "auc": float(roc_auc_score(labels, probabilities)),
        "pr_auc": float(average_precision_score(labels, probabilities)),
        "brier": float(brier_score_loss(labels, probabilities)),
        "logloss": float(log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "ece": expected_calibration_error(labels, probabilities, bins),
    }


def feature_ranges(frame: pd.DataFrame, features: list[str]) -> dict[str, list[float]]:
    return {name: [float(frame[name].min()), float(frame[name].max())] for name in features}


def version_for(train: pd.DataFrame, validation: pd.DataFrame, params: dict[str, Any], cutoff: str) -> str:
    """A version that changes when the data or the hyperparameters change, and only then."""
    digest = hashlib.sha256()
    for frame in (train, validation):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    return f"{cutoff.replace('-', '')}-{digest.hexdigest()[:10]}"


def train_model(args: argparse.Namespace) -> dict[str, Any]:
    """Train, calibrate and write the artifact; returns metadata.json's content."""
    train, validation = read_split(args.train), read_split(args.validation)
    features = feature_names(args, train)
    y_train, y_val = train[LABEL].to_numpy(dtype=np.float32), validation[LABEL].to_numpy(dtype=np.float32)
    if len(np.unique(y_val)) < 2:
        raise SystemExit("the validation split has a single class; cannot early-stop or calibrate")
    weight = positive_weight(args.scale_pos_weight, y_train)
    params: dict[str, Any] = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        # early stopping on log loss (the last metric), weighted on validation as in training: stopping on AUC
        # alone halts while the margins are still too flat, which no intercept shift can calibrate
        "eval_metric": ["auc", "logloss"],
        "max_depth": args.max_depth,
        "eta": args.eta,
        "min_child_weight": args.min_child_weight,
        "subsample": args.subsample,
        "colsample_bytree": args.colsample_bytree,
        "lambda": args.reg_lambda,
        "scale_pos_weight": weight,
        "seed": args.seed,
        "nthread": args.nthread,
    }
    dtrain = xgb.DMatrix(matrix(train, features), label=y_train, feature_names=features)
    dval = xgb.DMatrix(
        matrix(validation, features), label=y_val, weight=np.where(y_val == 1, weight, 1.0), feature_names=features
    )
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=args.num_round,
        evals=[(dval, "validation")],
        early_stopping_rounds=args.early_stopping_rounds,
        verbose_eval=False,
    )
    best_iteration = int(booster.best_iteration)
    booster = booster[: best_iteration + 1]
    raw_margin = booster.predict(dval, output_margin=True)
    shift = intercept_shift(raw_margin, float(y_val.mean()))
    calibrated = with_base_margin_shift(booster, shift)
    before = expected_calibration_error(y_val, 1 / (1 + np.exp(-raw_margin)), args.calibration_bins)
    metrics = classification_metrics(y_val, calibrated.predict(dval), args.calibration_bins)
    cutoff = str(pd.Timestamp(validation[CUTOFF].max()).date())
    version_params = {k: v for k, v in vars(args).items() if k not in {"train", "validation", "model_dir"}}
    metadata = {
        "model_version": args.model_version or version_for(train, validation, version_params, cutoff),
        "trained_at": args.trained_at or cutoff,
        "cutoff": cutoff,
        "label_horizon_days": args.label_horizon_days,
        "base_rate": float(y_val.mean()),
        "feature_ranges": feature_ranges(pd.concat([train, validation]), features),
        "metrics": {
            "validation": metrics,
            "ece_before_calibration": before,
            "calibration_shift": shift,
            "scale_pos_weight": weight,
            "best_iteration": best_iteration,
            "n_train": len(train),
            "n_validation": len(validation),
            "train_cutoffs": sorted({str(pd.Timestamp(c).date()) for c in train[CUTOFF]}),
        },
        "risk_bands": {"low": args.risk_low, "high": args.risk_high},
    }
    write_artifact(args.model_dir, calibrated, features, metadata)
    return metadata


def write_artifact(model_dir: Path, booster: xgb.Booster, features: list[str], metadata: dict[str, Any]) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / "model.json"))
    (model_dir / "features.json").write_text(json.dumps({"features": features}, indent=2), encoding="utf-8")
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True), encoding="utf-8")


def main(argv: list[str]) -> None:
    metadata = train_model(parse_args(argv))
    print(json.dumps({"model_version": metadata["model_version"], **metadata["metrics"]["validation"]}))


if __name__ == "__main__":
    main(sys.argv[1:])
