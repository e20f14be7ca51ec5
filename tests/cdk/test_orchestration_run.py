"""The daily chain, executed: the Orchestration stack's own state machine definition (rendered from the synthesized
template, not a copy) runs in moto's Step Functions interpreter against fakes of everything it calls, made from the
sibling stacks' templates: the Glue jobs (FeatureJobs), the pipelines and the model package group (ChurnPipelines),
the lake bucket (DataLake), plus the publish Lambda. A name the chain gets wrong is a resource moto does not have.

moto runs the graph, the Choice rules, Retry, JSONPath and the intrinsic functions; it does not run Glue scripts,
pipeline steps or the publish handler (without Docker a Lambda answers with its payload).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.glue.exceptions import ConcurrentRunsExceededException
from moto.glue.models import FakeJob
from moto.moto_api import state_manager
from moto.sagemaker.models import SageMakerModelBackend
from moto.stepfunctions.parser.asl.component.common.string import string_expression
from moto.stepfunctions.parser.asl.component.intrinsic.argument import argument as intrinsic_argument
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as aws_sdk,
)
from moto.stepfunctions.parser.asl.utils.json_path import NoSuchJsonPathError
from moto.stepfunctions.parser.backend.execution import Execution

pytestmark = pytest.mark.slow

ACCOUNT, REGION, PARTITION = "123456789012", "eu-west-1", "aws"
PSEUDO_PARAMETERS = {
    "AWS::Partition": PARTITION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::URLSuffix": "amazonaws.com",
}
DOMAINS = ("churn", "demand", "visual")
#: The domains with a publisher; visual's scoring pipeline builds its index itself.
PUBLISHING = ("churn", "demand")
PUBLISH_FUNCTIONS = {domain: f"shelfwise-ci-{domain}-publish" for domain in PUBLISHING}
PUBLISH_ARNS = {d: f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{f}" for d, f in PUBLISH_FUNCTIONS.items()}
CURATE_ORDERS, CUSTOMER_FEATURES = "shelfwise-ci-curate-orders", "shelfwise-ci-customer-features"
DEMAND_FEATURES = "shelfwise-ci-demand-features"
TRAINING, SCORING = "shelfwise-ci-churn", "shelfwise-ci-churn-score"
DEMAND_TRAINING, DEMAND_SCORING = "shelfwise-ci-demand", "shelfwise-ci-demand-score"
VISUAL_TRAINING, VISUAL_SCORING = "shelfwise-ci-visual", "shelfwise-ci-visual-score"
START_JOB = "aws-sdk:glue:startJobRun"
START_PIPELINE = "aws-sdk:sagemaker:startPipelineExecution"
FIND_MODEL = "aws-sdk:sagemaker:listModelPackages"
#: What the chain does, as opposed to how it waits: the calls the scenarios compare, in order.
ACTIONS = (START_JOB, START_PIPELINE, FIND_MODEL, *PUBLISH_ARNS.values())
#: The states of each domain's branch are named after it (and its Glue jobs); the rest are shared.
BRANCH_STATES = {"churn": ("Churn", "CustomerFeatures"), "demand": ("Demand",), "visual": ("Visual",)}
#: How long one execution may take in moto before a test gives up on it.
EXECUTION_DEADLINE_SECONDS = 60


# -- rendering the template ---------------------------------------------------------------------------------------
class UnknownIntrinsicError(AssertionError):
    """The template uses a function or reference the renderer has no value for: give it one, do not guess."""


@dataclass(frozen=True)
class Renderer:
    """CloudFormation's part of a deployment, for the values these tests need: pseudo parameters, joins and
    substitutions, the Ref and attributes of the resources in `resources` (logical id -> attribute -> value), and
    recognisable fakes for values other stacks provide. Anything else fails."""

    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self(item) for item in node]
        if not isinstance(node, dict):
            return node
        if not any(key == "Ref" or key.startswith("Fn::") or key == "Condition" for key in node):
            return {key: self(value) for key, value in node.items()}
        if len(node) != 1:
            raise UnknownIntrinsicError(f"an intrinsic with siblings: {node}")
        ((name, argument),) = node.items()
        if name == "Ref":
            return self._attribute(argument, "Ref")
        if name == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self._attribute(logical_id, attribute)
        if name == "Fn::Join":
            separator, parts = argument
            return separator.join(_text(part) for part in self(parts))
        if name == "Fn::Sub" and isinstance(argument, str):
            return re.sub(r"\$\{([^}!]+)\}", lambda m: self._attribute(*_sub_reference(m[1])), argument)
        # Values another stack provides: fakes that say where they come from.
        if name == "Fn::ImportValue":
            return f"imported:{_text(self(argument))}"
        if name == "Fn::GetStackOutput":
            return f"output:{_text(self(argument['StackName']))}/{_text(self(argument['OutputName']))}"
        raise UnknownIntrinsicError(f"no rendering for {name}: {node}")

    def _attribute(self, logical_id: str, attribute: str) -> str:
        if attribute == "Ref" and logical_id in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[logical_id]
        try:
            return self.resources[logical_id][attribute]
        except KeyError:
            raise UnknownIntrinsicError(f"no value for {logical_id}.{attribute}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise UnknownIntrinsicError(f"expected text, got {value!r}")
    return value


def _sub_reference(name: str) -> tuple[str, str]:
    logical_id, _, attribute = name.partition(".")
    return logical_id, attribute or "Ref"


def resources_of(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in template["Resources"].items() if r["Type"] == kind}


# -- the definition, and what the tests change in it -----------------------------------------------------------------
def states_of(definition: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every state, nested ones (Parallel branches, Map processors) included."""
    for state in definition["States"].values():
        yield state
        for nested in [*state.get("Branches", []), state.get("ItemProcessor"), state.get("Iterator")]:
            if nested:
                yield from states_of(nested)


