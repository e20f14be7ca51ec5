"""Training step: XGBoost churn classifier on the stored features and BG/NBD ones, tuned and calibrated on validation.

Container contract: channels `train` and `validation` (`SM_CHANNEL_*`), the model to `SM_MODEL_DIR`,
hyperparameters from `<SM_INPUT_CONFIG_DIR>/hyperparameters.json` and `--name value` arguments (arguments win).

BG/NBD features (`shelfwise.churn.bgnbd`): at each training cutoff the BG/NBD model is fitted on that cutoff's
customers (their purchase counts and ages: no label, nothing after the cutoff) and its probabilities become two
features. The parameters fitted at the validation cutoff go into the artifact, so evaluation, batch scoring and the
API derive the features with parameters fitted before the test cutoff.

Tuning: a small grid of tree shapes, each early-stopped on the validation cutoff (whose labels end before the test
cutoff, see prepare.py); the shape with the best validation log loss wins. Imbalance: positives get weight
`scale_pos_weight` (`auto` = negatives / positives); the distortion this puts in the probabilities is removed by
shifting the model's base margin until the mean probability on validation equals its churn rate (the shift lives in
`model.json`'s base score, so anything that loads the booster serves calibrated probabilities).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
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
from step_io import hyperparameters_file, read_channel

from shelfwise.churn import bgnbd
from shelfwise.churn.features import CUTOFF, DERIVED_NAMES, FEATURE_NAMES, FEATURE_SET, LABEL
from shelfwise.churn.scoring import bgnbd_inputs, derived_features

COLD_START_FILE = "cold_start.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    channel = os.environ.get
    parser.add_argument("--train", type=Path, default=Path(channel("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")))
    parser.add_argument(
        "--validation", type=Path, default=Path(channel("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"))
    )
    parser.add_argument("--model-dir", type=Path, default=Path(channel("SM_MODEL_DIR", "/opt/ml/model")))
    parser.add_argument("--max_depth", default="3,5", help="comma-separated candidates")
    parser.add_argument("--min_child_weight", default="5,50", help="comma-separated candidates")
    parser.add_argument("--eta", type=float, default=0.05)
    parser.add_argument("--num_round", type=int, default=800)
    parser.add_argument("--early_stopping_rounds", type=int, default=40)
    parser.add_argument("--subsample", type=float, default=0.8)
    parser.add_argument("--colsample_bytree", type=float, default=0.8)
    parser.add_argument("--reg_lambda", type=float, default=1.0)
    parser.add_argument("--scale_pos_weight", default="auto", help="'auto' (negatives/positives) or a number")
    parser.add_argument("--bgnbd", default="true", help="'true' to add the BG/NBD features")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nthread", type=int, default=0, help="0 = all cores")
    parser.add_argument("--risk_low", type=float, default=0.3)
    parser.add_argument("--risk_high", type=float, default=0.6)
    parser.add_argument("--calibration_bins", type=int, default=10)
    parser.add_argument("--model_version", default="", help="default: derived from the data and hyperparameters")
    parser.set_defaults(**hyperparameters_file(parser))
    args, _unknown = parser.parse_known_args(argv)  # sagemaker_* entries are for the container, not for us
    return args


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


def fit_bgnbd(rows: pd.DataFrame) -> bgnbd.BgNbdParams:
    """BG/NBD fitted on one cutoff's customers (no labels)."""
    x, t_x, age = bgnbd_inputs(
        {name: rows[name].to_numpy() for name in ("frequency", "recency_days", "first_purchase_days")}
    )
    keep = age > 0  # a first purchase on the cutoff's eve says nothing about rates yet
    return bgnbd.fit(x[keep], t_x[keep], age[keep])


def with_derived(frame: pd.DataFrame, params_by_cutoff: dict[pd.Timestamp, bgnbd.BgNbdParams]) -> pd.DataFrame:
    """`frame` with the BG/NBD features, each row's computed with the parameters fitted at its own cutoff."""
    parts = []
    for cutoff, rows in frame.groupby(CUTOFF, sort=True):
        columns = {name: rows[name].to_numpy() for name in rows.columns}
        parts.append(rows.assign(**derived_features(params_by_cutoff[pd.Timestamp(str(cutoff))], columns)))
    return pd.concat(parts).loc[frame.index]


def candidates(args: argparse.Namespace) -> list[dict[str, Any]]:
    depths = [int(v) for v in str(args.max_depth).split(",")]
    weights = [float(v) for v in str(args.min_child_weight).split(",")]
    return [{"max_depth": d, "min_child_weight": w} for d, w in itertools.product(depths, weights)]


def version_for(train: pd.DataFrame, validation: pd.DataFrame, params: dict[str, Any], cutoff: str) -> str:
    """A version that changes when the data or the hyperparameters change, and only then."""
    digest = hashlib.sha256()
    for frame in (train, validation):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    return f"{cutoff.replace('-', '')}-{digest.hexdigest()[:10]}"


