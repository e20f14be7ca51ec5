"""Run a domain's pipelines on this machine: the same specs, source tarball, container contract and gate as AWS.

Each step runs its script as a subprocess (this interpreter) from the unpacked `sourcedir.tar.gz`, exactly the
archive AWS stages, in a scratch `opt/ml/...` tree under `settings().work_dir`: processing scripts get
`--<channel>-dir` for every input and output (the container paths are their defaults) and the step's arguments;
training gets `SM_CHANNEL_*`, `SM_MODEL_DIR`, `hyperparameters.json` and the hyperparameters as `--name value`.
Inputs come from the lake and outputs go back to it. Parameter defaults, hyperparameters and the registered image
are read from the rendered pipeline definition, so they are the ones AWS uses.

Difference from AWS, on purpose: a registered package is `Approved` (in AWS it is PendingManualApproval until a
person approves it), so the local demo can serve it. Pass `params={"ModelApprovalStatus": ...}` to override.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from shelfwise.domain import ModelPipeline
from shelfwise.lake import Lake, model_artifact_key
from shelfwise.pipelines.code import SOURCE_TARBALL, build_source_tarball
from shelfwise.pipelines.registry import ApprovedModel, newest_approved, register_model_package, sagemaker_client
from shelfwise.pipelines.spec import (
    AtLeast,
    EvaluationValue,
    ExecutionId,
    Input,
    ModelArtifacts,
    ParamRef,
    PipelineConfig,
    PipelineSpec,
    ProcessingStep,
    RegisterStep,
    S3Uri,
    StepOutput,
    TrainingStep,
)

Progress = Callable[[str, float], None]
ParamValue = float | str
Kind = Literal["training", "scoring"]
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/shelfwise-local-pipeline"
LOCAL_APPROVAL = "Approved"
APPROVAL = "ModelApprovalStatus"
_LOG_TAIL = 2000


class StepFailedError(RuntimeError):
    """A step's script exited with an error; the message holds the end of its output."""


@dataclass
class StepRun:
    name: str
    seconds: float
    status: Literal["Succeeded", "Failed"]
    detail: str = ""


@dataclass
class PipelineRun:
    run_id: str
    pipeline: str
    kind: Kind
    status: Literal["Succeeded", "Failed"] = "Failed"
    steps: list[StepRun] = field(default_factory=list)
    parameters: dict[str, ParamValue] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # evaluation.json
    model_package_arn: str | None = None
    model_version: str | None = None
    artifact_key: str | None = None
    predictions_prefix: str | None = None
    failure_reason: str | None = None


def pipeline_name(lake: Lake, pipeline: ModelPipeline, kind: Kind) -> str:
    """The deployment's name of a pipeline: `shelfwise-<env>-churn` and `shelfwise-<env>-churn-score`."""
    return lake.cfg.resource_name(pipeline.name if kind == "training" else f"{pipeline.name}-score")


def local_pipeline_config(lake: Lake, pipeline: ModelPipeline, kind: Kind) -> PipelineConfig:
    """A pipeline as configured for this lake; the source URI names where a deployment would stage the code."""
    return PipelineConfig(
        pipeline_name=pipeline_name(lake, pipeline, kind),
        role_arn=LOCAL_ROLE_ARN,
        region=lake.cfg.region,
        bucket=lake.bucket,
        model_package_group=lake.cfg.model_group(pipeline.model_group),
        source_uri=f"s3://{lake.bucket}/code/{pipeline.name}/{SOURCE_TARBALL}",
    )


def local_spec(lake: Lake, pipeline: ModelPipeline, kind: Kind) -> PipelineSpec:
    cfg = local_pipeline_config(lake, pipeline, kind)
    return pipeline.training(cfg) if kind == "training" else pipeline.scoring(cfg)


def parameter_defaults(definition: Mapping[str, Any]) -> dict[str, ParamValue]:
    return {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}


def resolve_parameters(
    defaults: Mapping[str, ParamValue], overrides: Mapping[str, ParamValue] | None
) -> dict[str, ParamValue]:
    """Defaults (a registration approved locally) updated with `overrides`, which must name parameters of the
    pipeline and keep their types."""
    params = {**defaults, **({APPROVAL: LOCAL_APPROVAL} if APPROVAL in defaults else {})}
    for name, value in (overrides or {}).items():
        if name not in defaults:
            raise ValueError(f"unknown pipeline parameter {name!r}; parameters: {', '.join(sorted(defaults))}")
        if isinstance(defaults[name], str) and isinstance(value, int | float):
            # A string parameter given a number on the command line (`-p demand.Epochs=2`): its text.
            value = str(int(value)) if float(value).is_integer() else str(value)
        if isinstance(defaults[name], float) != isinstance(value, int | float):
            raise ValueError(f"pipeline parameter {name!r} takes a {type(defaults[name]).__name__}, got {value!r}")
        params[name] = float(value) if isinstance(value, int | float) else value
    return params