def quick(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The definition with every Wait at 0 s and every retry interval at 1 s (ASL's minimum), because moto really
    waits and sleeps: five-minute polls and backoff would make minutes of test. The states, their order, the Choice
    rules, the retried errors, attempts and backoff rates, and every parameter stay as synthesized."""
    fast = copy.deepcopy(dict(definition))
    for state in states_of(fast):
        if state["Type"] == "Wait":
            assert not {"SecondsPath", "Timestamp", "TimestampPath"} & set(state), f"a Wait to shorten: {state}"
            state["Seconds"] = 0
        for retrier in state.get("Retry", []):
            retrier["IntervalSeconds"] = 1
    return fast


def without_timing(definition: Mapping[str, Any]) -> dict[str, Any]:
    bare = copy.deepcopy(dict(definition))
    for state in states_of(bare):
        if state["Type"] == "Wait":
            del state["Seconds"]
        for retrier in state.get("Retry", []):
            retrier.pop("IntervalSeconds", None)
    return bare


@dataclass(frozen=True)
class Deployment:
    """The synthesized app, as the tests deploy it into moto."""

    definition: dict[str, Any]  # the state machine's, rendered, as synthesized
    glue_jobs: dict[str, int]  # name -> MaxConcurrentRuns
    pipelines: dict[str, str]  # name -> definition body
    model_package_groups: dict[str, str]  # domain -> group
    lake_bucket: str

    def declared_parameters(self, pipeline: str) -> set[str]:
        return {p["Name"] for p in json.loads(self.pipelines[pipeline])["Parameters"]}


@pytest.fixture(scope="module")
def deployment(templates: dict[str, dict[str, Any]]) -> Deployment:
    orchestration = templates["Orchestration"]
    functions = {}
    for function_id in resources_of(orchestration, "AWS::Lambda::Function"):
        (domain,) = [d for d in PUBLISHING if function_id.startswith(f"{d.capitalize()}Publish")]
        functions[function_id] = {"Ref": PUBLISH_FUNCTIONS[domain], "Arn": PUBLISH_ARNS[domain]}
    render = Renderer(functions)
    (machine,) = resources_of(orchestration, "AWS::StepFunctions::StateMachine").values()
    jobs = resources_of(templates["FeatureJobs"], "AWS::Glue::Job").values()
    pipelines, groups = {}, {}
    for domain in DOMAINS:
        stack = templates[f"{domain.capitalize()}Pipelines"]
        for p in resources_of(stack, "AWS::SageMaker::Pipeline").values():
            pipelines[p["PipelineName"]] = render(p["PipelineDefinition"]["PipelineDefinitionBody"])
        (group,) = resources_of(stack, "AWS::SageMaker::ModelPackageGroup").values()
        groups[domain] = render(group["ModelPackageGroupName"])
    buckets = resources_of(templates["DataLake"], "AWS::S3::Bucket").values()
    (lake,) = [name for bucket in buckets if "-lake-" in (name := render(bucket.get("BucketName", "")))]
    return Deployment(
        definition=json.loads(render(machine["DefinitionString"])),
        glue_jobs={render(job["Name"]): job.get("ExecutionProperty", {}).get("MaxConcurrentRuns", 1) for job in jobs},
        pipelines=pipelines,
        model_package_groups=groups,
        lake_bucket=lake,
    )


# -- moto, where it differs from AWS ---------------------------------------------------------------------------------
def _as_in_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where moto 5.2.5's interpreter differs from AWS on something this chain relies on, make it do what AWS
    documents (each patch is undone after the test). Without them the chain fails in moto, not in AWS."""
    # 1. AWS gives a state machine the execution's start as ISO 8601 text ($$.Execution.StartTime, which RunDate
    #    splits on "T"); moto hands the interpreter a datetime.
    execution_details = Execution.get_start_execution_details

    def start_time_as_text(self: Execution) -> Any:
        details = execution_details(self)
        start: Any = details.start_time  # typed str in moto, a datetime in fact
        details.start_time = _iso8601(start)  # type: ignore[misc]
        return details

    monkeypatch.setattr(Execution, "get_start_execution_details", start_time_as_text)

    # 2. AWS hands a state the JSON of an SDK call's answer (timestamps as text); moto pushes boto3's parsed answer,
    #    whose datetimes break States.JsonToString (the poll states' descriptions).
    call = aws_sdk.StateTaskServiceAwsSdk._eval_service_task

    def answer_as_json(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        call(self, env, *args, **kwargs)
        env.stack.append(json.loads(json.dumps(env.stack.pop(), default=_iso8601)))

    monkeypatch.setattr(aws_sdk.StateTaskServiceAwsSdk, "_eval_service_task", answer_as_json)

    # 3. In AWS a definite path such as $.model.ModelPackageSummaryList[0].ModelPackageArn selects one value; moto
    #    wraps it in a list when an index comes before the last field (its fix for filters, getmoto/moto#7825).
    for module in (string_expression, intrinsic_argument):
        monkeypatch.setattr(module, "extract_json", _definite_paths_select_one_value(module.extract_json))

    # 4. AWS names an SDK integration's errors <Service>.<Error>, the service in PascalCase ("Glue.
    #    ConcurrentRunsExceededException", as the Retry fields say); moto spells only DynamoDb and Sfn so and says
    #    "glue.ConcurrentRunsExceededException", which no retrier matches.
    for service, spelling in {"glue": "Glue", "sagemaker": "SageMaker"}.items():
        monkeypatch.setitem(aws_sdk._SERVICE_ERROR_NAMES, service, spelling)


_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def _definite_paths_select_one_value(extract: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def select(path: str, data: Any) -> Any:
        steps = list(_PATH_STEP.finditer(path[1:]))
        if not path.startswith("$") or "".join(step[0] for step in steps) != path[1:]:
            return extract(path, data)  # filters, wildcards, slices: moto's rules
        value = data
        for step in steps:
            try:
                value = value[step[1] if step[1] is not None else int(step[2])]
            except (KeyError, IndexError, TypeError):
                raise NoSuchJsonPathError(json_path=path, data=data) from None
        return value

    return select


def _iso8601(moment: dt.datetime) -> str:
    utc = moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the chain in moto -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One attempt at a task: its state, what it called with which parameters, and how it ended."""

    state: str
    resource: str
    parameters: dict[str, Any]
    outcome: str = "pending"  # "succeeded" or the error


@dataclass(frozen=True)
class Run:
    """A finished execution, read from its description and history."""

    name: str
    description: dict[str, Any]
    events: list[dict[str, Any]]

    @property
    def status(self) -> str:
        return str(self.description["status"])

    @property
    def output(self) -> dict[str, Any]:
        return dict(json.loads(self.description["output"]))

    @property
    def run_date(self) -> str:
        """The day the chain works on: the execution's start date (UTC)."""
        return str(self.description["startDate"].astimezone(dt.UTC).date().isoformat())

    @property
    def failure(self) -> tuple[str, str]:
        (failed,) = [e["executionFailedEventDetails"] for e in self.events if e["type"] == "ExecutionFailed"]
        return failed.get("error", ""), failed.get("cause", "")

    def entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if e["type"].endswith("StateEntered")]

    def calls(self) -> list[Call]:
        """Every task attempt, in order. Branches run side by side, so an event's state is found through its
        `previousEventId` chain (the state it was entered by), not by the order of the events."""
        by_id = {event["id"]: event for event in self.events}

        def state_of(event: dict[str, Any]) -> str:
            while not event["type"].endswith("StateEntered"):
                event = by_id[event["previousEventId"]]
            return str(event["stateEnteredEventDetails"]["name"])

        calls: list[Call] = []
        for event in self.events:
            kind = event["type"]
            if kind == "TaskScheduled":
                details = event["taskScheduledEventDetails"]
                resource = f"{details['resourceType']}:{details['resource']}"
                calls.append(Call(state_of(event), resource, json.loads(details["parameters"])))
            elif kind == "LambdaFunctionScheduled":
                details = event["lambdaFunctionScheduledEventDetails"]
                calls.append(Call(state_of(event), details["resource"], json.loads(details["input"])))
            elif kind in ("TaskSucceeded", "LambdaFunctionSucceeded", "TaskFailed", "LambdaFunctionFailed"):
                state = state_of(event)
                index = max(i for i, call in enumerate(calls) if call.state == state)
                outcome = "succeeded"
                if kind.endswith("Failed"):
                    outcome = next(v for k, v in event.items() if k.endswith("FailedEventDetails"))["error"]
                calls[index] = Call(calls[index].state, calls[index].resource, calls[index].parameters, outcome)
        return calls

    def actions(self, domain: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(state, parameters) of each job and pipeline started, model looked up and publish, in order; with a
        `domain`, the shared ones and that domain's branch's only (the branches run side by side)."""
        others = [marker for d, markers in BRANCH_STATES.items() if d != domain for marker in markers]
        return [
            (c.state, c.parameters)
            for c in self.calls()
            if c.resource in ACTIONS and (domain is None or not any(m in c.state for m in others))
        ]

    def branch(self, domain: str) -> dict[str, Any]:
        """What a domain's branch ended with: its training and publish outputs, or its failure."""
        (ended,) = [d for d in self.output["domains"] if d["domain"] == domain]
        return dict(ended)

    def outcomes(self, state: str) -> list[str]:
        return [c.outcome for c in self.calls() if c.state == state]


class Chain:
    """The deployment in moto: the state machine and what it calls."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.glue = boto3.client("glue", region_name=REGION)
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)
        role = boto3.client("iam").create_role(RoleName="shelfwise-ci-test", AssumeRolePolicyDocument="{}")
        role_arn = role["Role"]["Arn"]
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=deployment.lake_bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        for function in PUBLISH_FUNCTIONS.values():
            boto3.client("lambda", region_name=REGION).create_function(
                FunctionName=function,
                Runtime="python3.12",
                Role=role_arn,
                Handler="app.handler",
                Code={"ZipFile": b"never run: without Docker moto answers with the payload"},
            )
        for job, concurrency in deployment.glue_jobs.items():
            self.glue.create_job(
                Name=job,
                Role=role_arn,
                Command={"Name": "glueetl", "ScriptLocation": f"s3://{deployment.lake_bucket}/{job}.py"},
                ExecutionProperty={"MaxConcurrentRuns": concurrency},
            )
        for pipeline, body in deployment.pipelines.items():
            self.sagemaker.create_pipeline(PipelineName=pipeline, PipelineDefinition=body, RoleArn=role_arn)
        for group in deployment.model_package_groups.values():
            self.sagemaker.create_model_package_group(ModelPackageGroupName=group)
        self.machine = self.sfn.create_state_machine(
            name="shelfwise-ci-daily-chain", definition=json.dumps(quick(deployment.definition)), roleArn=role_arn
        )["stateMachineArn"]

    def register(self, status: str, version: str, recorded: bool = True, domain: str = "churn") -> dict[str, str]:
        """A package as the training pipeline's RegisterModel step leaves it (and a person approves it); without
        `recorded`, as someone might register one by hand, with no sha256."""
        uri = f"s3://{self.deployment.lake_bucket}/models/{domain}/{version}/model.tar.gz"
        sha256 = (version.encode().hex() * 64)[:64]
        metadata = {"artifact_sha256": sha256, "auc": "0.81"} if recorded else {"auc": "0.81"}
        arn = self.sagemaker.create_model_package(
            ModelPackageGroupName=self.deployment.model_package_groups[domain],
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [{"Image": "xgboost:1.7-1", "ModelDataUrl": uri}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            CustomerMetadataProperties=metadata,
        )["ModelPackageArn"]
        return {"ModelUri": uri, "ModelSha256": sha256, "ModelPackageArn": arn}

    def run(self) -> Run:
        name = str(uuid.uuid4())
        arn = self.sfn.start_execution(stateMachineArn=self.machine, name=name, input='{"trigger": "schedule"}')[
            "executionArn"
        ]
        deadline = time.monotonic() + EXECUTION_DEADLINE_SECONDS
        while (description := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"the execution still runs after {EXECUTION_DEADLINE_SECONDS} s"
            time.sleep(0.05)
        return Run(name, description, self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"])

    def pipeline_executions(self, pipeline: str) -> list[str]:
        summaries = self.sagemaker.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]
        return [s["PipelineExecutionArn"] for s in summaries]


@pytest.fixture
def chain(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[Chain]:
    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(variable, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    _as_in_aws(monkeypatch)
    # A Glue run is STARTING, RUNNING after one getJobRun and SUCCEEDED after another: each job goes round its poll
    # loop once, as in AWS (by default moto ends a run at the first look).
    state_manager.set_transition("glue::job_run", {"progression": "manual", "times": 1})
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
            chain = Chain(deployment)
            # The scenarios are about churn; demand and visual have their approved models, so their branches
            # publish (visual: build its index) unless a scenario says otherwise.
            chain.register("Approved", "d1", domain="demand")
            chain.register("Approved", "i1", domain="visual")
            yield chain
    finally:
        state_manager.unset_transition("glue::job_run")


def glue_runs_of(job: str, end: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of `job` end in state `end` after RUNNING (moto's runs always succeed)."""
    start = FakeJob.start_job_run

    def start_ending(self: FakeJob, *args: Any, **kwargs: Any) -> str:
        run_id: str = start(self, *args, **kwargs)
        if self.name == job:
            (run,) = [r for r in self.job_runs if r.job_run_id == run_id]
            run._transitions = [("STARTING", "RUNNING"), ("RUNNING", end)]
        return run_id

    monkeypatch.setattr(FakeJob, "start_job_run", start_ending)


# -- the template, as run here ---------------------------------------------------------------------------------------
def test_the_executions_run_the_synthesized_definition_with_only_waits_and_retry_intervals_shortened(
    deployment: Deployment,
) -> None:
    """Anything else changed would make the executions below test another machine than the one deployed."""
    fast = quick(deployment.definition)
    assert fast != deployment.definition
    assert without_timing(fast) == without_timing(deployment.definition)
    waits = [s for s in states_of(fast) if s["Type"] == "Wait"]
    assert waits, "no Wait states: the chain no longer polls?"


def test_a_function_the_renderer_does_not_know_fails_the_rendering() -> None:
    """A guessed value could make the chain run in moto and not in AWS."""
    with pytest.raises(UnknownIntrinsicError, match="Fn::Select"):
        Renderer()({"Fn::Join": ["", ["arn:", {"Fn::Select": [0, ["aws"]]}]]})
    with pytest.raises(UnknownIntrinsicError, match=r"Bucket\.Arn"):
        Renderer()({"Fn::GetAtt": ["Bucket", "Arn"]})


# -- scenarios -------------------------------------------------------------------------------------------------------
def test_a_day_runs_the_jobs_then_training_then_scores_with_the_newest_approved_model_and_publishes(
    chain: Chain, deployment: Deployment
) -> None:
    chain.register("Approved", "v1")
    newest = chain.register("Approved", "v2")
    chain.register("PendingManualApproval", "v3")  # newer, but nobody approved it
    run = chain.run()

    assert run.status == "SUCCEEDED", run.description
    day, started_by = run.run_date, f"Started by Step Functions execution {run.name}"
    (scoring,) = chain.pipeline_executions(SCORING)
    serving = f"s3://{deployment.lake_bucket}/features/churn/serving/cutoff={day}/"
    assert serving == f"s3://shelfwise-ci-lake-{ACCOUNT}-{REGION}/features/churn/serving/cutoff={day}/"
    assert run.actions("churn") == [
        ("StartCurateOrders", {"JobName": CURATE_ORDERS, "Arguments": {"--run_date": day}}),
        ("StartCustomerFeatures", {"JobName": CUSTOMER_FEATURES, "Arguments": {"--serving_cutoff": day}}),
        ("StartChurnTraining", {"PipelineName": TRAINING, "PipelineExecutionDescription": started_by}),
        (
            "FindChurnModel",
            {
                "ModelPackageGroupName": "churn",
                "ModelApprovalStatus": "Approved",
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": 1,
            },
        ),
        (
            "StartChurnScoring",
            {
                "PipelineName": SCORING,
                "PipelineExecutionDescription": started_by,
                "PipelineParameters": [
                    {"Name": name, "Value": value} for name, value in {**newest, "ServingFeaturesUri": serving}.items()
                ],
            },
        ),
        ("PublishChurn", {"predictions_prefix": f"predictions/churn/{scoring.rsplit('/', 1)[-1]}/"}),
    ]
    # every parameter passed is one the scoring pipeline declares
    assert {"ModelUri", "ModelSha256", "ModelPackageArn", "ServingFeaturesUri"} <= deployment.declared_parameters(
        SCORING
    )
    # each job ran once and was polled until it ended (RUNNING, then SUCCEEDED)
    for job in (CURATE_ORDERS, CUSTOMER_FEATURES, DEMAND_FEATURES):
        (job_run,) = chain.glue.get_job_runs(JobName=job)["JobRuns"]
        assert job_run["JobRunState"] == "SUCCEEDED"
    assert run.entered().count("PollCurateOrders") == run.entered().count("PollCustomerFeatures") == 2
    (training,) = chain.pipeline_executions(TRAINING)
    assert run.branch("churn") == {
        "domain": "churn",
        "training": {"status": "Succeeded", "execution": training},
        "published": {"predictions_prefix": f"predictions/churn/{scoring.split('/')[-1]}/"},
    }


def test_the_demand_branch_runs_beside_churn_and_trains_and_forecasts_on_the_days_feature_partitions(
    chain: Chain, deployment: Deployment
) -> None:
    chain.register("Approved", "v1")
    run = chain.run()

    assert run.status == "SUCCEEDED", run.description
    day, started_by = run.run_date, f"Started by Step Functions execution {run.name}"
    lake = f"s3://{deployment.lake_bucket}/features/demand"
    partitions = {"DailyFeaturesUri": f"{lake}/daily/as_of={day}/", "StaticFeaturesUri": f"{lake}/static/as_of={day}/"}
    (scoring,) = chain.pipeline_executions(DEMAND_SCORING)
    demand = run.actions("demand")
    assert [state for state, _ in demand] == [
        "StartCurateOrders",
        "StartDemandFeatures",
        "StartDemandTraining",
        "FindDemandModel",
        "StartDemandScoring",
        "PublishDemand",
    ]
    actions = dict(demand)
    assert actions["StartDemandFeatures"] == {"JobName": DEMAND_FEATURES, "Arguments": {"--as_of": day}}
    training = {p["Name"]: p["Value"] for p in actions["StartDemandTraining"]["PipelineParameters"]}
    assert training == partitions
    scoring_parameters = {p["Name"]: p["Value"] for p in actions["StartDemandScoring"]["PipelineParameters"]}
    assert scoring_parameters.items() >= partitions.items()
    assert scoring_parameters["ModelUri"].endswith("/models/demand/d1/model.tar.gz")
    assert set(training) <= deployment.declared_parameters(DEMAND_TRAINING)
    assert set(scoring_parameters) <= deployment.declared_parameters(DEMAND_SCORING)
    assert actions["PublishDemand"] == {"predictions_prefix": f"predictions/demand/{scoring.rsplit('/', 1)[-1]}/"}
    assert actions["StartDemandScoring"]["PipelineExecutionDescription"] == started_by
    assert run.branch("demand")["published"] == actions["PublishDemand"]


def test_the_visual_branch_trains_then_builds_the_index_with_the_approved_model_and_publishes_nothing(
    chain: Chain, deployment: Deployment
) -> None:
    chain.register("Approved", "v1")
    run = chain.run()

    assert run.status == "SUCCEEDED", run.description
    started_by = f"Started by Step Functions execution {run.name}"
    visual = run.actions("visual")
    assert [state for state, _ in visual] == [
        "StartCurateOrders",
        "StartVisualTraining",
        "FindVisualModel",
        "StartVisualScoring",
    ]
    actions = dict(visual)
    assert actions["StartVisualTraining"] == {
        "PipelineName": VISUAL_TRAINING,
        "PipelineExecutionDescription": started_by,
    }
    scoring_parameters = {p["Name"]: p["Value"] for p in actions["StartVisualScoring"]["PipelineParameters"]}
    assert scoring_parameters["ModelUri"].endswith("/models/visual/i1/model.tar.gz")
    # the embedded backend (this deployment's): no endpoint to pass
    assert set(scoring_parameters) == {"ModelUri", "ModelSha256", "ModelPackageArn", "SearchBackend"}
    assert scoring_parameters["SearchBackend"] == "embedded"
    assert set(scoring_parameters) <= deployment.declared_parameters(VISUAL_SCORING)
    (scoring,) = chain.pipeline_executions(VISUAL_SCORING)
    (training,) = chain.pipeline_executions(VISUAL_TRAINING)
    assert run.branch("visual") == {
        "domain": "visual",
        "training": {"status": "Succeeded", "execution": training},
        "published": {"scoring": scoring},
    }
    assert "VisualServed" in run.entered()


def test_without_an_approved_model_the_chain_fails_before_scoring_so_yesterdays_serving_data_stays(
    chain: Chain,
) -> None:
    chain.register("PendingManualApproval", "v1")
    chain.register("Rejected", "v2")
    run = chain.run()

    assert run.status == "FAILED"
    error, cause = run.failure
    assert error == "NoApprovedModel"
    assert "churn" in cause
    assert [state for state, _ in run.actions("churn")][-2:] == ["StartChurnTraining", "FindChurnModel"]
    assert chain.pipeline_executions(SCORING) == []
    assert "PublishChurn" not in run.entered()
    # the other domain's branch went on and published; the execution fails after it, with churn's error
    assert "PublishDemand" in run.entered()
    assert run.entered()[-1] == "ChurnFailed"


def test_an_approved_package_without_a_recorded_sha256_is_refused_by_name_before_scoring(chain: Chain) -> None:
    chain.register("Approved", "by-hand", recorded=False)
    run = chain.run()

    assert run.status == "FAILED"
    assert run.failure[0] == "UnverifiableModel"
    assert chain.pipeline_executions(SCORING) == []
    assert "PublishChurn" not in run.entered()


def test_a_glue_job_that_does_not_exist_fails_the_chain_at_its_start_without_retries(chain: Chain) -> None:
    """EntityNotFound is not transient: retrying it would only delay the ChainFailed alarm."""
    chain.register("Approved", "v1")
    chain.glue.delete_job(JobName=CUSTOMER_FEATURES)
    run = chain.run()

    assert run.status == "FAILED"
    assert run.failure[0] == "Glue.EntityNotFoundException"
    assert run.outcomes("StartCustomerFeatures") == ["Glue.EntityNotFoundException"]  # one attempt
    assert run.entered()[-1] == "ChurnFailed"
    assert chain.pipeline_executions(TRAINING) == chain.pipeline_executions(SCORING) == []
    assert "PublishChurn" not in run.entered()


def test_a_failed_glue_run_fails_the_chain_with_the_run_in_the_cause_and_nothing_after_it_runs(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain.register("Approved", "v1")
    glue_runs_of(CUSTOMER_FEATURES, "FAILED", monkeypatch)
    run = chain.run()

    assert run.status == "FAILED"
    error, cause = run.failure
    assert error == "GlueJobFailed"
    (job_run,) = chain.glue.get_job_runs(JobName=CUSTOMER_FEATURES)["JobRuns"]
    assert cause.startswith(f"Glue job {CUSTOMER_FEATURES} run ended FAILED: ")
    assert json.loads(cause.split(": ", 1)[1])["Id"] == job_run["Id"]  # the whole run description, for the on-call
    assert "CustomerFeaturesFailed" in run.entered()
    assert run.entered()[-1] == "ChurnFailed"
    assert chain.pipeline_executions(TRAINING) == chain.pipeline_executions(SCORING) == []
    assert "PublishChurn" not in run.entered()


def test_a_failed_training_still_scores_with_the_approved_model_and_publishes_and_records_the_failure(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate that fails (or is rejected at the gate) must not leave the online store without today's data."""
    start = SageMakerModelBackend.start_pipeline_execution

    def training_fails(self: SageMakerModelBackend, pipeline_name: str, *args: Any, **kwargs: Any) -> Any:
        started = start(self, pipeline_name, *args, **kwargs)
        if pipeline_name == TRAINING:
            execution: Any = self.pipelines[pipeline_name].pipeline_executions[started["PipelineExecutionArn"]]
            execution.pipeline_execution_status = "Failed"
            execution.pipeline_execution_failure_reason = "Step EvaluateChurn failed: AUC 0.61 < MinAuc 0.7"
        return started

    monkeypatch.setattr(SageMakerModelBackend, "start_pipeline_execution", training_fails)
    approved = chain.register("Approved", "v1")
    run = chain.run()

    assert run.status == "SUCCEEDED", run.description
    (training,) = chain.pipeline_executions(TRAINING)
    assert chain.sagemaker.describe_pipeline_execution(PipelineExecutionArn=training)["PipelineExecutionStatus"] == (
        "Failed"
    )
    assert run.branch("churn")["training"] == {"status": "Failed", "execution": training}
    assert run.entered().count("DescribeChurnTraining") == 1  # a failure ends the wait; it is not polled out
    (scoring,) = chain.pipeline_executions(SCORING)
    actions = dict(run.actions("churn"))
    assert {p["Name"]: p["Value"] for p in actions["StartChurnScoring"]["PipelineParameters"]}.items() >= (
        approved.items()
    )
    assert actions["PublishChurn"] == {"predictions_prefix": f"predictions/churn/{scoring.split('/')[-1]}/"}


def test_a_glue_start_refused_while_a_manual_run_holds_the_slot_is_retried(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MaxConcurrentRuns is 1: a person's run of the same job makes startJobRun fail with ConcurrentRunsExceeded,
    which Step Functions retries until the slot is free. Here the manual run ends right after the first refusal."""
    chain.register("Approved", "v1")
    held = chain.glue.start_job_run(JobName=CURATE_ORDERS)["JobRunId"]  # never polled, so it stays STARTING
    start = FakeJob.start_job_run

    def refuse_then_free_the_slot(self: FakeJob, *args: Any, **kwargs: Any) -> str:
        try:
            return str(start(self, *args, **kwargs))
        except ConcurrentRunsExceededException:
            (manual,) = [r for r in self.job_runs if r.job_run_id == held]
            manual.status = "SUCCEEDED"
            raise

    monkeypatch.setattr(FakeJob, "start_job_run", refuse_then_free_the_slot)
    run = chain.run()

    assert run.status == "SUCCEEDED", run.description
    assert run.outcomes("StartCurateOrders") == ["Glue.ConcurrentRunsExceededException", "succeeded"]
    assert run.outcomes("StartCustomerFeatures") == ["succeeded"]
    assert len(chain.glue.get_job_runs(JobName=CURATE_ORDERS)["JobRuns"]) == 2  # the manual one and the chain's
