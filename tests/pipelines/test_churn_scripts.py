"""The churn container scripts end to end through the container contract (env vars, folders, hyperparameters)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost as xgb

from shelfwise.churn_features import FEATURE_NAMES, LABEL
from shelfwise.churn_scoring import load_model, score
from shelfwise.pipelines.churn import SCRIPTS_DIR

pytestmark = pytest.mark.slow


def run_script(name: str, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    completed = subprocess.run(
        [sys.executable, str(SCRIPTS_DIR / name), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"{name} failed: {completed.stderr}")
    return completed.stdout + completed.stderr


def prepare(features: Path, out: Path, *extra: str) -> dict[str, Path]:
    dirs = {name: out / name for name in ("train", "validation", "test", "quarantine")}
    args = [f"--{name}-dir={path}" for name, path in dirs.items()]
    run_script("prepare.py", f"--features-dir={features}", *args, *extra)
    return dirs


def train(splits: dict[str, Path], root: Path, hyperparameters: dict[str, str]) -> Path:
    """Run train.py as the framework container does: channels, model dir and hyperparameters.json."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    model_dir = root / "model"
    run_script(
        "train.py",
        env={
            "SM_CHANNEL_TRAIN": str(splits["train"]),
            "SM_CHANNEL_VALIDATION": str(splits["validation"]),
            "SM_MODEL_DIR": str(model_dir),
            "SM_INPUT_CONFIG_DIR": str(config),
        },
    )
    return model_dir


HYPERPARAMETERS = {
    # framework containers may hand values over JSON-quoted; sagemaker_* entries are the container's
    "features": json.dumps(",".join(FEATURE_NAMES)),
    "label_horizon_days": "90",
    "num_round": "300",
    "sagemaker_program": '"train.py"',
    "sagemaker_submit_directory": '"s3://bucket/code/sourcedir.tar.gz"',
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, synthetic: Any) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("churn")
    features = synthetic.write(synthetic.frame(1500, 5, seed=3, signal=True, intercept=-2.5), root / "features")
    splits = prepare(features, root / "splits")
    model_dir = train(splits, root / "opt" / "ml", HYPERPARAMETERS)
    return {**splits, "model": model_dir, "root": root, "features": features}


def read(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))], ignore_index=True)


def test_prepare_splits_by_time_and_quarantines_bad_rows_with_reasons(tmp_path: Path, synthetic: Any) -> None:
    frame = synthetic.frame(200, 4, seed=5, signal=True)
    frame.loc[3, "customer_id"] = None
    frame.loc[7, LABEL] = 2
    features = synthetic.write(frame, tmp_path / "features")
    dirs = prepare(features, tmp_path / "out")
    parts = {name: read(dirs[name]) for name in ("train", "validation", "test")}
    assert parts["train"]["cutoff"].max() < parts["validation"]["cutoff"].min()
    assert parts["validation"]["cutoff"].max() < parts["test"]["cutoff"].min()
    assert parts["test"]["cutoff"].nunique() == 1
    assert parts["validation"]["cutoff"].nunique() == 1
    rejected = read(dirs["quarantine"])
    assert sorted(rejected["reason"]) == ["churned is not 0 or 1", "missing customer_id"]
    assert sum(len(p) for p in parts.values()) + len(rejected) == len(frame)


def test_prepare_purge_keeps_later_labels_out_of_earlier_splits(tmp_path: Path, synthetic: Any) -> None:
    features = synthetic.write(synthetic.frame(100, 5, seed=5, signal=True), tmp_path / "features")
    dirs = prepare(features, tmp_path / "out", "--purge-days=45")
    # cutoffs every 30 days: test 04-30, validation 03-01 (>= 45 days earlier), train up to 01-01
    assert set(read(dirs["validation"])["cutoff"].astype(str)) == {"2024-03-01"}
    assert set(read(dirs["train"])["cutoff"].astype(str)) == {"2024-01-01"}
    counts = json.loads((dirs["quarantine"] / "counts.json").read_text())
    assert counts["purged"] == 200


def test_prepare_refuses_too_few_cutoffs_with_a_clear_error(tmp_path: Path, synthetic: Any) -> None:
    features = synthetic.write(synthetic.frame(50, 2, seed=5, signal=True), tmp_path / "features")
    out = run_script("prepare.py", f"--features-dir={features}", f"--train-dir={tmp_path / 't'}", check=False)
    assert "need at least three cutoffs" in out


