"""A pipeline described without the SageMaker SDK: parameters, steps, their inputs, outputs and the gate.

`shelfwise.pipelines.sdk` turns a `PipelineSpec` into a SageMaker pipeline definition; `shelfwise.pipelines.local`
runs the same spec with the same scripts on this machine. Keeping the description SDK-free means an SDK change
touches one module and the local runner cannot drift from what AWS runs.
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
    script: str  # file name in the scripts folder, e.g. "prepare.py"
    code_uri: str
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    arguments: tuple[str, ...] = ()
    property_file: PropertyFile | None = None
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainingStep:
    name: str
    entry_point: str
    source_uri: str  # s3 URI of sourcedir.tar.gz holding entry_point
    channels: tuple[Input, ...]  # local_path is the channel's container folder
    hyperparameters: Mapping[str, str]
    output_path: S3Uri


@dataclass(frozen=True)
class RegisterStep:
    name: str
    model: ModelArtifacts
    group: str
    approval_status: ParamRef
    metrics_uri: S3Uri  # evaluation.json
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
    gate: Gate
    instance_types: Mapping[str, ParamRef] = field(default_factory=dict)  # "processing" / "training"

    def parameter_defaults(self) -> dict[str, float | str]:
        return {p.name: p.default for p in self.parameters}
