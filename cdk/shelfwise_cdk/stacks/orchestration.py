"""Orchestration stack: the daily chain in AWS, as `shelfwise demo` runs it locally.

A Standard Step Functions state machine, started by an EventBridge schedule:

    CurateOrders (Glue, .sync) -> CustomerFeatures (Glue, .sync) -> StartChurnPipeline (SageMaker)
    -> WaitForPipeline -> CountPipelinePoll -> DescribePipelineExecution -> PipelineStatus?
         Succeeded          -> PublishChurnScores (Lambda) -> Published
         Failed / Stopped   -> PipelineFailed (the execution's description, FailureReason included, as the cause)
         polled max times   -> StopOverduePipeline -> PipelineTimedOut
         otherwise          -> WaitForPipeline

The batch score writes to `predictions/churn/<pipeline execution id>/` (`ExecutionId` in the pipeline definition),
and the execution id is the last part of the `PipelineExecutionArn` that `startPipelineExecution` returns, so the
state machine derives the publish prefix from that ARN: no extra pipeline parameter, no listing of the lake.

The publish function (`lambdas/churn_publish`) reads `predictions/churn/*`, writes the online table and puts
rejected lines under `quarantine/churn-publish/*`. Failed or timed-out executions and rejected lines raise alarms
on the deployment's alarm topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from shelfwise.config import Settings
from shelfwise_cdk.constructs.encryption import allow_cloudwatch_logs, rotating_key
from shelfwise_cdk.constructs.python_function import ShelfwisePythonFunction
from shelfwise_cdk.nag import acknowledge, acknowledge_wildcards
from shelfwise_cdk.stacks.churn_api import function_environment
from shelfwise_cdk.stacks.data_lake import LakeRef

PREDICTIONS_PREFIX = "predictions/churn/"
QUARANTINE_PREFIX = "quarantine/churn-publish/"
PUBLISH_SERVICE = "churn-publish"
#: `PipelineExecutionArn` = arn:<partition>:sagemaker:<region>:<account>:pipeline/<name>/execution/<id>; split on
#: "/" the execution id is item 3 (pipeline names cannot hold "/").
EXECUTION_ID_ITEM = 3
FINISHED_BADLY = ("Failed", "Stopped")


@dataclass(frozen=True)
class ChainTargets:
    """What the chain runs, by name: the two Glue jobs in order and the churn pipeline."""

    curate_orders_job: str
    customer_features_job: str
    pipeline_name: str


@dataclass(frozen=True)
class OrchestrationLimits:
    """How long each part may take; defaults fit the default world with room to grow. The Glue jobs end at their
    own timeout (`ShelfwiseGlueJob`), which the chain does not override."""

    poll_interval_minutes: int = 5
    max_polls: int = 72  # 6 hours of pipeline at the default interval
    execution_timeout_hours: int = 12
    publish_timeout_minutes: int = 15  # Lambda's maximum


class OrchestrationStack(Stack):
    """State machine, its schedule, the publish function, encrypted logs and alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: Settings,
        lake: LakeRef,
        online_table: dynamodb.ITable,
        chain: ChainTargets,
        alarm_topic: sns.ITopic,
        publish_code_dir: Path,
        library_dir: Path,
        schedule: str,
        limits: OrchestrationLimits | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        limits = limits or OrchestrationLimits()
        self.key = rotating_key(
            self,
            "OrchestrationKey",
            alias=f"alias/{cfg.resource_name('orchestration')}",
            description=f"Shelfwise {cfg.env}: encrypts the daily chain's state machine and function logs",
        )
        allow_cloudwatch_logs(self.key)
        self.publisher = self._publish_function(cfg, lake, online_table, publish_code_dir, library_dir, limits)
        self.state_machine = self._state_machine(cfg, chain, limits)
        self.rule = events.Rule(
            self,
            "Schedule",
            rule_name=cfg.resource_name("daily-chain"),
            description=f"Shelfwise {cfg.env}: starts the daily chain (Glue -> churn pipeline -> online store)",
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
        CfnOutput(self, "PublishFunctionName", value=self.publisher.function.function_name)

    # -- the publish function ----------------------------------------------------------------------------------
    def _publish_function(
        self,
        cfg: Settings,
        lake: LakeRef,
        online_table: dynamodb.ITable,
        code_dir: Path,
        library_dir: Path,
        limits: OrchestrationLimits,
    ) -> ShelfwisePythonFunction:
        environment = function_environment(cfg, lake.bucket_name, online_table.table_name)
        environment["POWERTOOLS_SERVICE_NAME"] = PUBLISH_SERVICE
        publisher = ShelfwisePythonFunction(
            self,
            "PublishFunction",
            handler="app.handler",
            code_dir=code_dir,
            library_dirs=[library_dir],
            requirements=code_dir / "requirements.txt",
            environment=environment,
            log_key=self.key,
            description=f"Shelfwise {cfg.env}: writes a churn batch run's online records to the online store",
            # 1 GiB for CPU (Lambda scales it with memory): parsing and serializing the lines is the publisher's
            # bottleneck next to DynamoDB's batch latency.
            memory_size=1024,
            timeout=Duration.minutes(limits.publish_timeout_minutes),
        )
        self._grant_publish(publisher, lake.bucket(self), online_table)
        acknowledge(
            publisher.function,
            "AwsSolutions-L1",
            "Pinned to python3.12: the bundle's wheels are installed for cp312 and the handler is tested on it; "
            "move to a newer runtime together with the bundling target.",
        )
        return publisher

    def _grant_publish(
        self, publisher: ShelfwisePythonFunction, lake_bucket: s3.IBucket, online_table: dynamodb.ITable
    ) -> None:
        """Read the batch runs, put rejected lines in quarantine, write the online table: nothing else."""
        role = publisher.role
        lake_bucket.grant_read(role, f"{PREDICTIONS_PREFIX}*")
        lake_bucket.grant_put(role, f"{QUARANTINE_PREFIX}*")
        # Puts only: publishing never reads, updates or deletes items.
        online_table.grant(role, "dynamodb:BatchWriteItem", "dynamodb:PutItem")
        if online_table.encryption_key is not None:
            online_table.encryption_key.grant_encrypt_decrypt(role)
        acknowledge_wildcards(
            role,
            actions={
                "s3:GetObject*": "Reads (data, version) of batch-run objects under predictions/churn/ only.",
                "s3:GetBucket*": "The S3 client reads the lake bucket's location; lake bucket only.",
                "s3:List*": "Part of the read grant on predictions/churn/; lake bucket only.",
                "s3:Abort*": "The S3 upload of a large quarantine file may abort its multipart upload.",
                "kms:GenerateDataKey*": "Writes to the SSE-KMS lake and the encrypted table need data keys.",
                "kms:ReEncrypt*": "Part of the encrypt grant on the lake and online-store keys only.",
            },
            resources={
                lake_bucket.arn_for_objects(f"{PREDICTIONS_PREFIX}*"): "The churn batch runs, one folder per run.",
                lake_bucket.arn_for_objects(f"{QUARANTINE_PREFIX}*"): "Rejected lines, one folder per run.",
                "*": "X-Ray PutTraceSegments/PutTelemetryRecords support no resource ARNs.",
            },
        )

    # -- the state machine -------------------------------------------------------------------------------------
    def _state_machine(self, cfg: Settings, chain: ChainTargets, limits: OrchestrationLimits) -> sfn.StateMachine:
        pipeline_arn = self.format_arn(service="sagemaker", resource="pipeline", resource_name=chain.pipeline_name)
        executions_arn = f"{pipeline_arn}/execution/*"
        curate = tasks.GlueStartJobRun(
            self,
            "CurateOrders",
            glue_job_name=chain.curate_orders_job,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            # The execution's start date, not "today" when the job starts: a redriven execution curates the same day.
            arguments=sfn.TaskInput.from_object(
                {
                    "--run_date": sfn.JsonPath.array_get_item(
                        sfn.JsonPath.string_split(sfn.JsonPath.string_at("$$.Execution.StartTime"), "T"), 0
                    )
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        features = tasks.GlueStartJobRun(
            self,
            "CustomerFeatures",
            glue_job_name=chain.customer_features_job,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            result_path=sfn.JsonPath.DISCARD,
        )
        for job in (curate, features):
            # Each job runs one at a time (MaxConcurrentRuns 1): wait out a manual run instead of failing.
            job.add_retry(
                errors=["Glue.ConcurrentRunsExceededException"],
                interval=Duration.minutes(5),
                max_attempts=3,
                backoff_rate=2,
            )
        start = tasks.CallAwsService(
            self,
            "StartChurnPipeline",
            service="sagemaker",
            action="startPipelineExecution",
            iam_action="sagemaker:StartPipelineExecution",
            iam_resources=[pipeline_arn],
            parameters={
                "PipelineName": chain.pipeline_name,
                "PipelineExecutionDescription": sfn.JsonPath.format(
                    "Started by Step Functions execution {}", sfn.JsonPath.execution_name
                ),
            },
            result_selector={"arn": sfn.JsonPath.string_at("$.PipelineExecutionArn"), "polls": 0},
            result_path="$.pipeline",
        )
        poll_interval = sfn.WaitTime.duration(Duration.minutes(limits.poll_interval_minutes))
        wait = sfn.Wait(self, "WaitForPipeline", time=poll_interval)
        count = sfn.Pass(
            self,
            "CountPipelinePoll",
            parameters={
                "arn": sfn.JsonPath.string_at("$.pipeline.arn"),
                "polls": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.pipeline.polls"), 1),
            },
            result_path="$.pipeline",
        )
        describe = tasks.CallAwsService(
            self,
            "DescribePipelineExecution",
            service="sagemaker",
            action="describePipelineExecution",
            iam_action="sagemaker:DescribePipelineExecution",
            iam_resources=[executions_arn],
            parameters={"PipelineExecutionArn": sfn.JsonPath.string_at("$.pipeline.arn")},
            # The whole description as text too: FailureReason is present only on failure, and a Fail state's
            # cause cannot name a field that may be missing.
            result_selector={
                "status": sfn.JsonPath.string_at("$.PipelineExecutionStatus"),
                "description": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$")),
            },
            result_path="$.pipeline.execution",
        )
        for call in (start, describe):
            call.add_retry(errors=["SageMaker.ThrottlingException"], interval=Duration.seconds(10), backoff_rate=2)
        failed = sfn.Fail(
            self,
            "PipelineFailed",
            error="ChurnPipelineFailed",
            cause_path=sfn.JsonPath.format(
                "Churn pipeline execution {} ended {}: {}",
                sfn.JsonPath.string_at("$.pipeline.arn"),
                sfn.JsonPath.string_at("$.pipeline.execution.status"),
                sfn.JsonPath.string_at("$.pipeline.execution.description"),
            ),
        )
        stop = tasks.CallAwsService(
            self,
            "StopOverduePipeline",
            service="sagemaker",
            action="stopPipelineExecution",
            iam_action="sagemaker:StopPipelineExecution",
            iam_resources=[executions_arn],
            parameters={
                "PipelineExecutionArn": sfn.JsonPath.string_at("$.pipeline.arn"),
                "ClientRequestToken": sfn.JsonPath.uuid(),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        timed_out = sfn.Fail(
            self,
            "PipelineTimedOut",
            error="ChurnPipelineTimedOut",
            cause_path=sfn.JsonPath.format(
                "Churn pipeline execution {} still not finished after {} polls; stopped",
                sfn.JsonPath.string_at("$.pipeline.arn"),
                sfn.JsonPath.string_at("$.pipeline.polls"),
            ),
        )
        publish = tasks.LambdaInvoke(
            self,
            "PublishChurnScores",
            lambda_function=self.publisher.function,
            payload=sfn.TaskInput.from_object(
                {
                    "predictions_prefix": sfn.JsonPath.format(
                        PREDICTIONS_PREFIX + "{}/",
                        sfn.JsonPath.array_get_item(
                            sfn.JsonPath.string_split(sfn.JsonPath.string_at("$.pipeline.arn"), "/"),
                            EXECUTION_ID_ITEM,
                        ),
                    )
                }
            ),
            payload_response_only=True,
            retry_on_service_exceptions=True,
            task_timeout=sfn.Timeout.duration(Duration.minutes(limits.publish_timeout_minutes + 1)),
            result_path="$.publish",
        )
        # Publishing is idempotent (puts by key): a throttled run is simply published again.
        publish.add_retry(errors=["UnprocessedItemsError"], interval=Duration.minutes(1), max_attempts=2)
        status = (
            sfn.Choice(self, "PipelineStatus")
            .when(
                sfn.Condition.string_equals("$.pipeline.execution.status", "Succeeded"),
                publish.next(sfn.Succeed(self, "Published")),
            )
            .when(
                sfn.Condition.or_(
                    *(sfn.Condition.string_equals("$.pipeline.execution.status", s) for s in FINISHED_BADLY)
                ),
                failed,
            )
            .when(
                sfn.Condition.number_greater_than_equals("$.pipeline.polls", limits.max_polls),
                stop.next(timed_out),
            )
            .otherwise(wait)
        )
        definition = curate.next(features).next(start).next(wait).next(count).next(describe).next(status)
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
            state_machine_name=cfg.resource_name("daily-chain"),
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.hours(limits.execution_timeout_hours),
            tracing_enabled=True,
            # Every state transition is logged; execution data (inputs, outputs, error causes) stays in the
            # execution history, which only principals allowed to read this state machine can see.
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            comment=f"Shelfwise {cfg.env}: Glue curation and features, churn pipeline, publish to the online store",
        )
        acknowledge_wildcards(
            machine.role,
            resources={
                executions_arn: "Executions of the churn pipeline only; SageMaker names each execution.",
                f"{self.publisher.function.function_arn}:*": "Versions of the publish function only (CDK's "
                "LambdaInvoke grant); the task calls the unqualified function.",
                "*": "Log delivery (logs:*LogDelivery*, DescribeLogGroups, resource policies) and X-Ray segments "
                "support no resource ARNs.",
            },
        )
        return machine

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
        rejected = cloudwatch.Metric(
            namespace="Shelfwise",
            metric_name="RejectedRecords",
            dimensions_map={"service": PUBLISH_SERVICE},
            period=period,
            statistic="Sum",
        )
        alarms = [
            unfinished.create_alarm(
                self,
                "ChainFailedAlarm",
                alarm_description="The daily chain (Glue, churn pipeline, publish) failed or timed out",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            rejected.create_alarm(
                self,
                "RejectedRecordsAlarm",
                alarm_description="Publishing rejected online records; see quarantine/churn-publish/<run>/",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarms
