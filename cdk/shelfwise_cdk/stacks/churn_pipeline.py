"""Churn pipeline stack: the SageMaker pipeline (prepare -> train -> evaluate -> gate -> register -> batch score),
its model package group, its execution role, and its code staged as assets.

The pipeline definition is produced by `shelfwise.pipelines.churn.churn_pipeline_definition` (injected as
`definition`) from the names this stack creates: the role ARN, the lake bucket and the asset URIs of the code. Those
are CloudFormation tokens inside the JSON string; CDK turns the string into an `Fn::Join` at synth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from shelfwise.config import Settings
from shelfwise_cdk.nag import acknowledge_wildcards
from shelfwise_cdk.stacks.data_lake import LakeRef

#: Lake prefixes of the churn model (see `shelfwise.pipelines.churn`): features and the customers table (cold starts)
#: in; models, predictions, rejected rows (quarantine/churn-prepare/, quarantine/churn-batch-score/) and the
#: per-execution working area out.
READ_PREFIXES = ("features/churn/", "raw/customers/")
READ_WRITE_PREFIXES = ("models/churn/", "predictions/churn/", "pipelines/churn/", "quarantine/churn-")


@dataclass(frozen=True)
class PipelineDefinitionInputs:
    """What the definition function needs from the deployment (fields of `ChurnPipelineConfig`)."""

    pipeline_name: str
    role_arn: str
    region: str
    bucket: str
    model_package_group: str
    code_uris: Mapping[str, str]


DefinitionFactory = Callable[[PipelineDefinitionInputs], str]


class ChurnPipelineStack(Stack):
    """Model package group, least-privilege execution role, code assets and the `AWS::SageMaker::Pipeline`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: Settings,
        lake: LakeRef,
        code_files: Mapping[str, Path],
        definition: DefinitionFactory,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.pipeline_name = cfg.resource_name("churn")
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=cfg.churn_model_group,
            model_package_group_description=f"Shelfwise {cfg.env}: churn models that beat the baselines",
        )
        role_name = cfg.resource_name("churn-pipeline")
        self.role = self._role(cfg, role_name, lake.bucket(self))
        role_arn = self.format_arn(service="iam", region="", resource="role", resource_name=role_name)
        code_uris = {}
        for name, path in sorted(code_files.items()):
            if not path.is_file():
                raise FileNotFoundError(f"pipeline code {name!r}: {path} does not exist")
            asset = s3_assets.Asset(self, f"Code{_construct_id(name)}", path=str(path))
            asset.grant_read(self.role)
            code_uris[name] = asset.s3_object_url
            acknowledge_wildcards(
                self.role,
                resources={asset.bucket.arn_for_objects("*"): "CDK's asset bucket names objects by content hash."},
            )
        body = definition_with_tokens(
            definition,
            PipelineDefinitionInputs(
                pipeline_name=self.pipeline_name,
                role_arn=role_arn,
                region=self.region,
                bucket=lake.bucket_name,
                model_package_group=cfg.churn_model_group,
                code_uris=code_uris,
            ),
        )
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=self.pipeline_name,
            pipeline_display_name=self.pipeline_name,
            pipeline_description=f"Shelfwise {cfg.env}: train, evaluate, gate, register and batch-score churn",
            pipeline_definition={"PipelineDefinitionBody": body},
            role_arn=role_arn,
        )
        self.pipeline.add_resource_dependency(self.model_package_group)
        # The role and its policy (jobs start only once the policy exists); the ARN string references neither.
        self.pipeline.node.add_dependency(self.role)
        CfnOutput(self, "PipelineName", value=self.pipeline_name)
        CfnOutput(self, "ModelPackageGroupName", value=cfg.churn_model_group)

    @property
    def pipeline_arn(self) -> str:
        return self.format_arn(service="sagemaker", resource="pipeline", resource_name=self.pipeline_name)

    def _role(self, cfg: Settings, role_name: str, lake_bucket: s3.IBucket) -> iam.Role:
        role = iam.Role(
            self,
            "ExecutionRole",
            role_name=role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Shelfwise {cfg.env}: churn pipeline and the jobs it starts",
        )
        for prefix in READ_PREFIXES:
            lake_bucket.grant_read(role, f"{prefix}*")
        for prefix in READ_WRITE_PREFIXES:
            lake_bucket.grant_read_write(role, f"{prefix}*")
        acknowledge_wildcards(
            role,
            actions={
                "s3:GetObject*": "Object reads (data, version, tagging) limited to the churn prefixes of the lake.",
                "s3:GetBucket*": "SageMaker reads the lake bucket's location before downloading; lake bucket only.",
                "s3:List*": "Processing and training inputs are S3 prefixes that SageMaker lists; lake bucket only.",
                "s3:DeleteObject*": "Re-running a step replaces its outputs under the churn prefixes.",
                "s3:Abort*": "SageMaker aborts its failed multipart uploads of model and output files.",
                "kms:GenerateDataKey*": "Writes to the SSE-KMS lake need data keys of the lake key.",
                "kms:ReEncrypt*": "Part of the encrypt/decrypt grant on the lake key only.",
            },
            resources={
                lake_bucket.arn_for_objects(f"{prefix}*"): f"Objects under the lake's {prefix} prefix only."
                for prefix in (*READ_PREFIXES, *READ_WRITE_PREFIXES)
            },
        )
        for statement in self._statements(cfg, role):
            role.add_to_policy(statement)
        return role

    def _statements(self, cfg: Settings, role: iam.Role) -> list[iam.PolicyStatement]:
        group = cfg.churn_model_group
        jobs = [self._sagemaker_arn(kind, "*") for kind in ("processing-job", "training-job")]
        logs = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        ecr = f"arn:{self.partition}:ecr:{self.region}:*:repository/sagemaker-*"
        acknowledge_wildcards(
            role,
            resources={
                **dict.fromkeys(jobs, "SageMaker Pipelines names each processing and training job per execution."),
                self._sagemaker_arn("model-package", f"{group}/*"): "Versions of the churn model package group only.",
                logs: "SageMaker writes job logs to per-job streams under /aws/sagemaker/.",
                "*": "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource ARNs "
                "(metrics are limited to SageMaker namespaces by condition).",
                ecr: "AWS framework images live in AWS-owned registries whose account differs per region.",
            },
        )
        return [
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
                sid="RegisterChurnModels",
                actions=[
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:UpdateModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                ],
                resources=[
                    self._sagemaker_arn("model-package-group", group),
                    self._sagemaker_arn("model-package", f"{group}/*"),
                ],
            ),
            iam.PolicyStatement(
                sid="PassOwnRoleToJobs",
                actions=["iam:PassRole"],
                resources=[role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="JobLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
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
        ]

    def _sagemaker_arn(self, resource: str, name: str) -> str:
        return self.format_arn(service="sagemaker", resource=resource, resource_name=name)


#: Marks the stand-ins for tokens; none may survive into a definition.
_PLACEHOLDER = "shelfwise-placeholder"
_PLACEHOLDER_ACCOUNT = "000000000000"


def definition_with_tokens(definition: DefinitionFactory, inputs: PipelineDefinitionInputs) -> str:
    """Call `definition` with plain stand-ins for every value holding a CDK token, then put the tokens back.

    The SageMaker SDK parses what it is given (`urlparse` on code URIs, a role lookup unless the value starts with
    `arn:`), and token strings (`${Token[...]}`) are neither URLs nor ARNs. Stand-ins have the shape of the real
    value; a stand-in that the SDK took apart (and so cannot be swapped back) fails the synth.
    """
    swaps: dict[str, str] = {}

    def stand_in(real: str, placeholder: str) -> str:
        if not Token.is_unresolved(real):
            return real
        swaps[placeholder] = real
        return placeholder

    for name, value in (("pipeline_name", inputs.pipeline_name), ("region", inputs.region)):
        if Token.is_unresolved(value):
            raise ValueError(f"the pipeline's {name} must be a plain value, got a token: {value}")
    plain = replace(
        inputs,
        role_arn=stand_in(inputs.role_arn, f"arn:aws:iam::{_PLACEHOLDER_ACCOUNT}:role/{_PLACEHOLDER}-role"),
        bucket=stand_in(inputs.bucket, f"{_PLACEHOLDER}-bucket"),
        code_uris={
            key: stand_in(uri, f"s3://{_PLACEHOLDER}-code-{index}/{key}")
            for index, (key, uri) in enumerate(sorted(inputs.code_uris.items()))
        },
    )
    body = definition(plain)
    for placeholder in sorted(swaps, key=len, reverse=True):
        body = body.replace(placeholder, swaps[placeholder])
    if _PLACEHOLDER in body or _PLACEHOLDER_ACCOUNT in body:
        raise ValueError(
            "the pipeline definition splits a deployment value (role ARN, bucket or code URI) into parts, so its "
            "CloudFormation tokens cannot be restored; pass such values through whole"
        )
    return body


def _construct_id(name: str) -> str:
    stem = name.split(".", 1)[0]
    return "".join(part.capitalize() for part in stem.replace("-", "_").split("_"))
