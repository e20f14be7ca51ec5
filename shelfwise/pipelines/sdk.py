"""Every use of the SageMaker Python SDK (v3): a `PipelineSpec` in, a pipeline definition (JSON) out, offline.

Building a definition makes no AWS call: the region is set before the SDK is imported (one SDK class creates a
client at import time), role validation and telemetry are switched off, the session's default bucket is the
configured one instead of one the SDK would look up or create, and code is one self-staged `sourcedir.tar.gz`
referenced by s3 URI (never uploaded), so no timestamp enters the definition. Training jobs run with network
isolation and get the tarball as their `code` channel (the framework container's `sagemaker_program` /
`sagemaker_submit_directory` hyperparameters point into it); processing jobs unpack it before running their script.
Job volumes and outputs are encrypted with the spec's key.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shelfwise.pipelines.spec import (
    PROCESSING_CODE_DIR,
    TRAINING_CODE_DIR,
    AtLeast,
    EvaluationValue,
    ExecutionId,
    Gate,
    ModelArtifacts,
    Output,
    ParamRef,
    PipelineSpec,
    ProcessingStep,
    RegisterStep,
    S3Uri,
    StepOutput,
    TrainingStep,
)

#: The instance type that picks a framework's CPU image (the instance types themselves are pipeline parameters).
CPU_INSTANCE = "ml.m5.xlarge"
#: Where a processing job unpacks the source tarball before running its script from there.
_UNPACKED = "/tmp/shelfwise-code"
_TELEMETRY_OPT_OUT = """SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def _prepare_offline_sdk(region: str) -> None:
    """Environment the SDK reads at import and construction time; see the module docstring."""
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    config = Path(tempfile.gettempdir()) / "shelfwise-sagemaker-config.yaml"
    if not config.exists() or config.read_text(encoding="utf-8") != _TELEMETRY_OPT_OUT:
        config.write_text(_TELEMETRY_OPT_OUT, encoding="utf-8")
    os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(config)


def image_uri(framework: str, version: str, region: str, py_version: str | None = None) -> str:
    """The SageMaker framework image, from the SDK's bundled tables (no AWS call); a framework image with a Python
    version (`py313`) is the CPU training image, which also runs the processing steps and the batch forecast."""
    _prepare_offline_sdk(region)
    from sagemaker.core import image_uris

    if py_version is None:
        uri: str = image_uris.retrieve(framework, region=region, version=version)
    else:
        uri = image_uris.retrieve(
            framework,
            region=region,
            version=version,
            py_version=py_version,
            instance_type=CPU_INSTANCE,
            image_scope="training",
        )
    return uri


def pipeline_definition(spec: PipelineSpec) -> str:
    """Render `spec` as a SageMaker pipeline definition (sorted JSON keys, so bytes are stable)."""
    _prepare_offline_sdk(spec.region)
    with _quiet_sdk():
        definition = _Builder(spec).pipeline().definition()
    return json.dumps(json.loads(definition), sort_keys=True, indent=1)


@contextmanager
def _quiet_sdk() -> Iterator[None]:
    """Silence the SDK's per-step notes (job names left out, no job started) that say nothing about our pipeline."""
    # Several SDK modules set their own logger levels (some DEBUG) and the SDK configures the root logger, so
    # only a process-wide threshold silences them; it is restored at once.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logging.disable(previous)


