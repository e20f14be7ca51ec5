"""The churn pipelines, described without the SageMaker SDK.

Training: prepare -> train -> evaluate -> gate -> register (PendingManualApproval), or fail with the numbers.
Scoring: batch-score one serving partition with a given approved model (the daily chain and the local runner pass
the newest approved package, `shelfwise.pipelines.registry.newest_approved`), whatever today's candidate did at the
gate, so serving data is refreshed on every run.

`shelfwise.pipelines.sdk` renders either as a SageMaker pipeline definition (JSON), offline and byte-identical from
build to build, for the CDK stacks; `shelfwise.pipelines.local` runs them on this machine.
"""

from __future__ import annotations

from shelfwise.pipelines.spec import (
    PROCESSING,
    AtLeast,
    EvaluationValue,
    ExecutionId,
    FrameworkImage,
    Gate,
    Input,
    ModelArtifacts,
    Output,
    Parameter,
    ParamRef,
    PipelineConfig,
    PipelineSpec,
    ProcessingStep,
    PropertyFile,
    RegisterStep,
    S3Uri,
    StepOutput,
    TrainingStep,
    pipeline_spec,
    quarantine_output,
    run_uri,
)

PREPARE, TRAIN, EVALUATE, GATE = "PrepareChurnData", "TrainChurnModel", "EvaluateChurnModel", "ChurnModelGate"
REGISTER, FAIL, SCORE = "RegisterChurnModel", "ChurnModelRejected", "BatchScoreChurn"

MIN_AUC, MIN_MARGIN, APPROVAL = "MinAuc", "MinMarginOverBaseline", "ModelApprovalStatus"
TRAINING_FEATURES, COLD_START_FEATURES = "TrainingFeaturesUri", "ColdStartFeaturesUri"
SERVING_FEATURES = "ServingFeaturesUri"
#: The raw customers table: batch scoring writes a cold-start online record for every customer without features.
CUSTOMERS = "CustomersUri"
MODEL_URI, MODEL_SHA256, MODEL_PACKAGE = "ModelUri", "ModelSha256", "ModelPackageArn"
PROCESSING_INSTANCE, TRAINING_INSTANCE = "ProcessingInstanceType", "TrainingInstanceType"

XGBOOST_VERSION = "3.2-0"
XGBOOST_IMAGE = FrameworkImage("xgboost", XGBOOST_VERSION)
EVALUATION_FILE = "evaluation.json"
#: Where an execution keeps its intermediate data: `<RUNS_PREFIX>/<execution id>/<step>/<output>/`.
RUNS_PREFIX = "pipelines/churn"
PREDICTIONS_PREFIX = "predictions/churn/"
_SPLITS = ("train", "validation", "test", "refit")
#: What the training step passes to train.py; the script's defaults (and the staged feature set) do the rest.
TRAINING_HYPERPARAMETERS: dict[str, str] = {"seed": "0"}
#: Customer metadata of a registered package, as the evaluation step measured it (the API verifies the sha256).
REGISTERED_METADATA = {
    "artifact_sha256": "artifact.sha256",
    "model_version": "model_version",
    "feature_set_version": "feature_set_version",
}


def _prepare_step(cfg: PipelineConfig) -> ProcessingStep:
    return ProcessingStep(
        name=PREPARE,
        script="prepare.py",
        inputs=(
            Input("features", ParamRef(TRAINING_FEATURES), f"{PROCESSING}/input/features"),
            Input("cold-start", ParamRef(COLD_START_FEATURES), f"{PROCESSING}/input/cold-start"),
        ),
        outputs=(
            *(
                Output(name, run_uri(cfg.bucket, RUNS_PREFIX, "prepare", name), f"{PROCESSING}/{name}")
                for name in _SPLITS
            ),
            quarantine_output(cfg.bucket, "churn-prepare"),
        ),
    )


def _train_step(cfg: PipelineConfig) -> TrainingStep:
    return TrainingStep(
        name=TRAIN,
        entry_point="train.py",
        channels=tuple(
            Input(name, StepOutput(PREPARE, name), f"/opt/ml/input/data/{name}")
            for name in ("train", "validation", "refit")
        ),
        hyperparameters=TRAINING_HYPERPARAMETERS,
        # SageMaker appends <training job name>/output/model.tar.gz: the job name is the artifact's version folder.
        output_path=S3Uri((cfg.bucket, "models", "churn")),
    )


