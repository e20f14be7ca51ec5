"""The orchestration stack: the daily chain's states in order, its schedule, least-privilege roles, encrypted logs,
tracing and alarms; the schedule's context key; and the publish function's bundle."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from shelfwise_cdk.deployment import DEFAULT_SCHEDULE, SCHEDULE_KEY, DeploymentContextError, deployment_from_context
from shelfwise_cdk.stacks.orchestration import EXECUTION_ID_ITEM

from shelfwise.domains import glue_jobs
from shelfwise.online_store import PUBLICATION_PK

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The orchestration stack's view of a cross-stack value or a reference, as `joined` renders it.
REF = "<ref>"


def joined(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(joined(p) for p in parts)
    return REF


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == kind}


def statements(template: dict[str, Any], policy_prefix: str) -> list[dict[str, Any]]:
    return [
        s
        for name, p in resources(template, "AWS::IAM::Policy").items()
        if name.startswith(policy_prefix)
        for s in p["PolicyDocument"]["Statement"]
    ]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(template: dict[str, Any], policy_prefix: str) -> dict[str, set[str]]:
    """Action -> the resources (joined) it is allowed on."""
    allowed: dict[str, set[str]] = {}
    for statement in statements(template, policy_prefix):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            allowed.setdefault(action, set()).update(joined(r) for r in as_list(statement["Resource"]))
    return allowed


@pytest.fixture(scope="module")
def template(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return templates["Orchestration"]


@pytest.fixture(scope="module")
def machine(template: dict[str, Any]) -> dict[str, Any]:
    (props,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    return props


@pytest.fixture(scope="module")
def definition(machine: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(joined(machine["DefinitionString"]))
    return parsed


def flat(definition: dict[str, Any]) -> dict[str, Any]:
    """Every state by name, those of Parallel branches included (CDK names states uniquely)."""
    states: dict[str, Any] = {}
    for name, state in definition["States"].items():
        states[name] = state
        for branch in state.get("Branches", []):
            states.update(flat(branch))
    return states


def follow(states: dict[str, Any], start: str) -> list[str]:
    """State names from `start` along `Next` until a Choice or an end."""
    path = [start]
    while "Next" in states[path[-1]]:
        path.append(states[path[-1]]["Next"])
    return path


# -- the chain ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_chain_runs_the_glue_jobs_then_each_domains_pipelines_in_order(definition: dict[str, Any]) -> None:
    states = flat(definition)
    assert follow(states, definition["StartAt"]) == [
        "RunDate",
        "StartCurateOrders",
        "WaitForCurateOrders",
        "CountCurateOrdersPoll",
        "PollCurateOrders",
        "CurateOrdersStatus",
    ]
    # then the domains side by side, each in a branch of its own that catches its failure
    assert follow(states, "CurateOrdersSucceeded") == ["CurateOrdersSucceeded", "Domains", "EveryDomainPublished?"]
    branches = [branch["StartAt"] for branch in states["Domains"]["Branches"]]
    assert branches == ["ChurnBranch", "DemandBranch", "VisualBranch"]
    for name in ("Churn", "Demand", "Visual"):
        branch = states[f"{name}Branch"]
        assert branch["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": f"{name}BranchFailed"}
        ]
    assert states["ChurnBranch"]["Branches"][0]["StartAt"] == "StartCustomerFeatures"
    assert states["DemandBranch"]["Branches"][0]["StartAt"] == "StartDemandFeatures"
    assert states["VisualBranch"]["Branches"][0]["StartAt"] == "StartVisualTraining"  # no Glue job of its own
    assert follow(states, "CustomerFeaturesSucceeded")[:2] == ["CustomerFeaturesSucceeded", "StartChurnTraining"]
    assert follow(states, "DemandFeaturesSucceeded")[:2] == ["DemandFeaturesSucceeded", "StartDemandTraining"]
    assert follow(states, "RecordChurnTraining") == ["RecordChurnTraining", "FindChurnModel", "ChurnModelApproved?"]
    assert follow(states, "DescribeChurnModel") == ["DescribeChurnModel", "ChurnModelVerifiable?"]
    verifiable = states["ChurnModelVerifiable?"]
    assert verifiable["Choices"][0]["Next"] == "StartChurnScoring"
    assert states[verifiable["Default"]]["Error"] == "UnverifiableModel"
    assert follow(states, "PublishChurn") == ["PublishChurn", "ChurnFinished"]
    assert follow(states, "PublishDemand") == ["PublishDemand", "DemandFinished"]
    # visual has no publisher: its scoring pipeline built the index the API serves
    assert states["VisualScoringStatus"]["Choices"][0]["Next"] == "VisualServed"
    assert follow(states, "VisualServed") == ["VisualServed", "VisualFinished"]
    # a failed branch fails the execution with its own error, once every branch has ended
    outcome = states["EveryDomainPublished?"]
    for index, (name, choice) in enumerate(zip(("Churn", "Demand", "Visual"), outcome["Choices"], strict=True)):
        assert choice == {"Variable": f"$.domains[{index}].failure", "IsPresent": True, "Next": f"{name}Failed"}
        assert states[f"{name}Failed"]["ErrorPath"] == f"$.domains[{index}].failure.Error"
    assert follow(states, outcome["Default"]) == ["EveryDomainPublished", "Published"]


@pytest.mark.slow
def test_glue_jobs_get_the_run_date_and_only_transient_errors_are_retried(definition: dict[str, Any]) -> None:
    states = flat(definition)
    run_date = states["RunDate"]["Parameters"]["date.$"]
    assert "$$.Execution.StartTime" in run_date  # a redriven execution redoes the same day
    curate, features = states["StartCurateOrders"], states["StartCustomerFeatures"]
    assert curate["Resource"].endswith(":states:::aws-sdk:glue:startJobRun")  # start + poll, no .sync
    assert curate["Parameters"]["JobName"] == "shelfwise-ci-curate-orders"
    assert curate["Parameters"]["Arguments"] == {"--run_date.$": "$.run.date"}
    assert features["Parameters"]["Arguments"] == {"--serving_cutoff.$": "$.run.date"}
    assert states["StartDemandFeatures"]["Parameters"]["Arguments"] == {"--as_of.$": "$.run.date"}
    retried = {e for r in curate["Retry"] for e in r["ErrorEquals"]}
    assert retried == {
        "Glue.ConcurrentRunsExceededException",
        "Glue.ThrottlingException",
        "Glue.InternalServiceException",
        "Glue.OperationTimeoutException",
    }
    assert all(r["BackoffRate"] >= 2 for r in curate["Retry"])
    assert "States.ALL" not in retried
    assert "States.TaskFailed" not in retried
    status = states["CurateOrdersStatus"]
    failed = next(c for c in status["Choices"] if "Or" in c)
    assert sorted(c["StringEquals"] for c in failed["Or"]) == ["ERROR", "FAILED", "STOPPED", "TIMEOUT"]
    assert states[failed["Next"]]["Type"] == "Fail"


@pytest.mark.slow
def test_a_failed_candidate_does_not_stop_scoring_but_a_failed_scoring_stops_publishing(
    definition: dict[str, Any],
) -> None:
    states = flat(definition)
    trained = states["ChurnTrainingStatus"]
    ended, polling = trained["Choices"]
    assert sorted(c["StringEquals"] for c in ended["Or"]) == ["Failed", "Stopped", "Succeeded"]
    assert ended["Next"] == "RecordChurnTraining"
    assert polling == {"Variable": "$.pipeline.polls", "NumericLessThan": 72, "Next": "WaitForChurnTraining"}
    assert follow(states, trained["Default"]) == [
        "StopOverdueChurnTraining",
        "RecordChurnTrainingOverdue",
        "FindChurnModel",
        "ChurnModelApproved?",
    ]
    assert states["RecordChurnTrainingOverdue"]["Parameters"]["status"] == "StoppedOverdue"
    scored = states["ChurnScoringStatus"]
    succeeded, badly, _ = scored["Choices"]
    assert (succeeded["StringEquals"], succeeded["Next"]) == ("Succeeded", "PublishChurn")
    assert states[badly["Next"]]["Type"] == "Fail"
    assert "$.pipeline.execution.description" in states[badly["Next"]]["CausePath"]
    assert follow(states, scored["Default"]) == ["StopOverdueChurnScoring", "ChurnScoringTimedOut"]


@pytest.mark.slow
def test_scoring_gets_the_newest_approved_package_as_the_api_defines_it(definition: dict[str, Any]) -> None:
    from shelfwise.pipelines.registry import NEWEST_APPROVED_QUERY

    states = flat(definition)
    find = states["FindChurnModel"]
    assert find["Resource"].endswith(":states:::aws-sdk:sagemaker:listModelPackages")
    assert find["Parameters"] == {"ModelPackageGroupName": "churn", **NEWEST_APPROVED_QUERY}
    approved = states["ChurnModelApproved?"]
    assert approved["Choices"][0]["Next"] == "DescribeChurnModel"
    assert states[approved["Default"]] == {
        "Type": "Fail",
        "Error": "NoApprovedModel",
        "Cause": "model package group churn has no approved package: approve one",
    }
    sha256 = "$.model.package.CustomerMetadataProperties.artifact_sha256"
    assert states["ChurnModelVerifiable?"]["Choices"][0] == {
        "Variable": sha256,
        "IsPresent": True,
        "Next": "StartChurnScoring",
    }
    parameters = {p["Name"]: p for p in states["StartChurnScoring"]["Parameters"]["PipelineParameters"]}
    assert parameters["ModelUri"]["Value.$"] == "$.model.uri"
    assert parameters["ModelSha256"]["Value.$"] == sha256
    serving = parameters["ServingFeaturesUri"]["Value.$"]
    assert "features/churn/serving/cutoff={}/" in serving
    assert "$.run.date" in serving


@pytest.mark.slow
def test_publish_gets_the_prefix_the_scoring_execution_wrote(
    definition: dict[str, Any], templates: dict[str, dict[str, Any]]
) -> None:
    publish = flat(definition)["PublishChurn"]
    assert publish["Parameters"] == {
        "predictions_prefix.$": "States.Format('predictions/churn/{}/', "
        "States.ArrayGetItem(States.StringSplit($.pipeline.arn, '/'), 3))"
    }
    retried = {e for r in publish["Retry"] for e in r["ErrorEquals"]}
    assert {"ThrottledError", "PublicationBusyError", "LeaseLostError"} <= retried
    # the batch score writes to predictions/churn/<execution id>/, and the id is that item of the execution ARN
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/shelfwise-ci-churn-score/execution/8ep4bgfo0pyw"
    assert arn.split("/")[EXECUTION_ID_ITEM] == "8ep4bgfo0pyw"
    (pipeline,) = [
        p for p in resources(templates["ChurnPipelines"], "AWS::SageMaker::Pipeline").values()
        if p["PipelineName"] == "shelfwise-ci-churn-score"
    ]  # fmt: skip
    body = json.loads(joined(pipeline["PipelineDefinition"]["PipelineDefinitionBody"]))
    (score,) = body["Steps"]
    outputs = score["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    destination = next(o for o in outputs if o["OutputName"] == "predictions")["S3Output"]["S3Uri"]["Std:Join"]
    assert destination["Values"][-3:] == ["predictions", "churn", {"Get": "Execution.PipelineExecutionId"}]


# -- schedule, logging, tracing, alarms --------------------------------------------------------------------------
@pytest.mark.slow
def test_an_eventbridge_schedule_starts_the_state_machine_daily_at_3_utc(template: dict[str, Any]) -> None:
    (rule,) = resources(template, "AWS::Events::Rule").values()
    assert rule["ScheduleExpression"] == DEFAULT_SCHEDULE == "cron(0 3 * * ? *)"
    assert rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    machine_id = next(iter(resources(template, "AWS::StepFunctions::StateMachine")))
    assert target["Arn"] == {"Ref": machine_id}
    assert json.loads(target["Input"]) == {"trigger": "schedule"}
    assert grants(template, "DailyChainEventsRole") == {"states:StartExecution": {REF}}


@pytest.mark.slow
def test_standard_machine_logs_all_to_an_encrypted_group_and_traces(
    template: dict[str, Any], machine: dict[str, Any]
) -> None:
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["TracingConfiguration"] == {"Enabled": True}
    logging = machine["LoggingConfiguration"]
    assert (logging["Level"], logging["IncludeExecutionData"]) == ("ALL", False)
    (destination,) = logging["Destinations"]
    group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    group = resources(template, "AWS::Logs::LogGroup")[group_id]
    assert "shelfwise-ci-platform" in json.dumps(group["KmsKeyId"])  # the operations key
    assert group["RetentionInDays"] == 365


@pytest.mark.slow
def test_alarms_on_failed_days_rejected_records_and_nothing_published(template: dict[str, Any]) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 1 + 2 * 2  # the chain's, and two per publishing domain
    for alarm in alarms.values():
        (action,) = alarm["AlarmActions"]
        assert "shelfwise-ci-platform" in json.dumps(action)  # the deployment's one alarm topic
    expressions = [q["Expression"] for a in alarms.values() for q in a.get("Metrics", []) if "Expression" in q]
    assert expressions == ["failed + timedOut"]
    for service in ("churn-publish", "demand-publish"):
        by_metric = {
            a.get("MetricName"): a
            for a in alarms.values()
            if a.get("Dimensions") == [{"Name": "service", "Value": service}]
        }
        assert set(by_metric) == {"RejectedRecords", "PublishedRecords"}
        nothing = by_metric["PublishedRecords"]
        assert (nothing["ComparisonOperator"], nothing["Threshold"]) == ("LessThanThreshold", 1)
        assert nothing["TreatMissingData"] == "breaching"  # no publish at all is the stale case
        assert nothing["Period"] == 26 * 3600


# -- least privilege ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_state_machine_role_reaches_only_the_jobs_pipelines_packages_and_publisher(template: dict[str, Any]) -> None:
    allowed = grants(template, "DailyChainRoleDefaultPolicy")
    jobs = {f"arn:aws:glue:eu-west-1:{REF}:job/shelfwise-ci-{job.resource_suffix}" for job in glue_jobs().values()}
    for action in ("glue:StartJobRun", "glue:GetJobRun", "glue:BatchStopJobRun"):
        assert allowed.pop(action) == jobs
    names = ("churn", "churn-score", "demand", "demand-score", "visual", "visual-score")
    pipelines = {f"arn:aws:sagemaker:eu-west-1:{REF}:pipeline/shelfwise-ci-{p}" for p in names}
    assert allowed.pop("sagemaker:StartPipelineExecution") == pipelines
    for action in ("sagemaker:DescribePipelineExecution", "sagemaker:StopPipelineExecution"):
        assert allowed.pop(action) == {f"{p}/execution/*" for p in pipelines}
    assert allowed.pop("sagemaker:DescribeModelPackage") == {
        f"arn:aws:sagemaker:eu-west-1:{REF}:model-package/{group}/*" for group in ("churn", "demand", "visual")
    }
    assert allowed.pop("lambda:InvokeFunction") == {REF, f"{REF}:*"}
    # what is left supports no resource ARNs: the registry listing, log delivery and X-Ray
    assert all(re.match(r"^(logs|xray):|^sagemaker:ListModelPackages$", action) for action in allowed), sorted(allowed)
    assert all(resource == {"*"} for resource in allowed.values())


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["churn", "demand"])
def test_publish_function_reads_runs_quarantines_rejects_puts_items_and_takes_turns(
    template: dict[str, Any], domain: str
) -> None:
    allowed = grants(template, f"{domain.capitalize()}PublishFunctionRole")
    lake = f"arn:aws:s3:::shelfwise-ci-lake-{REF}-eu-west-1"
    assert allowed.pop("s3:GetObject") == allowed.pop("s3:GetObjectVersion") == {f"{lake}/predictions/{domain}/*"}
    assert allowed.pop("s3:PutObject") == {f"{lake}/quarantine/{domain}-publish/*"}
    assert allowed.pop("s3:ListBucket") == {lake}
    assert allowed.pop("dynamodb:PutItem") == allowed.pop("dynamodb:BatchWriteItem") == {REF}
    assert allowed.pop("dynamodb:UpdateItem") == {REF}
    role = f"{domain.capitalize()}PublishFunctionRole"
    (turns,) = [s for s in statements(template, role) if s.get("Sid") == "TakeTurnsAtPublishing"]
    assert turns["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [PUBLICATION_PK]}}
    assert not [a for a in allowed if a.startswith(("dynamodb:", "s3:"))]  # no reads or deletes
    (function,) = [
        f
        for name, f in resources(template, "AWS::Lambda::Function").items()
        if name.startswith(f"{domain.capitalize()}Publish")
    ]
    assert (function["Runtime"], function["Handler"], function["Timeout"]) == ("python3.12", "app.handler", 900)
    variables = function["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == f"{domain}-publish"
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"


# -- the schedule's context key ----------------------------------------------------------------------------------
def test_schedule_comes_from_context_with_a_daily_default() -> None:
    assert deployment_from_context({}.get, REPO_ROOT).schedule == DEFAULT_SCHEDULE
    custom = deployment_from_context({SCHEDULE_KEY: "rate(6 hours)"}.get, REPO_ROOT)
    assert custom.schedule == "rate(6 hours)"
    assert json.loads((REPO_ROOT / "cdk.json").read_text())["context"][SCHEDULE_KEY] == DEFAULT_SCHEDULE


@pytest.mark.parametrize("schedule", ["daily", "cron(0 3 * * ?)", "rate(0 days)", "rate(1 fortnight)", 3])
def test_a_malformed_schedule_is_named(schedule: object) -> None:
    with pytest.raises(DeploymentContextError, match=f"context {SCHEDULE_KEY}="):
        deployment_from_context({SCHEDULE_KEY: schedule}.get, REPO_ROOT)


# -- the publish function's bundle ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_publish_function_bundle_is_small_and_has_no_dataframe_libraries(tmp_path: Path) -> None:
    """CDK bundles the real publish function locally: handler, library and cp312 wheels, and nothing heavy."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_kms as kms
    from shelfwise_cdk.constructs.python_function import ShelfwisePythonFunction

    app = App(outdir=str(tmp_path / "cdk.out"))
    stack = Stack(app, "Bundled")
    code_dir = REPO_ROOT / "lambdas" / "churn_publish"
    ShelfwisePythonFunction(
        stack,
        "Publish",
        handler="app.handler",
        code_dir=code_dir,
        library_dirs=[REPO_ROOT / "shelfwise"],
        requirements=code_dir / "requirements.txt",
        constraints=REPO_ROOT / "constraints.txt",
        log_key=kms.Key(stack, "Key"),
    )
    assembly = app.synth()
    (out,) = (d for d in Path(assembly.directory).glob("asset.*") if d.is_dir())
    assert (out / "app.py").is_file()
    assert (out / "shelfwise" / "churn" / "publish.py").is_file()
    for package in ("aws_lambda_powertools", "pydantic", "pydantic_settings", "aws_xray_sdk"):
        assert (out / package).is_dir(), package
    for heavy in ("pyarrow", "pandas", "numpy", "xgboost"):
        assert not (out / heavy).exists(), heavy
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < 40 * 2**20, f"bundle is {size / 2**20:.0f} MiB unzipped"
