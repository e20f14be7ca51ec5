"""The demand pipelines, described without the SageMaker SDK (the pattern of `shelfwise.churn.pipeline`).

Training: prepare (the day's daily and static demand features -> a validated panel, bad rows quarantined) -> train
(DeepAR twice: before the first backtest window, for evaluation, and on all of the history, for forecasting) ->
evaluate (every candidate on the same rolling windows, per hierarchy level; the best by wQL is selected and packaged
with the trained networks) -> gate (the selected forecaster beats seasonal naive by `MinImprovementOverSeasonalNaive`
in every window) -> register (group `demand`, PendingManualApproval in AWS).
Scoring: the batch forecast of every active store x SKU with the given approved package, and the forecasts of the
sums the API serves.

Every step runs on the SageMaker PyTorch CPU image, which has torch; GluonTS, statsforecast and the rest come from a
wheelhouse of the pinned requirements (`sagemaker/demand/requirements.txt`) that the deployment stages as a channel.
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

PREPARE, TRAIN, EVALUATE, GATE = "PrepareDemandData", "TrainDemandModel", "EvaluateDemandModel", "DemandModelGate"
REGISTER, FAIL, FORECAST = "RegisterDemandModel", "DemandModelRejected", "BatchForecastDemand"

MIN_IMPROVEMENT, APPROVAL = "MinImprovementOverSeasonalNaive", "ModelApprovalStatus"
DAILY_FEATURES, STATIC_FEATURES, WHEELHOUSE = "DailyFeaturesUri", "StaticFeaturesUri", "WheelhouseUri"
REGIONAL_HOLIDAYS = "RegionalHolidaysUri"
EPOCHS, NETWORKS, CANDIDATES, BACKTEST_SERIES = "Epochs", "Networks", "Candidates", "BacktestSeries"
#: Every forecaster the evaluation may select (`shelfwise.demand.backtest` scores them), and how tables name it.
CANDIDATE_NAMES: dict[str, str] = {
    "deepar": "DeepAR",
    "autoets": "AutoETS",
    "seasonal_naive": "seasonal naive (weekly)",
    "npts": "NPTS",
    "deepar+autoets": "mean of DeepAR and AutoETS quantiles",
}
ALL_CANDIDATES = ",".join(CANDIDATE_NAMES)
MODEL_URI, MODEL_SHA256, MODEL_PACKAGE = "ModelUri", "ModelSha256", "ModelPackageArn"
PROCESSING_INSTANCE, TRAINING_INSTANCE = "ProcessingInstanceType", "TrainingInstanceType"

#: The SageMaker PyTorch image (CPU): torch 2.10, the oldest GluonTS 0.17 accepts, on Python 3.13.
PYTORCH_VERSION, PYTHON_VERSION = "2.10.0", "py313"
PYTORCH_IMAGE = FrameworkImage("pytorch", PYTORCH_VERSION, PYTHON_VERSION)
EVALUATION_FILE = "evaluation.json"
RUNS_PREFIX = "pipelines/demand"
PREDICTIONS_PREFIX = "predictions/demand/"
DAILY_PREFIX, STATIC_PREFIX = "features/demand/daily/", "features/demand/static/"
WHEELHOUSE_PREFIX = "code/demand/wheelhouse/"
#: The retailer's regional holiday calendar (raw table `regional_holidays`); without it the regional covariates are 0.
HOLIDAYS_PREFIX = "raw/regional_holidays/"
#: Customer metadata of a registered package, as the evaluation step measured it.
REGISTERED_METADATA = {
    "artifact_sha256": "artifact.sha256",
    "model_version": "model_version",
    "feature_set_version": "feature_set_version",
    "forecaster": "selected",
}


def _wheels() -> Input:
    return Input("wheels", ParamRef(WHEELHOUSE), f"{PROCESSING}/input/wheels", optional=True)


def _holidays() -> Input:
    return Input("holidays", ParamRef(REGIONAL_HOLIDAYS), f"{PROCESSING}/input/holidays", optional=True)


def _prepare_step(cfg: PipelineConfig) -> ProcessingStep:
    return ProcessingStep(
        name=PREPARE,
        script="prepare.py",
        inputs=(
            Input("daily", ParamRef(DAILY_FEATURES), f"{PROCESSING}/input/daily"),
            Input("static", ParamRef(STATIC_FEATURES), f"{PROCESSING}/input/static"),
            _holidays(),
            _wheels(),
        ),
        outputs=(
            Output("panel", run_uri(cfg.bucket, RUNS_PREFIX, "prepare", "panel"), f"{PROCESSING}/panel"),
            quarantine_output(cfg.bucket, "demand-prepare"),
        ),
        # The partition's files do not carry their date; its URI does.
        arguments=("--daily-partition", ParamRef(DAILY_FEATURES)),
    )


def _train_step(cfg: PipelineConfig) -> TrainingStep:
    return TrainingStep(
        name=TRAIN,
        entry_point="train.py",
        channels=(
            Input("panel", StepOutput(PREPARE, "panel"), "/opt/ml/input/data/panel"),
            Input("wheels", ParamRef(WHEELHOUSE), "/opt/ml/input/data/wheels", optional=True),
        ),
        hyperparameters={"seed": "0", "epochs": ParamRef(EPOCHS), "networks": ParamRef(NETWORKS)},
        output_path=S3Uri((cfg.bucket, "models", "demand")),
    )


def _evaluate_step(cfg: PipelineConfig) -> ProcessingStep:
    return ProcessingStep(
        name=EVALUATE,
        script="evaluate.py",
        inputs=(
            Input("model", ModelArtifacts(TRAIN), f"{PROCESSING}/model"),
            Input("panel", StepOutput(PREPARE, "panel"), f"{PROCESSING}/panel"),
            _wheels(),
        ),
        outputs=(
            Output("evaluation", run_uri(cfg.bucket, RUNS_PREFIX, "evaluation"), f"{PROCESSING}/evaluation"),
            # The trained networks with the selection: what is registered, and what the batch forecast serves.
            Output("package", run_uri(cfg.bucket, RUNS_PREFIX, "package"), f"{PROCESSING}/package"),
        ),
        property_file=PropertyFile("DemandEvaluation", "evaluation", EVALUATION_FILE),
        arguments=("--candidates", ParamRef(CANDIDATES), "--sample-series", ParamRef(BACKTEST_SERIES)),
    )


def _register_step(cfg: PipelineConfig) -> RegisterStep:
    return RegisterStep(
        name=REGISTER,
        model=run_uri(cfg.bucket, RUNS_PREFIX, "package", "model.tar.gz"),
        group=cfg.model_package_group,
        approval_status=ParamRef(APPROVAL),
        metrics_uri=run_uri(cfg.bucket, RUNS_PREFIX, "evaluation", EVALUATION_FILE),
        metadata={key: EvaluationValue(EVALUATE, path) for key, path in REGISTERED_METADATA.items()},
        content_types=("application/json",),
        response_types=("application/json",),
    )


def _gate(cfg: PipelineConfig) -> Gate:
    worst = EvaluationValue(EVALUATE, "improvement_worst_window")
    return Gate(
        name=GATE,
        conditions=(AtLeast(worst, ParamRef(MIN_IMPROVEMENT)),),
        if_steps=(_register_step(cfg),),
        fail_step=FAIL,
        fail_message=(
            "Demand model rejected: the selected forecaster",
            EvaluationValue(EVALUATE, "selected"),
            "must beat seasonal naive's store x SKU wQL by >= MinImprovementOverSeasonalNaive",
            ParamRef(MIN_IMPROVEMENT),
            "in every backtest window; improvement over the windows",
            EvaluationValue(EVALUATE, "improvement_over_seasonal_naive"),
            "in the worst window",
            worst,
        ),
    )


def _feature_parameters(cfg: PipelineConfig) -> tuple[Parameter, ...]:
    # The daily chain passes the partitions its feature job wrote; the scripts refuse more than one as_of.
    return (
        Parameter(DAILY_FEATURES, f"s3://{cfg.bucket}/{DAILY_PREFIX}"),
        Parameter(STATIC_FEATURES, f"s3://{cfg.bucket}/{STATIC_PREFIX}"),
        Parameter(REGIONAL_HOLIDAYS, f"s3://{cfg.bucket}/{HOLIDAYS_PREFIX}"),
        Parameter(WHEELHOUSE, cfg.wheelhouse_uri or f"s3://{cfg.bucket}/{WHEELHOUSE_PREFIX}"),
    )


def training_pipeline_spec(cfg: PipelineConfig) -> PipelineSpec:
    """prepare -> train -> evaluate -> gate -> register, SDK-free."""
    return pipeline_spec(
        cfg,
        PYTORCH_IMAGE,
        parameters=(
            Parameter(MIN_IMPROVEMENT, 0.10),
            Parameter(APPROVAL, "PendingManualApproval"),
            # Epochs of each of the DeepAR networks whose paths are pooled (`shelfwise.demand.models.train_deepar`).
            Parameter(EPOCHS, "10"),
            Parameter(NETWORKS, "3"),
            # Which forecasters may be selected (every one is scored); and how many store x SKU series the slow
            # baselines forecast in each window (the sums use every series).
            Parameter(CANDIDATES, ALL_CANDIDATES),
            Parameter(BACKTEST_SERIES, "300"),
            *_feature_parameters(cfg),
            Parameter(PROCESSING_INSTANCE, "ml.m5.2xlarge"),
            Parameter(TRAINING_INSTANCE, "ml.m5.2xlarge"),
        ),
        steps=(_prepare_step(cfg), _train_step(cfg), _evaluate_step(cfg)),
        gate=_gate(cfg),
        instance_types={"processing": ParamRef(PROCESSING_INSTANCE), "training": ParamRef(TRAINING_INSTANCE)},
    )


def scoring_pipeline_spec(cfg: PipelineConfig) -> PipelineSpec:
    """Batch forecast: the given approved package on the given partitions, SDK-free."""
    forecast = ProcessingStep(
        name=FORECAST,
        script="forecast.py",
        inputs=(
            Input("model", ParamRef(MODEL_URI), f"{PROCESSING}/model"),
            Input("daily", ParamRef(DAILY_FEATURES), f"{PROCESSING}/input/daily"),
            Input("static", ParamRef(STATIC_FEATURES), f"{PROCESSING}/input/static"),
            _holidays(),
            _wheels(),
        ),
        outputs=(
            Output(
                "predictions",
                S3Uri((cfg.bucket, *PREDICTIONS_PREFIX.strip("/").split("/"), ExecutionId())),
                f"{PROCESSING}/predictions",
            ),
            quarantine_output(cfg.bucket, "demand-forecast"),
        ),
        arguments=(
            "--model-sha256",
            ParamRef(MODEL_SHA256),
            "--model-package",
            ParamRef(MODEL_PACKAGE),
            "--daily-partition",
            ParamRef(DAILY_FEATURES),
        ),
    )
    return pipeline_spec(
        cfg,
        PYTORCH_IMAGE,
        parameters=(
            Parameter(MODEL_URI, f"s3://{cfg.bucket}/models/demand/"),
            Parameter(MODEL_SHA256, ""),
            Parameter(MODEL_PACKAGE, ""),
            *_feature_parameters(cfg),
            Parameter(PROCESSING_INSTANCE, "ml.m5.2xlarge"),
        ),
        steps=(forecast,),
        instance_types={"processing": ParamRef(PROCESSING_INSTANCE)},
    )
