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


def follow(states: dict[str, Any], start: str) -> list[str]:
    """State names from `start` along `Next` until a Choice or an end."""
    path = [start]
    while "Next" in states[path[-1]]:
        path.append(states[path[-1]]["Next"])
    return path


# -- the chain ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_chain_runs_both_glue_jobs_then_starts_and_polls_the_pipeline(definition: dict[str, Any]) -> None:
    states = definition["States"]
    assert follow(states, definition["StartAt"]) == [
        "CurateOrders",
        "CustomerFeatures",
        "StartChurnPipeline",
        "WaitForPipeline",
        "CountPipelinePoll",
        "DescribePipelineExecution",
        "PipelineStatus",
    ]
    jobs = {"CurateOrders": "shelfwise-ci-curate-orders", "CustomerFeatures": "shelfwise-ci-customer-features"}
    for state, job in jobs.items():
        assert states[state]["Resource"].endswith(":states:::glue:startJobRun.sync")  # waits for the job run
        assert states[state]["Parameters"]["JobName"] == job
        assert states[state]["ResultPath"] is None
        assert "Timeout" not in states[state]["Parameters"]  # the job's own timeout applies
    assert "$$.Execution.StartTime" in states["CurateOrders"]["Parameters"]["Arguments"]["--run_date.$"]
    start = states["StartChurnPipeline"]
    assert start["Resource"].endswith(":states:::aws-sdk:sagemaker:startPipelineExecution")
    assert start["Parameters"]["PipelineName"] == "shelfwise-ci-churn"
    assert start["ResultSelector"] == {"arn.$": "$.PipelineExecutionArn", "polls": 0}
    assert states["CountPipelinePoll"]["Parameters"]["polls.$"] == "States.MathAdd($.pipeline.polls, 1)"
    describe = states["DescribePipelineExecution"]
    assert describe["Resource"].endswith(":states:::aws-sdk:sagemaker:describePipelineExecution")
    assert describe["ResultSelector"]["status.$"] == "$.PipelineExecutionStatus"


@pytest.mark.slow
def test_pipeline_status_publishes_on_success_fails_with_the_cause_and_is_bounded(definition: dict[str, Any]) -> None:
    states = definition["States"]
    choice = states["PipelineStatus"]
    assert choice["Type"] == "Choice"
    succeeded, finished_badly, overdue = choice["Choices"]
    assert (succeeded["Variable"], succeeded["StringEquals"]) == ("$.pipeline.execution.status", "Succeeded")
    assert follow(states, succeeded["Next"]) == ["PublishChurnScores", "Published"]
    assert states["Published"]["Type"] == "Succeed"
    assert sorted(c["StringEquals"] for c in finished_badly["Or"]) == ["Failed", "Stopped"]
    failed = states[finished_badly["Next"]]
    assert (failed["Type"], failed["Error"]) == ("Fail", "ChurnPipelineFailed")
    # the cause carries the whole description, FailureReason (e.g. the gate's message) included
    assert "$.pipeline.execution.description" in failed["CausePath"]
    assert overdue == {"Variable": "$.pipeline.polls", "NumericGreaterThanEquals": 72, "Next": "StopOverduePipeline"}
    assert follow(states, "StopOverduePipeline") == ["StopOverduePipeline", "PipelineTimedOut"]
    assert states["StopOverduePipeline"]["Resource"].endswith(":sagemaker:stopPipelineExecution")
    assert states["PipelineTimedOut"]["Type"] == "Fail"
    assert choice["Default"] == "WaitForPipeline"
    assert states["WaitForPipeline"]["Seconds"] == 300
    assert definition["TimeoutSeconds"] == 12 * 3600


@pytest.mark.slow
def test_publish_gets_the_prefix_the_batch_score_of_that_execution_wrote(
    definition: dict[str, Any], templates: dict[str, dict[str, Any]]
) -> None:
    publish = definition["States"]["PublishChurnScores"]
    assert publish["Parameters"] == {
        "predictions_prefix.$": "States.Format('predictions/churn/{}/', "
        "States.ArrayGetItem(States.StringSplit($.pipeline.arn, '/'), 3))"
    }
    assert {"UnprocessedItemsError"} <= {e for r in publish["Retry"] for e in r["ErrorEquals"]}
    # the batch score writes to predictions/churn/<execution id>/, and the id is that item of the execution ARN
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/shelfwise-ci-churn/execution/8ep4bgfo0pyw"
    assert arn.split("/")[EXECUTION_ID_ITEM] == "8ep4bgfo0pyw"
    (pipeline,) = resources(templates["ChurnPipeline"], "AWS::SageMaker::Pipeline").values()
    body = json.loads(joined(pipeline["PipelineDefinition"]["PipelineDefinitionBody"]))
    score = next(s for s in body["Steps"][-1]["Arguments"]["IfSteps"] if s["Name"] == "BatchScoreChurn")
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
    assert group["KmsKeyId"]["Fn::GetAtt"][0].startswith("OrchestrationKey")
    assert group["RetentionInDays"] == 365