def test_train_writes_the_contract_artifact_that_the_api_loads(trained: dict[str, Path]) -> None:
    model_dir = trained["model"]
    assert sorted(p.name for p in model_dir.iterdir()) == ["features.json", "metadata.json", "model.json"]
    model = load_model(model_dir)  # the serving loader checks the contract
    assert model.feature_names == FEATURE_NAMES
    metadata = json.loads((model_dir / "metadata.json").read_text())
    validation = read(trained["validation"])
    assert metadata["cutoff"] == metadata["trained_at"] == str(validation["cutoff"].max().date())
    assert metadata["label_horizon_days"] == 90
    assert set(metadata["feature_ranges"]) == set(FEATURE_NAMES)
    assert metadata["risk_bands"] == {"low": 0.3, "high": 0.6}
    assert metadata["metrics"]["validation"]["auc"] > 0.75


def test_served_probabilities_are_calibrated_despite_class_weights(trained: dict[str, Path]) -> None:
    metadata = json.loads((trained["model"] / "metadata.json").read_text())
    assert metadata["metrics"]["scale_pos_weight"] > 1.05  # the weighting really was applied
    booster = xgb.Booster(model_file=str(trained["model"] / "model.json"))
    test = read(trained["test"])
    probabilities = booster.inplace_predict(test[list(FEATURE_NAMES)].to_numpy(dtype=np.float32))
    # weighting alone would inflate the mean probability by ~the weight ratio; calibrated it tracks the churn rate
    assert abs(probabilities.mean() - test[LABEL].mean()) < 0.04
    validation = metadata["metrics"]["validation"]
    assert validation["ece"] < metadata["metrics"]["ece_before_calibration"]
    assert validation["ece"] < 0.05


def test_api_scoring_from_contributions_matches_the_booster(trained: dict[str, Path]) -> None:
    model = load_model(trained["model"])
    row = read(trained["test"]).iloc[0]
    features = {name: float(row[name]) for name in FEATURE_NAMES}
    direct = model.booster.inplace_predict(np.asarray([list(features.values())], dtype=np.float32))[0]
    assert math.isclose(score(model, features).probability, float(direct), rel_tol=1e-4)


def train_with_arguments(trained: dict[str, Path], root: Path, *args: str) -> Path:
    config = root / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({**HYPERPARAMETERS, "model_version": "from-file"}))
    run_script(
        "train.py",
        *args,
        env={
            "SM_CHANNEL_TRAIN": str(trained["train"]),
            "SM_CHANNEL_VALIDATION": str(trained["validation"]),
            "SM_MODEL_DIR": str(root / "model"),
            "SM_INPUT_CONFIG_DIR": str(config),
        },
    )
    return root / "model"


def test_training_is_deterministic_and_arguments_override_the_file(trained: dict[str, Path], tmp_path: Path) -> None:
    first = train_with_arguments(trained, tmp_path / "a", "--num_round", "30", "--model_version", "from-args")
    second = train_with_arguments(trained, tmp_path / "b", "--num_round", "30", "--model_version", "from-args")
    assert (first / "model.json").read_bytes() == (second / "model.json").read_bytes()
    assert (first / "metadata.json").read_bytes() == (second / "metadata.json").read_bytes()
    metadata = json.loads((first / "metadata.json").read_text())
    assert metadata["model_version"] == "from-args"
    assert metadata["metrics"]["best_iteration"] < 30


def test_evaluate_reports_model_and_baselines_on_the_test_cutoff(trained: dict[str, Path], tmp_path: Path) -> None:
    archive = tmp_path / "model" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(trained["model"].iterdir()):
            tar.add(path, arcname=path.name)
    run_script(
        "evaluate.py",
        f"--model-dir={archive.parent}",
        f"--train-dir={trained['train']}",
        f"--test-dir={trained['test']}",
        f"--evaluation-dir={tmp_path / 'evaluation'}",
    )
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    metric_names = {"auc", "pr_auc", "brier", "top_decile_lift"}
    assert set(report["churn"]) == metric_names
    assert set(report["baselines"]) == {"recency", "logistic_rfm"}
    assert all(set(b) == metric_names for b in report["baselines"].values())
    assert report["best_baseline_auc"] == max(b["auc"] for b in report["baselines"].values())
    assert report["margin_over_best_baseline"] == pytest.approx(report["churn"]["auc"] - report["best_baseline_auc"])
    assert report["n"] == len(read(trained["test"]))
    # the synthetic churn depends on recency relative to each customer's rhythm: trees see it, RFM cannot
    assert report["margin_over_best_baseline"] > 0.03


