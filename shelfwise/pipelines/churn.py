"""The churn pipeline: prepare -> train -> evaluate -> gate -> register + batch score, or fail with the numbers.

`churn_pipeline_spec` describes it without the SageMaker SDK; `churn_pipeline_definition` renders the SageMaker
pipeline definition (JSON) through `shelfwise.pipelines.sdk`, offline and byte-identical from build to build, for
the CDK stack; `shelfwise.pipelines.local` runs the same spec on this machine.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import shelfwise
from shelfwise.churn_features import FEATURE_NAMES, LABEL_HORIZON_DAYS
from shelfwise.pipelines.spec import (
    AtLeast,
    EvaluationValue,
    ExecutionId,
    Gate,
    Input,
    ModelArtifacts,
    Output,
    Parameter,
    ParamRef,
    PipelineSpec,
    ProcessingStep,
    PropertyFile,
    RegisterStep,
    S3Uri,
    StepOutput,
    TrainingStep,
)

#: The scripts the pipeline runs, as shipped in the training source tarball and staged one by one for processing.
SCRIPTS_DIR = Path(shelfwise.__file__).resolve().parent.parent / "sagemaker" / "churn"
PROCESSING_SCRIPTS = ("prepare.py", "evaluate.py", "batch_score.py")
SOURCE_TARBALL = "sourcedir.tar.gz"
CODE_KEYS = (SOURCE_TARBALL, *PROCESSING_SCRIPTS)

PREPARE, TRAIN, EVALUATE, GATE = "PrepareChurnData", "TrainChurnModel", "EvaluateChurnModel", "ChurnModelGate"
REGISTER, SCORE, FAIL = "RegisterChurnModel", "BatchScoreChurn", "ChurnModelRejected"

MIN_AUC, MIN_MARGIN, APPROVAL = "MinAuc", "MinMarginOverBaseline", "ModelApprovalStatus"
TRAINING_FEATURES, SERVING_FEATURES = "TrainingFeaturesUri", "ServingFeaturesUri"
#: The raw customers table: batch scoring writes a cold-start online record for every customer without features.
CUSTOMERS = "CustomersUri"
PROCESSING_INSTANCE, TRAINING_INSTANCE = "ProcessingInstanceType", "TrainingInstanceType"

XGBOOST_VERSION = "3.2-0"
EVALUATION_FILE = "evaluation.json"
PROCESSING = "/opt/ml/processing"
#: Where an execution keeps its intermediate data: `<RUNS_PREFIX>/<execution id>/<step>/<output>/`.
RUNS_PREFIX = "pipelines/churn"
_SPLITS = ("train", "validation", "test")
#: What the training step passes to train.py besides the container's own entries; the script's defaults do the rest.
TRAINING_HYPERPARAMETERS: Mapping[str, str] = {
    "features": ",".join(FEATURE_NAMES),
    "label_horizon_days": str(LABEL_HORIZON_DAYS),
}


@dataclass(frozen=True)
class ChurnPipelineConfig:
    """What differs between deployments; values may be CDK tokens, which pass through as plain strings."""

    pipeline_name: str
    role_arn: str
    region: str
    bucket: str
    model_package_group: str
    code_uris: Mapping[str, str]  # CODE_KEYS -> s3 URI

    def code_uri(self, key: str) -> str:
        if key not in self.code_uris:
            raise ValueError(f"code_uris lacks {key!r}; it needs {', '.join(CODE_KEYS)}")
        return self.code_uris[key]


def _run_uri(bucket: str, *parts: str) -> S3Uri:
    """A location private to one pipeline execution."""
    return S3Uri((bucket, *RUNS_PREFIX.split("/"), ExecutionId(), *parts))


def _prepare_step(cfg: ChurnPipelineConfig) -> ProcessingStep:
    return ProcessingStep(
        name=PREPARE,
        script="prepare.py",
        code_uri=cfg.code_uri("prepare.py"),
        inputs=(Input("features", ParamRef(TRAINING_FEATURES), f"{PROCESSING}/input/features"),),
        outputs=(
            *(Output(name, _run_uri(cfg.bucket, "prepare", name), f"{PROCESSING}/{name}") for name in _SPLITS),
            Output(
                "quarantine",
                S3Uri((cfg.bucket, "quarantine", "churn-prepare", ExecutionId())),
                f"{PROCESSING}/quarantine",
            ),
        ),
    )


def _train_step(cfg: ChurnPipelineConfig) -> TrainingStep:
    return TrainingStep(
        name=TRAIN,
        entry_point="train.py",
        source_uri=cfg.code_uri(SOURCE_TARBALL),
        channels=tuple(
            Input(name, StepOutput(PREPARE, name), f"/opt/ml/input/data/{name}") for name in ("train", "validation")
        ),
        hyperparameters=TRAINING_HYPERPARAMETERS,
        # SageMaker appends <training job name>/output/model.tar.gz: the job name is the artifact's version folder.
        output_path=S3Uri((cfg.bucket, "models", "churn")),
    )


def _evaluate_step(cfg: ChurnPipelineConfig) -> ProcessingStep:
    return ProcessingStep(
        name=EVALUATE,
        script="evaluate.py",
        code_uri=cfg.code_uri("evaluate.py"),
        inputs=(
            Input("model", ModelArtifacts(TRAIN), f"{PROCESSING}/model"),
            Input("train", StepOutput(PREPARE, "train"), f"{PROCESSING}/train"),
            Input("test", StepOutput(PREPARE, "test"), f"{PROCESSING}/test"),
        ),
        outputs=(Output("evaluation", _run_uri(cfg.bucket, "evaluation"), f"{PROCESSING}/evaluation"),),
        property_file=PropertyFile("ChurnEvaluation", "evaluation", EVALUATION_FILE),
    )


def _register_step(cfg: ChurnPipelineConfig) -> RegisterStep:
    return RegisterStep(
        name=REGISTER,
        model=ModelArtifacts(TRAIN),
        group=cfg.model_package_group,
        approval_status=ParamRef(APPROVAL),
        metrics_uri=_run_uri(cfg.bucket, "evaluation", EVALUATION_FILE),
    )


def _score_step(cfg: ChurnPipelineConfig) -> ProcessingStep:
    return ProcessingStep(
        name=SCORE,
        script="batch_score.py",
        code_uri=cfg.code_uri("batch_score.py"),
        inputs=(
            Input("model", ModelArtifacts(TRAIN), f"{PROCESSING}/model"),
            Input("features", ParamRef(SERVING_FEATURES), f"{PROCESSING}/input/features"),
            Input("customers", ParamRef(CUSTOMERS), f"{PROCESSING}/input/customers"),
        ),
        outputs=(
            Output(
                "predictions", S3Uri((cfg.bucket, "predictions", "churn", ExecutionId())), f"{PROCESSING}/predictions"
            ),
            Output(
                "quarantine",
                S3Uri((cfg.bucket, "quarantine", "churn-batch-score", ExecutionId())),
                f"{PROCESSING}/quarantine",
            ),
        ),
        depends_on=(REGISTER,),
    )


def _gate(cfg: ChurnPipelineConfig) -> Gate:
    auc = EvaluationValue(EVALUATE, "churn.auc")
    best = EvaluationValue(EVALUATE, "best_baseline_auc")
    margin = EvaluationValue(EVALUATE, "margin_over_best_baseline")
    return Gate(
        name=GATE,
        conditions=(AtLeast(auc, ParamRef(MIN_AUC)), AtLeast(margin, ParamRef(MIN_MARGIN))),
        if_steps=(_register_step(cfg), _score_step(cfg)),
        fail_step=FAIL,
        fail_message=(
            "Churn model rejected: test AUC",
            auc,
            "must be >= MinAuc",
            ParamRef(MIN_AUC),
            "and exceed the best baseline AUC",
            best,
            "by >= MinMarginOverBaseline",
            ParamRef(MIN_MARGIN),
            "; margin",
            margin,
        ),
    )


def churn_pipeline_spec(cfg: ChurnPipelineConfig) -> PipelineSpec:
    """The churn pipeline, SDK-free."""
    return PipelineSpec(
        name=cfg.pipeline_name,
        role_arn=cfg.role_arn,
        region=cfg.region,
        bucket=cfg.bucket,
        framework="xgboost",
        framework_version=XGBOOST_VERSION,
        parameters=(
            Parameter(MIN_AUC, 0.70),
            Parameter(MIN_MARGIN, 0.005),
            Parameter(APPROVAL, "PendingManualApproval"),
            Parameter(TRAINING_FEATURES, f"s3://{cfg.bucket}/features/churn/training/"),
            Parameter(SERVING_FEATURES, f"s3://{cfg.bucket}/features/churn/serving/"),
            Parameter(CUSTOMERS, f"s3://{cfg.bucket}/raw/customers/"),
            Parameter(PROCESSING_INSTANCE, "ml.m5.xlarge"),
            Parameter(TRAINING_INSTANCE, "ml.m5.xlarge"),
        ),
        steps=(_prepare_step(cfg), _train_step(cfg), _evaluate_step(cfg)),
        gate=_gate(cfg),
        instance_types={"processing": ParamRef(PROCESSING_INSTANCE), "training": ParamRef(TRAINING_INSTANCE)},
    )


def churn_pipeline_definition(cfg: ChurnPipelineConfig) -> str:
    """The SageMaker pipeline definition as JSON; no AWS call, same bytes for the same config."""
    from shelfwise.pipelines.sdk import pipeline_definition

    return pipeline_definition(churn_pipeline_spec(cfg))


def build_source_tarball(src_dir: Path, dest: Path) -> Path:
    """Pack the `.py` files of `src_dir` into a deterministic `sourcedir.tar.gz` (sorted, mtime 0, no owner)."""
    files = sorted(p for p in src_dir.iterdir() if p.is_file() and p.suffix == ".py")
    if not files:
        raise ValueError(f"no .py files in {src_dir}")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tarfile.TarInfo(path.name)
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    dest.parent.mkdir(parents=True, exist_ok=True)
    # gzip writes a timestamp and the file name into its header unless told not to.
    with dest.open("wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    return dest
