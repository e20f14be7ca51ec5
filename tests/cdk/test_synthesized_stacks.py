"""The synthesized templates have the security and operations settings each stack promises: encryption, least
privilege (prefix-scoped listing, GetItem-only reads, no approval rights for the pipelines), IAM authorization on
every method, WAF, network-isolated encrypted training, lifecycle rules for what grows, and the alarms."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from shelfwise.domains import DOMAINS

pytestmark = pytest.mark.slow


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def props(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for r in resources(template, kind).values()]


def joined(value: Any) -> str:
    """A string property with intrinsics flattened (`Fn::Join` parts joined, references as `<ref>`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(joined(p) for p in parts)
    if isinstance(value, dict) and "Fn::Sub" in value:
        return re.sub(r"\$\{[^}]+\}", "<ref>", value["Fn::Sub"])
    return "<ref>"


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(template: dict[str, Any], role_prefix: str = "") -> list[dict[str, Any]]:
    found = []
    for policy in props(template, "AWS::IAM::Policy"):
        roles = [r["Ref"] for r in policy.get("Roles", [])]
        if any(role.startswith(role_prefix) for role in roles):
            found += policy["PolicyDocument"]["Statement"]
    return found


def grants(template: dict[str, Any], role_prefix: str) -> dict[str, set[str]]:
    """Action -> the resources (joined) the role may use it on."""
    allowed: dict[str, set[str]] = {}
    for statement in statements(template, role_prefix):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            allowed.setdefault(action, set()).update(joined(r) for r in as_list(statement["Resource"]))
    return allowed


LAKE = "s3:::shelfwise-ci-lake-<ref>-eu-west-1"


def lake_prefixes(template: dict[str, Any], role_prefix: str, action: str) -> set[str]:
    return {r.split(f"{LAKE}/", 1)[1] for r in grants(template, role_prefix).get(action, set()) if f"{LAKE}/" in r}


# -- platform and data ---------------------------------------------------------------------------------------------
def test_three_keys_rotate_and_alarms_may_use_the_operations_key_only_from_this_account(
    templates: dict[str, dict[str, Any]],
) -> None:
    keys = {stack: props(t, "AWS::KMS::Key") for stack, t in templates.items() if props(t, "AWS::KMS::Key")}
    assert {stack: len(found) for stack, found in keys.items()} == {"Platform": 1, "DataLake": 1, "OnlineStore": 1}
    assert all(k["EnableKeyRotation"] is True for found in keys.values() for k in found)
    (operations,) = keys["Platform"]
    (alarms,) = [
        s for s in operations["KeyPolicy"]["Statement"] if s.get("Sid") == "AllowCloudWatchAlarmsToEncryptedTopics"
    ]
    assert alarms["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert joined(alarms["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(":cloudwatch:eu-west-1:<ref>:alarm:*")
    assert sorted(as_list(alarms["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]


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
        assert any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["PolicyDocument"]["Statement"]
        ), policy


def test_what_grows_with_every_run_expires_and_raw_data_ages_into_archive(templates: dict[str, dict[str, Any]]) -> None:
    lake = next(p for p in props(templates["DataLake"], "AWS::S3::Bucket") if "VersioningConfiguration" in p)
    rules = {r["Id"]: r for r in lake["LifecycleConfiguration"]["Rules"]}
    expiring = {r["Prefix"]: r["ExpirationInDays"] for r in rules.values() if "ExpirationInDays" in r}
    declared = {r.prefix: r.days for d in DOMAINS for r in d.retention}
    assert expiring == declared
    assert {"features/churn/serving/", "pipelines/churn/", "predictions/churn/", "quarantine/churn-"} <= set(expiring)
    raw = rules["raw-to-archive"]
    assert [(t["StorageClass"], t["TransitionInDays"]) for t in raw["Transitions"]] == [
        ("STANDARD_IA", 30),
        ("GLACIER_IR", 120),
    ]
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90


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


# -- feature jobs --------------------------------------------------------------------------------------------------
def test_glue_jobs_of_every_domain_run_glue5_without_retries_of_their_own(templates: dict[str, dict[str, Any]]) -> None:
    jobs = {p["Name"]: p for p in props(templates["FeatureJobs"], "AWS::Glue::Job")}
    assert set(jobs) == {f"shelfwise-ci-{job.resource_suffix}" for domain in DOMAINS for job in domain.glue_jobs}
    assert {"shelfwise-ci-curate-orders", "shelfwise-ci-customer-features", "shelfwise-ci-demand-features"} <= set(jobs)
    for job in jobs.values():
        assert job["GlueVersion"] == "5.0"
        assert job["SecurityConfiguration"] == {"Ref": "SecurityConfiguration"}
        assert job["MaxRetries"] == 0  # the state machine owns retries
        args = job["DefaultArguments"]
        assert args["--enable-continuous-cloudwatch-log"] == "true"
        modules = args["--additional-python-modules"].split(",")
        assert "pydantic==2.14.3" in modules
        assert all("==" in m for m in modules)  # pinned, dependencies included
        assert joined(args["--extra-py-files"]).endswith(".zip")
    curate = jobs["shelfwise-ci-curate-orders"]["DefaultArguments"]
    assert joined(curate["--input_path"]) == "s3://shelfwise-ci-lake-<ref>-eu-west-1/raw/order_lines/"
    assert joined(curate["--state_path"]) == "s3://shelfwise-ci-lake-<ref>-eu-west-1/state/curate_orders/"


def test_each_glue_job_role_reaches_only_its_own_prefixes(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["FeatureJobs"]
    roles = {p["Name"]: p["Role"]["Fn::GetAtt"][0] for p in props(template, "AWS::Glue::Job")}
    curate = roles["shelfwise-ci-curate-orders"]
    assert lake_prefixes(template, curate, "s3:PutObject") == {
        "curated/order_lines/*",
        "quarantine/curate_orders/*",
        "state/curate_orders/*",
    }
    assert lake_prefixes(template, curate, "s3:GetObject") == {
        "raw/order_lines/*",
        "curated/order_lines/*",
        "quarantine/curate_orders/*",
        "state/curate_orders/*",
    }
    features = roles["shelfwise-ci-customer-features"]
    assert lake_prefixes(template, features, "s3:PutObject") == {
        "features/churn/training/*",
        "features/churn/cold_start/*",
        "features/churn/serving/*",
    }
    assert "raw/order_lines/*" not in lake_prefixes(template, features, "s3:GetObject")


def test_listing_the_lake_is_scoped_by_prefix_for_every_role(templates: dict[str, dict[str, Any]]) -> None:
    for stack, template in templates.items():
        for statement in statements(template):
            if "s3:ListBucket" not in as_list(statement["Action"]):
                continue
            assert set(statement["Condition"]) == {"StringLike"}, (stack, statement)
            prefixes = as_list(statement["Condition"]["StringLike"]["s3:prefix"])
            assert prefixes
            assert all(p not in ("", "*") for p in prefixes), (stack, statement)
    for template in templates.values():
        actions = {a for s in statements(template) for a in as_list(s["Action"])}
        assert not {a for a in actions if a.startswith("s3:") and a.endswith("*")}, actions


# -- pipelines ---------------------------------------------------------------------------------------------------
def pipeline_bodies(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        p["PipelineName"]: json.loads(joined(p["PipelineDefinition"]["PipelineDefinitionBody"]))
        for p in props(template, "AWS::SageMaker::Pipeline")
    }


def test_training_and_scoring_pipelines_are_the_library_definitions(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["ChurnPipelines"]
    (group,) = props(template, "AWS::SageMaker::ModelPackageGroup")
    assert group["ModelPackageGroupName"] == "churn"
    bodies = pipeline_bodies(template)
    assert set(bodies) == {"shelfwise-ci-churn", "shelfwise-ci-churn-score"}
    training = bodies["shelfwise-ci-churn"]
    assert [s["Name"] for s in training["Steps"]] == [
        "PrepareChurnData",
        "TrainChurnModel",
        "EvaluateChurnModel",
        "ChurnModelGate",
    ]
    assert [s["Name"] for s in bodies["shelfwise-ci-churn-score"]["Steps"]] == ["BatchScoreChurn"]
    body = json.dumps(training)
    assert "shelfwise-placeholder" not in body
    assert "s3://shelfwise-ci-lake-<ref>-eu-west-1/features/churn/training/" in body


def test_the_demand_pipelines_get_the_staged_wheelhouse_and_read_it(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["DemandPipelines"]
    bodies = pipeline_bodies(template)
    assert set(bodies) == {"shelfwise-ci-demand", "shelfwise-ci-demand-score"}
    for body in bodies.values():
        (wheelhouse,) = [p for p in body["Parameters"] if p["Name"] == "WheelhouseUri"]
        assert wheelhouse["DefaultValue"].startswith("s3://")
        assert wheelhouse["DefaultValue"].endswith(".zip")
    allowed = grants(template, "ExecutionRole")
    assets = {r for r in allowed["s3:GetObject"] if "cdk" in r or "<ref>" in r}
    assert assets  # the code and the wheelhouse assets


@pytest.mark.parametrize("stack", ["ChurnPipelines", "DemandPipelines"])
def test_training_runs_network_isolated_and_jobs_encrypt_with_the_lake_key(
    templates: dict[str, dict[str, Any]], stack: str
) -> None:
    for body in pipeline_bodies(templates[stack]).values():
        for step in body["Steps"]:
            arguments = step.get("Arguments", {})
            if step["Type"] == "Training":
                assert arguments["EnableNetworkIsolation"] is True
                assert arguments["ResourceConfig"]["VolumeKmsKeyId"] == "<ref>"
                assert arguments["OutputDataConfig"]["KmsKeyId"] == "<ref>"
            if step["Type"] == "Processing":
                assert arguments["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "<ref>"
                assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == "<ref>"


@pytest.mark.parametrize("stack", ["ChurnPipelines", "DemandPipelines"])
def test_the_pipeline_role_registers_models_but_cannot_approve_them(
    templates: dict[str, dict[str, Any]], stack: str
) -> None:
    allowed = grants(templates[stack], "ExecutionRole")
    assert "sagemaker:CreateModelPackage" in allowed
    assert not {a for a in allowed if a in ("sagemaker:UpdateModelPackage", "sagemaker:*") or a.endswith(":*")}
    (pass_role,) = [s for s in statements(templates[stack]) if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


# -- API -----------------------------------------------------------------------------------------------------------
def test_every_method_takes_iam_authorization_an_api_key_and_validation(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["Api"]
    methods = [p for p in props(template, "AWS::ApiGateway::Method") if p["HttpMethod"] != "OPTIONS"]
    routes = [r for d in DOMAINS if d.api is not None for r in d.api.routes]
    assert len(methods) == len(routes)
    (validator_id,) = resources(template, "AWS::ApiGateway::RequestValidator")
    for method in methods:
        # unsigned requests are refused by API Gateway before any function runs
        assert method["AuthorizationType"] == "AWS_IAM"
        assert method["ApiKeyRequired"] is True
        assert method["RequestValidatorId"] == {"Ref": validator_id}
        assert method["Integration"]["Type"] == "AWS_PROXY"
    with_body = [m for m in methods if "RequestModels" in m]
    assert len(with_body) == len([r for r in routes if r.request_schema is not None])
    assert all("application/json" in m["RequestModels"] for m in with_body)


def test_image_uploads_reach_the_visual_function_as_binary(templates: dict[str, dict[str, Any]]) -> None:
    """Without the image types in binaryMediaTypes API Gateway would pass an uploaded JPEG as (mangled) text."""
    (api,) = props(templates["Api"], "AWS::ApiGateway::RestApi")
    assert set(api["BinaryMediaTypes"]) == {"image/jpeg", "image/png", "image/webp"}


def test_body_models_are_the_declared_schemas(templates: dict[str, dict[str, Any]]) -> None:
    models = {m["Schema"]["title"]: m["Schema"] for m in props(templates["Api"], "AWS::ApiGateway::Model")}
    declared = [r.request_schema for d in DOMAINS if d.api is not None for r in d.api.routes if r.request_schema]
    assert models == {schema["title"]: dict(schema) for schema in declared}


def test_score_body_model_mirrors_the_handler_request(templates: dict[str, dict[str, Any]]) -> None:
    (schema,) = (
        m["Schema"] for m in props(templates["Api"], "AWS::ApiGateway::Model") if m["Name"] == "ChurnPostChurnScore"
    )
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["required"] == ["features"]
    features = schema["properties"]["features"]
    assert features["additionalProperties"] is False
    assert features["properties"]["recency_days"] == {"type": "integer"}
    assert features["properties"]["monetary"] == {"type": "number"}


def test_waf_guards_the_stage_with_managed_rules_and_a_rate_limit_per_ip(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["Api"]
    (acl,) = props(template, "AWS::WAFv2::WebACL")
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    rules = {r["Name"]: r for r in acl["Rules"]}
    assert rules["RequestsPerIp"]["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert rules["RequestsPerIp"]["Action"] == {"Block": {}}
    for managed in ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"):
        assert rules[managed]["Statement"]["ManagedRuleGroupStatement"] == {"VendorName": "AWS", "Name": managed}
    (association,) = props(template, "AWS::WAFv2::WebACLAssociation")
    assert joined(association["ResourceArn"]).endswith("/stages/v1")


def test_the_api_functions_read_items_with_get_item_and_their_models_only(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["Api"]
    allowed = grants(template, "ChurnFunction")
    assert {a for a in allowed if a.startswith("dynamodb:")} == {"dynamodb:GetItem"}
    assert {a for a in allowed if a.startswith("s3:")} == {"s3:GetObject", "s3:GetObjectVersion"}
    assert lake_prefixes(template, "ChurnFunction", "s3:GetObject") == {"models/churn/*"}
    assert {a for a in allowed if a.startswith("sagemaker:")} == {
        "sagemaker:DescribeModelPackage",
        "sagemaker:ListModelPackages",
    }
    # Demand serves precomputed forecasts: the online store only, no lake objects and no model registry.
    allowed = grants(template, "DemandFunction")
    assert {a for a in allowed if a.split(":")[0] in ("dynamodb", "s3", "sagemaker")} == {"dynamodb:GetItem"}
    functions = props(template, "AWS::Lambda::Function")
    assert len(functions) == len([d for d in DOMAINS if d.api is not None])
    for function in functions:
        env = function["Environment"]["Variables"]
        assert (function["Runtime"], function["Handler"]) == ("python3.12", "app.handler")
        assert function["TracingConfig"] == {"Mode": "Active"}
        assert env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"  # customer data stays out of traces
        assert env["SHELFWISE_LAKE_BUCKET_OWNER"] == {"Ref": "AWS::AccountId"}
        assert joined(env["SHELFWISE_LAKE_BUCKET"]) == "shelfwise-ci-lake-<ref>-eu-west-1"


def test_usage_plan_throttles_and_stage_logs_and_traces(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["Api"]
    (plan,) = props(template, "AWS::ApiGateway::UsagePlan")
    assert plan["Throttle"] == {"RateLimit": 50, "BurstLimit": 100}
    (stage,) = props(template, "AWS::ApiGateway::Stage")
    assert stage["TracingEnabled"] is True
    assert '"status"' in stage["AccessLogSetting"]["Format"]
    settings = stage["MethodSettings"][0]
    assert (settings["LoggingLevel"], settings["DataTraceEnabled"]) == ("ERROR", False)
    assert all("KmsKeyId" in g for g in props(template, "AWS::Logs::LogGroup"))


def test_gateway_errors_use_the_api_error_format(templates: dict[str, dict[str, Any]]) -> None:
    responses = props(templates["Api"], "AWS::ApiGateway::GatewayResponse")
    assert {r["ResponseType"] for r in responses} == {"DEFAULT_4XX", "DEFAULT_5XX"}
    for response in responses:
        assert response["ResponseTemplates"]["application/json"].startswith('{"error": {"code": ')


def test_api_alarms_cover_errors_latency_and_stale_served_data(templates: dict[str, dict[str, Any]]) -> None:
    alarms = props(templates["Api"], "AWS::CloudWatch::Alarm")
    by_metric = {a["MetricName"]: a for a in alarms}
    assert by_metric["5XXError"]["Statistic"] == "Sum"
    assert by_metric["Latency"]["ExtendedStatistic"] == "p99"
    stale = {a["Dimensions"][0]["Value"]: a for a in alarms if a["MetricName"] == "ServedDataAgeSeconds"}
    assert set(stale) == {f"{d.api.name}-api" for d in DOMAINS if d.api is not None}  # one per API function
    for service, alarm in stale.items():
        assert (alarm["Namespace"], alarm["Statistic"]) == ("Shelfwise", "Maximum")
        assert alarm["Dimensions"] == [{"Name": "service", "Value": service}]
        assert alarm["Threshold"] == 30 * 3600
    for alarm in alarms:
        (action,) = alarm["AlarmActions"]
        reference = json.dumps(action)  # the deployment's one alarm topic, in the platform stack
        assert "shelfwise-ci-platform" in reference
        assert "AlarmTopic" in reference


def test_destroy_keeps_exactly_the_data_keys_and_audit_records(templates: dict[str, dict[str, Any]]) -> None:
    """What `cdk destroy` leaves behind, as the README lists it for the user to remove by hand."""
    retained = sorted(
        (stack, resource["Type"])
        for stack, template in templates.items()
        for resource in template["Resources"].values()
        if resource.get("DeletionPolicy") == "Retain"
    )
    assert retained == sorted(
        [
            ("Api", "AWS::ApiGateway::Account"),  # the account-wide role API Gateway logs with
            ("Api", "AWS::IAM::Role"),
            ("Api", "AWS::Logs::LogGroup"),  # access logs
            ("ChurnPipelines", "AWS::SageMaker::ModelPackageGroup"),
            ("DemandPipelines", "AWS::SageMaker::ModelPackageGroup"),
            ("VisualPipelines", "AWS::SageMaker::ModelPackageGroup"),
            ("DataLake", "AWS::KMS::Key"),
            ("DataLake", "AWS::S3::Bucket"),  # the lake
            ("DataLake", "AWS::S3::Bucket"),  # its access logs
            ("OnlineStore", "AWS::DynamoDB::Table"),
            ("OnlineStore", "AWS::KMS::Key"),
            ("Orchestration", "AWS::Logs::LogGroup"),  # executions
            ("Platform", "AWS::KMS::Key"),
        ]
    )
