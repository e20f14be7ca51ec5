"""The synthesized templates have the security and operations settings each stack promises."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

pytestmark = pytest.mark.slow


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def props(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for r in resources(template, kind).values()]


def joined(value: Any) -> str:
    """A string property with intrinsics flattened (`Fn::Join` parts joined, references as `<...>`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(joined(p) for p in parts)
    if isinstance(value, dict) and "Fn::Sub" in value:
        return re.sub(r"\$\{[^}]+\}", "<ref>", value["Fn::Sub"])
    return "<ref>"


def policy_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in props(template, "AWS::IAM::Policy") for s in p["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- data lake ---------------------------------------------------------------------------------------------------
def test_every_key_rotates(templates: dict[str, dict[str, Any]]) -> None:
    keys = [k for t in templates.values() for k in props(t, "AWS::KMS::Key")]
    assert len(keys) == 5  # lake, online store, Glue jobs, API, orchestration
    assert all(k["EnableKeyRotation"] is True for k in keys)


def test_lake_bucket_is_kms_encrypted_versioned_private_and_logged(templates: dict[str, dict[str, Any]]) -> None:
    template = Template.from_json(templates["DataLake"])
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketName": {"Fn::Join": ["", ["shelfwise-ci-lake-", {"Ref": "AWS::AccountId"}, "-eu-west-1"]]},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "BucketKeyEnabled": True,
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": Match.any_value(),
                        },
                    }
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": {"DestinationBucketName": {"Ref": Match.string_like_regexp("AccessLogs")}},
        },
    )


