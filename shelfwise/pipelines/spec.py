"""A pipeline described without the SageMaker SDK: parameters, steps, their inputs, outputs and the gate.

`shelfwise.pipelines.sdk` turns a `PipelineSpec` into a SageMaker pipeline definition; `shelfwise.pipelines.local`
runs the same spec with the same scripts on this machine. Keeping the description SDK-free means an SDK change
touches one module and the local runner cannot drift from what AWS runs.

Every step runs code from one `sourcedir.tar.gz` (`shelfwise.pipelines.code`): training jobs get it as the `code`
channel (they run with network isolation, so the framework container cannot fetch code from S3 itself) and
processing jobs unpack it before running their script.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Parameter:
    """A pipeline parameter; its default applies when an execution does not override it."""

    name: str
    default: float | str


@dataclass(frozen=True)
class ParamRef:
    name: str


@dataclass(frozen=True)
class ExecutionId:
    """The pipeline execution's id (locally: the run id)."""


@dataclass(frozen=True)
class StepOutput:
    """The S3 location of a processing step's named output."""

    step: str
    output: str


@dataclass(frozen=True)
class ModelArtifacts:
    """The S3 URI of the `model.tar.gz` a training step produced."""

    step: str


@dataclass(frozen=True)
class EvaluationValue:
    """A number read from a processing step's property file (a JSON document) at a dotted path."""

    step: str
    path: str


UriPart = str | ParamRef | ExecutionId


@dataclass(frozen=True)
class S3Uri:
    """`s3://` + the parts joined with "/"."""

    parts: tuple[UriPart, ...]


Source = S3Uri | StepOutput | ModelArtifacts | ParamRef


@dataclass(frozen=True)
class Input:
    name: str
    source: Source
    local_path: str
    #: Locally, nothing at the source is no error (the wheelhouse: a deployment stages it, this machine has the
    #: packages installed).
    optional: bool = False


@dataclass(frozen=True)
class Output:
    name: str
    destination: S3Uri
    local_path: str


@dataclass(frozen=True)
class PropertyFile:
    """A JSON file written by a processing step whose values conditions read."""

    name: str
    output: str
    path: str


@dataclass(frozen=True)
class ProcessingStep:
    name: str
    script: str  # file name at the root of the source tarball, e.g. "prepare.py"
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    arguments: tuple[str | ParamRef, ...] = ()
    property_file: PropertyFile | None = None
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainingStep:
    name: str
    entry_point: str  # file name at the root of the source tarball
    channels: tuple[Input, ...]  # local_path is the channel's container folder
    #: Strings, or a (string) pipeline parameter that an execution may override.
    hyperparameters: Mapping[str, str | ParamRef]
    output_path: S3Uri


@dataclass(frozen=True)
class RegisterStep:
    name: str
    #: A training step's artifact, or a `model.tar.gz` a processing step wrote (a model packaged with its selection).
    model: ModelArtifacts | S3Uri
    group: str
    approval_status: ParamRef
    metrics_uri: S3Uri  # evaluation.json
    #: Customer metadata of the package (strings), e.g. the artifact's sha256 as the evaluation step measured it.
    metadata: Mapping[str, EvaluationValue | str] = field(default_factory=dict)
    content_types: tuple[str, ...] = ("text/csv",)
    response_types: tuple[str, ...] = ("text/csv",)


@dataclass(frozen=True)
class AtLeast:
    """left >= right."""

    left: EvaluationValue
    right: ParamRef


MessagePart = str | ParamRef | EvaluationValue


@dataclass(frozen=True)
class Gate:
    """If every condition holds run `if_steps` (in order), else fail with `fail_message` (parts joined by " ")."""

    name: str
    conditions: tuple[AtLeast, ...]
    if_steps: tuple[RegisterStep | ProcessingStep, ...]
    fail_step: str
    fail_message: tuple[MessagePart, ...]


#: The folder a step's container finds the source tarball in (processing input / training channel `code`).
PROCESSING_CODE_DIR = "/opt/ml/processing/input/code"
TRAINING_CODE_DIR = "/opt/ml/input/data/code"


@dataclass(frozen=True)
class PipelineConfig:
    """What differs between deployments; values may be CDK tokens, which pass through as plain strings.

    `source_uri` is the S3 URI of the staged `sourcedir.tar.gz` and `source_file` the name it has in S3 (a CDK
    asset is named by its hash), which is the name the containers find it under.
    """

    pipeline_name: str
    role_arn: str
    region: str
    bucket: str
    model_package_group: str
    source_uri: str
    source_file: str = "sourcedir.tar.gz"
    #: The key that encrypts job volumes and outputs (None: the account's default keys, as locally).
    kms_key_arn: str | None = None
    #: The S3 URI of the staged wheelhouse (a zip of wheels) for pipelines that need packages beyond their image.
    wheelhouse_uri: str | None = None


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    role_arn: str
    region: str
    bucket: str  # the session's default bucket; locations name their bucket themselves
    framework: str  # SageMaker framework image, e.g. "xgboost"
    framework_version: str
    parameters: tuple[Parameter, ...]
    steps: tuple[ProcessingStep | TrainingStep, ...]
    source_uri: str
    source_file: str
    gate: Gate | None = None
    instance_types: Mapping[str, ParamRef] = field(default_factory=dict)  # "processing" / "training"
    kms_key_arn: str | None = None
    #: The image's Python (`py313`) for frameworks that publish one image per Python version (pytorch).
    py_version: str | None = None

    def parameter_defaults(self) -> dict[str, float | str]:
        return {p.name: p.default for p in self.parameters}


#: Where a processing job finds its inputs and leaves its outputs.
PROCESSING = "/opt/ml/processing"


def run_uri(bucket: str, runs_prefix: str, *parts: str) -> S3Uri:
    """A location private to one pipeline execution, under the domain's `runs_prefix` (e.g. "pipelines/demand")."""
    return S3Uri((bucket, *runs_prefix.split("/"), ExecutionId(), *parts))


def quarantine_output(bucket: str, step: str) -> Output:
    """A processing step's rejected rows, by execution, under `quarantine/<step>/`."""
    return Output("quarantine", S3Uri((bucket, "quarantine", step, ExecutionId())), f"{PROCESSING}/quarantine")


@dataclass(frozen=True)
class FrameworkImage:
    """The SageMaker framework image every step of a pipeline runs on."""

    framework: str  # e.g. "xgboost", "pytorch"
    version: str
    #: The image's Python (`py313`) for frameworks that publish one image per Python version (pytorch).
    py_version: str | None = None


def pipeline_spec(
    cfg: PipelineConfig,
    image: FrameworkImage,
    parameters: tuple[Parameter, ...],
    steps: tuple[ProcessingStep | TrainingStep, ...],
    instance_types: Mapping[str, ParamRef],
    gate: Gate | None = None,
) -> PipelineSpec:
    """A domain's spec, with what differs between deployments (name, role, region, bucket, code, key) from `cfg`."""
    return PipelineSpec(
        name=cfg.pipeline_name,
        role_arn=cfg.role_arn,
        region=cfg.region,
        bucket=cfg.bucket,
        framework=image.framework,
        framework_version=image.version,
        py_version=image.py_version,
        parameters=parameters,
        steps=steps,
        gate=gate,
        source_uri=cfg.source_uri,
        source_file=cfg.source_file,
        instance_types=instance_types,
        kms_key_arn=cfg.kms_key_arn,
    )
