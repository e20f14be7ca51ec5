"""The local churn pipeline against a moto server: the gate rejects a model without signal, registers one with."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pyarrow as pa
import pytest

from shelfwise.lake import Lake
from shelfwise.local_api import LocalLambdaContext, load_lambda
from shelfwise.local_aws import LocalAws, local_aws
from shelfwise.online_store import get_customer
from shelfwise.pipelines.local import resolve_parameters, run_churn_pipeline
from shelfwise.pipelines.registry import NoApprovedModelError, latest_approved_artifact

pytestmark = pytest.mark.slow


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAws]:
    # moto keeps one state per process, shared by every server: a fresh bucket and model group per test
    suffix = secrets.token_hex(4)
    monkeypatch.setenv("SHELFWISE_ENV", f"t{suffix}")
    monkeypatch.setenv("SHELFWISE_CHURN_MODEL_GROUP", f"churn-{suffix}")
    monkeypatch.setenv("SHELFWISE_WORK_DIR", str(tmp_path / "work"))
    with local_aws() as running:
        yield running


#: Registered customers that never bought: batch scoring gives each a cold-start online record.
NEVER_BOUGHT = ("N000001", "N000002", "N000003")


def load_features(lake: Lake, training: pd.DataFrame, serving: pd.DataFrame) -> None:
    """Training and serving features, and the raw customers table (every serving customer, and a few new ones)."""
    for cutoff, rows in training.groupby("cutoff"):
        lake.write_table(pa.Table.from_pandas(rows, preserve_index=False), f"features/churn/training/cutoff={cutoff}")
    lake.write_table(pa.Table.from_pandas(serving, preserve_index=False), "features/churn/serving/cutoff=2024-06-01")
    customers = pa.table({"customer_id": [*serving["customer_id"], *NEVER_BOUGHT]})
    lake.write_table(customers, "raw/customers/dt=2024-06-01")


def model_packages(aws: LocalAws) -> list[dict[str, Any]]:
    client = boto3.client("sagemaker", region_name=aws.settings.region, endpoint_url=aws.endpoint)
    group = aws.settings.churn_model_group
    packages: list[dict[str, Any]] = client.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    return packages


def test_model_without_signal_fails_the_gate_and_registers_nothing(aws: LocalAws, synthetic: Any) -> None:
    lake = Lake(aws.settings)
    load_features(lake, synthetic.frame(1000, 5, seed=4, signal=False), synthetic.frame(300, 1, 5, False, False))
    run = run_churn_pipeline(lake)
    assert run.status == "Failed"
    assert run.failure_reason is not None
    assert f"test AUC {run.metrics['churn']['auc']:.4f} must be >= MinAuc 0.7000" in run.failure_reason
    assert f"best baseline AUC {run.metrics['best_baseline_auc']:.4f}" in run.failure_reason
    assert [s.name for s in run.steps][-2:] == ["ChurnModelGate", "ChurnModelRejected"]
    assert run.model_package_arn is None
    assert model_packages(aws) == []
    assert list(lake.list("models/")) == []
    assert list(lake.list("predictions/")) == []
    with pytest.raises(NoApprovedModelError):
        latest_approved_artifact(aws.settings.churn_model_group)


def test_model_with_signal_is_registered_approved_and_scores_everyone(aws: LocalAws, synthetic: Any) -> None:
    lake = Lake(aws.settings)
    serving = synthetic.frame(400, 1, seed=6, signal=True, labelled=False)
    load_features(lake, synthetic.frame(1000, 5, seed=4, signal=True), serving)
    stages: list[tuple[str, float]] = []
    run = run_churn_pipeline(lake, progress=lambda stage, done: stages.append((stage, done)))
    assert run.status == "Succeeded", run.failure_reason
    assert [s.name for s in run.steps] == [
        "PrepareChurnData",
        "TrainChurnModel",
        "EvaluateChurnModel",
        "ChurnModelGate",
        "RegisterChurnModel",
        "BatchScoreChurn",
    ]
    assert stages[-1] == ("pipeline: done", 1.0)
    assert run.metrics["margin_over_best_baseline"] >= 0.005
    assert run.artifact_key == f"models/churn/{run.model_version}/model.tar.gz"
    (package,) = model_packages(aws)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ModelPackageArn"] == run.model_package_arn
    assert latest_approved_artifact(aws.settings.churn_model_group) == (
        run.model_package_arn,
        lake.uri(run.artifact_key),
    )
    assert lake.get_bytes(run.artifact_key)[:2] == b"\x1f\x8b"  # gzip
    assert run.predictions_prefix == f"predictions/churn/{run.run_id}/"
    predictions = lake.read_table(run.predictions_prefix).to_pandas()
    assert len(predictions) == len(serving)
    assert set(predictions["model_version"]) == {run.model_version}
    # the run's online records reach the online store through the publish Lambda, as Step Functions invokes it
    publish = load_lambda("churn_publish", fresh=True).handler
    published = publish({"predictions_prefix": run.predictions_prefix}, LocalLambdaContext("churn-publish"))
    assert (published["written"], published["cold_starts"], published["rejected"]) == (
        len(serving) + len(NEVER_BOUGHT),
        len(NEVER_BOUGHT),
        0,
    )
    scored = get_customer(str(serving["customer_id"].iloc[0]))
    assert scored is not None
    assert scored.model_version == run.model_version
    never_bought = get_customer(NEVER_BOUGHT[0])
    assert never_bought is not None
    assert never_bought.cold_start


def test_a_stricter_threshold_passed_as_parameter_rejects_the_same_model(aws: LocalAws, synthetic: Any) -> None:
    lake = Lake(aws.settings)
    load_features(lake, synthetic.frame(600, 4, seed=4, signal=True), synthetic.frame(50, 1, 6, True, False))
    run = run_churn_pipeline(lake, params={"MinAuc": 0.999})
    assert run.status == "Failed"
    assert "MinAuc 0.9990" in (run.failure_reason or "")
    assert model_packages(aws) == []


def test_parameters_must_be_known_and_typed() -> None:
    defaults = {"MinAuc": 0.7, "ModelApprovalStatus": "PendingManualApproval"}
    assert resolve_parameters(defaults, None)["ModelApprovalStatus"] == "Approved"
    assert resolve_parameters(defaults, {"MinAuc": 1})["MinAuc"] == 1.0
    with pytest.raises(ValueError, match="unknown pipeline parameter 'MinAUC'"):
        resolve_parameters(defaults, {"MinAUC": 0.8})
    with pytest.raises(ValueError, match="'MinAuc' takes a float"):
        resolve_parameters(defaults, {"MinAuc": "high"})