class _Execution:
    """One local execution: resolves the spec's references against the lake and runs the steps."""

    def __init__(
        self, lake: Lake, spec: PipelineSpec, definition: Mapping[str, Any], run: PipelineRun, tarball: Path
    ) -> None:
        self.lake, self.spec, self.definition, self.run, self.tarball = lake, spec, definition, run, tarball
        self.scratch = tarball.parent
        self.outputs: dict[tuple[str, str], str] = {}  # (step, output) -> s3 URI
        self.model_uris: dict[str, str] = {}  # training step -> s3 URI of model.tar.gz
        self.property_files: dict[str, dict[str, Any]] = {}

    # -- references --------------------------------------------------------------------------------------------
    def uri(self, ref: S3Uri | StepOutput | ModelArtifacts | ParamRef) -> str:
        if isinstance(ref, ParamRef):
            return str(self.run.parameters[ref.name])
        if isinstance(ref, StepOutput):
            return self.outputs[(ref.step, ref.output)]
        if isinstance(ref, ModelArtifacts):
            return self.model_uris[ref.step]
        parts = [
            self.run.run_id if isinstance(p, ExecutionId) else self.uri(p) if isinstance(p, ParamRef) else p
            for p in ref.parts
        ]
        return "s3://" + "/".join(parts)

    def key(self, uri: str) -> str:
        prefix = f"s3://{self.lake.bucket}/"
        if not uri.startswith(prefix):
            raise StepFailedError(
                f"{uri} is outside the lake bucket {self.lake.bucket}; the local runner reads only the lake"
            )
        return uri[len(prefix) :]

    def value(self, ref: EvaluationValue | ParamRef | str) -> ParamValue:
        if isinstance(ref, str):
            return ref
        if isinstance(ref, ParamRef):
            return self.run.parameters[ref.name]
        document: Any = self.property_files[ref.step]
        for part in ref.path.split("."):
            document = document[part]
        return document if isinstance(document, str) else float(document)

    # -- steps -------------------------------------------------------------------------------------------------
    def local(self, step: str, container_path: str) -> Path:
        return self.scratch / step / container_path.lstrip("/")

    def code(self, step: str) -> Path:
        """The source tarball unpacked for one step, as the container does it."""
        target = self.scratch / step / "code"
        shutil.rmtree(target, ignore_errors=True)
        with tarfile.open(self.tarball, "r:gz") as tar:
            tar.extractall(target, filter="data")
        return target

    def download(self, step: str, item: Input) -> Path:
        target = self.local(step, item.local_path)
        uri = self.uri(item.source)
        if isinstance(item.source, ModelArtifacts):
            self.lake.download_file(self.key(uri), target / "model.tar.gz")
        elif self.lake.download_prefix(self.key(uri), target) == 0 and not item.optional:
            raise StepFailedError(f"{step}: input {item.name!r} is empty: nothing under {uri}")
        return target

    def processing(self, step: ProcessingStep) -> str:
        args = [str(self.value(a)) for a in step.arguments]
        for item in step.inputs:
            args += [f"--{item.name}-dir", str(self.download(step.name, item))]
        for out in step.outputs:
            self.outputs[(step.name, out.name)] = self.uri(out.destination)
            args += [f"--{out.name}-dir", str(self.local(step.name, out.local_path))]
        summary = run_script(self.code(step.name) / step.script, args, {}, self.scratch / step.name)
        for out in step.outputs:
            folder = self.local(step.name, out.local_path)
            if folder.exists():
                self.lake.upload_dir(folder, self.key(self.outputs[(step.name, out.name)]))
        if step.property_file is not None:
            folder = self.local(
                step.name, next(o.local_path for o in step.outputs if o.name == step.property_file.output)
            )
            self.property_files[step.name] = json.loads((folder / step.property_file.path).read_text(encoding="utf-8"))
        return summary

    def training(self, step: TrainingStep) -> str:
        root = self.scratch / step.name / "opt" / "ml"
        hyperparameters = {
            name: str(self.run.parameters[value["Get"].removeprefix("Parameters.")])
            if isinstance(value, dict)
            else value
            for name, value in _training_hyperparameters(self.definition, step.name).items()
        }
        env = {
            "SM_MODEL_DIR": str(root / "model"),
            "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
            "SM_INPUT_CONFIG_DIR": str(root / "input" / "config"),
            "SM_HPS": json.dumps(hyperparameters),
        }
        for channel in step.channels:
            env[f"SM_CHANNEL_{channel.name.upper()}"] = str(self.download(step.name, channel))
        (root / "input" / "config").mkdir(parents=True, exist_ok=True)
        (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters), encoding="utf-8")
        args = [a for k, v in sorted(hyperparameters.items()) if not k.startswith("sagemaker_") for a in (f"--{k}", v)]
        code = self.code(step.name)
        summary = run_script(code / hyperparameters["sagemaker_program"], args, env, self.scratch / step.name)
        archive = _pack_model(root / "model", self.scratch / step.name / "model.tar.gz")
        # AWS puts it under the training output path; locally it waits here until the gate passes
        self.model_uris[step.name] = self.lake.uri(
            f"pipelines/{self.run.pipeline}/{self.run.run_id}/{step.name}/model.tar.gz"
        )
        self.lake.upload_file(archive, self.key(self.model_uris[step.name]))
        return summary

    def evaluation(self) -> dict[str, Any]:
        """The property file the gate reads (evaluation.json)."""
        gate = self.spec.gate
        return self.property_files[gate.conditions[0].left.step] if gate is not None else {}

    def predictions_prefix(self, step: ProcessingStep) -> str | None:
        for out in step.outputs:
            if out.name == "predictions":
                return self.key(self.outputs[(step.name, out.name)]).rstrip("/") + "/"
        return None

    def gate_failure(self) -> str | None:
        """None when every condition holds, else the fail step's message."""
        gate = self.spec.gate
        if gate is None or all(_holds(c, self.value) for c in gate.conditions):
            return None
        return " ".join(_render(self.value(part)) for part in gate.fail_message)

    def register(self, step: RegisterStep) -> str:
        metadata = {key: str(self.value(ref)) for key, ref in step.metadata.items()}
        version = metadata.get("model_version") or self.run.run_id
        # One folder per run, as AWS has one per training job: an approved artifact is never overwritten, even by a
        # run that trains the same version (its archive's bytes, and so its sha256, would differ).
        key = model_artifact_key(self.run.pipeline, self.run.run_id)
        self.lake.copy(self.key(self.uri(step.model)), key)
        metrics = self.evaluation()
        arn = register_model_package(
            sagemaker_client(self.lake.cfg),
            group=step.group,
            model_data_url=self.lake.uri(key),
            image_uri=_registered_image(self.definition, step.name),
            metrics_uri=self.uri(step.metrics_uri),
            approval_status=str(self.value(step.approval_status)),
            properties={
                **metadata,
                "pipeline_run": self.run.run_id,
                **{f"test_{k}": f"{v:.6f}" for k, v in metrics.get(self.run.pipeline, {}).items()},
            },
        )
        self.run.model_package_arn, self.run.model_version, self.run.artifact_key = arn, version, key
        return f"{arn} ({self.value(step.approval_status)})"


