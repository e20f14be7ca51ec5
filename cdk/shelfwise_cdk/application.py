"""Assemble the stacks of one deployment into a CDK app from the domains' declarations, with cdk-nag's checks.

Platform stacks (data lake, online store, platform: keys and alarm topic, API, feature jobs, orchestration) are one
each and read every domain's declaration; a domain with a pipeline adds one `<Domain>Pipelines` stack. Nothing here
names a domain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from shelfwise.domain import Domain, ModelPipeline
from shelfwise_cdk.deployment import Deployment
from shelfwise_cdk.packaging import pinned_requirements
from shelfwise_cdk.stacks.api import ApiAuth, ApiStack
from shelfwise_cdk.stacks.data_lake import DataLakeStack
from shelfwise_cdk.stacks.feature_jobs import FeatureJobsStack
from shelfwise_cdk.stacks.model_pipelines import ModelPipelinesStack
from shelfwise_cdk.stacks.online_store import OnlineStoreStack
from shelfwise_cdk.stacks.orchestration import DomainChain, OrchestrationStack
from shelfwise_cdk.stacks.platform import PlatformStack

#: Modules the Glue jobs import that Glue 5.0 lacks; installed with their dependencies at constraints.txt's versions.
GLUE_MODULES = ("pydantic",)


@dataclass(frozen=True)
class PipelineCode:
    """How pipeline code is built: the SDK renderer and the source tarball builder (`shelfwise.pipelines`)."""

    render: Callable[[Any], str]
    build_source_tarball: Callable[[ModelPipeline, Path], Path]


@dataclass(frozen=True)
class ShelfwiseStacks:
    platform: PlatformStack
    data_lake: DataLakeStack
    online_store: OnlineStoreStack
    feature_jobs: FeatureJobsStack
    pipelines: dict[str, ModelPipelinesStack]
    api: ApiStack
    orchestration: OrchestrationStack


def new_app(*, outdir: str | None = None, context: dict[str, object] | None = None) -> App:
    """A CDK app with `context` (cdk.json's feature flags and the deployment's settings)."""
    return App(outdir=outdir, context=context or {})


def library_pipeline_code() -> PipelineCode:
    """The shelfwise library's pipeline code (imported here: it pulls in the SageMaker SDK)."""
    from shelfwise.pipelines.code import build_source_tarball
    from shelfwise.pipelines.sdk import pipeline_definition

    return PipelineCode(render=pipeline_definition, build_source_tarball=build_source_tarball)


