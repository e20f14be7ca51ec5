"""The churn steps end to end through the container contract, run from the pipeline's own source tarball (as the
containers unpack it): the honest split, training with BG/NBD features, evaluation against the baselines, and batch
scoring that verifies the model it is given."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shelfwise.churn.features import DERIVED_NAMES, FEATURE_NAMES, FEATURE_SET, LABEL, VERSION_COLUMN
from shelfwise.churn.scoring import load_archive, load_model, predict, score
from shelfwise.domains import pipeline
from shelfwise.model_cache import sha256_of
from shelfwise.pipelines.code import build_source_tarball

HORIZON = FEATURE_SET.label_horizon_days


@pytest.fixture(scope="session")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The churn pipeline's `sourcedir.tar.gz`, unpacked as the containers do."""
    root = tmp_path_factory.mktemp("code")
    with tarfile.open(build_source_tarball(pipeline("churn"), root / "sourcedir.tar.gz"), "r:gz") as tar:
        tar.extractall(root / "code", filter="data")
    return root / "code"


@pytest.fixture(scope="module")
def prepare_module(code: Path) -> Iterator[Any]:
    """prepare.py imported from the unpacked tarball (its folder on sys.path, as when it runs)."""
    sys.path.insert(0, str(code))
    try:
        import prepare

        yield prepare
    finally:
        sys.path.remove(str(code))
        sys.modules.pop("prepare", None)
        sys.modules.pop("step_io", None)


