"""Training step: XGBoost churn classifier on the stored features and BG/NBD ones, tuned and calibrated on validation.

Container contract: channels `train` and `validation` (`SM_CHANNEL_*`), the model to `SM_MODEL_DIR`,
hyperparameters from `<SM_INPUT_CONFIG_DIR>/hyperparameters.json` and `--name value` arguments (arguments win).

BG/NBD features (`shelfwise.churn.bgnbd`): at each training cutoff the BG/NBD model is fitted on that cutoff's
customers (their purchase counts and ages: no label, nothing after the cutoff) and its probabilities become two
features. The parameters fitted at the validation cutoff go into the artifact, so evaluation, batch scoring and the
API derive the features with parameters fitted before the test cutoff.

Tuning: a small grid of tree shapes, each trained on `train` and early-stopped on the validation cutoff (whose labels
end before the test cutoff, see prepare.py); the shape with the best validation AUC wins. The final model is then
refitted with that shape on `refit`, every cutoff whose labels had closed by the test cutoff, for as many rounds as
early stopping found, scaled by the rows: more and more recent history, still nothing from the test window.

Imbalance: positives get weight `scale_pos_weight` (`auto` = negatives / positives); the distortion this puts in the
probabilities is removed by shifting the model's base margin until the mean probability on the latest cutoff it
learned from equals that cutoff's churn rate (the shift lives in `model.json`'s base score, so anything that loads
the booster serves calibrated probabilities). The validation metrics and calibration errors are the tuned model's,
measured on the validation cutoff it never trained on.
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
from shelfwise.churn.features import CUTOFF, DERIVED_NAMES, FEATURE_NAMES, FEATURE_SET, LABEL, VERSION_COLUMN
from shelfwise.churn.scoring import bgnbd_inputs, derived_features

COLD_START_FILE = "cold_start.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    channel = os.environ.get
    parser.add_argument("--train", type=Path, default=Path(channel("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")))
    parser.add_argument(
        "--validation", type=Path, default=Path(channel("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"))
    )
    parser.add_argument(
        "--refit", type=Path, default=Path(channel("SM_CHANNEL_REFIT", "/opt/ml/input/data/refit")), help="optional"
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


def read_split(directory: Path) -> pd.DataFrame:
    frame = read_channel(directory)
    frame[CUTOFF] = pd.to_datetime(frame[CUTOFF]).dt.normalize()
    versions = set(frame.get(VERSION_COLUMN, pd.Series(["unknown"])).astype(str))
    if versions != {FEATURE_SET.qualified_version}:
        raise SystemExit(
            f"{directory} holds feature sets {sorted(versions)}; this code trains on {FEATURE_SET.qualified_version}"
        )
    return frame


def matrix(frame: pd.DataFrame, features: list[str], weight: float | None = None) -> xgb.DMatrix:
    labels = frame[LABEL].to_numpy(dtype=np.float32)
    weights = None if weight is None else np.where(labels == 1, weight, 1.0)
    return xgb.DMatrix(frame[features].to_numpy(np.float32), label=labels, weight=weights, feature_names=features)


def calibrated(booster: xgb.Booster, frame: pd.DataFrame, features: list[str]) -> tuple[xgb.Booster, float]:
    """The booster shifted so that its mean probability on `frame` is `frame`'s churn rate; and the shift."""
    margin = booster.predict(matrix(frame, features), output_margin=True)
    shift = intercept_shift(margin, float(frame[LABEL].mean()))
    return with_base_margin_shift(booster, shift), shift


