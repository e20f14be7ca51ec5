"""The demand pipeline definitions: deterministic, on the SageMaker PyTorch CPU image, a gate on the selected
forecaster's worst-window improvement over seasonal naive that registers the packaged selection, the day's feature
partitions as parameters, and a wheelhouse of exactly the pinned requirements."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shelfwise.demand import pipeline as demand_pipeline
from shelfwise.domain import REPO_ROOT
from shelfwise.domains import pipeline
from shelfwise.pipelines.sdk import pipeline_definition
from shelfwise.pipelines.spec import PipelineConfig

CONFIG = PipelineConfig(
    "shelfwise-test-demand",
    "arn:aws:iam::123456789012:role/test",
    "eu-west-1",
    "test-lake",
    "test-demand",
    "s3://test-lake/code/demand/sourcedir.tar.gz",
    wheelhouse_uri="s3://assets/wheelhouse.zip",
)


@pytest.fixture(scope="module")
def training() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(pipeline_definition(pipeline("demand").training(CONFIG)))
    return parsed


@pytest.fixture(scope="module")
def scoring() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(pipeline_definition(pipeline("demand").scoring(CONFIG)))
    return parsed


def steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {s["Name"]: s for s in definition["Steps"]}
    for step in definition["Steps"]:
        for branch in [*step.get("Arguments", {}).get("IfSteps", []), *step.get("Arguments", {}).get("ElseSteps", [])]:
            found[branch["Name"]] = branch
    return found


def parameters(definition: dict[str, Any]) -> dict[str, Any]:
    return {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}


def test_the_definitions_are_the_same_bytes_from_build_to_build() -> None:
    demand = pipeline("demand")
    assert pipeline_definition(demand.training(CONFIG)) == pipeline_definition(demand.training(CONFIG))
    assert pipeline_definition(demand.scoring(CONFIG)) == pipeline_definition(demand.scoring(CONFIG))


def test_every_step_runs_on_the_pytorch_cpu_image(training: dict[str, Any], scoring: dict[str, Any]) -> None:
    images = set()
    for step in [*steps(training).values(), *steps(scoring).values()]:
        arguments = step.get("Arguments", {})
        images.add(arguments.get("AppSpecification", {}).get("ImageUri"))
        images.add(arguments.get("AlgorithmSpecification", {}).get("TrainingImage"))
        for container in arguments.get("InferenceSpecification", {}).get("Containers", []):
            images.add(container["Image"])
    images.discard(None)
    assert len(images) == 1
    (image,) = images
    assert re.search(r"/pytorch-training:2\.10\.0-cpu-py313$", image), image


def test_training_trains_evaluates_and_registers_the_packaged_selection_past_the_gate(
    training: dict[str, Any],
) -> None:
    found = steps(training)
    assert [s["Name"] for s in training["Steps"]] == [
        "PrepareDemandData",
        "TrainDemandModel",
        "EvaluateDemandModel",
        "DemandModelGate",
    ]
    (condition,) = found["DemandModelGate"]["Arguments"]["Conditions"]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "improvement_worst_window"
    assert condition["RightValue"] == {"Get": "Parameters.MinImprovementOverSeasonalNaive"}
    assert parameters(training)["MinImprovementOverSeasonalNaive"] == 0.10
    register = found["RegisterDemandModel"]["Arguments"]
    model_url = json.dumps(register["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])
    assert "package" in model_url
    assert "model.tar.gz" in model_url
    metadata = register["CustomerMetadataProperties"]
    assert {"artifact_sha256", "model_version", "feature_set_version", "forecaster"} <= set(metadata)
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert found["DemandModelRejected"]["Type"] == "Fail"


def test_epochs_and_networks_are_parameters_of_the_training_job(training: dict[str, Any]) -> None:
    hyperparameters = steps(training)["TrainDemandModel"]["Arguments"]["HyperParameters"]
    assert hyperparameters["epochs"] == {"Get": "Parameters.Epochs"}
    assert hyperparameters["networks"] == {"Get": "Parameters.Networks"}
    assert (parameters(training)["Epochs"], parameters(training)["Networks"]) == ("10", "3")


def test_both_pipelines_take_the_days_partitions_and_scoring_the_approved_model(
    training: dict[str, Any], scoring: dict[str, Any]
) -> None:
    demand = pipeline("demand")
    assert demand.training_takes_run_partitions
    assert set(demand.run_partition_keys("2025-01-01").values()) == {
        "features/demand/daily/as_of=2025-01-01/",
        "features/demand/static/as_of=2025-01-01/",
    }
    assert set(demand.run_partitions) <= set(parameters(training))
    assert {"ModelUri", "ModelSha256", "ModelPackageArn", *demand.run_partitions} <= set(parameters(scoring))
    (forecast,) = scoring["Steps"]
    arguments = forecast["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert {"Get": "Parameters.ModelSha256"} in arguments
    outputs = forecast["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    destination = next(o for o in outputs if o["OutputName"] == "predictions")["S3Output"]["S3Uri"]["Std:Join"]
    assert destination["Values"][-3:] == ["predictions", "demand", {"Get": "Execution.PipelineExecutionId"}]


def test_every_step_gets_the_wheelhouse_the_deployment_staged(
    training: dict[str, Any], scoring: dict[str, Any]
) -> None:
    assert parameters(training)["WheelhouseUri"] == parameters(scoring)["WheelhouseUri"] == CONFIG.wheelhouse_uri
    for name, step in [*steps(training).items(), *steps(scoring).items()]:
        arguments = step.get("Arguments", {})
        inputs = [i["InputName"] for i in arguments.get("ProcessingInputs", [])]
        channels = [c["ChannelName"] for c in arguments.get("InputDataConfig", [])]
        if step["Type"] in ("Processing", "Training"):
            assert "wheels" in inputs + channels, name


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, version = line.split("==")
            found[name.lower().replace("_", "-")] = version
    return found


def test_the_wheelhouse_pins_what_the_project_tests_with_and_leaves_torch_to_the_image() -> None:
    demand = pipeline("demand")
    assert demand.requirements is not None
    required = pins(demand.requirements)
    constraints = pins(REPO_ROOT / "constraints.txt")
    assert {name: constraints.get(name) for name in required} == required
    assert {"gluonts", "statsforecast", "lightning", "pandas"} <= set(required)
    assert "torch" not in required  # the image's; a PyPI torch wheel is the multi-GB CUDA build
    assert demand_pipeline.PYTHON_VERSION == "py313"