def build_stacks(
    app: App, deployment: Deployment, code: PipelineCode, domains: tuple[Domain, ...] | None = None
) -> ShelfwiseStacks:
    """Every stack of the deployment, wired through props (CDK turns them into cross-stack references)."""
    from shelfwise.domains import DOMAINS

    domains = DOMAINS if domains is None else domains
    cfg, sources, env = deployment.settings, deployment.sources, deployment.environment
    build_dir = Path(app.outdir) / "shelfwise-build"

    def stack_args(concern: str, description: str) -> dict[str, Any]:
        return {"env": env, "stack_name": deployment.stack_name(concern), "description": f"Shelfwise: {description}"}

    platform = PlatformStack(app, "Platform", cfg=cfg, **stack_args("platform", "operations key and alarm topic"))
    data_lake = DataLakeStack(
        app,
        "DataLake",
        cfg=cfg,
        retention=[r for d in domains for r in d.retention],
        **stack_args("data-lake", "KMS-encrypted S3 lake, access logs, Glue database"),
    )
    online_store = OnlineStoreStack(
        app, "OnlineStore", cfg=cfg, **stack_args("online-store", "DynamoDB table of features and scores")
    )
    feature_jobs = FeatureJobsStack(
        app,
        "FeatureJobs",
        cfg=cfg,
        lake=data_lake.lake,
        operations_key=platform.key,
        jobs=[job for d in domains for job in d.glue_jobs],
        library_packages=[sources.library],
        additional_modules=pinned_requirements(GLUE_MODULES, sources.constraints),
        build_dir=build_dir,
        **stack_args("feature-jobs", "Glue 5.0 jobs of every domain"),
    )
    pipelines: dict[str, ModelPipelinesStack] = {}
    for domain in domains:
        if domain.pipeline is None:
            continue
        tarball = code.build_source_tarball(domain.pipeline, build_dir / "pipelines" / domain.name / "sourcedir.tar.gz")
        pipelines[domain.name] = ModelPipelinesStack(
            app,
            f"{_pascal(domain.name)}Pipelines",
            cfg=cfg,
            lake=data_lake.lake,
            pipeline=domain.pipeline,
            source_tarball=tarball,
            render=code.render,
            **stack_args(f"{domain.name}-pipelines", f"{domain.name} training and scoring pipelines"),
        )
    auth = deployment.api_auth
    api = ApiStack(
        app,
        "Api",
        cfg=cfg,
        lake=data_lake.lake,
        online_table=online_store.table,
        operations_key=platform.key,
        alarm_topic=platform.alarm_topic,
        functions=[d.api for d in domains if d.api is not None],
        library_dir=sources.library,
        constraints=sources.constraints,
        auth=ApiAuth(mode=auth.mode, issuer=auth.issuer, audience=auth.audience),
        waf=deployment.waf,
        search=deployment.search,
        **stack_args("api", "REST API of every domain, WAF, alarms"),
    )
    orchestration = OrchestrationStack(
        app,
        "Orchestration",
        cfg=cfg,
        lake=data_lake.lake,
        online_table=online_store.table,
        operations_key=platform.key,
        alarm_topic=platform.alarm_topic,
        glue_jobs=[job for d in domains for job in d.glue_jobs],
        chains=[
            DomainChain(
                domain=d,
                training_pipeline=pipelines[d.name].training_name,
                scoring_pipeline=pipelines[d.name].scoring_name,
                model_package_group=pipelines[d.name].model_package_group_name,
                scoring_parameters=_search_parameters(d, api, pipelines[d.name]),
            )
            for d in domains
            if d.name in pipelines
        ],
        library_dir=sources.library,
        constraints=sources.constraints,
        schedule=deployment.schedule,
        **stack_args("orchestration", "scheduled Step Functions chain from Glue to the online store"),
    )
    consumers: list[Stack] = [feature_jobs, *pipelines.values(), api, orchestration]
    for consumer in consumers:
        # They name the lake bucket directly (no export), so CloudFormation needs the order spelled out.
        consumer.add_stack_dependency(data_lake)
    for named in (feature_jobs, *pipelines.values()):
        # The chain starts the jobs and the pipelines by name (no export), so they must exist first.
        orchestration.add_stack_dependency(named)
    Tags.of(app).add("project", "shelfwise")
    Tags.of(app).add("shelfwise:env", cfg.env)
    return ShelfwiseStacks(platform, data_lake, online_store, feature_jobs, pipelines, api, orchestration)


def _search_parameters(domain: Domain, api: ApiStack, pipelines: ModelPipelinesStack) -> dict[str, str]:
    """For a pipeline that builds its domain's search index: write access to the backend for its role, and the
    backend (and endpoint) its scoring pipeline is passed. The endpoint reaches it through the chain at run time, so
    the pipelines stack holds no reference to the backend's (the backend's policies name its role)."""
    pipeline = domain.pipeline
    if pipeline is None or pipeline.search_parameters is None or domain.api is None:
        return {}
    search = api.searches.get(domain.api.name)
    if search is None:
        raise ValueError(f"pipeline {pipeline.name} builds a search index but the {domain.api.name} API declares none")
    search.grant_write(pipelines.role)
    backend, endpoint = pipeline.search_parameters
    return {backend: search.kind, **({endpoint: search.endpoint} if search.endpoint is not None else {})}


def add_security_checks(app: App) -> None:
    """cdk-nag AwsSolutions on every stack: an unacknowledged finding fails `app.synth()`."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part)