def train_model(args: argparse.Namespace) -> dict[str, Any]:
    """Fit BG/NBD, tune, refit, calibrate and write the artifact; returns metadata.json's content."""
    train, validation = read_split(args.train), read_split(args.validation)
    refit = read_split(args.refit) if args.refit.is_dir() and any(args.refit.rglob("*.parquet")) else None
    features = list(FEATURE_NAMES)
    params_by_cutoff: dict[pd.Timestamp, bgnbd.BgNbdParams] = {}
    if args.bgnbd == "true":
        history = pd.concat([f for f in (train, validation, refit) if f is not None]).drop_duplicates(
            ["customer_id", CUTOFF]
        )
        for cutoff, rows in history.groupby(CUTOFF):
            params_by_cutoff[pd.Timestamp(str(cutoff))] = fit_bgnbd(rows)
        train, validation = with_derived(train, params_by_cutoff), with_derived(validation, params_by_cutoff)
        refit = None if refit is None else with_derived(refit, params_by_cutoff)
        features += list(DERIVED_NAMES)
    y_train, y_val = train[LABEL].to_numpy(dtype=np.float32), validation[LABEL].to_numpy(dtype=np.float32)
    if len(np.unique(y_val)) < 2:
        raise SystemExit("the validation split has a single class; cannot early-stop or calibrate")
    weight = positive_weight(args.scale_pos_weight, y_train)
    dtrain, dval = matrix(train, features), matrix(validation, features, weight)
    base_params: dict[str, Any] = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        # early stopping on log loss, weighted on validation as in training (compares like with like)
        "eval_metric": ["auc", "logloss"],
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
        rounds = int(booster.best_iteration) + 1
        scores = booster.predict(dval, iteration_range=(0, rounds))
        trial = {**shape, "best_iteration": rounds - 1, "validation_auc": float(roc_auc_score(y_val, scores))}
        trials.append((trial, booster[:rounds]))
    best, tuned = max(trials, key=lambda t: t[0]["validation_auc"])
    tuned_calibrated, _ = calibrated(tuned, validation, features)
    before = expected_calibration_error(y_val, tuned.predict(matrix(validation, features)), args.calibration_bins)
    metrics = classification_metrics(
        y_val, tuned_calibrated.predict(matrix(validation, features)), args.calibration_bins
    )
    final_rows, final = train, tuned
    if refit is not None:
        final_rows = refit
        rounds = max(1, round((best["best_iteration"] + 1) * len(refit) / len(train)))
        shape = {k: best[k] for k in ("max_depth", "min_child_weight")}
        final = xgb.train({**base_params, **shape}, matrix(refit, features), num_boost_round=rounds)
    latest_cutoff = final_rows[CUTOFF].max()
    latest = final_rows[final_rows[CUTOFF] == latest_cutoff]
    served, shift = calibrated(final, latest, features)
    cutoff_text = str(latest_cutoff.date())
    version_params = {
        k: str(v) for k, v in vars(args).items() if k not in {"train", "validation", "refit", "model_dir"}
    }
    base_rate = float(latest[LABEL].mean())
    prior = cold_start_prior(args.refit if refit is not None else args.validation, base_rate)
    metadata = {
        "model_version": args.model_version or version_for(final_rows, validation, version_params, cutoff_text),
        "feature_set_version": FEATURE_SET.qualified_version,
        "trained_at": cutoff_text,
        "cutoff": cutoff_text,
        "label_horizon_days": FEATURE_SET.label_horizon_days,
        "base_rate": base_rate,
        "cold_start_rate": prior["rate"],
        "cold_start": prior,
        "bgnbd": None
        if not params_by_cutoff
        else vars(params_by_cutoff[pd.Timestamp(latest_cutoff)]) | {"fitted_at": cutoff_text},
        "metrics": {
            "validation": metrics,
            "ece_before_calibration": before,
            "calibration_shift": shift,
            "scale_pos_weight": weight,
            "tuning": [trial for trial, _ in trials],
            "chosen": best,
            "refit": None
            if refit is None
            else {"rows": len(refit), "cutoffs": sorted({str(c.date()) for c in refit[CUTOFF]}), "rounds": rounds},
            "n_train": len(train),
            "n_validation": len(validation),
            "train_cutoffs": sorted({str(c.date()) for c in train[CUTOFF]}),
        },
        "risk_bands": {"low": args.risk_low, "high": args.risk_high},
    }
    write_artifact(args.model_dir, served, features, metadata)
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
