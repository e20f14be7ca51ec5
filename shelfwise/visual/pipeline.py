"""The visual pipelines, described without the SageMaker SDK (the pattern of `shelfwise.demand.pipeline`).

Training: prepare (the lake's raw products and their images -> the catalogue, split by SKU into training and held-out
products, the split written as a manifest; products without a usable image quarantined) -> train (the CNN of
`shelfwise.visual.embedding` from scratch on the training SKUs) -> evaluate (both tasks on the held-out SKUs for the
model and the raw-pixel and colour-histogram baselines; the model exported to ONNX and checked against PyTorch, and
packaged) -> gate (the model's photo recall@1 and similar-product precision@1 from a photo beat the best baseline's by
`MinMarginOverBaselines`) -> register (group `visual`, PendingManualApproval in AWS).
Scoring: batch embed every catalogue image with the approved package's ONNX model and build the index from the
embeddings: the query model and the faiss index written as a new version of the lake's `models/visual-index/`, the
pointer moved last (`shelfwise.visual.search_store.store_search_version`); on the OpenSearch backends
(`SearchBackend`, `SearchEndpoint`) the same embeddings are then loaded into a new OpenSearch index version and made
live (`shelfwise.visual.opensearch_index.OpenSearchIndex.load`).

Every step runs on the SageMaker PyTorch CPU image; ONNX, ONNX Runtime and faiss come from a wheelhouse of the pinned
requirements (`sagemaker/visual/requirements.txt`) that the deployment stages as a channel.
"""

from __future__ import annotations