def run_pipeline(
    lake: Lake,
    pipeline: ModelPipeline,
    *,
    kind: Kind = "training",
    params: Mapping[str, ParamValue] | None = None,
    progress: Progress | None = None,
) -> PipelineRun:
    """Run one of a domain's pipelines locally (steps, gate, registration); see the module doc."""
    from shelfwise.pipelines.sdk import pipeline_definition

    say = progress or (lambda _stage, _fraction: None)
    spec = local_spec(lake, pipeline, kind)
    definition = json.loads(pipeline_definition(spec))
    run = PipelineRun(
        run_id=_run_id(),
        pipeline=pipeline.name,
        kind=kind,
        parameters=resolve_parameters(parameter_defaults(definition), params),
    )
    scratch = lake.cfg.work_dir / "pipelines" / spec.name / run.run_id
    tarball = build_source_tarball(pipeline, scratch / SOURCE_TARBALL)
    execution = _Execution(lake, spec, definition, run, tarball)
    gate_steps = 0 if spec.gate is None else 1 + len(spec.gate.if_steps)
    total = len(spec.steps) + gate_steps

    def step(name: str, action: Callable[[], str]) -> None:
        say(f"{pipeline.name} {kind}: {name}", len(run.steps) / total)
        start = time.perf_counter()
        try:
            detail = action()
        except StepFailedError as exc:
            run.steps.append(StepRun(name, time.perf_counter() - start, "Failed", str(exc)))
            raise
        run.steps.append(StepRun(name, time.perf_counter() - start, "Succeeded", detail))

    try:
        for item in spec.steps:
            if isinstance(item, ProcessingStep):
                step(item.name, partial(execution.processing, item))
                run.predictions_prefix = execution.predictions_prefix(item) or run.predictions_prefix
            else:
                step(item.name, partial(execution.training, item))
        if spec.gate is not None:
            run.metrics = execution.evaluation()
            step(spec.gate.name, lambda: "")
            run.failure_reason = execution.gate_failure()
            if run.failure_reason is not None:
                run.steps.append(StepRun(spec.gate.fail_step, 0.0, "Failed", run.failure_reason))
                return run
            for branch in spec.gate.if_steps:
                if isinstance(branch, RegisterStep):
                    step(branch.name, partial(execution.register, branch))
                else:
                    step(branch.name, partial(execution.processing, branch))
    except StepFailedError as exc:
        run.failure_reason = str(exc)
        return run
    run.status = "Succeeded"
    say(f"{pipeline.name} {kind}: done", 1.0)
    return run