def test_both_buckets_deny_requests_without_tls(templates: dict[str, dict[str, Any]]) -> None:
    policies = props(templates["DataLake"], "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies:
        denies = [
            s
            for s in policy["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies, policy


def test_raw_data_ages_into_archive_and_old_versions_expire(templates: dict[str, dict[str, Any]]) -> None:
    lake = next(p for p in props(templates["DataLake"], "AWS::S3::Bucket") if "VersioningConfiguration" in p)
    rules = {r["Id"]: r for r in lake["LifecycleConfiguration"]["Rules"]}
    raw = rules["raw-to-archive"]
    assert raw["Prefix"] == "raw/"
    transitions = [(t["StorageClass"], t["TransitionInDays"]) for t in raw["Transitions"]]
    assert transitions == [("STANDARD_IA", 30), ("GLACIER_IR", 120)]
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7


def test_access_log_bucket_uses_s3_managed_keys_and_expires_logs(templates: dict[str, dict[str, Any]]) -> None:
    logs = next(p for p in props(templates["DataLake"], "AWS::S3::Bucket") if "VersioningConfiguration" not in p)
    sse = logs["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse == {"SSEAlgorithm": "AES256"}  # log delivery cannot write to SSE-KMS buckets
    assert logs["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True
    assert logs["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 365


def test_glue_database_is_named_by_the_deployment(templates: dict[str, dict[str, Any]]) -> None:
    Template.from_json(templates["DataLake"]).has_resource_properties(
        "AWS::Glue::Database", {"DatabaseInput": {"Name": "shelfwise_ci"}}
    )


# -- feature jobs ------------------------------------------------------------------------------------------------
def test_glue_jobs_run_glue5_with_security_configuration_and_library(templates: dict[str, dict[str, Any]]) -> None:
    jobs = {p["Name"]: p for p in props(templates["FeatureJobs"], "AWS::Glue::Job")}
    assert set(jobs) == {"shelfwise-ci-curate-orders", "shelfwise-ci-customer-features"}
    for job in jobs.values():
        assert job["GlueVersion"] == "5.0"
        assert (job["WorkerType"], job["NumberOfWorkers"]) == ("G.1X", 2)
        assert job["Command"]["Name"] == "glueetl"
        assert job["SecurityConfiguration"] == {"Ref": "SecurityConfiguration"}
        assert job["Timeout"] > 0
        assert job["MaxRetries"] >= 1
        args = job["DefaultArguments"]
        assert args["--enable-continuous-cloudwatch-log"] == "true"
        assert args["--enable-metrics"] == "true"
        assert args["--additional-python-modules"] == "pydantic-settings==2.16.3"
        assert joined(args["--extra-py-files"]).endswith(".zip")
    curate = jobs["shelfwise-ci-curate-orders"]["DefaultArguments"]
    assert joined(curate["--input_path"]) == "s3://shelfwise-ci-lake-<ref>-eu-west-1/raw/order_lines/"
    assert joined(curate["--quarantine_path"]) == "s3://shelfwise-ci-lake-<ref>-eu-west-1/quarantine/curate_orders/"
    features = jobs["shelfwise-ci-customer-features"]["DefaultArguments"]
    assert joined(features["--training_path"]) == "s3://shelfwise-ci-lake-<ref>-eu-west-1/features/churn/training/"


def test_glue_security_configuration_encrypts_s3_logs_and_bookmarks(templates: dict[str, dict[str, Any]]) -> None:
    (config,) = props(templates["FeatureJobs"], "AWS::Glue::SecurityConfiguration")
    encryption = config["EncryptionConfiguration"]
    assert encryption["S3Encryptions"][0]["S3EncryptionMode"] == "SSE-KMS"
    assert encryption["CloudWatchEncryption"]["CloudWatchEncryptionMode"] == "SSE-KMS"
    assert encryption["JobBookmarksEncryption"]["JobBookmarksEncryptionMode"] == "CSE-KMS"


def lake_prefixes_by_role(template: dict[str, Any]) -> dict[str, dict[str, set[str]]]:
    """Role -> {"read": prefixes it may get, "write": prefixes it may put} in the lake bucket."""
    access: dict[str, dict[str, set[str]]] = {}
    for policy in props(template, "AWS::IAM::Policy"):
        (role,) = (r["Ref"] for r in policy["Roles"])
        entry = access.setdefault(role, {"read": set(), "write": set()})
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            for resource in map(joined, as_list(statement["Resource"])):
                if "shelfwise-ci-lake-" not in resource or "-eu-west-1/" not in resource:
                    continue
                prefix = resource.split("-eu-west-1/", 1)[1]
                if "s3:GetObject*" in actions:
                    entry["read"].add(prefix)
                if "s3:PutObject" in actions:
                    entry["write"].add(prefix)
    return access


def test_each_glue_job_role_reaches_only_its_own_prefixes(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["FeatureJobs"]
    roles = {p["Name"]: p["Role"]["Fn::GetAtt"][0] for p in props(template, "AWS::Glue::Job")}
    access = lake_prefixes_by_role(template)
    curate = access[roles["shelfwise-ci-curate-orders"]]
    assert curate["write"] == {"curated/order_lines/*", "quarantine/curate_orders/*"}
    assert curate["read"] == {"raw/order_lines/*", "curated/order_lines/*", "quarantine/curate_orders/*"}
    features = access[roles["shelfwise-ci-customer-features"]]
    assert features["write"] == {"features/churn/training/*", "features/churn/serving/*"}
    assert "raw/order_lines/*" not in features["read"]
    assert {"curated/order_lines/*", "raw/customers/*", "raw/products/*", "raw/stockouts/*"} <= features["read"]


# -- online store ------------------------------------------------------------------------------------------------
def test_online_table_has_keys_pitr_kms_and_ttl(templates: dict[str, dict[str, Any]]) -> None:
    Template.from_json(templates["OnlineStore"]).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": "shelfwise-ci-online",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": Match.any_value()},
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        },
    )


# -- churn pipeline ----------------------------------------------------------------------------------------------
def test_pipeline_definition_is_the_library_definition_with_deployed_names(
    templates: dict[str, dict[str, Any]],
) -> None:
    template = templates["ChurnPipeline"]
    (group,) = props(template, "AWS::SageMaker::ModelPackageGroup")
    assert group["ModelPackageGroupName"] == "churn"
    (pipeline,) = props(template, "AWS::SageMaker::Pipeline")
    assert pipeline["PipelineName"] == "shelfwise-ci-churn"
    body = joined(pipeline["PipelineDefinition"]["PipelineDefinitionBody"])
    definition = json.loads(body)
    steps = {s["Name"] for s in definition["Steps"]}
    assert {"PrepareChurnData", "TrainChurnModel", "EvaluateChurnModel", "ChurnModelGate"} <= steps
    assert "shelfwise-placeholder" not in body
    assert "s3://shelfwise-ci-lake-<ref>-eu-west-1/features/churn/training/" in body
    assert "ModelPackageGroupName" in body
    assert '"churn"' in body
    assert "arn:<ref>:iam::<ref>:role/shelfwise-ci-churn-pipeline" in body


def test_pipeline_role_passes_only_itself_to_sagemaker(templates: dict[str, dict[str, Any]]) -> None:
    (pass_role,) = [s for s in policy_statements(templates["ChurnPipeline"]) if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    role, attribute = pass_role["Resource"]["Fn::GetAtt"]
    assert role.startswith("ExecutionRole")
    assert attribute == "Arn"


# -- churn API ---------------------------------------------------------------------------------------------------
def test_function_runs_python312_traced_with_the_shared_environment(templates: dict[str, dict[str, Any]]) -> None:
    (function,) = props(templates["ChurnApi"], "AWS::Lambda::Function")
    assert function["Runtime"] == "python3.12"
    assert function["Handler"] == "app.handler"
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["MemorySize"] == 1024
    env = function["Environment"]["Variables"]
    assert env["SHELFWISE_ENV"] == "ci"
    assert joined(env["SHELFWISE_LAKE_BUCKET"]) == "shelfwise-ci-lake-<ref>-eu-west-1"
    assert "Fn::ImportValue" in env["SHELFWISE_ONLINE_TABLE"]  # the deployed table's name, not a recomputed one
    assert {"SHELFWISE_GLUE_DATABASE", "SHELFWISE_CHURN_MODEL_GROUP"} <= set(env)


def test_function_reads_model_artifacts_and_online_table_only(templates: dict[str, dict[str, Any]]) -> None:
    statements = policy_statements(templates["ChurnApi"])
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert not {a for a in actions if a.startswith(("s3:Put", "s3:Delete", "dynamodb:Put", "dynamodb:Update"))}
    lake_objects = {joined(r) for s in statements for r in as_list(s["Resource"]) if "lake" in joined(r)}
    assert {r for r in lake_objects if "/" in r.split(":::", 1)[-1]} == {
        "arn:<ref>:s3:::shelfwise-ci-lake-<ref>-eu-west-1/models/churn/*"
    }


def test_data_methods_require_an_api_key_and_all_are_validated(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["ChurnApi"]
    methods = [p for p in props(template, "AWS::ApiGateway::Method") if p["HttpMethod"] != "OPTIONS"]
    assert sorted(m["HttpMethod"] for m in methods) == ["GET", "GET", "POST"]
    (validator_id,) = resources(template, "AWS::ApiGateway::RequestValidator")
    (validator,) = props(template, "AWS::ApiGateway::RequestValidator")
    assert validator["ValidateRequestBody"] is True
    assert validator["ValidateRequestParameters"] is True
    for method in methods:
        assert method["RequestValidatorId"] == {"Ref": validator_id}
        assert method["Integration"]["Type"] == "AWS_PROXY"
    by_parameters = {tuple(m.get("RequestParameters", {})): m for m in methods}
    customer = by_parameters[("method.request.path.customer_id",)]
    swagger = by_parameters[("method.request.querystring.format",)]
    (post,) = (m for m in methods if m["HttpMethod"] == "POST")
    assert customer["ApiKeyRequired"] is True
    assert post["ApiKeyRequired"] is True
    assert "application/json" in post["RequestModels"]
    assert swagger["ApiKeyRequired"] is False  # documentation only, loadable in a browser


def test_score_body_model_mirrors_the_handler_request(templates: dict[str, dict[str, Any]]) -> None:
    (model,) = props(templates["ChurnApi"], "AWS::ApiGateway::Model")
    schema = model["Schema"]
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["required"] == ["features"]
    assert schema["additionalProperties"] is False
    features = schema["properties"]["features"]
    assert features["additionalProperties"] is False
    assert features["properties"]["recency_days"] == {"type": "integer"}
    assert features["properties"]["monetary"] == {"type": "number"}


def test_usage_plan_throttles_and_stage_logs_and_traces(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["ChurnApi"]
    (plan,) = props(template, "AWS::ApiGateway::UsagePlan")
    assert plan["Throttle"] == {"RateLimit": 50, "BurstLimit": 100}
    assert plan["Quota"]["Period"] == "MONTH"
    assert len(resources(template, "AWS::ApiGateway::UsagePlanKey")) == 1
    (stage,) = props(template, "AWS::ApiGateway::Stage")
    assert stage["TracingEnabled"] is True
    assert "DestinationArn" in stage["AccessLogSetting"]
    assert '"status"' in stage["AccessLogSetting"]["Format"]
    settings = stage["MethodSettings"][0]
    assert settings["LoggingLevel"] == "ERROR"
    assert settings["MetricsEnabled"] is True
    assert settings["DataTraceEnabled"] is False
    log_groups = props(template, "AWS::Logs::LogGroup")
    assert log_groups
    assert all("KmsKeyId" in g for g in log_groups)


def test_gateway_errors_use_the_api_error_format(templates: dict[str, dict[str, Any]]) -> None:
    responses = props(templates["ChurnApi"], "AWS::ApiGateway::GatewayResponse")
    assert {r["ResponseType"] for r in responses} == {"DEFAULT_4XX", "DEFAULT_5XX"}
    for response in responses:
        template = response["ResponseTemplates"]["application/json"]
        assert template.startswith('{"error": {"code": ')


def test_alarms_on_5xx_and_p99_latency_notify_an_encrypted_topic(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["ChurnApi"]
    (topic_id,) = resources(template, "AWS::SNS::Topic")
    (topic,) = props(template, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in topic
    (topic_policy,) = props(template, "AWS::SNS::TopicPolicy")
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for s in topic_policy["PolicyDocument"]["Statement"]
    )
    alarms = {a["MetricName"]: a for a in props(template, "AWS::CloudWatch::Alarm")}
    assert alarms["5XXError"]["Statistic"] == "Sum"
    assert alarms["Latency"]["ExtendedStatistic"] == "p99"
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