def run(code: Path, script: str, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    completed = subprocess.run(
        [sys.executable, str(code / script), *args],
        env={**os.environ, **(env or {})},
        cwd=code.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"{script} failed: {completed.stderr}")
    return completed.stdout + completed.stderr


def prepare(code: Path, features: Path, out: Path, cold_start: Path | None = None) -> dict[str, Path]:
    dirs = {name: out / name for name in ("train", "validation", "test", "refit", "quarantine")}
    args = [f"--{name}-dir={path}" for name, path in dirs.items()]
    cold = cold_start or out / "no-cold-start"
    run(code, "prepare.py", f"--features-dir={features}", f"--cold-start-dir={cold}", *args)
    return dirs


def train(code: Path, splits: dict[str, Path], root: Path, hyperparameters: dict[str, str]) -> Path:
    """Run train.py as the framework container does: channels, model dir and hyperparameters.json."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    model_dir = root / "model"
    run(
        code,
        "train.py",
        env={
            "SM_CHANNEL_TRAIN": str(splits["train"]),
            "SM_CHANNEL_VALIDATION": str(splits["validation"]),
            "SM_CHANNEL_REFIT": str(splits["refit"]),
            "SM_MODEL_DIR": str(model_dir),
            "SM_INPUT_CONFIG_DIR": str(config),
        },
    )
    return model_dir


def pack(model_dir: Path, archive: Path) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


HYPERPARAMETERS = {
    # framework containers may hand values over JSON-quoted; sagemaker_* entries are the container's
    "num_round": "300",
    "max_depth": '"3"',
    "sagemaker_program": '"train.py"',
    "sagemaker_submit_directory": '"/opt/ml/input/data/code/sourcedir.tar.gz"',
}
#: Nine monthly cutoffs: test at the last, validation 90+ days before, training 90+ days before that.
CUTOFFS = 9


def cold_start_table(root: Path, cutoffs: list[dt.date], churned: int, of: int) -> Path:
    for cutoff in cutoffs:
        folder = root / f"cutoff={cutoff}"
        folder.mkdir(parents=True)
        labels = [1] * churned + [0] * (of - churned)
        rows = pa.table(
            {
                "customer_id": [f"N{i}" for i in range(of)],
                LABEL: labels,
                VERSION_COLUMN: [FEATURE_SET.qualified_version] * of,
            }
        )
        pq.write_table(rows, folder / "part-00000.parquet")
    return root


@pytest.fixture(scope="module")
def trained(code: Path, tmp_path_factory: pytest.TempPathFactory, synthetic: Any) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("churn")
    frame = synthetic.frame(1500, CUTOFFS, seed=3, signal=True, intercept=-2.5)
    features = synthetic.write(frame, root / "features")
    cutoffs = sorted(set(frame["cutoff"]))
    cold = cold_start_table(root / "cold", cutoffs, churned=30, of=40)
    splits = prepare(code, features, root / "splits", cold)
    model_dir = train(code, splits, root / "opt" / "ml", HYPERPARAMETERS)
    return {**splits, "model": model_dir, "root": root, "features": features}


def read(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))], ignore_index=True)


# -- the honest split ---------------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=40, unique=True))
def test_no_label_window_of_a_split_reaches_into_a_later_split(prepare_module: Any, days: list[int]) -> None:
    cutoffs = [pd.Timestamp("2020-01-01") + pd.Timedelta(days=d) for d in days]
    ordered = sorted(cutoffs)
    horizon = pd.Timedelta(days=HORIZON)
    if not any(c + horizon <= v and v + horizon <= ordered[-1] for c in ordered for v in ordered):
        with pytest.raises(SystemExit, match="label horizon"):
            prepare_module.split_cutoffs(cutoffs, HORIZON)
        return
    splits = prepare_module.split_cutoffs(cutoffs, HORIZON)
    (test,), (validation,) = splits["test"], splits["validation"]
    assert test == max(cutoffs)
    # a window [c, c + horizon) must close by the start of the next split: no label reads the test window
    assert validation + horizon <= test
    assert splits["train"]
    assert all(c + horizon <= validation for c in splits["train"])
    assert all(c + horizon <= test for c in splits["train"])
    # and nothing usable is wasted: the validation cutoff is the latest whose window closes in time
    assert not [c for c in cutoffs if validation < c and c + horizon <= test]


def test_the_split_refuses_an_overlapping_layout_instead_of_leaking(prepare_module: Any) -> None:
    # cutoffs 28 days apart, the old layout: a validation cutoff 28 days before the test one would read its labels
    cutoffs = [pd.Timestamp("2024-01-01") + pd.Timedelta(days=28 * k) for k in range(3)]
    with pytest.raises(SystemExit, match=f"at least {HORIZON} days"):
        prepare_module.split_cutoffs(cutoffs, HORIZON)


def test_the_gap_is_the_feature_sets_label_horizon_and_cannot_be_turned_off(code: Path, tmp_path: Path) -> None:
    # derived, not repeated: the script reads the horizon from the feature set staged with it
    repo = Path(__file__).resolve().parents[2]
    staged = code / "shelfwise" / "churn" / "features.py"
    assert staged.read_bytes() == (repo / "shelfwise" / "churn" / "features.py").read_bytes()
    # the old knob that leaked the test window's labels into training is gone
    out = run(code, "prepare.py", "--purge-days=0", f"--features-dir={tmp_path}", check=False)
    assert "unrecognized arguments: --purge-days=0" in out


def test_prepare_splits_by_time_and_quarantines_bad_rows_with_reasons(
    code: Path, tmp_path: Path, synthetic: Any
) -> None:
    frame = synthetic.frame(200, CUTOFFS, seed=5, signal=True)
    frame.loc[3, "customer_id"] = None
    frame.loc[7, LABEL] = 2
    dirs = prepare(code, synthetic.write(frame, tmp_path / "features"), tmp_path / "out")
    parts = {name: read(dirs[name]) for name in ("train", "validation", "test")}
    horizon = pd.Timedelta(days=HORIZON)
    assert parts["train"]["cutoff"].max() + horizon <= parts["validation"]["cutoff"].min()
    assert parts["validation"]["cutoff"].max() + horizon <= parts["test"]["cutoff"].min()
    assert parts["test"]["cutoff"].nunique() == parts["validation"]["cutoff"].nunique() == 1
    # the final fit's history: every cutoff whose labels closed by the test cutoff, train and validation included
    refit = read(dirs["refit"])
    assert refit["cutoff"].max() + horizon <= parts["test"]["cutoff"].min()
    assert set(parts["train"]["cutoff"]) | set(parts["validation"]["cutoff"]) <= set(refit["cutoff"])
    rejected = read(dirs["quarantine"])
    assert sorted(rejected["reason"]) == ["churned is not 0 or 1", "missing customer_id"]
    counts = json.loads((dirs["quarantine"] / "counts.json").read_text())
    between = counts["between_splits"]
    assert sum(len(p) for p in parts.values()) + len(rejected) + between == len(frame)
    assert counts["label_horizon_days"] == HORIZON


def test_prepare_refuses_too_few_cutoffs_naming_the_horizon(code: Path, tmp_path: Path, synthetic: Any) -> None:
    features = synthetic.write(synthetic.frame(50, 4, seed=5, signal=True), tmp_path / "features")
    out = run(code, "prepare.py", f"--features-dir={features}", f"--train-dir={tmp_path / 't'}", check=False)
    assert f"at least {HORIZON} days (the label horizon)" in out


# -- training -----------------------------------------------------------------------------------------------------
def test_train_writes_the_contract_artifact_that_the_api_loads(trained: dict[str, Path]) -> None:
    model_dir = trained["model"]
    assert sorted(p.name for p in model_dir.iterdir()) == ["features.json", "metadata.json", "model.json"]
    model = load_model(model_dir)  # the serving loader checks the contract and the feature-set version
    assert model.feature_names == (*FEATURE_NAMES, *DERIVED_NAMES)
    metadata = json.loads((model_dir / "metadata.json").read_text())
    refit = read(trained["refit"])
    assert metadata["cutoff"] == metadata["trained_at"] == str(refit["cutoff"].max().date())
    assert metadata["metrics"]["refit"]["rows"] == len(refit) > metadata["metrics"]["n_train"]
    assert metadata["feature_set_version"] == FEATURE_SET.qualified_version
    assert metadata["label_horizon_days"] == HORIZON
    assert metadata["bgnbd"]["fitted_at"] == metadata["cutoff"]
    assert metadata["risk_bands"] == {"low": 0.3, "high": 0.6}
    assert metadata["metrics"]["validation"]["auc"] > 0.75
    assert {t["max_depth"] for t in metadata["metrics"]["tuning"]} == {3}  # the hyperparameter file's grid


def test_the_cold_start_prior_is_measured_on_customers_without_history(trained: dict[str, Path]) -> None:
    metadata = json.loads((trained["model"] / "metadata.json").read_text())
    assert metadata["cold_start"]["customers"] == 40
    assert metadata["cold_start_rate"] == pytest.approx(30 / 40)
    assert metadata["cold_start_rate"] != pytest.approx(metadata["base_rate"])


def test_served_probabilities_are_calibrated_despite_class_weights(trained: dict[str, Path]) -> None:
    metadata = json.loads((trained["model"] / "metadata.json").read_text())
    assert metadata["metrics"]["scale_pos_weight"] > 1.05  # the weighting really was applied
    model = load_model(trained["model"])
    test = read(trained["test"])
    probabilities = predict(model, {name: test[name].to_numpy() for name in model.stored_features})
    # weighting alone would inflate the mean probability by ~the weight ratio; calibrated it tracks the churn rate
    assert abs(probabilities.mean() - test[LABEL].mean()) < 0.04
    validation = metadata["metrics"]["validation"]
    assert validation["ece"] < metadata["metrics"]["ece_before_calibration"]
    assert validation["ece"] < 0.05


def test_api_scoring_matches_batch_scoring(trained: dict[str, Path]) -> None:
    model = load_model(trained["model"])
    rows = read(trained["test"]).iloc[:20]
    batch = predict(model, {name: rows[name].to_numpy() for name in model.stored_features})
    single = [
        score(model, {name: float(row[name]) for name in FEATURE_NAMES}).probability for _, row in rows.iterrows()
    ]
    np.testing.assert_allclose(batch, single, rtol=1e-5)


def train_with_arguments(code: Path, trained: dict[str, Path], root: Path, *args: str) -> Path:
    config = root / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({**HYPERPARAMETERS, "model_version": "from-file"}))
    run(
        code,
        "train.py",
        *args,
        env={
            "SM_CHANNEL_TRAIN": str(trained["train"]),
            "SM_CHANNEL_VALIDATION": str(trained["validation"]),
            "SM_CHANNEL_REFIT": str(trained["refit"]),
            "SM_MODEL_DIR": str(root / "model"),
            "SM_INPUT_CONFIG_DIR": str(config),
        },
    )
    return root / "model"


def test_training_is_deterministic_and_arguments_override_the_file(
    code: Path, trained: dict[str, Path], tmp_path: Path
) -> None:
    args = ("--num_round", "30", "--model_version", "from-args")
    first = train_with_arguments(code, trained, tmp_path / "a", *args)
    second = train_with_arguments(code, trained, tmp_path / "b", *args)
    assert (first / "model.json").read_bytes() == (second / "model.json").read_bytes()
    assert (first / "metadata.json").read_bytes() == (second / "metadata.json").read_bytes()
    metadata = json.loads((first / "metadata.json").read_text())
    assert metadata["model_version"] == "from-args"
    assert metadata["metrics"]["chosen"]["best_iteration"] < 30
    assert (
        metadata["metrics"]["refit"]["rounds"]
        <= 30 * metadata["metrics"]["refit"]["rows"] / metadata["metrics"]["n_train"] + 1
    )


# -- evaluation ---------------------------------------------------------------------------------------------------
def test_evaluate_reports_model_and_every_baseline_on_the_test_cutoff(
    code: Path, trained: dict[str, Path], tmp_path: Path
) -> None:
    archive = pack(trained["model"], tmp_path / "model" / "model.tar.gz")
    run(
        code,
        "evaluate.py",
        f"--model-dir={archive.parent}",
        f"--train-dir={trained['refit']}",
        f"--test-dir={trained['test']}",
        f"--evaluation-dir={tmp_path / 'evaluation'}",
    )
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    low, high = report["margin_interval_95"]
    assert low < report["margin_over_best_baseline"] < high
    metric_names = {"auc", "pr_auc", "brier", "top_decile_lift"}
    assert set(report["churn"]) == metric_names
    assert set(report["baselines"]) == {"recency", "logistic_rfm", "bgnbd"}
    assert all(set(b) == metric_names for b in report["baselines"].values())
    best = max(report["baselines"], key=lambda name: report["baselines"][name]["auc"])
    assert (report["best_baseline"], report["best_baseline_auc"]) == (best, report["baselines"][best]["auc"])
    assert report["margin_over_best_baseline"] == pytest.approx(report["churn"]["auc"] - report["best_baseline_auc"])
    assert report["n"] == len(read(trained["test"]))
    assert report["artifact"]["sha256"] == sha256_of(archive)  # what registration records and the API verifies
    assert report["feature_set_version"] == FEATURE_SET.qualified_version
    assert report["cold_start"]["customers"] == 40
    assert pd.Timestamp(report["train_cutoffs"][-1]) + pd.Timedelta(days=HORIZON) <= pd.Timestamp(report["cutoff"])
    # the synthetic churn depends on recency relative to each customer's rhythm: trees see it, RFM cannot
    assert report["margin_over_best_baseline"] > 0.03


# -- batch scoring ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def archive(trained: dict[str, Path]) -> Path:
    return pack(trained["model"], trained["root"] / "registered" / "model.tar.gz")


def batch_score(code: Path, archive: Path, features: Path, out: Path, *extra: str, check: bool = True) -> str:
    return run(
        code,
        "batch_score.py",
        f"--model-dir={archive.parent}",
        f"--model-sha256={sha256_of(archive)}",
        f"--features-dir={features}",
        f"--predictions-dir={out / 'predictions'}",
        f"--quarantine-dir={out / 'quarantine'}",
        *extra,
        check=check,
    )


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


def test_batch_score_writes_predictions_and_online_records_with_cold_starts(
    code: Path, archive: Path, tmp_path: Path, synthetic: Any
) -> None:
    serving = synthetic.frame(40, 1, seed=11, signal=True, labelled=False)
    serving.loc[serving.index[0], "customer_id"] = None
    serving.loc[serving.index[2], "recency_days"] = np.nan  # the online store cannot hold it: null, then rejected
    features = synthetic.write(serving, tmp_path / "serving")
    served = [c for c in serving["customer_id"] if c is not None]
    customers = write_customers(
        tmp_path / "customers",
        {"2024-01-01": ["C-GONE"], "2024-02-01": [*served[:30], "N2", "N1", "N1", None]},
    )
    out = batch_score(code, archive, features, tmp_path, f"--customers-dir={customers}", "--model-package=arn:x/1")
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["scored"], summary["quarantined"], summary["cold_starts"]) == (39, 1, 2)
    assert summary["model_package"] == "arn:x/1"
    predictions = pq.read_table(tmp_path / "predictions" / "predictions.parquet").to_pandas()
    model = load_archive(archive)
    assert set(predictions["model_version"]) == {model.model_version}
    assert all(set(r) <= set(model.feature_names) and len(r) <= 3 for r in predictions["top_reasons"])
    online = read_online_records(tmp_path / "predictions")
    assert [r["customer_id"] for r in online] == [*predictions["customer_id"], "N1", "N2"]
    as_of = str(serving["cutoff"].max())
    by_id = {r["customer_id"]: r for r in online}
    for row in predictions.itertuples():
        record = by_id[row.customer_id]
        assert record["probability"] == pytest.approx(row.probability)
        assert (record["model_version"], record["as_of"]) == (model.model_version, as_of)
        assert record[VERSION_COLUMN] == FEATURE_SET.qualified_version
        assert list(record["features"]) == list(FEATURE_NAMES)  # stored features only, never the derived ones
    assert by_id[serving.iloc[2]["customer_id"]]["features"]["recency_days"] is None
    assert by_id["N1"] == {
        "customer_id": "N1",
        "features": None,
        "as_of": as_of,
        VERSION_COLUMN: FEATURE_SET.qualified_version,
    }
    rejected = pq.read_table(tmp_path / "quarantine" / "part-00000.parquet").to_pandas()
    assert list(rejected["reason"]) == ["missing customer_id"]


def test_batch_score_refuses_a_model_whose_bytes_are_not_the_registered_ones(
    code: Path, archive: Path, tmp_path: Path, synthetic: Any
) -> None:
    features = synthetic.write(synthetic.frame(20, 1, seed=1, signal=True, labelled=False), tmp_path / "serving")
    out = run(
        code,
        "batch_score.py",
        f"--model-dir={archive.parent}",
        f"--model-sha256={'0' * 64}",
        f"--features-dir={features}",
        f"--predictions-dir={tmp_path / 'p'}",
        check=False,
    )
    assert "differs from the registered" in out
    assert not (tmp_path / "p" / "online_records.jsonl").exists()


def test_batch_score_reads_exactly_one_serving_partition(
    code: Path, archive: Path, tmp_path: Path, synthetic: Any
) -> None:
    features = synthetic.write(synthetic.frame(20, 2, seed=1, signal=True, labelled=False), tmp_path / "serving")
    out = batch_score(code, archive, features, tmp_path, check=False)
    assert "hold 2 cutoffs" in out
    assert "pass the exact partition" in out


def test_batch_score_refuses_serving_features_of_another_feature_set_version(
    code: Path, archive: Path, tmp_path: Path, synthetic: Any
) -> None:
    frame = synthetic.frame(20, 1, seed=1, signal=True, labelled=False)
    frame[VERSION_COLUMN] = "churn/1"
    out = batch_score(code, archive, synthetic.write(frame, tmp_path / "serving"), tmp_path, check=False)
    assert "['churn/1']" in out
    assert FEATURE_SET.qualified_version in out


def test_batch_score_refuses_a_model_of_another_feature_set_version(
    code: Path, trained: dict[str, Path], tmp_path: Path, synthetic: Any
) -> None:
    model_dir = tmp_path / "old-model"
    model_dir.mkdir()
    for path in trained["model"].iterdir():
        (model_dir / path.name).write_bytes(path.read_bytes())
    metadata = json.loads((model_dir / "metadata.json").read_text()) | {"feature_set_version": "churn/1"}
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    old = pack(model_dir, tmp_path / "old" / "model.tar.gz")
    features = synthetic.write(synthetic.frame(20, 1, seed=1, signal=True, labelled=False), tmp_path / "serving")
    out = batch_score(code, old, features, tmp_path, check=False)
    assert "trained on feature set 'churn/1'" in out
