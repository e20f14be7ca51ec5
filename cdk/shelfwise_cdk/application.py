"""Assemble the Shelfwise stacks of one deployment into a CDK app, with the cdk-nag AwsSolutions checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from shelfwise_cdk.deployment import Deployment
from shelfwise_cdk.stacks.churn_api import ChurnApiStack
from shelfwise_cdk.stacks.churn_pipeline import ChurnPipelineStack, DefinitionFactory, PipelineDefinitionInputs
from shelfwise_cdk.stacks.data_lake import DataLakeStack
from shelfwise_cdk.stacks.feature_jobs import FeatureJobsStack
from shelfwise_cdk.stacks.online_store import OnlineStoreStack
from shelfwise_cdk.stacks.orchestration import ChainTargets, OrchestrationStack

#: Scripts of the churn pipeline's processing steps, staged one asset each (the training code goes as a tarball).
CHURN_SCRIPTS = ("prepare.py", "evaluate.py", "batch_score.py")
SOURCE_TARBALL = "sourcedir.tar.gz"

#: CDK feature flags, set in code so that `cdk synth` and the tests build the same templates.
FEATURE_FLAGS: dict[str, object] = {
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/aws-s3:createDefaultLoggingPolicy": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-iam:standardizedServicePrincipals": True,
    "@aws-cdk/aws-kms:aliasNameRef": True,
    "@aws-cdk/aws-sns:createDefaultPolicy": True,
    "@aws-cdk/aws-apigateway:disableCloudWatchRole": True,
    "@aws-cdk/core:enableAdditionalMetadataCollection": False,
}


@dataclass(frozen=True)
class ChurnPipelineCode:
    """How the churn pipeline's definition and training tarball are made (`shelfwise.pipelines.churn`)."""

    definition: DefinitionFactory
    build_source_tarball: Callable[[Path, Path], Path]


@dataclass(frozen=True)
class ShelfwiseStacks:
    data_lake: DataLakeStack
    online_store: OnlineStoreStack
    feature_jobs: FeatureJobsStack
    churn_pipeline: ChurnPipelineStack
    churn_api: ChurnApiStack
    orchestration: OrchestrationStack


def new_app(*, outdir: str | None = None, context: dict[str, object] | None = None) -> App:
    """A CDK app with Shelfwise's feature flags; `context` adds to (and may override) them."""
    return App(outdir=outdir, context=FEATURE_FLAGS | (context or {}))


def library_churn_pipeline_code() -> ChurnPipelineCode:
    """The churn pipeline code of the shelfwise library (imported here: it pulls in the SageMaker SDK)."""
    from shelfwise.pipelines.churn import ChurnPipelineConfig, build_source_tarball, churn_pipeline_definition

    def definition(inputs: PipelineDefinitionInputs) -> str:
        return churn_pipeline_definition(
            ChurnPipelineConfig(
                pipeline_name=inputs.pipeline_name,
                role_arn=inputs.role_arn,
                region=inputs.region,
                bucket=inputs.bucket,
                model_package_group=inputs.model_package_group,
                code_uris=inputs.code_uris,
            )
        )

    return ChurnPipelineCode(definition=definition, build_source_tarball=build_source_tarball)


def build_stacks(app: App, deployment: Deployment, churn_code: ChurnPipelineCode) -> ShelfwiseStacks:
    """Every stack of the deployment, wired through props (CDK turns them into cross-stack references)."""
    cfg, sources, env = deployment.settings, deployment.sources, deployment.environment
    build_dir = Path(app.outdir) / "shelfwise-build"
    data_lake = DataLakeStack(
        app,
        "DataLake",
        cfg=cfg,
        env=env,
        stack_name=deployment.stack_name("data-lake"),
        description="Shelfwise data lake: KMS-encrypted S3 lake, access logs, Glue database",
    )
    online_store = OnlineStoreStack(
        app,
        "OnlineStore",
        cfg=cfg,
        env=env,
        stack_name=deployment.stack_name("online-store"),
        description="Shelfwise online store: DynamoDB table of churn scores and features",
    )
    feature_jobs = FeatureJobsStack(
        app,
        "FeatureJobs",
        cfg=cfg,
        lake=data_lake.lake,
        glue_jobs_dir=sources.glue_jobs,
        library_packages=[sources.library],
        build_dir=build_dir,
        env=env,
        stack_name=deployment.stack_name("feature-jobs"),
        description="Shelfwise feature jobs: Glue 5.0 curation and churn feature jobs",
    )
    tarball = churn_code.build_source_tarball(sources.churn_sagemaker, build_dir / "churn" / SOURCE_TARBALL)
    code_files = {SOURCE_TARBALL: tarball} | {name: sources.churn_sagemaker / name for name in CHURN_SCRIPTS}
    churn_pipeline = ChurnPipelineStack(
        app,
        "ChurnPipeline",
        cfg=cfg,
        lake=data_lake.lake,
        code_files=code_files,
        definition=churn_code.definition,
        env=env,
        stack_name=deployment.stack_name("churn-pipeline"),
        description="Shelfwise churn pipeline: SageMaker pipeline and model package group",
    )
    churn_api = ChurnApiStack(
        app,
        "ChurnApi",
        cfg=cfg,
        lake=data_lake.lake,
        online_table=online_store.table,
        code_dir=sources.churn_lambda,
        library_dir=sources.library,
        env=env,
        stack_name=deployment.stack_name("churn-api"),
        description="Shelfwise churn API: API Gateway, Lambda, alarms",
    )
    orchestration = OrchestrationStack(
        app,
        "Orchestration",
        cfg=cfg,
        lake=data_lake.lake,
        online_table=online_store.table,
        chain=ChainTargets(
            curate_orders_job=feature_jobs.jobs["curate-orders"].job_name,
            customer_features_job=feature_jobs.jobs["customer-features"].job_name,
            pipeline_name=churn_pipeline.pipeline_name,
        ),
        alarm_topic=churn_api.alarm_topic,
        publish_code_dir=sources.churn_publish_lambda,
        library_dir=sources.library,
        schedule=deployment.schedule,
        env=env,
        stack_name=deployment.stack_name("orchestration"),
        description="Shelfwise orchestration: scheduled Step Functions chain from Glue to the online store",
    )
    for consumer in (feature_jobs, churn_pipeline, churn_api, orchestration):
        # They name the lake bucket directly (no export), so CloudFormation needs the order spelled out.
        consumer.add_stack_dependency(data_lake)
    for named in (feature_jobs, churn_pipeline):
        # The chain starts the jobs and the pipeline by name (no export), so they must exist first.
        orchestration.add_stack_dependency(named)
    Tags.of(app).add("project", "shelfwise")
    Tags.of(app).add("shelfwise:env", cfg.env)
    return ShelfwiseStacks(data_lake, online_store, feature_jobs, churn_pipeline, churn_api, orchestration)


def add_security_checks(app: App) -> None:
    """cdk-nag AwsSolutions on every stack: an unacknowledged finding fails `app.synth()`."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