def run_partition_parameters(lake: Lake, pipeline: ModelPipeline, run_date: str) -> dict[str, str]:
    """The URIs of the partitions the day's feature jobs wrote, by the parameter that takes each."""
    return {name: lake.uri(key) for name, key in pipeline.run_partition_keys(run_date).items()}


def scoring_parameters(package: ApprovedModel, partitions: Mapping[str, str]) -> dict[str, str]:
    """What the daily chain passes the scoring pipeline: the newest approved package and today's partitions."""
    return {
        "ModelUri": package.artifact_uri,
        "ModelSha256": package.sha256 or "",
        "ModelPackageArn": package.arn,
        **partitions,
    }


def train_on_run_date(
    lake: Lake,
    pipeline: ModelPipeline,
    run_date: str,
    params: Mapping[str, ParamValue] | None = None,
    progress: Progress | None = None,
) -> PipelineRun:
    """The training pipeline as the daily chain starts it: on the day's partitions when the pipeline takes them."""
    partitions = run_partition_parameters(lake, pipeline, run_date) if pipeline.training_takes_run_partitions else {}
    return run_pipeline(lake, pipeline, kind="training", params={**partitions, **(params or {})}, progress=progress)


def score_with_newest_approved(
    lake: Lake, pipeline: ModelPipeline, run_date: str, progress: Progress | None = None
) -> tuple[PipelineRun, ApprovedModel]:
    """Score the day's partitions with the newest approved package of the pipeline's group (what the daily chain
    does after training, whatever the candidate did at the gate)."""
    package = newest_approved(lake.cfg.model_group(pipeline.model_group), sagemaker_client(lake.cfg))
    params = scoring_parameters(package, run_partition_parameters(lake, pipeline, run_date))
    return run_pipeline(lake, pipeline, kind="scoring", params=params, progress=progress), package


def _run_id() -> str:
    return time.strftime("local-%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


def run_script(script: Path, args: list[str], env: Mapping[str, str], workdir: Path) -> str:
    """Run `script` with this interpreter; return its last line of output (its summary), raise on failure."""
    workdir.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=workdir,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    (workdir / "stdout.log").write_text(completed.stdout, encoding="utf-8")
    (workdir / "stderr.log").write_text(completed.stderr, encoding="utf-8")
    if completed.returncode != 0:
        raise StepFailedError(
            f"{script.name} exited with {completed.returncode}: {completed.stderr[-_LOG_TAIL:].strip()}"
        )
    lines = completed.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def _training_hyperparameters(definition: Mapping[str, Any], step: str) -> dict[str, Any]:
    for item in definition["Steps"]:
        if item["Name"] == step:
            return dict(item["Arguments"]["HyperParameters"])
    raise KeyError(f"pipeline definition has no step {step!r}")


def _registered_image(definition: Mapping[str, Any], step: str) -> str:
    for item in definition["Steps"]:
        for branch in item.get("Arguments", {}).get("IfSteps", []):
            if branch["Name"] == step:
                return str(branch["Arguments"]["InferenceSpecification"]["Containers"][0]["Image"])
    raise KeyError(f"pipeline definition has no registration step {step!r}")


def _holds(condition: AtLeast, value: Callable[[Any], ParamValue]) -> bool:
    return float(value(condition.left)) >= float(value(condition.right))


def _render(value: ParamValue) -> str:
    return f"{value:.4f}" if isinstance(value, float) else value


def _pack_model(model_dir: Path, archive: Path) -> Path:
    """`model.tar.gz` with the model dir's files at its root, as SageMaker packs `/opt/ml/model`."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive
