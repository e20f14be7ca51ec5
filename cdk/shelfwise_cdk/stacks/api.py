"""API stack: one REST API for every domain (`Domain.api`), one function per domain, one authorizer, one usage plan,
one WAF web ACL.

- **Authentication.** IAM (SigV4) on every method by default: backend callers sign with their role. The deployment
  setting `shelfwise:apiAuth=jwt` (with `shelfwise:jwtIssuer` and `shelfwise:jwtAudience`) puts a JWT authorizer
  in front instead, for callers without AWS credentials: a Cognito user pool or any OIDC issuer. API keys stay, tied
  to a usage plan: they meter and throttle callers, they do not authenticate them.
- **Validation.** API Gateway checks path parameters and bodies against the domains' schemas before a function
  runs; its own errors use the API's JSON error shape. Functions validate values and name the field.
- **Protection.** AWS WAF (managed common rule set, known bad inputs, a rate limit per IP) unless the deployment
  turns it off (`shelfwise:waf=false`).
- **Least privilege.** A function reads online-store items with GetItem only; one that serves a model (its
  `ApiFunction.reads` names the artifacts) also reads those (GetObject only) and finds the newest approved package
  of its model group. One without (demand's forecasts are precomputed) gets no registry access.
- **Vector search.** A function that declares a search index (`ApiFunction.search_index`) reads it from the
  deployment's backend (`shelfwise:searchBackend`: embedded, opensearch or opensearch-serverless; see
  `shelfwise_cdk.constructs.vector_search`), provisioned here beside the function and granted to it read-only.
- **Operations.** Access logs (encrypted), X-Ray, and alarms to the platform's topic: 5XX answers, p99 latency,
  function errors, and the age of the served data (`as_of`), so stale data is seen before records expire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from shelfwise.config import ENV_VARS, Settings
from shelfwise.domain import ApiFunction, ApiRoute
from shelfwise_cdk.constructs.lake_access import grant_lake
from shelfwise_cdk.constructs.python_function import ShelfwisePythonFunction
from shelfwise_cdk.constructs.vector_search import (
    COLLECTION_NAME_LIMIT,
    DOMAIN_NAME_LIMIT,
    SearchBackendSettings,
    VectorSearch,
    backend_name,
)
from shelfwise_cdk.nag import acknowledge, acknowledge_wildcards
from shelfwise_cdk.stacks.data_lake import LakeRef

STAGE_NAME = "v1"
#: Request bodies API Gateway passes to the function base64-encoded: image uploads (`POST /search/visual`). Every
#: other body stays text; answers are JSON text (never base64), so an `Accept: image/...` changes nothing.
BINARY_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
AuthMode = Literal["iam", "jwt"]


@dataclass(frozen=True)
class ApiAuth:
    """How callers authenticate: `iam` (SigV4, the default) or `jwt` (a bearer token of `issuer` for `audience`)."""

    mode: AuthMode = "iam"
    issuer: str | None = None
    audience: str | None = None
    cache_seconds: int = 300


@dataclass(frozen=True)
class ApiLimits:
    """Throttling, WAF and alarm thresholds; the defaults suit a first deployment and are meant to be tuned."""

    stage_rate_limit: float = 200.0
    stage_burst_limit: int = 400
    plan_rate_limit: float = 50.0
    plan_burst_limit: int = 100
    plan_monthly_quota: int = 5_000_000
    waf_requests_per_ip_per_5_minutes: int = 2000
    p99_latency_ms: float = 1000.0
    server_errors_per_5_minutes: float = 1.0
    #: The daily chain publishes features as of midnight around 03:00 UTC: a day without a run passes this.
    served_data_max_age_hours: float = 30.0


class ApiStack(Stack):
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
        functions: Sequence[ApiFunction],
        library_dir: Path,
        constraints: Path,
        auth: ApiAuth,
        waf: bool,
        limits: ApiLimits | None = None,
        search: SearchBackendSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.cfg, self.limits, self.auth = cfg, limits or ApiLimits(), auth
        self.search_settings = search or SearchBackendSettings()
        self.lake, self.table, self.key = lake, online_table, operations_key
        self.api = self._rest_api()
        self.authorizer = self._authorizer(library_dir, constraints)
        self.validator = self.api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        self.functions: dict[str, ShelfwisePythonFunction] = {}
        self.searches: dict[str, VectorSearch] = {}
        for spec in functions:
            self.functions[spec.name] = self._function(spec, library_dir, constraints)
            self._routes(spec, self.functions[spec.name])
            if spec.search_index is not None:
                self.searches[spec.name] = self._search(spec, self.functions[spec.name])
        self._error_responses()
        self.api_key = self._usage_plan()
        self.web_acl = self._waf() if waf else None
        self.alarms = self._alarms(alarm_topic, functions)
        CfnOutput(self, "ApiUrl", value=self.api.url)
        CfnOutput(self, "ApiKeyId", value=self.api_key.key_id)
        self._acknowledge()

    # -- the API -----------------------------------------------------------------------------------------------
    def _rest_api(self) -> apigw.RestApi:
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            encryption_key=self.key,
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        limits = self.limits
        return apigw.RestApi(
            self,
            "Api",
            rest_api_name=self.cfg.resource_name("api"),
            description=f"Shelfwise {self.cfg.env}: every domain's routes",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            binary_media_types=list(BINARY_MEDIA_TYPES),
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
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

    def _authorizer(self, library_dir: Path, constraints: Path) -> apigw.IAuthorizer | None:
        if self.auth.mode == "iam":
            return None
        if not self.auth.issuer or not self.auth.audience:
            raise ValueError("a JWT authorizer needs the issuer and the audience (shelfwise:jwtIssuer, jwtAudience)")
        code_dir = library_dir.parent / "lambdas" / "jwt_authorizer"
        function = ShelfwisePythonFunction(
            self,
            "JwtAuthorizerFunction",
            handler="app.handler",
            code_dir=code_dir,
            requirements=code_dir / "requirements.txt",
            constraints=constraints,
            environment={"SHELFWISE_JWT_ISSUER": self.auth.issuer, "SHELFWISE_JWT_AUDIENCE": self.auth.audience},
            log_key=self.key,
            description=f"Shelfwise {self.cfg.env}: checks bearer JWTs of {self.auth.issuer}",
            memory_size=256,
        )
        self._runtime_pinned(function)
        self._xray_only(function)
        return apigw.TokenAuthorizer(
            self,
            "JwtAuthorizer",
            handler=function.function,
            identity_source=apigw.IdentitySource.header("Authorization"),
            validation_regex=r"^Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
            results_cache_ttl=Duration.seconds(self.auth.cache_seconds),
        )

    def _method_options(self) -> dict[str, Any]:
        if self.authorizer is None:
            return {"authorization_type": apigw.AuthorizationType.IAM}
        return {"authorization_type": apigw.AuthorizationType.CUSTOM, "authorizer": self.authorizer}

    # -- functions and routes ----------------------------------------------------------------------------------
    def _function(self, spec: ApiFunction, library_dir: Path, constraints: Path) -> ShelfwisePythonFunction:
        function = ShelfwisePythonFunction(
            self,
            f"{_pascal(spec.name)}Function",
            handler="app.handler",
            code_dir=spec.code_dir,
            library_dirs=[library_dir],
            requirements=spec.code_dir / "requirements.txt",
            constraints=constraints,
            environment=function_environment(
                self.cfg, self.lake.bucket_name, self.table.table_name, f"{spec.name}-api"
            ),
            log_key=self.key,
            description=f"Shelfwise {self.cfg.env}: {spec.description}",
            memory_size=spec.memory_mb,
        )
        role = function.role
        grant_lake(role, self.lake, read=spec.reads, list_prefixes=False, sid="ModelArtifacts")
        role.add_to_policy(
            iam.PolicyStatement(sid="ReadOnlineItems", actions=["dynamodb:GetItem"], resources=[self.table.table_arn])
        )
        if self.table.encryption_key is not None:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="DecryptOnlineItems", actions=["kms:Decrypt"], resources=[self.table.encryption_key.key_arn]
                )
            )
        if spec.reads:
            self._registry_read(role, spec)
        else:  # serves what the online store holds: no model, so no registry access
            self._xray_only(function)
        self._runtime_pinned(function)
        return function

    def _search(self, spec: ApiFunction, function: ShelfwisePythonFunction) -> VectorSearch:
        """The deployment's backend for the function's index, read-only for it; the index build is granted writes
        where it is declared (`VectorSearch.grant_write`)."""
        assert spec.search_index is not None
        kind = self.search_settings.kind
        limit = COLLECTION_NAME_LIMIT if kind == "opensearch-serverless" else DOMAIN_NAME_LIMIT
        search = VectorSearch(
            self,
            f"{_pascal(spec.name)}Search",
            settings=self.search_settings,
            name=backend_name(self.cfg.env, f"{spec.name}-knn", limit),
            index_name=spec.search_index.name,
            lake=self.lake,
            lake_prefix=spec.search_index.lake_prefix,
            log_key=self.key,
        )
        search.grant_read(function.role)
        for name, value in search.environment.items():
            function.function.add_environment(name, value)
        if search.endpoint is not None:
            CfnOutput(self, f"{_pascal(spec.name)}SearchEndpoint", value=search.endpoint)
        return search

    def _registry_read(self, role: iam.Role, spec: ApiFunction) -> None:
        """Find the newest approved package of the function's model group (the model artifacts it reads)."""
        group = self.cfg.model_group(spec.name)
        packages = self.format_arn(service="sagemaker", resource="model-package", resource_name=f"{group}/*")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeModelPackages", actions=["sagemaker:DescribeModelPackage"], resources=[packages]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(sid="ListModelPackages", actions=["sagemaker:ListModelPackages"], resources=["*"])
        )
        acknowledge_wildcards(
            role,
            resources={
                packages: f"Versions of the {group} model package group only.",
                "*": "sagemaker:ListModelPackages and X-Ray PutTraceSegments/PutTelemetryRecords support no "
                "resource ARNs.",
            },
        )

    def _routes(self, spec: ApiFunction, function: ShelfwisePythonFunction) -> None:
        integration = apigw.LambdaIntegration(function.function, proxy=True)
        for route in spec.routes:
            resource = self.api.root
            for part in route.path.strip("/").split("/"):
                resource = resource.get_resource(part) or resource.add_resource(part)
            parameters = {f"method.request.path.{name}": True for name in route.path_parameters}
            parameters |= {f"method.request.querystring.{name}": False for name in route.query_parameters}
            models = {}
            if route.request_schema is not None:
                name = _pascal(
                    f"{spec.name}_{route.method}_{route.path}".replace("/", "_").replace("{", "").replace("}", "")
                )
                model = self.api.add_model(
                    f"{name}Model",
                    content_type="application/json",
                    model_name=name,
                    schema=json_schema(route.request_schema),
                )
                models = {"application/json": model}
            resource.add_method(
                route.method,
                integration,
                api_key_required=True,
                request_parameters=parameters or None,
                request_models=models or None,
                request_validator=self.validator,
                **self._method_options(),
            )

    def _error_responses(self) -> None:
        """API Gateway's own errors (auth, validation, throttling, WAF) in the API's JSON error format."""
        template = '{"error": {"code": "$context.error.responseType", "message": $context.error.messageString}}'
        for response_type in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.api.add_gateway_response(
                f"{response_type.response_type}Json",
                type=response_type,
                response_headers={"Content-Type": "'application/json'"},
                templates={"application/json": template},
            )

    def _usage_plan(self) -> apigw.IApiKey:
        limits = self.limits
        plan = self.api.add_usage_plan(
            "UsagePlan",
            name=self.cfg.resource_name("api-default"),
            description="Default plan: every API key gets this throttle and quota",
            throttle=apigw.ThrottleSettings(rate_limit=limits.plan_rate_limit, burst_limit=limits.plan_burst_limit),
            quota=apigw.QuotaSettings(limit=limits.plan_monthly_quota, period=apigw.Period.MONTH),
        )
        plan.add_api_stage(stage=self.api.deployment_stage)
        key = self.api.add_api_key("ApiKey", api_key_name=self.cfg.resource_name("api-key"))
        plan.add_api_key(key)
        return key

    def _waf(self) -> wafv2.CfnWebACL:
        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
            )

        def managed(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=name
                    )
                ),
                visibility_config=visibility(name),
            )

        rate = wafv2.CfnWebACL.RuleProperty(
            name="RequestsPerIp",
            priority=0,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    aggregate_key_type="IP", limit=self.limits.waf_requests_per_ip_per_5_minutes
                )
            ),
            visibility_config=visibility("RequestsPerIp"),
        )
        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=self.cfg.resource_name("api"),
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            rules=[
                rate,
                managed("AWSManagedRulesCommonRuleSet", 1),
                managed("AWSManagedRulesKnownBadInputsRuleSet", 2),
            ],
            visibility_config=visibility("ShelfwiseApi"),
        )
        stage_arn = (
            f"arn:{self.partition}:apigateway:{self.region}::/restapis/{self.api.rest_api_id}/stages/{STAGE_NAME}"
        )
        association = wafv2.CfnWebACLAssociation(
            self, "WebAclAssociation", resource_arn=stage_arn, web_acl_arn=acl.attr_arn
        )
        association.node.add_dependency(self.api.deployment_stage)
        return acl

    # -- alarms ------------------------------------------------------------------------------------------------
    def _alarms(self, topic: sns.ITopic, functions: Sequence[ApiFunction]) -> list[cloudwatch.Alarm]:
        period, limits = Duration.minutes(5), self.limits
        alarms = [
            self.api.metric_server_error(period=period, statistic="Sum").create_alarm(
                self,
                "ServerErrorsAlarm",
                alarm_description="The API answered with 5XX errors",
                threshold=limits.server_errors_per_5_minutes,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            self.api.metric_latency(period=period, statistic="p99").create_alarm(
                self,
                "P99LatencyAlarm",
                alarm_description="p99 latency of the API is above its target",
                threshold=limits.p99_latency_ms,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for spec in functions:
            function = self.functions[spec.name].function
            prefix = _pascal(spec.name)
            alarms.append(
                function.metric_errors(period=period, statistic="Sum").create_alarm(
                    self,
                    f"{prefix}FunctionErrorsAlarm",
                    alarm_description=f"The {spec.name} API function raised unhandled errors",
                    threshold=1,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
            age = cloudwatch.Metric(
                namespace="Shelfwise",
                metric_name="ServedDataAgeSeconds",
                dimensions_map={"service": f"{spec.name}-api"},
                period=Duration.hours(1),
                statistic="Maximum",
            )
            alarms.append(
                age.create_alarm(
                    self,
                    f"{prefix}StaleDataAlarm",
                    alarm_description=f"The {spec.name} API serves features older than "
                    f"{limits.served_data_max_age_hours:g} hours: the daily chain has not published",
                    threshold=limits.served_data_max_age_hours * 3600,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        for alarm in alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarms

    # -- cdk-nag -----------------------------------------------------------------------------------------------
    def _runtime_pinned(self, function: ShelfwisePythonFunction) -> None:
        acknowledge(
            function.function,
            "AwsSolutions-L1",
            "Pinned to python3.12: the bundle's wheels are installed for cp312 and the handler is tested on it; "
            "move to a newer runtime together with the bundling target.",
        )

    def _xray_only(self, function: ShelfwisePythonFunction) -> None:
        acknowledge_wildcards(
            function.role, resources={"*": "X-Ray PutTraceSegments/PutTelemetryRecords support no resource ARNs."}
        )

    def _acknowledge(self) -> None:
        who = "IAM (SigV4)" if self.auth.mode == "iam" else f"a JWT authorizer of the OIDC issuer {self.auth.issuer}"
        for method in self.api.methods:
            acknowledge(
                method,
                "AwsSolutions-COG4",
                f"Every method is authorized by {who}: the deployment setting shelfwise:apiAuth chooses it, and a "
                "Cognito user pool is one OIDC issuer the JWT setting accepts.",
            )
        acknowledge(
            self.api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level logging role; AWS maintains this policy for exactly that purpose.",
        )
        if self.web_acl is None:
            acknowledge(
                self.api.deployment_stage,
                "AwsSolutions-APIG3",
                "WAF is turned off by this deployment's setting shelfwise:waf=false (see the README's costs); "
                "authorization, API keys, a usage plan and stage throttling still apply.",
            )


def function_environment(cfg: Settings, bucket_name: str, table_name: str, service: str) -> dict[str, str]:
    """`Settings.lambda_environment()` with the deployed names (tokens), the bucket owner, and Powertools' settings."""
    env = cfg.lambda_environment()
    env[ENV_VARS["lake_bucket"]] = bucket_name
    env[ENV_VARS["online_table"]] = table_name
    env[ENV_VARS["lake_bucket_owner"]] = Aws.ACCOUNT_ID
    env["POWERTOOLS_SERVICE_NAME"] = service
    # Responses carry customer data: traces record calls and timings, never what they returned.
    env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] = "false"
    return env


def json_schema(schema: Mapping[str, Any]) -> apigw.JsonSchema:
    """A JSON schema (draft 4) as a dict -> CDK's `JsonSchema` (types, required, properties, additionalProperties)."""
    kinds = {
        "object": apigw.JsonSchemaType.OBJECT,
        "integer": apigw.JsonSchemaType.INTEGER,
        "number": apigw.JsonSchemaType.NUMBER,
        "string": apigw.JsonSchemaType.STRING,
        "boolean": apigw.JsonSchemaType.BOOLEAN,
        "array": apigw.JsonSchemaType.ARRAY,
    }
    known = {"$schema", "title", "type", "required", "additionalProperties", "properties", "items"}
    unknown = sorted(set(schema) - known)
    if unknown:
        raise ValueError(f"json_schema does not translate {unknown}")
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4 if "$schema" in schema else None,
        title=schema.get("title"),
        type=kinds[schema["type"]] if "type" in schema else None,
        required=list(schema["required"]) if "required" in schema else None,
        additional_properties=schema.get("additionalProperties"),
        properties={k: json_schema(v) for k, v in schema["properties"].items()} if "properties" in schema else None,
        items=json_schema(schema["items"]) if "items" in schema else None,
    )


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part)


__all__ = ["ApiAuth", "ApiLimits", "ApiRoute", "ApiStack", "function_environment", "json_schema"]
