"""The churn pipelines run locally against a moto server: the gate rejects a model without signal and registers one
with, registration records the artifact's sha256, and scoring uses the newest approved model, not the candidate."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pyarrow as pa
import pytest

from shelfwise.churn.features import FEATURE_SET
from shelfwise.domains import pipeline
from shelfwise.lake import Lake
from shelfwise.local_api import LocalLambdaContext, load_lambda
from shelfwise.local_aws import LocalAws, local_aws
from shelfwise.model_cache import sha256_of
from shelfwise.online_store import get_item
from shelfwise.pipelines.local import resolve_parameters, run_pipeline, score_with_newest_approved
from shelfwise.pipelines.registry import NoApprovedModelError, newest_approved

pytestmark = pytest.mark.slow

CHURN = pipeline("churn")
SERVING = "2024-10-01"
#: Registered customers that never bought: batch scoring gives each a cold-start online record.
NEVER_BOUGHT = ("N000001", "N000002", "N000003")


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAws]:
    # moto keeps one state per process, shared by every server: a fresh bucket and model group per test
    suffix = secrets.token_hex(4)
    monkeypatch.setenv("SHELFWISE_ENV", f"t{suffix}")
    monkeypatch.setenv("SHELFWISE_MODEL_GROUP_PREFIX", f"t{suffix}-")
    monkeypatch.setenv("SHELFWISE_WORK_DIR", str(tmp_path / "work"))
    with local_aws() as running:
        yield running


def load_features(lake: Lake, training: pd.DataFrame, serving: pd.DataFrame) -> None:
    """Training features, cold-start labels, one serving partition, and the raw customers table."""
    for cutoff, rows in training.groupby("cutoff"):
        lake.write_table(pa.Table.from_pandas(rows, preserve_index=False), f"features/churn/training/cutoff={cutoff}")
        cold = pa.table(
            {
                "customer_id": list(NEVER_BOUGHT),
                "churned": [1, 1, 0],
                "feature_set_version": [FEATURE_SET.qualified_version] * 3,
            }
        )
        lake.write_table(cold, f"features/churn/cold_start/cutoff={cutoff}")
    serving = serving.drop(columns=["cutoff"])
    (serving_key,) = CHURN.run_partition_keys(SERVING).values()
    lake.write_table(pa.Table.from_pandas(serving, preserve_index=False), serving_key)
    customers = pa.table({"customer_id": [*serving["customer_id"], *NEVER_BOUGHT]})
    lake.write_table(customers, f"raw/customers/dt={SERVING}")


def packages(aws: LocalAws) -> list[dict[str, Any]]:
    client = boto3.client("sagemaker", region_name=aws.settings.region, endpoint_url=aws.endpoint)
    group = aws.settings.model_group("churn")
    found: list[dict[str, Any]] = client.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    return found


def test_model_without_signal_fails_the_gate_and_registers_nothing(aws: LocalAws, synthetic: Any) -> None:
    lake = Lake(aws.settings)
    load_features(lake, synthetic.frame(1000, 9, seed=4, signal=False), synthetic.frame(300, 1, 5, False, False))
    run = run_pipeline(lake, CHURN)
    assert run.status == "Failed"
    assert run.failure_reason is not None
    assert f"test AUC {run.metrics['churn']['auc']:.4f} must be >= MinAuc 0.7000" in run.failure_reason
    assert f"best baseline AUC {run.metrics['best_baseline_auc']:.4f}" in run.failure_reason
    assert [s.name for s in run.steps][-2:] == ["ChurnModelGate", "ChurnModelRejected"]
    assert run.model_package_arn is None
    assert packages(aws) == []
    assert list(lake.list("models/")) == []
    with pytest.raises(NoApprovedModelError):
        score_with_newest_approved(lake, CHURN, SERVING)


def test_model_with_signal_is_registered_with_its_sha256_and_scores_everyone(aws: LocalAws, synthetic: Any) -> None:
    lake = Lake(aws.settings)
    serving = synthetic.frame(400, 1, seed=6, signal=True, labelled=False)
    load_features(lake, synthetic.frame(1000, 9, seed=4, signal=True), serving)
    stages: list[tuple[str, float]] = []
    run = run_pipeline(lake, CHURN, progress=lambda stage, done: stages.append((stage, done)))
    assert run.status == "Succeeded", run.failure_reason
    assert [s.name for s in run.steps] == [
        "PrepareChurnData",
        "TrainChurnModel",
        "EvaluateChurnModel",
        "ChurnModelGate",
        "RegisterChurnModel",
    ]
    assert stages[-1] == ("churn training: done", 1.0)
    assert run.metrics["margin_lower_95"] >= 0.001
    assert set(run.metrics["baselines"]) == {"recency", "logistic_rfm", "bgnbd"}
    assert run.artifact_key == f"models/churn/{run.run_id}/model.tar.gz"
    (package,) = packages(aws)
    assert package["ModelApprovalStatus"] == "Approved"
    approved = newest_approved(aws.settings.model_group("churn"))
    assert (approved.arn, approved.artifact_uri) == (run.model_package_arn, lake.uri(run.artifact_key))
    archive = Path(lake.cfg.work_dir) / "check" / "model.tar.gz"
    lake.download_file(run.artifact_key, archive)
    assert approved.sha256 == sha256_of(archive) == run.metrics["artifact"]["sha256"]
    assert approved.metadata["feature_set_version"] == FEATURE_SET.qualified_version

    scoring, used = score_with_newest_approved(lake, CHURN, SERVING)
    assert scoring.status == "Succeeded", scoring.failure_reason
    assert used.arn == run.model_package_arn
    assert scoring.predictions_prefix == f"predictions/churn/{scoring.run_id}/"
    predictions = lake.read_table(scoring.predictions_prefix).to_pandas()
    assert len(predictions) == len(serving)
    assert set(predictions["model_version"]) == {run.model_version}
    assert set(predictions["as_of"]) == {SERVING}
    # the run's online records reach the online store through the publish Lambda, as Step Functions invokes it
    publish = load_lambda("churn_publish", fresh=True).handler
    published = publish({"predictions_prefix": scoring.predictions_prefix}, LocalLambdaContext("churn-publish"))
    assert (published["written"], published["cold_starts"], published["rejected"]) == (
        len(serving) + len(NEVER_BOUGHT),
        len(NEVER_BOUGHT),
        0,
    )
    scored = get_item("customer", str(serving["customer_id"].iloc[0]), "churn")
    assert scored is not None
    assert scored.attributes["model_version"] == run.model_version
    assert scored.feature_set_version == FEATURE_SET.qualified_version
    never_bought = get_item("customer", NEVER_BOUGHT[0], "churn")
    assert never_bought is not None
    assert never_bought.attributes["features"] is None


def test_scoring_uses_the_newest_approved_model_not_the_pending_candidate(aws: LocalAws, synthetic: Any) -> None:
    lake = Lake(aws.settings)
    load_features(lake, synthetic.frame(800, 9, seed=4, signal=True), synthetic.frame(60, 1, 6, True, False))
    approved = run_pipeline(lake, CHURN)
    candidate = run_pipeline(lake, CHURN, params={"ModelApprovalStatus": "PendingManualApproval", "MinAuc": 0.5})
    assert (approved.status, candidate.status) == ("Succeeded", "Succeeded"), candidate.failure_reason
    assert len(packages(aws)) == 2
    scoring, used = score_with_newest_approved(lake, CHURN, SERVING)
    assert used.arn == approved.model_package_arn != candidate.model_package_arn
    assert scoring.status == "Succeeded", scoring.failure_reason
    predictions = lake.read_table(str(scoring.predictions_prefix)).to_pandas()
    assert set(predictions["model_version"]) == {approved.model_version}


def test_a_stricter_threshold_passed_as_parameter_rejects_the_same_model(aws: LocalAws, synthetic: Any) -> None:
    lake = Lake(aws.settings)
    load_features(lake, synthetic.frame(600, 9, seed=4, signal=True), synthetic.frame(50, 1, 6, True, False))
    run = run_pipeline(lake, CHURN, params={"MinAuc": 0.999})
    assert run.status == "Failed"
    assert "MinAuc 0.9990" in (run.failure_reason or "")
    assert packages(aws) == []


def test_parameters_must_be_known_and_typed() -> None:
    defaults = {"MinAuc": 0.7, "ModelApprovalStatus": "PendingManualApproval"}
    assert resolve_parameters(defaults, None)["ModelApprovalStatus"] == "Approved"
    assert resolve_parameters(defaults, {"MinAuc": 1})["MinAuc"] == 1.0
    with pytest.raises(ValueError, match="unknown pipeline parameter 'MinAUC'"):
        resolve_parameters(defaults, {"MinAUC": 0.8})
    with pytest.raises(ValueError, match="'MinAuc' takes a float"):
        resolve_parameters(defaults, {"MinAuc": "high"})