def test_batch_score_scores_every_customer_of_the_latest_cutoff(
    trained: dict[str, Path], tmp_path: Path, synthetic: Any
) -> None:
    older = synthetic.frame(300, 1, seed=8, signal=True, labelled=False)
    latest = synthetic.frame(250, 2, seed=9, signal=True, labelled=False)
    latest = latest[latest["cutoff"] == latest["cutoff"].max()].copy()
    latest.loc[latest.index[0], "customer_id"] = None
    features = synthetic.write(pd.concat([older, latest]), tmp_path / "serving")
    run_script(
        "batch_score.py",
        f"--model-dir={trained['model']}",
        f"--features-dir={features}",
        f"--predictions-dir={tmp_path / 'predictions'}",
        f"--quarantine-dir={tmp_path / 'quarantine'}",
        f"--customers-dir={tmp_path / 'no-customers-channel'}",
    )
    predictions = pq.read_table(tmp_path / "predictions" / "predictions.parquet").to_pandas()
    assert len(predictions) == len(latest) - 1
    assert predictions["customer_id"].is_unique
    assert set(predictions["as_of"]) == {str(latest["cutoff"].max())}
    assert predictions["probability"].between(0, 1).all()
    model = load_model(trained["model"])
    assert set(predictions["model_version"]) == {model.model_version}
    assert all(set(r) <= set(FEATURE_NAMES) and len(r) <= 3 for r in predictions["top_reasons"])
    rejected = pq.read_table(tmp_path / "quarantine" / "part-00000.parquet").to_pandas()
    assert list(rejected["reason"]) == ["missing customer_id"]
    # without the customers channel: one online record per scored customer and no cold starts
    online = read_online_records(tmp_path / "predictions")
    assert [r["customer_id"] for r in online] == list(predictions["customer_id"])


def read_online_records(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "online_records.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def write_customers(root: Path, snapshots: dict[str, list[str | None]]) -> Path:
    """The raw customers table as ingest lays it out: one `dt=` snapshot folder per day."""
    for day, ids in snapshots.items():
        folder = root / f"dt={day}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"customer_id": pa.array(ids, pa.string())}), folder / "part-00000.parquet")
    return root


def test_batch_score_writes_online_records_with_a_cold_start_per_customer_without_features(
    trained: dict[str, Path], tmp_path: Path, synthetic: Any
) -> None:
    serving = synthetic.frame(40, 1, seed=11, signal=True, labelled=False)
    serving.loc[serving.index[1], "recency_days"] = np.nan  # scored as missing; the online store cannot hold it
    features = synthetic.write(serving, tmp_path / "serving")
    served = list(serving["customer_id"])
    customers = write_customers(
        tmp_path / "customers",
        {
            "2024-01-01": ["C-GONE"],  # an older snapshot: not the current registry
            "2024-02-01": [*served[:30], "N2", "N1", "N1", None],  # duplicated and missing ids
        },
    )
    out = run_script(
        "batch_score.py",
        f"--model-dir={trained['model']}",
        f"--features-dir={features}",
        f"--predictions-dir={tmp_path / 'predictions'}",
        f"--quarantine-dir={tmp_path / 'quarantine'}",
        f"--customers-dir={customers}",
    )
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["cold_starts"] == 2
    assert summary["customers_without_id"] == 1
    assert summary["online_records"] == 42
    predictions = pq.read_table(tmp_path / "predictions" / "predictions.parquet").to_pandas()
    online = read_online_records(tmp_path / "predictions")
    assert [r["customer_id"] for r in online] == [*predictions["customer_id"], "N1", "N2"]
    model = load_model(trained["model"])
    as_of = str(serving["cutoff"].max())
    by_id = {r["customer_id"]: r for r in online}
    for row in predictions.itertuples():
        record = by_id[row.customer_id]
        assert set(record) == {"customer_id", "features", "as_of", "probability", "model_version"}
        assert record["probability"] == pytest.approx(row.probability)
        assert (record["model_version"], record["as_of"]) == (model.model_version, as_of)
        assert list(record["features"]) == list(model.feature_names)
    first = serving.iloc[0]
    assert by_id[first["customer_id"]]["features"] == {name: float(first[name]) for name in model.feature_names}
    assert by_id[serving.iloc[1]["customer_id"]]["features"]["recency_days"] is None
    assert by_id["N1"] == {"customer_id": "N1", "features": None, "as_of": as_of}


def test_batch_score_names_missing_model_features(trained: dict[str, Path], tmp_path: Path, synthetic: Any) -> None:
    frame = synthetic.frame(20, 1, seed=1, signal=True, labelled=False).drop(columns=["recency_days"])
    folder = tmp_path / "serving" / "cutoff=2024-01-01"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "part-00000.parquet")
    out = run_script(
        "batch_score.py",
        f"--model-dir={trained['model']}",
        f"--features-dir={tmp_path / 'serving'}",
        f"--predictions-dir={tmp_path / 'p'}",
        check=False,
    )
    assert "lack the model's features ['recency_days']" in out