# The demand pipeline's image: one PyTorch image for every pipeline that trains a network.
from shelfwise.demand.pipeline import PYTORCH_IMAGE
from shelfwise.pipelines.spec import (
    PROCESSING,
    AtLeast,
    EvaluationValue,
    ExecutionId,
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
from shelfwise.visual.search_store import LAKE_PREFIX
from shelfwise.visual.service import INDEX_NAME

PREPARE, TRAIN, EVALUATE, GATE = "PrepareVisualData", "TrainVisualModel", "EvaluateVisualModel", "VisualModelGate"
REGISTER, FAIL, BUILD_INDEX = "RegisterVisualModel", "VisualModelRejected", "BuildVisualIndex"

MIN_MARGIN, APPROVAL, EPOCHS = "MinMarginOverBaselines", "ModelApprovalStatus", "Epochs"
#: The objective per catalogue: the category loss's weight, and how often a training photo is a cluttered scene (a
#: catalogue of garments on black, such as Fashion-MNIST, does better without: `shelfwise bench visual`).
CATEGORY_WEIGHT, SCENE_PROBABILITY = "CategoryWeight", "SceneProbability"
PRODUCTS, IMAGES, WHEELHOUSE = "ProductsUri", "ImagesUri", "WheelhouseUri"
MODEL_URI, MODEL_SHA256, MODEL_PACKAGE = "ModelUri", "ModelSha256", "ModelPackageArn"
#: The deployment's search backend (`shelfwise:searchBackend`) and, for the OpenSearch ones, its endpoint: the daily
#: chain passes both; the defaults are the embedded index's (the local default).
SEARCH_BACKEND, SEARCH_ENDPOINT = "SearchBackend", "SearchEndpoint"
PROCESSING_INSTANCE, TRAINING_INSTANCE = "ProcessingInstanceType", "TrainingInstanceType"

EVALUATION_FILE = "evaluation.json"
RUNS_PREFIX = "pipelines/visual"
#: The raw zone's products snapshot and product images (`shelfwise.ingest`).
PRODUCTS_PREFIX, IMAGES_PREFIX = "raw/products/", "raw/product_images/"
#: Each scoring run's embeddings, by execution: what the index was built from.
PREDICTIONS_PREFIX = "predictions/visual/"
WHEELHOUSE_PREFIX = "code/visual/wheelhouse/"
#: The gate's figures in evaluation.json: the model's minus the best baseline's (`shelfwise.visual.evaluation`).
PHOTO_MARGIN, SIMILAR_MARGIN = "margins.photo_recall_at_1", "margins.similar_from_photo_precision_at_1"
#: Customer metadata of a registered package, as the evaluation step measured it.
REGISTERED_METADATA = {"artifact_sha256": "artifact.sha256", "model_version": "model_version"}


def _wheels() -> Input:
    return Input("wheels", ParamRef(WHEELHOUSE), f"{PROCESSING}/input/wheels", optional=True)


def _raw_inputs() -> tuple[Input, Input]:
    return (
        Input("products", ParamRef(PRODUCTS), f"{PROCESSING}/input/products"),
        Input("images", ParamRef(IMAGES), f"{PROCESSING}/input/images"),
    )


def _prepare_step(cfg: PipelineConfig) -> ProcessingStep:
    return ProcessingStep(
        name=PREPARE,
        script="prepare.py",
        inputs=(*_raw_inputs(), _wheels()),
        outputs=(
            Output("catalogue", run_uri(cfg.bucket, RUNS_PREFIX, "prepare", "catalogue"), f"{PROCESSING}/catalogue"),
            quarantine_output(cfg.bucket, "visual-prepare"),
        ),
    )


def _train_step(cfg: PipelineConfig) -> TrainingStep:
    return TrainingStep(
        name=TRAIN,
        entry_point="train.py",
        channels=(
            Input("catalogue", StepOutput(PREPARE, "catalogue"), "/opt/ml/input/data/catalogue"),
            Input("wheels", ParamRef(WHEELHOUSE), "/opt/ml/input/data/wheels", optional=True),
        ),
        hyperparameters={
            "seed": "0",
            "epochs": ParamRef(EPOCHS),
            "category_weight": ParamRef(CATEGORY_WEIGHT),
            "scene_probability": ParamRef(SCENE_PROBABILITY),
        },
        output_path=S3Uri((cfg.bucket, "models", "visual")),
    )


def _evaluate_step(cfg: PipelineConfig) -> ProcessingStep:
    return ProcessingStep(
        name=EVALUATE,
        script="evaluate.py",
        inputs=(
            Input("model", ModelArtifacts(TRAIN), f"{PROCESSING}/model"),
            Input("catalogue", StepOutput(PREPARE, "catalogue"), f"{PROCESSING}/catalogue"),
            _wheels(),
        ),
        outputs=(
            Output("evaluation", run_uri(cfg.bucket, RUNS_PREFIX, "evaluation"), f"{PROCESSING}/evaluation"),
            # The trained weights with their ONNX export: what is registered, and what the index build embeds with.
            Output("package", run_uri(cfg.bucket, RUNS_PREFIX, "package"), f"{PROCESSING}/package"),
        ),
        property_file=PropertyFile("VisualEvaluation", "evaluation", EVALUATION_FILE),
    )


def _register_step(cfg: PipelineConfig) -> RegisterStep:
    return RegisterStep(
        name=REGISTER,
        model=run_uri(cfg.bucket, RUNS_PREFIX, "package", "model.tar.gz"),
        group=cfg.model_package_group,
        approval_status=ParamRef(APPROVAL),
        metrics_uri=run_uri(cfg.bucket, RUNS_PREFIX, "evaluation", EVALUATION_FILE),
        metadata={key: EvaluationValue(EVALUATE, path) for key, path in REGISTERED_METADATA.items()},
        content_types=("image/png", "image/jpeg", "image/webp"),
        response_types=("application/json",),
    )


def _gate(cfg: PipelineConfig) -> Gate:
    photo, similar = EvaluationValue(EVALUATE, PHOTO_MARGIN), EvaluationValue(EVALUATE, SIMILAR_MARGIN)
    return Gate(
        name=GATE,
        conditions=(AtLeast(photo, ParamRef(MIN_MARGIN)), AtLeast(similar, ParamRef(MIN_MARGIN))),
        if_steps=(_register_step(cfg),),
        fail_step=FAIL,
        fail_message=(
            "Visual model rejected: on held-out SKUs its photo recall@1",
            EvaluationValue(EVALUATE, "visual.photo_recall_at_1"),
            "and its similar-product precision@1 from a photo",
            EvaluationValue(EVALUATE, "visual.similar_from_photo_precision_at_1"),
            "must each beat the best baseline's by >= MinMarginOverBaselines",
            ParamRef(MIN_MARGIN),
            "; margins",
            photo,
            "and",
            similar,
        ),
    )


def _data_parameters(cfg: PipelineConfig) -> tuple[Parameter, ...]:
    return (
        Parameter(PRODUCTS, f"s3://{cfg.bucket}/{PRODUCTS_PREFIX}"),
        Parameter(IMAGES, f"s3://{cfg.bucket}/{IMAGES_PREFIX}"),
        Parameter(WHEELHOUSE, cfg.wheelhouse_uri or f"s3://{cfg.bucket}/{WHEELHOUSE_PREFIX}"),
    )


def training_pipeline_spec(cfg: PipelineConfig) -> PipelineSpec:
    """prepare -> train -> evaluate -> gate -> register, SDK-free."""
    return pipeline_spec(
        cfg,
        PYTORCH_IMAGE,
        parameters=(
            Parameter(MIN_MARGIN, 0.10),
            Parameter(APPROVAL, "PendingManualApproval"),
            Parameter(EPOCHS, "90"),
            Parameter(CATEGORY_WEIGHT, "2.0"),
            Parameter(SCENE_PROBABILITY, "0.9"),
            *_data_parameters(cfg),
            Parameter(PROCESSING_INSTANCE, "ml.m5.xlarge"),
            Parameter(TRAINING_INSTANCE, "ml.m5.2xlarge"),
        ),
        steps=(_prepare_step(cfg), _train_step(cfg), _evaluate_step(cfg)),
        gate=_gate(cfg),
        instance_types={"processing": ParamRef(PROCESSING_INSTANCE), "training": ParamRef(TRAINING_INSTANCE)},
    )


def scoring_pipeline_spec(cfg: PipelineConfig) -> PipelineSpec:
    """Batch embed the catalogue with the given approved package and build the index from it, SDK-free."""
    build = ProcessingStep(
        name=BUILD_INDEX,
        script="embed.py",
        inputs=(Input("model", ParamRef(MODEL_URI), f"{PROCESSING}/model"), *_raw_inputs(), _wheels()),
        outputs=(
            Output(
                "predictions",
                S3Uri((cfg.bucket, *PREDICTIONS_PREFIX.strip("/").split("/"), ExecutionId())),
                f"{PROCESSING}/predictions",
            ),
            quarantine_output(cfg.bucket, "visual-embed"),
        ),
        arguments=(
            "--model-sha256",
            ParamRef(MODEL_SHA256),
            "--model-package",
            ParamRef(MODEL_PACKAGE),
            "--images-uri",
            ParamRef(IMAGES),
            # The version and its pointer are written straight to the lake, pointer last (an output would be
            # uploaded after the job in no particular order).
            "--index-uri",
            f"s3://{cfg.bucket}/{LAKE_PREFIX}",
            "--search-backend",
            ParamRef(SEARCH_BACKEND),
            "--search-endpoint",
            ParamRef(SEARCH_ENDPOINT),
            "--search-index",
            INDEX_NAME,
        ),
    )
    return pipeline_spec(
        cfg,
        PYTORCH_IMAGE,
        parameters=(
            Parameter(MODEL_URI, f"s3://{cfg.bucket}/models/visual/"),
            Parameter(MODEL_SHA256, ""),
            Parameter(MODEL_PACKAGE, ""),
            Parameter(SEARCH_BACKEND, "embedded"),
            Parameter(SEARCH_ENDPOINT, ""),
            *_data_parameters(cfg),
            Parameter(PROCESSING_INSTANCE, "ml.m5.xlarge"),
        ),
        steps=(build,),
        instance_types={"processing": ParamRef(PROCESSING_INSTANCE)},
    )
