"""The churn pipeline definitions: built offline with no network, byte-identical across processes, the right shape:
one source tarball for every step, network-isolated encrypted training, a gate that registers with the artifact's
sha256, and a scoring pipeline that takes the approved model and the exact serving partition as parameters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from shelfwise.domain import ModelPipeline
from shelfwise.domains import pipeline
from shelfwise.pipelines.code import build_source_tarball, source_files

ROLE = "arn:aws:iam::123456789012:role/${Token[TOKEN.101]}"
BUCKET = "${Token[TOKEN.102]}"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/${Token[TOKEN.103]}"
# a bare token: what a CDK asset's s3ObjectUrl renders as
SOURCE = "${Token[TOKEN.104]}"

# Runs in a fresh interpreter with no credentials and every socket connection refused, so any AWS call or
# telemetry request fails the build.
BUILD = f"""
import socket, sys
def refuse(*args, **kwargs):
    raise RuntimeError(f"network call during definition build: {{args}}")
socket.socket.connect = refuse
socket.create_connection = refuse
from shelfwise.domains import pipeline
from shelfwise.pipelines.sdk import pipeline_definition
from shelfwise.pipelines.spec import PipelineConfig
cfg = PipelineConfig("shelfwise-test-churn", {ROLE!r}, "eu-west-1", {BUCKET!r}, "test-churn", {SOURCE!r},
                     "abc123.tar.gz", {KEY!r})