def cold_start_prior(validation_dir: Path, base_rate: float) -> dict[str, Any]:
    """The churn rate of registered customers without history at the validation cutoff (the base rate of buyers
    when there were none, as for a data set whose customers register with their first purchase)."""
    path = validation_dir / COLD_START_FILE
    summary = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"customers": 0, "churned": 0}
    if summary["customers"] == 0:
        return {**summary, "rate": base_rate, "source": "base rate of buyers: no customer without history"}
    return {**summary, "rate": summary["churned"] / summary["customers"], "source": "customers without history"}


def train_model(args: argparse.Namespace) -> dict[str, Any]:
    """Fit BG/NBD, tune, train, calibrate and write the artifact; returns metadata.json's content."""
    train, validation = read_channel(args.train), read_channel(args.validation)
    for frame in (train, validation):
        frame[CUTOFF] = pd.to_datetime(frame[CUTOFF]).dt.normalize()
    versions = set(train.get("feature_set_version", pd.Series([FEATURE_SET.qualified_version])).astype(str))
    if versions != {FEATURE_SET.qualified_version}:
        raise SystemExit(
            f"training rows carry feature sets {sorted(versions)}; this code trains on {FEATURE_SET.qualified_version}"
        )
    features = list(FEATURE_NAMES)
    params_by_cutoff: dict[pd.Timestamp, bgnbd.BgNbdParams] = {}
    if args.bgnbd == "true":
        for cutoff, rows in pd.concat([train, validation]).groupby(CUTOFF):
            params_by_cutoff[pd.Timestamp(str(cutoff))] = fit_bgnbd(rows)
        train, validation = with_derived(train, params_by_cutoff), with_derived(validation, params_by_cutoff)
        features += list(DERIVED_NAMES)
    y_train, y_val = train[LABEL].to_numpy(dtype=np.float32), validation[LABEL].to_numpy(dtype=np.float32)
    if len(np.unique(y_val)) < 2:
        raise SystemExit("the validation split has a single class; cannot early-stop or calibrate")
    weight = positive_weight(args.scale_pos_weight, y_train)
    dtrain = xgb.DMatrix(train[features].to_numpy(np.float32), label=y_train, feature_names=features)
    # Weighted as in training: early stopping on log loss compares like with like.
    dval = xgb.DMatrix(
        validation[features].to_numpy(np.float32),
        label=y_val,
        weight=np.where(y_val == 1, weight, 1.0),
        feature_names=features,
    )
    base_params: dict[str, Any] = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "eval_metric": ["auc", "logloss"],  # the last one stops early
        "eta": args.eta,
        "subsample": args.subsample,
        "colsample_bytree": args.colsample_bytree,
        "lambda": args.reg_lambda,
        "scale_pos_weight": weight,
        "seed": args.seed,
        "nthread": args.nthread,
    }
    trials = []
    for shape in candidates(args):
        booster = xgb.train(
            {**base_params, **shape},
            dtrain,
            num_boost_round=args.num_round,
            evals=[(dval, "validation")],
            early_stopping_rounds=args.early_stopping_rounds,
            verbose_eval=False,
        )
        trials.append(
            {
                **shape,
                "best_iteration": int(booster.best_iteration),
                "logloss": float(booster.best_score),
                "booster": booster,
            }
        )
    best = min(trials, key=lambda t: t["logloss"])
    booster = best["booster"][: best["best_iteration"] + 1]
    raw_margin = booster.predict(dval, output_margin=True)
    shift = intercept_shift(raw_margin, float(y_val.mean()))
    calibrated = with_base_margin_shift(booster, shift)
    before = expected_calibration_error(y_val, 1 / (1 + np.exp(-raw_margin)), args.calibration_bins)
    metrics = classification_metrics(y_val, calibrated.predict(dval), args.calibration_bins)
    cutoff = validation[CUTOFF].max()
    cutoff_text = str(cutoff.date())
    version_params = {k: str(v) for k, v in vars(args).items() if k not in {"train", "validation", "model_dir"}}
    base_rate = float(y_val.mean())
    metadata = {
        "model_version": args.model_version or version_for(train, validation, version_params, cutoff_text),
        "feature_set_version": FEATURE_SET.qualified_version,
        "trained_at": cutoff_text,
        "cutoff": cutoff_text,
        "label_horizon_days": FEATURE_SET.label_horizon_days,
        "base_rate": base_rate,
        "cold_start_rate": cold_start_prior(args.validation, base_rate)["rate"],
        "cold_start": cold_start_prior(args.validation, base_rate),
        "bgnbd": None if not params_by_cutoff else vars(params_by_cutoff[cutoff]) | {"fitted_at": cutoff_text},
        "metrics": {
            "validation": metrics,
            "ece_before_calibration": before,
            "calibration_shift": shift,
            "scale_pos_weight": weight,
            "tuning": [{k: v for k, v in t.items() if k != "booster"} for t in trials],
            "chosen": {k: best[k] for k in ("max_depth", "min_child_weight", "best_iteration")},
            "n_train": len(train),
            "n_validation": len(validation),
            "train_cutoffs": sorted({str(c.date()) for c in train[CUTOFF]}),
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
