"""Churn API stack: `GET /customers/{customer_id}/churn`, `POST /churn/score` and `GET /churn/swagger` on an API
Gateway REST API, proxied to one Lambda function (`lambdas/churn/app.handler`).

Callers authenticate with an API key tied to a throttled usage plan; only the Swagger page (documentation, no data)
is open, so that a browser can load it. API Gateway validates path parameters and the
POST body's shape before the function runs and answers bad requests in the API's error format
(`{"error": {"code", "message"}}`); the function validates values (feature ranges) and names the field. Access logs
go to a KMS-encrypted log group; 5XX errors, p99 latency and function errors raise alarms on an encrypted SNS topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from shelfwise.churn_features import FEATURES
from shelfwise.config import ENV_VARS, Settings
from shelfwise_cdk.constructs.encryption import allow_cloudwatch_alarms, allow_cloudwatch_logs, rotating_key
from shelfwise_cdk.constructs.python_function import ShelfwisePythonFunction
from shelfwise_cdk.nag import acknowledge, acknowledge_wildcards
from shelfwise_cdk.stacks.data_lake import LakeRef

STAGE_NAME = "v1"
MODEL_PREFIX = "models/churn/"


@dataclass(frozen=True)
class ApiLimits:
    """Throttling and alarm thresholds; the defaults suit a first deployment and are meant to be tuned."""

    stage_rate_limit: float = 200.0
    stage_burst_limit: int = 400
    plan_rate_limit: float = 50.0
    plan_burst_limit: int = 100
    plan_monthly_quota: int = 5_000_000
    p99_latency_ms: float = 1000.0
    server_errors_per_5_minutes: float = 1.0


class ChurnApiStack(Stack):
    """Function, REST API with API key + usage plan, request validation, access logs and alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: Settings,
        lake: LakeRef,
        online_table: dynamodb.ITable,
        code_dir: Path,
        library_dir: Path,
        limits: ApiLimits | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        limits = limits or ApiLimits()
        self.key = rotating_key(
            self,
            "ApiEncryptionKey",
            alias=f"alias/{cfg.resource_name('api')}",
            description=f"Shelfwise {cfg.env}: encrypts API logs and alarm notifications",
        )
        allow_cloudwatch_logs(self.key)
        allow_cloudwatch_alarms(self.key)
        self.handler = ShelfwisePythonFunction(
            self,
            "ChurnFunction",
            handler="app.handler",
            code_dir=code_dir,
            library_dirs=[library_dir],
            requirements=code_dir / "requirements.txt",
            environment=function_environment(cfg, lake.bucket_name, online_table.table_name),
            log_key=self.key,
            description=f"Shelfwise {cfg.env}: churn scores by customer and what-if scoring",
        )
        self._grant_reads(cfg, lake.bucket(self), online_table)
        self.api = self._rest_api(cfg, limits)
        self._routes(self.api)
        self._error_responses(self.api)
        self.api_key = self._usage_plan(cfg, limits)
        self.alarm_topic = sns.Topic(
            self, "AlarmTopic", display_name=f"Shelfwise {cfg.env} alarms", master_key=self.key, enforce_ssl=True
        )
        self.alarms = self._alarms(limits)
        CfnOutput(self, "ApiUrl", value=self.api.url)
        CfnOutput(self, "ApiKeyId", value=self.api_key.key_id)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        self._acknowledge_api_findings()

    def _rest_api(self, cfg: Settings, limits: ApiLimits) -> apigw.RestApi:
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            encryption_key=self.key,
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        return apigw.RestApi(
            self,
            "Api",
            rest_api_name=cfg.resource_name("churn-api"),
            description=f"Shelfwise {cfg.env}: churn scoring",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            default_method_options=apigw.MethodOptions(api_key_required=True),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                throttling_rate_limit=limits.stage_rate_limit,
                throttling_burst_limit=limits.stage_burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )

    def _routes(self, api: apigw.RestApi) -> None:
        integration = apigw.LambdaIntegration(self.handler.function, proxy=True)
        validator = api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        score_model = api.add_model(
            "ScoreRequest", content_type="application/json", model_name="ScoreRequest", schema=score_request_schema()
        )
        churn_by_customer = api.root.add_resource("customers").add_resource("{customer_id}").add_resource("churn")
        churn_by_customer.add_method(
            "GET",
            integration,
            request_parameters={"method.request.path.customer_id": True},
            request_validator=validator,
        )
        churn = api.root.add_resource("churn")
        churn.add_resource("score").add_method(
            "POST",
            integration,
            request_models={"application/json": score_model},
            request_validator=validator,
        )
        churn.add_resource("swagger").add_method(
            "GET",
            integration,
            api_key_required=False,
            request_parameters={"method.request.querystring.format": False},
            request_validator=validator,
        )

    def _error_responses(self, api: apigw.RestApi) -> None:
        """API Gateway's own errors (missing key, failed validation, throttling) in the API's JSON error format."""
        template = '{"error": {"code": "$context.error.responseType", "message": $context.error.messageString}}'
        for response_type in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            api.add_gateway_response(
                f"{response_type.response_type}Json",
                type=response_type,
                response_headers={"Content-Type": "'application/json'"},
                templates={"application/json": template},
            )

    def _usage_plan(self, cfg: Settings, limits: ApiLimits) -> apigw.IApiKey:
        plan = self.api.add_usage_plan(
            "UsagePlan",
            name=cfg.resource_name("churn-api-default"),
            description="Default plan: every API key gets this throttle and quota",
            throttle=apigw.ThrottleSettings(rate_limit=limits.plan_rate_limit, burst_limit=limits.plan_burst_limit),
            quota=apigw.QuotaSettings(limit=limits.plan_monthly_quota, period=apigw.Period.MONTH),
        )
        plan.add_api_stage(stage=self.api.deployment_stage)
        key = self.api.add_api_key("ApiKey", api_key_name=cfg.resource_name("churn-api-key"))
        plan.add_api_key(key)
        return key

    def _alarms(self, limits: ApiLimits) -> list[cloudwatch.Alarm]:
        period = Duration.minutes(5)
        alarms = [
            self.api.metric_server_error(period=period, statistic="Sum").create_alarm(
                self,
                "ServerErrorsAlarm",
                alarm_description="The churn API answered with 5XX errors",
                threshold=limits.server_errors_per_5_minutes,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            self.api.metric_latency(period=period, statistic="p99").create_alarm(
                self,
                "P99LatencyAlarm",
                alarm_description="p99 latency of the churn API is above its target",
                threshold=limits.p99_latency_ms,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            self.handler.function.metric_errors(period=period, statistic="Sum").create_alarm(
                self,
                "FunctionErrorsAlarm",
                alarm_description="The churn function raised unhandled errors",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
        return alarms

    def _grant_reads(self, cfg: Settings, lake_bucket: s3.IBucket, online_table: dynamodb.ITable) -> None:
        """Read-only: the registry entries and artifacts of the churn model, and the online table."""
        role = self.handler.role
        lake_bucket.grant_read(role, f"{MODEL_PREFIX}*")
        online_table.grant_read_data(role)
        packages = self.format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{cfg.churn_model_group}/*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="FindApprovedChurnModel", actions=["sagemaker:DescribeModelPackage"], resources=[packages]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(sid="ListChurnModels", actions=["sagemaker:ListModelPackages"], resources=["*"])
        )
        acknowledge_wildcards(
            role,
            actions={
                "s3:GetObject*": "Reads (data, version) of model artifacts under models/churn/ only.",
                "s3:GetBucket*": "The S3 client reads the lake bucket's location; lake bucket only.",
                "s3:List*": "The function lists models/churn/ to find a model version; lake bucket only.",
            },
            resources={
                lake_bucket.arn_for_objects(f"{MODEL_PREFIX}*"): "Model artifacts of the churn model only.",
                packages: "Versions of the churn model package group only.",
                "*": "X-Ray PutTraceSegments/PutTelemetryRecords and sagemaker:ListModelPackages support no "
                "resource ARNs.",
            },
        )

    def _acknowledge_api_findings(self) -> None:
        acknowledge(
            self.handler.function,
            "AwsSolutions-L1",
            "Pinned to python3.12: the bundle's wheels are installed for cp312 and the handler is tested on it; "
            "move to a newer runtime together with the bundling target.",
        )
        for method in self.api.methods:
            acknowledge(
                method,
                "AwsSolutions-APIG4",
                "Callers are backend services identified by API keys with a throttled usage plan; add an IAM or "
                "Cognito authorizer when end users call the API directly.",
            )
            acknowledge(
                method,
                "AwsSolutions-COG4",
                "No end-user pool: the API serves backend services that authenticate with API keys.",
            )
        acknowledge(
            self.api.deployment_stage,
            "AwsSolutions-APIG3",
            "No WAF web ACL by default (a fixed monthly cost); API keys, a usage plan and stage throttling limit "
            "abuse. Associate an ACL in deployments exposed to the internet at large.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level logging role; AWS maintains this policy for exactly that purpose.",
        )


def function_environment(cfg: Settings, bucket_name: str, table_name: str) -> dict[str, str]:
    """`Settings.lambda_environment()` with the deployed names (tokens), plus the Powertools service name."""
    env = cfg.lambda_environment()
    env[ENV_VARS["lake_bucket"]] = bucket_name
    env[ENV_VARS["online_table"]] = table_name
    env["POWERTOOLS_SERVICE_NAME"] = "churn-api"
    return env


def score_request_schema() -> apigw.JsonSchema:
    """The POST body's shape (draft 4), as the handler's `WhatIfRequest`: `{"features": {<feature>: number}}`.

    API Gateway rejects wrong shapes and types before the function runs; missing features and out-of-range values
    are left to the function, which names the offending field in its answer.
    """
    kinds = {"int": apigw.JsonSchemaType.INTEGER, "float": apigw.JsonSchemaType.NUMBER}
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4,
        title="ScoreRequest",
        type=apigw.JsonSchemaType.OBJECT,
        required=["features"],
        additional_properties=False,
        properties={
            "features": apigw.JsonSchema(
                type=apigw.JsonSchemaType.OBJECT,
                properties={f.name: apigw.JsonSchema(type=kinds[f.dtype]) for f in FEATURES},
                additional_properties=False,
            ),
        },
    )