churn = pipeline("churn")
build = churn.training if sys.argv[1] == "training" else churn.scoring
sys.stdout.write(pipeline_definition(build(cfg)))
"""


def build_in_fresh_process(tmp_path: Path, hash_seed: str, kind: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PYTHONHASHSEED=hash_seed,
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        HOME=str(tmp_path),
    )
    done = subprocess.run([sys.executable, "-c", BUILD, kind], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def definitions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("definition")
    return {
        kind: (build_in_fresh_process(tmp, "1", kind), build_in_fresh_process(tmp, "2", kind))
        for kind in ("training", "scoring")
    }


@pytest.fixture(scope="module")
def training(definitions: dict[str, tuple[str, str]]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(definitions["training"][0])
    return parsed


@pytest.fixture(scope="module")
def scoring(definitions: dict[str, tuple[str, str]]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(definitions["scoring"][0])
    return parsed


@pytest.mark.slow
def test_definitions_are_byte_identical_across_builds_without_network(definitions: dict[str, tuple[str, str]]) -> None:
    for first, second in definitions.values():
        assert first == second
        assert first.count("Token[TOKEN.1") >= 4  # the CDK tokens pass through as plain substrings


@pytest.mark.slow
def test_training_runs_prepare_train_evaluate_then_the_gate(training: dict[str, Any]) -> None:
    steps = [(s["Name"], s["Type"]) for s in training["Steps"]]
    assert steps == [
        ("PrepareChurnData", "Processing"),
        ("TrainChurnModel", "Training"),
        ("EvaluateChurnModel", "Processing"),
        ("ChurnModelGate", "Condition"),
    ]
    train = training["Steps"][1]["Arguments"]
    assert train["AlgorithmSpecification"]["TrainingImage"].endswith("/sagemaker-xgboost:3.2-0")
    assert ".eu-west-1." in train["AlgorithmSpecification"]["TrainingImage"]
    assert train["RoleArn"] == ROLE
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train["InputDataConfig"]}
    for name in ("train", "validation", "refit"):
        output = {"Get": f"Steps.PrepareChurnData.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"}
        assert channels[name] == output
    evaluate = training["Steps"][2]
    assert evaluate["PropertyFiles"][0]["FilePath"] == "evaluation.json"
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in evaluate["Arguments"]["ProcessingInputs"]}
    # the baselines learn from the same history as the model's final fit
    assert inputs["train"] == {"Get": "Steps.PrepareChurnData.ProcessingOutputConfig.Outputs['refit'].S3Output.S3Uri"}


@pytest.mark.slow
def test_training_is_network_isolated_and_encrypted_with_the_given_key(training: dict[str, Any]) -> None:
    train = training["Steps"][1]["Arguments"]
    assert train["EnableNetworkIsolation"] is True
    assert train["ResourceConfig"]["VolumeKmsKeyId"] == KEY
    assert train["OutputDataConfig"]["KmsKeyId"] == KEY
    # no network: the code comes in as a channel and the container finds it by path, not by S3 URI
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train["InputDataConfig"]}
    assert channels["code"] == {"Std:Join": {"On": "", "Values": [SOURCE]}}
    assert train["HyperParameters"]["sagemaker_submit_directory"] == "/opt/ml/input/data/code/abc123.tar.gz"
    assert train["HyperParameters"]["sagemaker_program"] == "train.py"
    for step in (training["Steps"][0], training["Steps"][2]):
        resources = step["Arguments"]["ProcessingResources"]["ClusterConfig"]
        assert resources["VolumeKmsKeyId"] == KEY
        assert step["Arguments"]["ProcessingOutputConfig"]["KmsKeyId"] == KEY


@pytest.mark.slow
def test_every_processing_step_unpacks_the_same_source_tarball(
    training: dict[str, Any], scoring: dict[str, Any]
) -> None:
    steps = [s for s in (*training["Steps"], *scoring["Steps"]) if s["Type"] == "Processing"]
    assert len(steps) == 3
    for step in steps:
        arguments = step["Arguments"]
        (code,) = [i for i in arguments["ProcessingInputs"] if i["InputName"] == "code"]
        assert code["S3Input"]["S3Uri"] == {"Std:Join": {"On": "", "Values": [SOURCE]}}
        entrypoint = arguments["AppSpecification"]["ContainerEntrypoint"]
        assert entrypoint[:2] == ["/bin/sh", "-c"]
        assert "tar -xzf /opt/ml/processing/input/code/abc123.tar.gz" in entrypoint[2]


@pytest.mark.slow
def test_gate_requires_min_auc_and_a_margin_over_the_best_baseline(training: dict[str, Any]) -> None:
    defaults = {p["Name"]: p["DefaultValue"] for p in training["Parameters"]}
    assert defaults["MinAuc"] == pytest.approx(0.70)
    assert defaults["MinMarginOverBaseline"] >= 0
    conditions = training["Steps"][3]["Arguments"]["Conditions"]
    assert [(c["Type"], c["LeftValue"]["Std:JsonGet"]["Path"], c["RightValue"]["Get"]) for c in conditions] == [
        ("GreaterThanOrEqualTo", "churn.auc", "Parameters.MinAuc"),
        ("GreaterThanOrEqualTo", "margin_lower_95", "Parameters.MinMarginOverBaseline"),
    ]


@pytest.mark.slow
def test_pass_registers_pending_approval_with_the_sha256_and_failure_explains(training: dict[str, Any]) -> None:
    gate = training["Steps"][3]["Arguments"]
    (register,) = gate["IfSteps"]  # scoring is its own pipeline: it runs whatever the candidate did
    assert register["Type"] == "RegisterModel"
    arguments = register["Arguments"]
    assert arguments["ModelPackageGroupName"] == "test-churn"
    assert arguments["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    defaults = {p["Name"]: p["DefaultValue"] for p in training["Parameters"]}
    assert defaults["ModelApprovalStatus"] == "PendingManualApproval"
    container = arguments["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == {"Get": "Steps.TrainChurnModel.ModelArtifacts.S3ModelArtifacts"}
    metadata = arguments["CustomerMetadataProperties"]
    assert metadata["artifact_sha256"]["Std:JsonGet"]["Path"] == "artifact.sha256"
    assert metadata["feature_set_version"]["Std:JsonGet"]["Path"] == "feature_set_version"
    (fail,) = gate["ElseSteps"]
    assert fail["Type"] == "Fail"
    message = fail["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    paths = [v["Std:JsonGet"]["Path"] for v in message if isinstance(v, dict) and "Std:JsonGet" in v]
    assert paths == ["churn.auc", "best_baseline_auc", "margin_over_best_baseline", "margin_lower_95"]


@pytest.mark.slow
def test_scoring_takes_the_approved_model_and_the_serving_partition_as_parameters(scoring: dict[str, Any]) -> None:
    (step,) = scoring["Steps"]
    assert step["Name"] == "BatchScoreChurn"
    arguments = step["Arguments"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in arguments["ProcessingInputs"]}
    assert inputs["model"] == {"Get": "Parameters.ModelUri"}
    assert inputs["features"] == {"Get": "Parameters.ServingFeaturesUri"}
    assert arguments["AppSpecification"]["ContainerArguments"] == [
        "--model-sha256",
        {"Get": "Parameters.ModelSha256"},
        "--model-package",
        {"Get": "Parameters.ModelPackageArn"},
        "--serving-partition",
        {"Get": "Parameters.ServingFeaturesUri"},
    ]
    outputs = arguments["ProcessingOutputConfig"]["Outputs"]
    predictions = next(o for o in outputs if o["OutputName"] == "predictions")["S3Output"]["S3Uri"]["Std:Join"]
    assert predictions["Values"][1:] == [BUCKET, "predictions", "churn", {"Get": "Execution.PipelineExecutionId"}]


def test_source_tarball_is_deterministic_and_holds_scripts_helpers_and_library_modules(tmp_path: Path) -> None:
    churn = pipeline("churn")
    first = build_source_tarball(churn, tmp_path / "a" / "sourcedir.tar.gz")
    os.utime(churn.scripts / "train.py")  # another mtime must not change the archive
    second = build_source_tarball(churn, tmp_path / "b" / "sourcedir.tar.gz")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert {"prepare.py", "train.py", "evaluate.py", "batch_score.py", "step_io.py"} <= set(names)
    assert {"shelfwise/__init__.py", "shelfwise/churn/__init__.py", "shelfwise/churn/scoring.py"} <= set(names)
    assert names == sorted(names)
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members)


def test_a_script_shadowing_a_common_helper_is_refused(tmp_path: Path) -> None:
    scripts = Path(shutil.copytree(pipeline("churn").scripts, tmp_path / "scripts"))
    (scripts / "step_io.py").write_text("")
    clash = ModelPipeline(**{**pipeline("churn").__dict__, "scripts": scripts})
    with pytest.raises(ValueError, match=r"would both be step_io\.py"):
        source_files(clash)


def test_a_missing_library_module_is_named(tmp_path: Path) -> None:
    broken = ModelPipeline(**{**pipeline("churn").__dict__, "library_modules": ("shelfwise/churn/nope.py",)})
    with pytest.raises(ValueError, match=r"shelfwise/churn/nope\.py of pipeline 'churn' does not exist"):
        source_files(broken)
