"""Model pipelines stack, one per domain with a `ModelPipeline`: its training and scoring SageMaker pipelines, its
model package group, their execution role and their code (one `sourcedir.tar.gz` asset).

The definitions are the library's (`ModelPipeline.training` / `.scoring` rendered by `shelfwise.pipelines.sdk`),
built from the names this stack creates: the role ARN, the lake bucket, the code asset and the lake key that
encrypts job volumes and outputs. Those are CloudFormation tokens inside the JSON string; CDK turns the string into
an `Fn::Join` at synth.

The execution role may register packages but never approve or reject them (no `sagemaker:UpdateModelPackage`):
approval is a person's decision, and the newest approved package is what batch scoring and the API serve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, AssetHashType, CfnOutput, RemovalPolicy, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from shelfwise.config import Settings
from shelfwise.domain import ModelPipeline
from shelfwise.pipelines.spec import PipelineConfig
from shelfwise_cdk.constructs.lake_access import grant_asset_read, grant_lake
from shelfwise_cdk.constructs.local_bundling import WheelhouseLocalBundling, local_bundling_options
from shelfwise_cdk.nag import acknowledge_wildcards
from shelfwise_cdk.stacks.data_lake import LakeRef

#: Renders a pipeline spec to its definition JSON (`shelfwise.pipelines.sdk.pipeline_definition` in the app).
Renderer = Callable[[Any], str]
#: Registration actions of the execution role: create and read packages, never change their approval.
REGISTRATION_ACTIONS = (
    "sagemaker:CreateModelPackage",
    "sagemaker:DescribeModelPackage",
    "sagemaker:DescribeModelPackageGroup",
)


class ModelPipelinesStack(Stack):
    """Model package group, least-privilege execution role, code asset, and the two `AWS::SageMaker::Pipeline`s."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: Settings,
        lake: LakeRef,
        pipeline: ModelPipeline,
        source_tarball: Path,
        render: Renderer,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.training_name = cfg.resource_name(pipeline.name)
        self.scoring_name = cfg.resource_name(f"{pipeline.name}-score")
        self.model_package_group_name = cfg.model_group(pipeline.model_group)
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=self.model_package_group_name,
            model_package_group_description=f"Shelfwise {cfg.env}: {pipeline.name} models that passed the gate",
        )
        # Which model was registered, approved and served when is an audit record: kept when the stack goes.
        self.model_package_group.apply_removal_policy(RemovalPolicy.RETAIN)
        role_name = cfg.resource_name(f"{pipeline.name}-pipelines")
        self.role = self._role(cfg, role_name, lake, pipeline)
        role_arn = self.format_arn(service="iam", region="", resource="role", resource_name=role_name)
        if not source_tarball.is_file():
            raise FileNotFoundError(f"pipeline code {source_tarball} does not exist")
        code = s3_assets.Asset(self, "Code", path=str(source_tarball))
        grant_asset_read(self.role, code, "PipelineCode")
        wheelhouse = self._wheelhouse(pipeline)
        config = PipelineConfig(
            pipeline_name=self.training_name,
            role_arn=role_arn,
            region=self.region,
            bucket=lake.bucket_name,
            model_package_group=self.model_package_group_name,
            source_uri=code.s3_object_url,
            source_file=code.s3_object_key.rsplit("/", 1)[-1],
            kms_key_arn=lake.key.key_arn,
            wheelhouse_uri=wheelhouse.s3_object_url if wheelhouse is not None else None,
        )
        self.pipelines: dict[str, sagemaker.CfnPipeline] = {}
        for kind, name, build in (
            ("training", self.training_name, pipeline.training),
            ("scoring", self.scoring_name, pipeline.scoring),
        ):
            body = definition_with_tokens(render, build, replace(config, pipeline_name=name))
            self.pipelines[kind] = sagemaker.CfnPipeline(
                self,
                f"{kind.capitalize()}Pipeline",
                pipeline_name=name,
                pipeline_display_name=name,
                pipeline_description=f"Shelfwise {cfg.env}: {pipeline.name} {kind}",
                pipeline_definition={"PipelineDefinitionBody": body},
                role_arn=role_arn,
            )
            self.pipelines[kind].add_resource_dependency(self.model_package_group)
            # The role and its policy (jobs start only once the policy exists); the ARN string references neither.
            self.pipelines[kind].node.add_dependency(self.role)
        CfnOutput(self, "TrainingPipelineName", value=self.training_name)
        CfnOutput(self, "ScoringPipelineName", value=self.scoring_name)
        CfnOutput(self, "ModelPackageGroupName", value=self.model_package_group_name)

    def _wheelhouse(self, pipeline: ModelPipeline) -> s3_assets.Asset | None:
        """The wheels of the pipeline's pinned requirements for its image's Python, one zip the steps install from
        (built by `pip download` at synth: no Docker, and no network in the jobs)."""
        if pipeline.requirements is None:
            return None
        python = pipeline.training(_SPEC_PROBE).py_version
        if python is None:
            raise ValueError(f"pipeline {pipeline.name} has requirements but its image names no Python version")
        version = f"{python[2]}.{python[3:]}"  # py313 -> 3.13
        folder = pipeline.requirements.parent
        bundler = WheelhouseLocalBundling(requirements=pipeline.requirements, python_version=version)
        asset = s3_assets.Asset(
            self,
            "Wheelhouse",
            path=str(folder),
            asset_hash_type=AssetHashType.SOURCE,
            exclude=["*", f"!{pipeline.requirements.name}"],
            bundling=local_bundling_options(bundler),
        )
        grant_asset_read(self.role, asset, "PipelineWheelhouse")
        return asset

    def pipeline_arn(self, name: str) -> str:
        return self.format_arn(service="sagemaker", resource="pipeline", resource_name=name)

    def _role(self, cfg: Settings, role_name: str, lake: LakeRef, pipeline: ModelPipeline) -> iam.Role:
        role = iam.Role(
            self,
            "ExecutionRole",
            role_name=role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Shelfwise {cfg.env}: {pipeline.name} pipelines and the jobs they start",
        )
        grant_lake(role, lake, read=pipeline.reads, write=pipeline.writes)
        bucket_arn = f"arn:{self.partition}:s3:::{lake.bucket_name}"
        group = cfg.model_group(pipeline.model_group)
        jobs = [self._sagemaker_arn(kind, "*") for kind in ("processing-job", "training-job")]
        logs = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        ecr = f"arn:{self.partition}:ecr:{self.region}:*:repository/sagemaker-*"
        packages = self._sagemaker_arn("model-package", f"{group}/*")
        statements = [
            iam.PolicyStatement(sid="LakeBucketLocation", actions=["s3:GetBucketLocation"], resources=[bucket_arn]),
            iam.PolicyStatement(
                sid="RunPipelineJobs",
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=jobs,
            ),
            iam.PolicyStatement(
                sid="RegisterModels",
                actions=list(REGISTRATION_ACTIONS),
                resources=[self._sagemaker_arn("model-package-group", group), packages],
            ),
            iam.PolicyStatement(
                sid="PassOwnRoleToJobs",
                actions=["iam:PassRole"],
                resources=[role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="JobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[logs],
            ),
            iam.PolicyStatement(
                sid="JobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "SageMaker*"]}},
            ),
            iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                sid="PullAwsFrameworkImages",
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[ecr],
            ),
            # Job volumes and outputs are encrypted with the lake key: SageMaker creates grants for the jobs.
            iam.PolicyStatement(
                sid="EncryptJobVolumes",
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[lake.key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
        ]
        for statement in statements:
            role.add_to_policy(statement)
        acknowledge_wildcards(
            role,
            resources={
                **dict.fromkeys(jobs, "SageMaker Pipelines names each processing and training job per execution."),
                packages: f"Versions of the {group} model package group only (created, never approved).",
                logs: "SageMaker writes job logs to per-job streams under /aws/sagemaker/.",
                "*": "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource ARNs "
                "(metrics are limited to SageMaker namespaces by condition).",
                ecr: "AWS framework images live in AWS-owned registries whose account differs per region.",
            },
        )
        return role

    def _sagemaker_arn(self, resource: str, name: str) -> str:
        return self.format_arn(service="sagemaker", resource=resource, resource_name=name)


#: A configuration to build a spec with when only its constant parts are read (the image's Python).
_SPEC_PROBE = PipelineConfig("probe", "arn:aws:iam::000000000000:role/probe", "us-east-1", "probe", "probe", "s3://p/s")
#: Marks the stand-ins for tokens; none may survive into a definition.
_PLACEHOLDER = "shelfwise-placeholder"
_PLACEHOLDER_ACCOUNT = "000000000000"


def definition_with_tokens(render: Renderer, build: Callable[[PipelineConfig], Any], config: PipelineConfig) -> str:
    """Render the pipeline with plain stand-ins for every value holding a CDK token, then put the tokens back.

    The SageMaker SDK parses what it is given (`urlparse` on code URIs, a role lookup unless the value starts with
    `arn:`), and token strings (`${Token[...]}`) are neither URLs nor ARNs. Stand-ins have the shape of the real
    value; a stand-in that the SDK took apart (and so cannot be swapped back) fails the synth.
    """
    swaps: dict[str, str] = {}

    def stand_in(real: str | None, placeholder: str) -> str | None:
        if real is None or not Token.is_unresolved(real):
            return real
        swaps[placeholder] = real
        return placeholder

    for name, value in (("pipeline_name", config.pipeline_name), ("region", config.region)):
        if Token.is_unresolved(value):
            raise ValueError(f"the pipeline's {name} must be a plain value, got a token: {value}")
    if Token.is_unresolved(config.source_file):
        raise ValueError(f"the source file name must be a plain value, got a token: {config.source_file}")
    plain = replace(
        config,
        role_arn=stand_in(config.role_arn, f"arn:aws:iam::{_PLACEHOLDER_ACCOUNT}:role/{_PLACEHOLDER}-role") or "",
        bucket=stand_in(config.bucket, f"{_PLACEHOLDER}-bucket") or "",
        source_uri=stand_in(config.source_uri, f"s3://{_PLACEHOLDER}-code/{config.source_file}") or "",
        kms_key_arn=stand_in(
            config.kms_key_arn, f"arn:aws:kms:us-east-1:{_PLACEHOLDER_ACCOUNT}:key/{_PLACEHOLDER}-key"
        ),
        wheelhouse_uri=stand_in(config.wheelhouse_uri, f"s3://{_PLACEHOLDER}-wheels/wheelhouse.zip"),
    )
    body = render(build(plain))
    for placeholder in sorted(swaps, key=len, reverse=True):
        body = body.replace(placeholder, swaps[placeholder])
    if _PLACEHOLDER in body or _PLACEHOLDER_ACCOUNT in body:
        raise ValueError(
            "the pipeline definition splits a deployment value (role ARN, bucket, key or code URI) into parts, so "
            "its CloudFormation tokens cannot be restored; pass such values through whole"
        )
    return body