def _evaluate_step(cfg: PipelineConfig) -> ProcessingStep:
    return ProcessingStep(
        name=EVALUATE,
        script="evaluate.py",
        inputs=(
            Input("model", ModelArtifacts(TRAIN), f"{PROCESSING}/model"),
            # the baselines learn from the same history as the model's final fit
            Input("train", StepOutput(PREPARE, "refit"), f"{PROCESSING}/train"),
            Input("test", StepOutput(PREPARE, "test"), f"{PROCESSING}/test"),
        ),
        outputs=(Output("evaluation", run_uri(cfg.bucket, RUNS_PREFIX, "evaluation"), f"{PROCESSING}/evaluation"),),
        property_file=PropertyFile("ChurnEvaluation", "evaluation", EVALUATION_FILE),
    )


def _register_step(cfg: PipelineConfig) -> RegisterStep:
    return RegisterStep(
        name=REGISTER,
        model=ModelArtifacts(TRAIN),
        group=cfg.model_package_group,
        approval_status=ParamRef(APPROVAL),
        metrics_uri=run_uri(cfg.bucket, RUNS_PREFIX, "evaluation", EVALUATION_FILE),
        metadata={key: EvaluationValue(EVALUATE, path) for key, path in REGISTERED_METADATA.items()},
    )


def _gate(cfg: PipelineConfig) -> Gate:
    auc = EvaluationValue(EVALUATE, "churn.auc")
    best = EvaluationValue(EVALUATE, "best_baseline_auc")
    margin = EvaluationValue(EVALUATE, "margin_over_best_baseline")
    # Beyond the noise of one cutoff: the lower end of the margin's 95% bootstrap interval, not the margin itself.
    lower = EvaluationValue(EVALUATE, "margin_lower_95")
    return Gate(
        name=GATE,
        conditions=(AtLeast(auc, ParamRef(MIN_AUC)), AtLeast(lower, ParamRef(MIN_MARGIN))),
        if_steps=(_register_step(cfg),),
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
            "at the lower end of its 95% interval; margin",
            margin,
            "lower end",
            lower,
        ),
    )


def training_pipeline_spec(cfg: PipelineConfig) -> PipelineSpec:
    """prepare -> train -> evaluate -> gate -> register, SDK-free."""
    return pipeline_spec(
        cfg,
        XGBOOST_IMAGE,
        parameters=(
            Parameter(MIN_AUC, 0.70),
            Parameter(MIN_MARGIN, 0.001),
            Parameter(APPROVAL, "PendingManualApproval"),
            Parameter(TRAINING_FEATURES, f"s3://{cfg.bucket}/features/churn/training/"),
            Parameter(COLD_START_FEATURES, f"s3://{cfg.bucket}/features/churn/cold_start/"),
            Parameter(PROCESSING_INSTANCE, "ml.m5.xlarge"),
            Parameter(TRAINING_INSTANCE, "ml.m5.xlarge"),
        ),
        steps=(_prepare_step(cfg), _train_step(cfg), _evaluate_step(cfg)),
        gate=_gate(cfg),
        instance_types={"processing": ParamRef(PROCESSING_INSTANCE), "training": ParamRef(TRAINING_INSTANCE)},
    )


def scoring_pipeline_spec(cfg: PipelineConfig) -> PipelineSpec:
    """Batch score: the given approved model on the given serving partition, SDK-free."""
    score = ProcessingStep(
        name=SCORE,
        script="batch_score.py",
        inputs=(
            Input("model", ParamRef(MODEL_URI), f"{PROCESSING}/model"),
            Input("features", ParamRef(SERVING_FEATURES), f"{PROCESSING}/input/features"),
            Input("customers", ParamRef(CUSTOMERS), f"{PROCESSING}/input/customers"),
        ),
        outputs=(
            Output(
                "predictions",
                S3Uri((cfg.bucket, *PREDICTIONS_PREFIX.strip("/").split("/"), ExecutionId())),
                f"{PROCESSING}/predictions",
            ),
            quarantine_output(cfg.bucket, "churn-batch-score"),
        ),
        arguments=(
            "--model-sha256",
            ParamRef(MODEL_SHA256),
            "--model-package",
            ParamRef(MODEL_PACKAGE),
            "--serving-partition",
            ParamRef(SERVING_FEATURES),
        ),
    )
    return pipeline_spec(
        cfg,
        XGBOOST_IMAGE,
        parameters=(
            Parameter(MODEL_URI, f"s3://{cfg.bucket}/models/churn/"),
            Parameter(MODEL_SHA256, ""),
            Parameter(MODEL_PACKAGE, ""),
            # The daily chain passes the partition its feature job wrote; the script refuses more than one cutoff.
            Parameter(SERVING_FEATURES, f"s3://{cfg.bucket}/features/churn/serving/"),
            Parameter(CUSTOMERS, f"s3://{cfg.bucket}/raw/customers/"),
            Parameter(PROCESSING_INSTANCE, "ml.m5.xlarge"),
        ),
        steps=(score,),
        instance_types={"processing": ParamRef(PROCESSING_INSTANCE)},
    )