class _Builder:
    """Translates one spec; keeps the SDK objects of the steps built so far so that later steps can refer to them."""

    def __init__(self, spec: PipelineSpec) -> None:
        import boto3
        from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
        from sagemaker.core.workflow.pipeline_context import PipelineSession

        class OfflineSession(PipelineSession):  # type: ignore[misc]
            """A pipeline session whose default bucket is a given name, never looked up or created."""

            def __init__(self, bucket: str, region: str) -> None:
                super().__init__(boto_session=boto3.Session(region_name=region), default_bucket=bucket)
                self._bucket = bucket

            def default_bucket(self) -> str:
                return self._bucket

        self.spec = spec
        self.image = image_uri(spec.framework, spec.framework_version, spec.region, spec.py_version)
        self.session = OfflineSession(spec.bucket, spec.region)
        self.params: dict[str, Any] = {
            p.name: ParameterFloat(p.name, default_value=p.default)
            if isinstance(p.default, float)
            else ParameterString(p.name, default_value=p.default)
            for p in spec.parameters
        }
        self.steps: dict[str, Any] = {}
        self.property_files: dict[str, Any] = {}

    def pipeline(self) -> Any:
        from sagemaker.mlops.workflow import Pipeline

        for step in self.spec.steps:
            self.steps[step.name] = self.processing(step) if isinstance(step, ProcessingStep) else self.training(step)
        gate = [self.gate(self.spec.gate)] if self.spec.gate is not None else []
        return Pipeline(
            name=self.spec.name,
            parameters=list(self.params.values()),
            steps=[*self.steps.values(), *gate],
            sagemaker_session=self.session,
        )

    # -- values ------------------------------------------------------------------------------------------------
    def value(self, ref: S3Uri | StepOutput | ModelArtifacts | ParamRef | EvaluationValue | str) -> Any:
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join, JsonGet

        if isinstance(ref, str):
            return ref
        if isinstance(ref, ParamRef):
            return self.params[ref.name]
        if isinstance(ref, StepOutput):
            return self.steps[ref.step].properties.ProcessingOutputConfig.Outputs[ref.output].S3Output.S3Uri
        if isinstance(ref, ModelArtifacts):
            return self.steps[ref.step].properties.ModelArtifacts.S3ModelArtifacts
        if isinstance(ref, EvaluationValue):
            return JsonGet(step_name=ref.step, property_file=self.property_files[ref.step], json_path=ref.path)
        parts = [
            ExecutionVariables.PIPELINE_EXECUTION_ID if isinstance(p, ExecutionId) else self.value(p) for p in ref.parts
        ]
        return Join(on="/", values=["s3:/", *parts])

    # -- steps -------------------------------------------------------------------------------------------------
    def processing(self, step: ProcessingStep) -> Any:
        from sagemaker.core.processing import Processor
        from sagemaker.core.workflow.functions import Join
        from sagemaker.core.workflow.properties import PropertyFile
        from sagemaker.mlops.workflow import ProcessingStep as SdkProcessingStep

        # The source tarball is an ordinary input that the entrypoint unpacks. The SDK parses plain-string input URIs
        # (and ScriptProcessor's `code=`) and would upload anything without an s3 scheme; a CDK token fails that
        # (`s3://${Token[...]}` reads as an IPv6 host, a bare token as a local path). A one-value Join is a
        # pipeline expression, which the SDK passes through untouched.
        processor = Processor(
            role=self.spec.role_arn,
            image_uri=self.image,
            entrypoint=processing_entrypoint(step.script, self.spec.source_file),
            instance_count=1,
            instance_type=self.value(self.spec.instance_types["processing"]),
            base_job_name=f"{self.spec.name}-{step.name}"[:32],
            sagemaker_session=self.session,
            volume_kms_key=self.spec.kms_key_arn,
            output_kms_key=self.spec.kms_key_arn,
        )
        args = processor.run(
            inputs=[
                *(self.processing_input(i.name, self.value(i.source), i.local_path) for i in step.inputs),
                self.processing_input("code", Join(on="", values=[self.spec.source_uri]), PROCESSING_CODE_DIR),
            ],
            outputs=[self.processing_output(o) for o in step.outputs],
            arguments=[self.value(a) for a in step.arguments] or None,
        )
        property_files = []
        if step.property_file is not None:
            pf = step.property_file
            self.property_files[step.name] = PropertyFile(name=pf.name, output_name=pf.output, path=pf.path)
            property_files.append(self.property_files[step.name])
        return SdkProcessingStep(
            name=step.name,
            step_args=args,
            property_files=property_files or None,
            depends_on=[self.steps[name] for name in step.depends_on] or None,
        )

    def processing_input(self, name: str, s3_uri: Any, local_path: str) -> Any:
        from sagemaker.core.shapes import ProcessingInput, ProcessingS3Input

        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(
                s3_uri=s3_uri,
                local_path=local_path,
                s3_data_type="S3Prefix",
                s3_input_mode="File",
            ),
        )

    def processing_output(self, item: Output) -> Any:
        from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output

        return ProcessingOutput(
            output_name=item.name,
            s3_output=ProcessingS3Output(
                s3_uri=self.value(item.destination), local_path=item.local_path, s3_upload_mode="EndOfJob"
            ),
        )

    def training(self, step: TrainingStep) -> Any:
        from sagemaker.core.shapes import OutputDataConfig
        from sagemaker.core.workflow.functions import Join
        from sagemaker.mlops.workflow import TrainingStep as SdkTrainingStep
        from sagemaker.train import ModelTrainer
        from sagemaker.train.configs import Compute, InputData, Networking

        trainer = ModelTrainer(
            training_image=self.image,
            role=self.spec.role_arn,
            sagemaker_session=self.session,
            base_job_name=f"{self.spec.name}-{step.name}"[:32],
            compute=Compute(
                instance_type=self.value(self.spec.instance_types["training"]),
                instance_count=1,
                volume_kms_key_id=self.spec.kms_key_arn,
            ),
            # No network in the training container: code and data arrive as channels, the model leaves through S3.
            networking=Networking(enable_network_isolation=True),
            output_data_config=OutputDataConfig(
                s3_output_path=self.value(step.output_path), kms_key_id=self.spec.kms_key_arn
            ),
            hyperparameters={
                **{k: self.value(v) for k, v in sorted(step.hyperparameters.items())},
                "sagemaker_program": step.entry_point,
                "sagemaker_submit_directory": f"{TRAINING_CODE_DIR}/{self.spec.source_file}",
            },
        )
        code = InputData(channel_name="code", data_source=Join(on="", values=[self.spec.source_uri]))
        args = trainer.train(
            input_data_config=[
                *(InputData(channel_name=c.name, data_source=self.value(c.source)) for c in step.channels),
                code,
            ]
        )
        return SdkTrainingStep(name=step.name, step_args=args)

    def register(self, step: RegisterStep) -> Any:
        from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
        from sagemaker.mlops.workflow import ModelStep
        from sagemaker.serve.model_builder import ModelBuilder

        builder = ModelBuilder(
            s3_model_data_url=self.value(step.model),
            image_uri=self.image,
            role_arn=self.spec.role_arn,
            sagemaker_session=self.session,
        )
        metrics = ModelMetrics(
            model_statistics=MetricsSource(content_type="application/json", s3_uri=self.value(step.metrics_uri))
        )
        args = builder.register(
            model_package_group_name=step.group,
            content_types=list(step.content_types),
            response_types=list(step.response_types),
            model_metrics=metrics,
            approval_status=self.value(step.approval_status),
            customer_metadata_properties={k: self.value(v) for k, v in sorted(step.metadata.items())} or None,
        )
        return ModelStep(name=step.name, step_args=args)

    def condition(self, condition: AtLeast) -> Any:
        from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo

        return ConditionGreaterThanOrEqualTo(left=self.value(condition.left), right=self.value(condition.right))

    def gate(self, gate: Gate) -> Any:
        from sagemaker.core.workflow.functions import Join
        from sagemaker.mlops.workflow import ConditionStep, FailStep

        if_steps = []
        for step in gate.if_steps:
            built = self.register(step) if isinstance(step, RegisterStep) else self.processing(step)
            self.steps[step.name] = built
            if_steps.append(built)
        for step in gate.if_steps:
            self.steps.pop(step.name)  # they belong to the condition's branch, not to the top level
        fail = FailStep(
            name=gate.fail_step, error_message=Join(on=" ", values=[self.value(p) for p in gate.fail_message])
        )
        return ConditionStep(
            name=gate.name,
            conditions=[self.condition(c) for c in gate.conditions],
            if_steps=if_steps,
            else_steps=[fail],
        )


def processing_entrypoint(script: str, source_file: str) -> list[str]:
    """Unpack the source tarball, then run `script` from it with the step's arguments (`"$@"`)."""
    command = (
        f"mkdir -p {_UNPACKED} && tar -xzf {PROCESSING_CODE_DIR}/{source_file} -C {_UNPACKED} "
        f'&& cd {_UNPACKED} && exec python3 {script} "$@"'
    )
    return ["/bin/sh", "-c", command, "sh"]
