"""Orchestration stack: the daily chain in AWS, as `shelfwise demo` runs it locally, read from the domains.

A Standard Step Functions state machine, started by an EventBridge schedule:

    RunDate -> the shared Glue jobs (curate_orders: start, then poll until it ends)
    -> Domains, one branch per domain with a pipeline, side by side:
         the domain's Glue jobs -> training pipeline (start, poll; whatever the candidate did at the gate, the
         chain goes on) -> the newest approved package (`shelfwise.pipelines.registry.NEWEST_APPROVED_QUERY`, the
         query the API and the local runner use) -> none: fail NoApprovedModel
         -> scoring pipeline with that package on the partitions the day's feature job wrote (start, poll)
         -> the domain's publisher (Lambda) writes the records to the online store; a domain without one (visual
            search: its scoring pipeline's last step builds the index the API serves) records the scoring run
    -> every branch published: Published; else fail with the first failed branch's error

Step Functions owns retries: starting and polling jobs and pipelines retry AWS's transient errors with backoff;
the Glue jobs have no retries of their own and SageMaker steps no retry policies. A failed Glue job or scoring run
ends its domain's branch before anything is published, so yesterday's serving data of that domain stays in place;
the other domains' branches go on and publish, then the execution fails with the branch's error and raises the
ChainFailed alarm. A shared job that fails ends the execution before any branch starts. Glue tasks are written as
start + poll (not `.sync`), which also lets the definition itself run in moto's Step Functions interpreter in the
tests.

The run date is the execution's start date, passed to each job's run-date option and naming the serving partition,
so a redriven execution redoes the same day.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from shelfwise.config import Settings
from shelfwise.domain import Domain, GlueJob, ModelPipeline
from shelfwise.online_store import LEASE_S, PUBLICATION_PK
from shelfwise.pipelines.registry import NEWEST_APPROVED_QUERY, SHA256_KEY
from shelfwise_cdk.constructs.lake_access import grant_lake
from shelfwise_cdk.constructs.python_function import ShelfwisePythonFunction
from shelfwise_cdk.nag import acknowledge, acknowledge_wildcards
from shelfwise_cdk.stacks.api import function_environment
from shelfwise_cdk.stacks.data_lake import LakeRef

#: `PipelineExecutionArn` = arn:<partition>:sagemaker:<region>:<account>:pipeline/<name>/execution/<id>; split on
#: "/" the execution id is item 3 (pipeline names cannot hold "/").
EXECUTION_ID_ITEM = 3
FINISHED_BADLY = ("Failed", "Stopped")
GLUE_FAILED = ("FAILED", "ERROR", "TIMEOUT", "STOPPED")
GLUE_TRANSIENT = [
    "Glue.ThrottlingException",
    "Glue.InternalServiceException",
    "Glue.OperationTimeoutException",
]
#: SageMaker's API models none of its transient errors; Step Functions names an error `SageMaker.<Code>Exception`,
#: and an unmodeled one `SageMaker.SageMakerException`, which may also be a lasting error (retried, then failed).
SAGEMAKER_TRANSIENT = [
    "SageMaker.ThrottlingException",
    "SageMaker.InternalFailureException",
    "SageMaker.ServiceUnavailableException",
    "SageMaker.SageMakerException",
]


@dataclass(frozen=True)
class DomainChain:
    """What the chain runs for a domain with a pipeline: its pipelines by name and its publisher."""

    domain: Domain
    training_pipeline: str
    scoring_pipeline: str
    model_package_group: str
    #: Deployment values the scoring pipeline takes besides the package and the partitions (its search backend).
    scoring_parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OrchestrationLimits:
    """How long each part may take; defaults fit the default world with room to grow."""

    glue_poll_seconds: int = 60
    glue_max_polls: int = 120  # two hours per job
    pipeline_poll_minutes: int = 5
    pipeline_max_polls: int = 72  # six hours per pipeline
    publish_timeout_minutes: int = 15  # Lambda's maximum
    #: A publisher that finds another's turn retries after 5, 10, 20 minutes: past the longest turn (LEASE_S).
    publish_busy_retry_minutes: int = 5
    publish_busy_retries: int = 3
    #: A day without a publish alarms: the daily chain did not refresh the serving data.
    publish_expected_hours: int = 26

    def __post_init__(self) -> None:
        if self.publish_busy_waits_minutes() * 60 <= LEASE_S:
            raise ValueError(f"the publish retries wait {self.publish_busy_waits_minutes()} min, not past a turn")

    def publish_busy_waits_minutes(self) -> int:
        return sum(self.publish_busy_retry_minutes * 2**attempt for attempt in range(self.publish_busy_retries))

    def execution_timeout(self, jobs: int, pipelines: int) -> Duration:
        """Every job and pipeline at its bound, every publish at Lambda's through its waits for a turn, and an hour
        for the other retries and waits."""
        glue = jobs * self.glue_max_polls * self.glue_poll_seconds
        sagemaker = pipelines * self.pipeline_max_polls * self.pipeline_poll_minutes * 60
        runs = self.publish_busy_retries + 1
        publish = pipelines // 2 * (runs * (self.publish_timeout_minutes + 1) + self.publish_busy_waits_minutes()) * 60
        return Duration.seconds(glue + sagemaker + publish + 3600)


class OrchestrationStack(Stack):
    """State machine, its schedule, the publishers, encrypted logs and alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: Settings,
        lake: LakeRef,
        online_table: dynamodb.ITable,
        operations_key: kms.IKey,
        alarm_topic: sns.ITopic,
        glue_jobs: Sequence[GlueJob],
        chains: Sequence[DomainChain],
        library_dir: Path,
        constraints: Path,
        schedule: str,
        limits: OrchestrationLimits | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.cfg, self.lake, self.limits = cfg, lake, limits or OrchestrationLimits()
        self.key = operations_key
        self.publishers = {
            chain.domain.name: self._publisher(chain.domain, online_table, library_dir, constraints)
            for chain in chains
            if chain.domain.publisher is not None
        }
        #: The Powertools service name each publisher's metrics carry (its folder name with dashes).
        self.publisher_services = {
            chain.domain.name: chain.domain.publisher.name.replace("_", "-")
            for chain in chains
            if chain.domain.publisher is not None
        }
        self.state_machine = self._state_machine(glue_jobs, chains)
        self.rule = events.Rule(
            self,
            "Schedule",
            rule_name=cfg.resource_name("daily-chain"),
            description=f"Shelfwise {cfg.env}: starts the daily chain (Glue -> pipelines -> online store)",
            schedule=events.Schedule.expression(schedule),
            targets=[
                targets.SfnStateMachine(
                    self.state_machine,
                    input=events.RuleTargetInput.from_object({"trigger": "schedule"}),
                    retry_attempts=3,
                    max_event_age=Duration.hours(1),
                )
            ],
        )
        self.alarms = self._alarms(alarm_topic)
        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        for name, publisher in self.publishers.items():
            CfnOutput(self, f"{_pascal(name)}PublishFunctionName", value=publisher.function.function_name)

    # -- publishers --------------------------------------------------------------------------------------------
    def _publisher(
        self, domain: Domain, online_table: dynamodb.ITable, library_dir: Path, constraints: Path
    ) -> ShelfwisePythonFunction:
        spec = domain.publisher
        assert spec is not None
        publisher = ShelfwisePythonFunction(
            self,
            f"{_pascal(spec.name)}Function",
            handler="app.handler",
            code_dir=spec.code_dir,
            library_dirs=[library_dir],
            requirements=spec.code_dir / "requirements.txt",
            constraints=constraints,
            environment=function_environment(
                self.cfg, self.lake.bucket_name, online_table.table_name, spec.name.replace("_", "-")
            ),
            log_key=self.key,
            description=f"Shelfwise {self.cfg.env}: {spec.description}",
            # 1 GiB for CPU (Lambda scales it with memory): parsing and serializing the lines is the publisher's
            # bottleneck next to DynamoDB's latency.
            memory_size=spec.memory_mb,
            timeout=Duration.minutes(self.limits.publish_timeout_minutes),
        )
        role = publisher.role
        grant_lake(role, self.lake, read=spec.reads, put_only=spec.writes, sid="Runs")
        # Puts and batches of puts (shelfwise.online_store): no reads or deletes; updates of the lease item alone.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PutOnlineItems",
                actions=["dynamodb:PutItem", "dynamodb:BatchWriteItem"],
                resources=[online_table.table_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="TakeTurnsAtPublishing",
                actions=["dynamodb:UpdateItem"],
                resources=[online_table.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [PUBLICATION_PK]}},
            )
        )
        if online_table.encryption_key is not None:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="EncryptOnlineItems",
                    actions=["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[online_table.encryption_key.key_arn],
                )
            )
        acknowledge_wildcards(
            role, resources={"*": "X-Ray PutTraceSegments/PutTelemetryRecords support no resource ARNs."}
        )
        acknowledge(
            publisher.function,
            "AwsSolutions-L1",
            "Pinned to python3.12: the bundle's wheels are installed for cp312 and the handler is tested on it; "
            "move to a newer runtime together with the bundling target.",
        )
        return publisher

    # -- the state machine -------------------------------------------------------------------------------------
    def _state_machine(self, glue_jobs: Sequence[GlueJob], chains: Sequence[DomainChain]) -> sfn.StateMachine:
        run_date = sfn.Pass(
            self,
            "RunDate",
            parameters={
                "date": sfn.JsonPath.array_get_item(
                    sfn.JsonPath.string_split(sfn.JsonPath.string_at("$$.Execution.StartTime"), "T"), 0
                )
            },
            result_path="$.run",
        )
        in_branches = {job.name for chain in chains for job in chain.domain.glue_jobs}
        steps: list[tuple[sfn.IChainable, sfn.INextable]] = [(run_date, run_date)]
        for job in glue_jobs:
            if job.name not in in_branches:
                steps.append(self._glue_job(job))
        steps.append(self._domains(chains))
        _chain(steps).next(sfn.Succeed(self, "Published"))
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            encryption_key=self.key,
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        machine = sfn.StateMachine(
            self,
            "DailyChain",
            state_machine_name=self.cfg.resource_name("daily-chain"),
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(run_date),
            timeout=self.limits.execution_timeout(len(glue_jobs), 2 * len(chains)),
            tracing_enabled=True,
            # Every state transition is logged; execution data (inputs, outputs, error causes) stays in the
            # execution history, which only principals allowed to read this state machine can see.
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            comment=f"Shelfwise {self.cfg.env}: Glue jobs, each domain's pipelines, publish to the online store",
        )
        self._acknowledge_machine(machine, glue_jobs, chains)
        return machine

    def _domains(self, chains: Sequence[DomainChain]) -> tuple[sfn.IChainable, sfn.INextable]:
        """One branch per domain, side by side: its Glue jobs, then its pipelines and publisher. A branch that fails
        is caught and recorded, so the other domains still publish; the execution then fails with that branch's
        error (and alarms), after every branch has ended."""
        domains = sfn.Parallel(self, "Domains", result_path="$.domains")
        fails: list[tuple[sfn.Condition, sfn.IChainable]] = []
        for index, chain in enumerate(chains):
            name = _pascal(chain.domain.name)
            steps = [self._glue_job(job) for job in chain.domain.glue_jobs]
            steps.append(self._domain(chain))
            finished = sfn.Pass(
                self,
                f"{name}Finished",
                parameters={
                    "domain": chain.domain.name,
                    "training": sfn.JsonPath.object_at(f"$.training.{chain.domain.name}"),
                    "published": sfn.JsonPath.object_at(f"$.published.{chain.domain.name}"),
                },
            )
            _chain(steps).next(finished)
            branch = sfn.Parallel(self, f"{name}Branch", output_path="$[0]")
            branch.branch(steps[0][0])
            failed = sfn.Pass(
                self,
                f"{name}BranchFailed",
                parameters={"domain": chain.domain.name, "failure": sfn.JsonPath.object_at("$.failure")},
            )
            branch.add_catch(failed, errors=["States.ALL"], result_path="$.failure")
            domains.branch(branch)
            failure = f"$.domains[{index}].failure"
            fails.append(
                (
                    sfn.Condition.is_present(failure),
                    sfn.Fail(
                        self,
                        f"{name}Failed",
                        error_path=f"{failure}.Error",
                        cause_path=f"{failure}.Cause",
                        comment=f"the {chain.domain.name} branch failed; the other domains published",
                    ),
                )
            )
        outcome = sfn.Choice(self, "EveryDomainPublished?")
        for condition, fail in fails:
            outcome.when(condition, fail)
        succeeded = sfn.Pass(self, "EveryDomainPublished")
        outcome.otherwise(succeeded)
        domains.next(outcome)
        return domains, succeeded

    def _glue_job(self, job: GlueJob) -> tuple[sfn.IChainable, sfn.INextable]:
        """Start the job (its run-date option set), poll until it ends; a failed or overdue run fails the chain."""
        name, job_name = _pascal(job.name), self.cfg.resource_name(job.resource_suffix)
        arguments = {f"--{job.run_date_option}": sfn.JsonPath.string_at("$.run.date")} if job.run_date_option else {}
        start = tasks.CallAwsService(
            self,
            f"Start{name}",
            service="glue",
            action="startJobRun",
            iam_action="glue:StartJobRun",
            iam_resources=[self._glue_arn(job_name)],
            parameters={"JobName": job_name, **({"Arguments": arguments} if arguments else {})},
            result_selector={"id": sfn.JsonPath.string_at("$.JobRunId"), "polls": 0},
            result_path="$.job",
        )
        # A manual run of the same job holds its one concurrent slot: wait it out.
        start.add_retry(
            errors=["Glue.ConcurrentRunsExceededException"],
            interval=Duration.minutes(5),
            max_attempts=4,
            backoff_rate=2,
        )
        start.add_retry(errors=GLUE_TRANSIENT, interval=Duration.seconds(30), max_attempts=4, backoff_rate=2)
        wait = sfn.Wait(
            self, f"WaitFor{name}", time=sfn.WaitTime.duration(Duration.seconds(self.limits.glue_poll_seconds))
        )
        count = sfn.Pass(
            self,
            f"Count{name}Poll",
            parameters={
                "id": sfn.JsonPath.string_at("$.job.id"),
                "polls": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.job.polls"), 1),
            },
            result_path="$.job",
        )
        poll = tasks.CallAwsService(
            self,
            f"Poll{name}",
            service="glue",
            action="getJobRun",
            iam_action="glue:GetJobRun",
            iam_resources=[self._glue_arn(job_name)],
            parameters={"JobName": job_name, "RunId": sfn.JsonPath.string_at("$.job.id")},
            result_selector={
                "state": sfn.JsonPath.string_at("$.JobRun.JobRunState"),
                "description": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.JobRun")),
            },
            result_path="$.job.run",
        )
        poll.add_retry(errors=GLUE_TRANSIENT, interval=Duration.seconds(30), max_attempts=4, backoff_rate=2)
        failed = sfn.Fail(
            self,
            f"{name}Failed",
            error="GlueJobFailed",
            cause_path=sfn.JsonPath.format(
                "Glue job {} run ended {}: {}",
                job_name,
                sfn.JsonPath.string_at("$.job.run.state"),
                sfn.JsonPath.string_at("$.job.run.description"),
            ),
        )
        stop = tasks.CallAwsService(
            self,
            f"StopOverdue{name}",
            service="glue",
            action="batchStopJobRun",
            iam_action="glue:BatchStopJobRun",
            iam_resources=[self._glue_arn(job_name)],
            parameters={"JobName": job_name, "JobRunIds": sfn.JsonPath.array(sfn.JsonPath.string_at("$.job.id"))},
            result_path=sfn.JsonPath.DISCARD,
        )
        overdue = sfn.Fail(
            self, f"{name}TimedOut", error="GlueJobTimedOut", cause=f"Glue job {job_name} overdue; stopped"
        )
        succeeded = sfn.Pass(self, f"{name}Succeeded", result_path=sfn.JsonPath.DISCARD)
        status = (
            sfn.Choice(self, f"{name}Status")
            .when(sfn.Condition.string_equals("$.job.run.state", "SUCCEEDED"), succeeded)
            .when(sfn.Condition.or_(*(sfn.Condition.string_equals("$.job.run.state", s) for s in GLUE_FAILED)), failed)
            .when(
                sfn.Condition.number_greater_than_equals("$.job.polls", self.limits.glue_max_polls), stop.next(overdue)
            )
            .otherwise(wait)
        )
        start.next(wait).next(count).next(poll).next(status)
        return start, succeeded

    def _pipeline_run(
        self,
        prefix: str,
        pipeline_name: str,
        parameters: Mapping[str, Any] | None,
        outcomes: Sequence[tuple[sfn.Condition, sfn.IChainable]],
        overdue: sfn.IChainable,
    ) -> sfn.IChainable:
        """Start a pipeline execution and poll it until one of `outcomes` holds (conditions on
        `$.pipeline.execution.status`), or stop it and go to `overdue` after the last poll; returns the start."""
        arn = self.format_arn(service="sagemaker", resource="pipeline", resource_name=pipeline_name)
        start = tasks.CallAwsService(
            self,
            f"Start{prefix}",
            service="sagemaker",
            action="startPipelineExecution",
            iam_action="sagemaker:StartPipelineExecution",
            iam_resources=[arn],
            parameters={
                "PipelineName": pipeline_name,
                "PipelineExecutionDescription": sfn.JsonPath.format(
                    "Started by Step Functions execution {}", sfn.JsonPath.execution_name
                ),
                **(
                    {"PipelineParameters": [{"Name": k, "Value": v} for k, v in parameters.items()]}
                    if parameters
                    else {}
                ),
            },
            result_selector={"arn": sfn.JsonPath.string_at("$.PipelineExecutionArn"), "polls": 0},
            result_path="$.pipeline",
        )
        start.add_retry(errors=SAGEMAKER_TRANSIENT, interval=Duration.seconds(20), max_attempts=4, backoff_rate=2)
        wait = sfn.Wait(
            self,
            f"WaitFor{prefix}",
            time=sfn.WaitTime.duration(Duration.minutes(self.limits.pipeline_poll_minutes)),
        )
        count = sfn.Pass(
            self,
            f"Count{prefix}Poll",
            parameters={
                "arn": sfn.JsonPath.string_at("$.pipeline.arn"),
                "polls": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.pipeline.polls"), 1),
            },
            result_path="$.pipeline",
        )
        describe = tasks.CallAwsService(
            self,
            f"Describe{prefix}",
            service="sagemaker",
            action="describePipelineExecution",
            iam_action="sagemaker:DescribePipelineExecution",
            iam_resources=[f"{arn}/execution/*"],
            parameters={"PipelineExecutionArn": sfn.JsonPath.string_at("$.pipeline.arn")},
            # The whole description as text too: FailureReason is present only on failure, and a Fail state's
            # cause cannot name a field that may be missing.
            result_selector={
                "status": sfn.JsonPath.string_at("$.PipelineExecutionStatus"),
                "description": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$")),
            },
            result_path="$.pipeline.execution",
        )
        describe.add_retry(errors=SAGEMAKER_TRANSIENT, interval=Duration.seconds(20), max_attempts=4, backoff_rate=2)
        stop = tasks.CallAwsService(
            self,
            f"StopOverdue{prefix}",
            service="sagemaker",
            action="stopPipelineExecution",
            iam_action="sagemaker:StopPipelineExecution",
            iam_resources=[f"{arn}/execution/*"],
            parameters={
                "PipelineExecutionArn": sfn.JsonPath.string_at("$.pipeline.arn"),
                "ClientRequestToken": sfn.JsonPath.uuid(),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        status = sfn.Choice(self, f"{prefix}Status")
        for condition, then in outcomes:
            status.when(condition, then)
        status.when(sfn.Condition.number_less_than("$.pipeline.polls", self.limits.pipeline_max_polls), wait)
        status.otherwise(stop.next(overdue))
        start.next(wait).next(count).next(describe).next(status)
        return start

    def _domain(self, chain: DomainChain) -> tuple[sfn.IChainable, sfn.INextable]:
        domain = chain.domain
        pipeline = domain.pipeline
        assert pipeline is not None
        name = _pascal(domain.name)
        # Training: whatever the outcome (a rejected candidate, a failure), serving data is refreshed below.
        record = sfn.Pass(
            self,
            f"Record{name}Training",
            parameters={
                "status": sfn.JsonPath.string_at("$.pipeline.execution.status"),
                "execution": sfn.JsonPath.string_at("$.pipeline.arn"),
            },
            result_path=f"$.training.{domain.name}",
        )
        ended = sfn.Condition.or_(
            *(sfn.Condition.string_equals("$.pipeline.execution.status", s) for s in ("Succeeded", *FINISHED_BADLY))
        )
        overdue = sfn.Pass(
            self,
            f"Record{name}TrainingOverdue",
            parameters={"status": "StoppedOverdue", "execution": sfn.JsonPath.string_at("$.pipeline.arn")},
            result_path=f"$.training.{domain.name}",
        )
        partitions = self._run_partitions(pipeline) if pipeline.training_takes_run_partitions else None
        train = self._pipeline_run(f"{name}Training", chain.training_pipeline, partitions, [(ended, record)], overdue)
        find = tasks.CallAwsService(
            self,
            f"Find{name}Model",
            service="sagemaker",
            action="listModelPackages",
            iam_action="sagemaker:ListModelPackages",
            iam_resources=["*"],
            parameters={"ModelPackageGroupName": chain.model_package_group, **NEWEST_APPROVED_QUERY},
            result_path="$.model",
        )
        find.add_retry(errors=SAGEMAKER_TRANSIENT, interval=Duration.seconds(20), max_attempts=4, backoff_rate=2)
        packages = self.format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{chain.model_package_group}/*"
        )
        describe = tasks.CallAwsService(
            self,
            f"Describe{name}Model",
            service="sagemaker",
            action="describeModelPackage",
            iam_action="sagemaker:DescribeModelPackage",
            iam_resources=[packages],
            parameters={
                "ModelPackageName": sfn.JsonPath.string_at("$.model.ModelPackageSummaryList[0].ModelPackageArn")
            },
            # The whole description: a package registered without a sha256 (by hand) is refused below, by name.
            result_selector={
                "arn": sfn.JsonPath.string_at("$.ModelPackageArn"),
                "uri": sfn.JsonPath.string_at("$.InferenceSpecification.Containers[0].ModelDataUrl"),
                "package": sfn.JsonPath.object_at("$"),
            },
            result_path="$.model",
        )
        describe.add_retry(errors=SAGEMAKER_TRANSIENT, interval=Duration.seconds(20), max_attempts=4, backoff_rate=2)
        none_approved = sfn.Fail(
            self,
            f"No{name}ModelApproved",
            error="NoApprovedModel",
            cause=f"model package group {chain.model_package_group} has no approved package: approve one",
        )
        has_model = (
            sfn.Choice(self, f"{name}ModelApproved?")
            .when(sfn.Condition.is_present("$.model.ModelPackageSummaryList[0]"), describe)
            .otherwise(none_approved)
        )
        sha256 = f"$.model.package.CustomerMetadataProperties.{SHA256_KEY}"
        unverifiable = sfn.Fail(
            self,
            f"{name}ModelUnverifiable",
            error="UnverifiableModel",
            cause=f"the newest approved package of {chain.model_package_group} records no {SHA256_KEY}: register it "
            "through the training pipeline",
        )
        scoring_parameters = {
            "ModelUri": sfn.JsonPath.string_at("$.model.uri"),
            "ModelSha256": sfn.JsonPath.string_at(sha256),
            "ModelPackageArn": sfn.JsonPath.string_at("$.model.arn"),
            **self._run_partitions(pipeline),
            **chain.scoring_parameters,
        }
        publish = self._publish(chain) if domain.publisher is not None else self._served(chain)
        failed = sfn.Fail(
            self,
            f"{name}ScoringFailed",
            error="ScoringFailed",
            cause_path=sfn.JsonPath.format(
                "Scoring execution {} ended {}: {}",
                sfn.JsonPath.string_at("$.pipeline.arn"),
                sfn.JsonPath.string_at("$.pipeline.execution.status"),
                sfn.JsonPath.string_at("$.pipeline.execution.description"),
            ),
        )
        timed_out = sfn.Fail(self, f"{name}ScoringTimedOut", error="ScoringTimedOut", cause="scoring overdue; stopped")
        badly = sfn.Condition.or_(
            *(sfn.Condition.string_equals("$.pipeline.execution.status", s) for s in FINISHED_BADLY)
        )
        score = self._pipeline_run(
            f"{name}Scoring",
            chain.scoring_pipeline,
            scoring_parameters,
            [(sfn.Condition.string_equals("$.pipeline.execution.status", "Succeeded"), publish), (badly, failed)],
            timed_out,
        )
        record.next(find)
        overdue.next(find)
        find.next(has_model)
        verifiable = (
            sfn.Choice(self, f"{name}ModelVerifiable?")
            .when(sfn.Condition.is_present(sha256), score)
            .otherwise(unverifiable)
        )
        describe.next(verifiable)
        return train, publish

    def _publish(self, chain: DomainChain) -> tasks.LambdaInvoke:
        """The publisher writes the scoring run's online records to the online store."""
        domain, name = chain.domain, _pascal(chain.domain.name)
        pipeline = domain.pipeline
        assert pipeline is not None
        publish = tasks.LambdaInvoke(
            self,
            f"Publish{name}",
            lambda_function=self.publishers[domain.name].function,
            payload=sfn.TaskInput.from_object(
                {
                    "predictions_prefix": sfn.JsonPath.format(
                        pipeline.predictions_prefix + "{}/",
                        sfn.JsonPath.array_get_item(
                            sfn.JsonPath.string_split(sfn.JsonPath.string_at("$.pipeline.arn"), "/"), EXECUTION_ID_ITEM
                        ),
                    )
                }
            ),
            payload_response_only=True,
            retry_on_service_exceptions=True,
            task_timeout=sfn.Timeout.duration(Duration.minutes(self.limits.publish_timeout_minutes + 1)),
            result_path=f"$.published.{domain.name}",
        )
        # Publishing is idempotent (puts by key, never older over newer): a throttled run is simply published again,
        # and one that found another publisher's turn (which lasts at most LEASE_S) after that turn has ended.
        publish.add_retry(errors=["ThrottledError"], interval=Duration.minutes(1), max_attempts=2, backoff_rate=2)
        publish.add_retry(
            errors=["PublicationBusyError", "LeaseLostError"],
            interval=Duration.minutes(self.limits.publish_busy_retry_minutes),
            max_attempts=self.limits.publish_busy_retries,
            backoff_rate=2,
        )
        publish.add_retry(
            errors=["Lambda.TooManyRequestsException"], interval=Duration.seconds(30), max_attempts=4, backoff_rate=2
        )
        return publish

    def _served(self, chain: DomainChain) -> sfn.Pass:
        """A domain whose scoring pipeline itself leaves what the API serves (the visual index build): the run is
        recorded where a publisher's answer would be."""
        return sfn.Pass(
            self,
            f"{_pascal(chain.domain.name)}Served",
            parameters={"scoring": sfn.JsonPath.string_at("$.pipeline.arn")},
            result_path=f"$.published.{chain.domain.name}",
        )

    def _run_partitions(self, pipeline: ModelPipeline) -> dict[str, str]:
        """The pipeline's partition parameters, each the prefix the day's feature job wrote for `$.run.date`."""
        return {
            name: sfn.JsonPath.format(
                f"s3://{self.lake.bucket_name}/{prefix}{pipeline.partition_name}={{}}/",
                sfn.JsonPath.string_at("$.run.date"),
            )
            for name, prefix in pipeline.run_partitions.items()
        }

    # -- alarms ------------------------------------------------------------------------------------------------
    def _alarms(self, topic: sns.ITopic) -> list[cloudwatch.Alarm]:
        period = Duration.minutes(5)
        unfinished = cloudwatch.MathExpression(
            expression="failed + timedOut",
            using_metrics={
                "failed": self.state_machine.metric_failed(period=period, statistic="Sum"),
                "timedOut": self.state_machine.metric_timed_out(period=period, statistic="Sum"),
            },
            period=period,
            label="Failed or timed-out executions",
        )
        alarms = [
            unfinished.create_alarm(
                self,
                "ChainFailedAlarm",
                alarm_description="The daily chain failed or timed out: yesterday's serving data stays in place",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        ]
        for domain, service in self.publisher_services.items():
            name = _pascal(domain)
            rejected = cloudwatch.Metric(
                namespace="Shelfwise",
                metric_name="RejectedRecords",
                dimensions_map={"service": service},
                period=period,
                statistic="Sum",
            )
            published = cloudwatch.Metric(
                namespace="Shelfwise",
                metric_name="PublishedRecords",
                dimensions_map={"service": service},
                period=Duration.hours(self.limits.publish_expected_hours),
                statistic="Sum",
            )
            alarms += [
                rejected.create_alarm(
                    self,
                    f"{name}RejectedRecordsAlarm",
                    alarm_description=f"Publishing {domain} rejected online records; see the quarantine prefix",
                    threshold=1,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                ),
                published.create_alarm(
                    self,
                    f"{name}NothingPublishedAlarm",
                    alarm_description=f"No {domain} records published for {self.limits.publish_expected_hours} hours: "
                    "the served data is getting stale",
                    threshold=1,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
                ),
            ]
        for alarm in alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarms

    def _acknowledge_machine(
        self, machine: sfn.StateMachine, glue_jobs: Sequence[GlueJob], chains: Sequence[DomainChain]
    ) -> None:
        executions = {
            self.format_arn(service="sagemaker", resource="pipeline", resource_name=f"{name}/execution/*"): (
                "Executions of this deployment's pipeline only; SageMaker names each execution."
            )
            for chain in chains
            for name in (chain.training_pipeline, chain.scoring_pipeline)
        }
        packages = {
            self.format_arn(
                service="sagemaker", resource="model-package", resource_name=f"{chain.model_package_group}/*"
            ): "Versions of the domain's model package group only (read, to pass the approved one to scoring)."
            for chain in chains
        }
        invocations = {
            f"{publisher.function.function_arn}:*": "Versions of the publish function only (CDK's LambdaInvoke "
            "grant); the task calls the unqualified function."
            for publisher in self.publishers.values()
        }
        acknowledge_wildcards(
            machine.role,
            resources={
                **executions,
                **packages,
                **invocations,
                "*": "sagemaker:ListModelPackages, log delivery (logs:*LogDelivery*, DescribeLogGroups, resource "
                "policies) and X-Ray segments support no resource ARNs.",
            },
        )

    def _glue_arn(self, job_name: str) -> str:
        return self.format_arn(service="glue", resource="job", resource_name=job_name)


def _chain(steps: Sequence[tuple[sfn.IChainable, sfn.INextable]]) -> sfn.INextable:
    """Each step's end to the next step's start; returns the last step's end."""
    for (_, end), (start, _) in itertools.pairwise(steps):
        end.next(start)
    return steps[-1][1]


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part)
