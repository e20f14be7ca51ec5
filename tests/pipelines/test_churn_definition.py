"""The churn pipeline definition: built offline with no network, byte-identical across processes, the right shape."""

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

from shelfwise.pipelines.churn import (
    CODE_KEYS,
    SCRIPTS_DIR,
    ChurnPipelineConfig,
    build_source_tarball,
    churn_pipeline_spec,
)

ROLE = "arn:aws:iam::123456789012:role/${Token[TOKEN.101]}"
BUCKET = "${Token[TOKEN.102]}"
# a token inside an s3 URI, and a bare token (what a CDK asset's s3ObjectUrl renders as)
CODE = {key: f"s3://${{Token[TOKEN.103]}}/{key}" for key in CODE_KEYS} | {"prepare.py": "${Token[TOKEN.104]}"}

# Runs in a fresh interpreter with no credentials and every socket connection refused, so any AWS call or
# telemetry request fails the build.
BUILD = f"""
import socket, sys
def refuse(*args, **kwargs):
    raise RuntimeError(f"network call during definition build: {{args}}")
socket.socket.connect = refuse
socket.create_connection = refuse
from shelfwise.pipelines.churn import ChurnPipelineConfig, churn_pipeline_definition
cfg = ChurnPipelineConfig("shelfwise-test-churn", {ROLE!r}, "eu-west-1", {BUCKET!r}, "shelfwise-test-churn",
                          {CODE!r})
sys.stdout.write(churn_pipeline_definition(cfg))
"""


def build_in_fresh_process(tmp_path: Path, hash_seed: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PYTHONHASHSEED=hash_seed,
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        HOME=str(tmp_path),
    )
    done = subprocess.run([sys.executable, "-c", BUILD], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def definitions(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    tmp = tmp_path_factory.mktemp("definition")
    return build_in_fresh_process(tmp, "1"), build_in_fresh_process(tmp, "2")


@pytest.fixture(scope="module")
def definition(definitions: tuple[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(definitions[0])
    return parsed


@pytest.mark.slow
def test_definition_is_byte_identical_across_builds_without_network(definitions: tuple[str, str]) -> None:
    first, second = definitions
    assert first == second
    assert first.count("Token[TOKEN.1") > 10  # the CDK tokens pass through as plain substrings


@pytest.mark.slow
def test_steps_run_prepare_train_evaluate_then_the_gate(definition: dict[str, Any]) -> None:
    steps = [(s["Name"], s["Type"]) for s in definition["Steps"]]
    assert steps == [
        ("PrepareChurnData", "Processing"),
        ("TrainChurnModel", "Training"),
        ("EvaluateChurnModel", "Processing"),
        ("ChurnModelGate", "Condition"),
    ]
    train = definition["Steps"][1]["Arguments"]
    assert train["HyperParameters"]["sagemaker_program"] == "train.py"
    assert train["HyperParameters"]["sagemaker_submit_directory"] == CODE["sourcedir.tar.gz"]
    assert train["AlgorithmSpecification"]["TrainingImage"].endswith("/sagemaker-xgboost:3.2-0")
    assert ".eu-west-1." in train["AlgorithmSpecification"]["TrainingImage"]
    assert train["RoleArn"] == ROLE
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train["InputDataConfig"]}
    assert channels["train"] == {"Get": "Steps.PrepareChurnData.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}
    evaluate = definition["Steps"][2]
    assert evaluate["PropertyFiles"][0]["FilePath"] == "evaluation.json"
    code_inputs = [i["S3Input"]["S3Uri"] for i in evaluate["Arguments"]["ProcessingInputs"] if i["InputName"] == "code"]
    assert code_inputs == [{"Std:Join": {"On": "", "Values": [CODE["evaluate.py"]]}}]
    prepare = definition["Steps"][0]["Arguments"]
    assert prepare["AppSpecification"]["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/prepare.py"]
    assert "${Token[TOKEN.104]}" in json.dumps(prepare["ProcessingInputs"])


@pytest.mark.slow
def test_gate_requires_min_auc_and_a_margin_over_the_best_baseline(definition: dict[str, Any]) -> None:
    defaults = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert defaults["MinAuc"] == pytest.approx(0.70)
    assert defaults["MinMarginOverBaseline"] >= 0
    conditions = definition["Steps"][3]["Arguments"]["Conditions"]
    assert [(c["Type"], c["LeftValue"]["Std:JsonGet"]["Path"], c["RightValue"]["Get"]) for c in conditions] == [
        ("GreaterThanOrEqualTo", "churn.auc", "Parameters.MinAuc"),
        ("GreaterThanOrEqualTo", "margin_over_best_baseline", "Parameters.MinMarginOverBaseline"),
    ]


@pytest.mark.slow
def test_pass_registers_pending_approval_then_scores_and_failure_explains(definition: dict[str, Any]) -> None:
    gate = definition["Steps"][3]["Arguments"]
    register, score = gate["IfSteps"]
    assert register["Type"] == "RegisterModel"
    assert register["Arguments"]["ModelPackageGroupName"] == "shelfwise-test-churn"
    assert register["Arguments"]["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    defaults = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert defaults["ModelApprovalStatus"] == "PendingManualApproval"
    container = register["Arguments"]["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == {"Get": "Steps.TrainChurnModel.ModelArtifacts.S3ModelArtifacts"}
    statistics = register["Arguments"]["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["S3Uri"]["Std:Join"]["Values"][-1] == "evaluation.json"
    assert score["Type"] == "Processing"
    assert score["DependsOn"] == ["RegisterChurnModel"]
    outputs = score["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    predictions = next(o for o in outputs if o["OutputName"] == "predictions")["S3Output"]["S3Uri"]["Std:Join"]
    assert predictions["Values"][1:4] == [BUCKET, "predictions", "churn"]
    (fail,) = gate["ElseSteps"]
    assert fail["Type"] == "Fail"
    message = fail["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    paths = [v["Std:JsonGet"]["Path"] for v in message if isinstance(v, dict) and "Std:JsonGet" in v]
    assert paths == ["churn.auc", "best_baseline_auc", "margin_over_best_baseline"]


def test_config_without_a_script_uri_names_it() -> None:
    cfg = ChurnPipelineConfig("p", ROLE, "us-east-1", "b", "g", {k: v for k, v in CODE.items() if k != "evaluate.py"})
    with pytest.raises(ValueError, match=r"code_uris lacks 'evaluate.py'"):
        churn_pipeline_spec(cfg)


def test_source_tarball_is_deterministic_and_holds_the_scripts(tmp_path: Path) -> None:
    scripts = Path(shutil.copytree(SCRIPTS_DIR, tmp_path / "scripts"))
    first = build_source_tarball(scripts, tmp_path / "a" / "sourcedir.tar.gz")
    os.utime(scripts / "train.py", (1e9, 1e9))  # another mtime must not change the archive
    second = build_source_tarball(scripts, tmp_path / "b" / "sourcedir.tar.gz")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["batch_score.py", "evaluate.py", "prepare.py", "train.py"]
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members)


def test_source_tarball_refuses_a_folder_without_scripts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no \.py files"):
        build_source_tarball(tmp_path, tmp_path / "out.tar.gz")