@pytest.mark.slow
def test_alarms_on_failed_executions_and_rejected_records_notify_the_alarm_topic(template: dict[str, Any]) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 2
    for alarm in alarms.values():
        (action,) = alarm["AlarmActions"]
        # the deployment's one alarm topic (encrypted, in the churn API stack)
        assert re.match(r"^shelfwise-ci-churn-api:ExportsOutputRefAlarmTopic", action["Fn::ImportValue"])
    expressions = [q["Expression"] for a in alarms.values() for q in a.get("Metrics", []) if "Expression" in q]
    assert expressions == ["failed + timedOut"]
    assert any(a.get("MetricName") == "RejectedRecords" and a["Namespace"] == "Shelfwise" for a in alarms.values())


# -- least privilege ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_state_machine_role_reaches_only_the_two_jobs_the_pipeline_and_the_publish_function(
    template: dict[str, Any],
) -> None:
    allowed = grants(template, "DailyChainRoleDefaultPolicy")
    jobs = {f"arn:{REF}:glue:eu-west-1:{REF}:job/shelfwise-ci-{job}" for job in ("curate-orders", "customer-features")}
    for action in ("glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"):
        assert allowed.pop(action) == jobs
    pipeline = f"arn:{REF}:sagemaker:eu-west-1:{REF}:pipeline/shelfwise-ci-churn"
    assert allowed.pop("sagemaker:StartPipelineExecution") == {pipeline}
    for action in ("sagemaker:DescribePipelineExecution", "sagemaker:StopPipelineExecution"):
        assert allowed.pop(action) == {f"{pipeline}/execution/*"}
    assert allowed.pop("lambda:InvokeFunction") == {REF, f"{REF}:*"}
    # what is left supports no resource ARNs: log delivery and X-Ray
    assert all(re.match(r"^(logs|xray):", action) for action in allowed), sorted(allowed)
    assert all(resource == {"*"} for resource in allowed.values())


@pytest.mark.slow
def test_publish_function_reads_runs_quarantines_rejects_and_only_puts_items(template: dict[str, Any]) -> None:
    allowed = grants(template, "PublishFunctionRoleDefaultPolicy")
    lake = f"arn:{REF}:s3:::shelfwise-ci-lake-{REF}-eu-west-1"
    assert allowed.pop("s3:GetObject*") == {lake, f"{lake}/predictions/churn/*"}
    assert allowed.pop("s3:PutObject") == {f"{lake}/quarantine/churn-publish/*"}
    assert allowed.pop("dynamodb:BatchWriteItem") == allowed.pop("dynamodb:PutItem") == {REF}
    assert not [a for a in allowed if a.startswith("dynamodb:")]  # no reads, updates or deletes
    assert not [a for a in allowed if a.startswith("s3:Delete")]
    (function,) = resources(template, "AWS::Lambda::Function").values()
    assert (function["Runtime"], function["Handler"], function["Timeout"]) == ("python3.12", "app.handler", 900)
    assert function["TracingConfig"] == {"Mode": "Active"}
    variables = function["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "churn-publish"
    assert {"SHELFWISE_LAKE_BUCKET", "SHELFWISE_ONLINE_TABLE"} <= set(variables)


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
        log_key=kms.Key(stack, "Key"),
    )
    assembly = app.synth()
    (out,) = (d for d in Path(assembly.directory).glob("asset.*") if d.is_dir())
    assert (out / "app.py").is_file()
    assert (out / "shelfwise" / "churn_publish.py").is_file()
    for package in ("aws_lambda_powertools", "pydantic", "pydantic_settings", "aws_xray_sdk"):
        assert (out / package).is_dir(), package
    for heavy in ("pyarrow", "pandas", "numpy", "xgboost"):
        assert not (out / heavy).exists(), heavy
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < 40 * 2**20, f"bundle is {size / 2**20:.0f} MiB unzipped"
