"""The vector search backend as a deployment setting: each backend synthesized once (with cdk-nag) beside a reader
role and a writer role, its template checked, cdk-nag and cfn-lint clean; the context keys checked and named."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks
from shelfwise_cdk.constructs.vector_search import (
    ENV_BACKEND,
    ENV_ENDPOINT,
    ENV_INDEX,
    ENV_PREFIX,
    SearchBackendSettings,
    VectorSearch,
    backend_name,
)
from shelfwise_cdk.deployment import (
    SEARCH_BACKEND_KEY,
    SEARCH_INSTANCE_COUNT_KEY,
    SEARCH_INSTANCE_TYPE_KEY,
    SEARCH_VOLUME_GB_KEY,
    DeploymentContextError,
    deployment_from_context,
)
from shelfwise_cdk.stacks.api import ApiAuth, ApiStack
from shelfwise_cdk.stacks.data_lake import LakeRef

from shelfwise.config import Settings
from shelfwise.domain import SearchIndex
from shelfwise.domains import DOMAINS

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
INDEX, PREFIX, NAME = "products", "models/products-index/", "shelfwise-ci-products"
BUCKET_ARN = "arn:aws:s3:::shelfwise-ci-lake"


@dataclass(frozen=True)
class Synthesized:
    outdir: Path
    template: dict[str, Any]
    nag_error: str | None

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == kind}

    def role_statements(self, role_prefix: str) -> list[dict[str, Any]]:
        """Statements of the IAM policies attached to the role whose logical id starts with `role_prefix`."""
        (role_id,) = [k for k in self.of_type("AWS::IAM::Role") if k.startswith(role_prefix)]
        found = []
        for policy in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in policy["Properties"]["Roles"]:
                found += policy["Properties"]["PolicyDocument"]["Statement"]
        return found


def synthesize(outdir: Path, settings: SearchBackendSettings) -> Synthesized:
    """A stack with the backend, a function role granted reads and a build role granted writes, cdk-nag on."""
    app = App(outdir=str(outdir), context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Search", env={"region": "eu-west-1", "account": "123456789012"})
    key = kms.Key(stack, "LakeKey", enable_key_rotation=True)
    search = VectorSearch(
        stack,
        "Search",
        settings=settings,
        name=NAME,
        index_name=INDEX,
        lake=LakeRef("shelfwise-ci-lake", key),
        lake_prefix=PREFIX,
        log_key=key,
    )
    reader = iam.Role(stack, "ReaderRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    writer = iam.Role(stack, "WriterRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    search.grant_read(reader)
    search.grant_write(writer)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    error = None
    try:
        app.synth()
    except Exception as exc:  # cdk-nag's ValidationFailed reaches Python as a jsii error
        error = str(exc)
    template = json.loads((outdir / "Search.template.json").read_text())
    return Synthesized(outdir, template, error)


@pytest.fixture(scope="module")
def managed(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("opensearch"), SearchBackendSettings(kind="opensearch"))


@pytest.fixture(scope="module")
def serverless(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("serverless"), SearchBackendSettings(kind="opensearch-serverless"))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("embedded"), SearchBackendSettings(kind="embedded"))


@pytest.fixture(params=["managed", "serverless", "embedded"])
def each(request: pytest.FixtureRequest) -> Synthesized:
    synthesized: Synthesized = request.getfixturevalue(request.param)
    return synthesized


def refs(value: Any) -> set[str]:
    """Logical ids a CloudFormation value refers to (Ref and GetAtt, anywhere inside)."""
    if isinstance(value, dict):
        found = {value["Ref"]} if "Ref" in value else set()
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        return found | {r for v in value.values() for r in refs(v)}
    if isinstance(value, list):
        return {r for v in value for r in refs(v)}
    return set()


def actions(statement: dict[str, Any]) -> set[str]:
    found = statement["Action"]
    return {found} if isinstance(found, str) else set(found)


def flat(value: Any) -> str:
    """A resource value with references written `<Id>`, to compare ARNs built from names and pseudo parameters."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return str(sep).join(flat(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    raise AssertionError(f"unexpected value {value!r}")


# -- managed domain ----------------------------------------------------------------------------------------------
def test_the_domain_encrypts_at_rest_and_in_transit_with_iam_as_the_fgac_master(managed: Synthesized) -> None:
    ((_, domain),) = managed.of_type("AWS::OpenSearchService::Domain").items()
    props = domain["Properties"]
    assert props["EngineVersion"] == "OpenSearch_2.19"
    assert props["DomainName"] == NAME
    at_rest = props["EncryptionAtRestOptions"]
    assert at_rest["Enabled"] is True
    (key_id,) = refs(at_rest["KmsKeyId"])
    assert managed.template["Resources"][key_id]["Type"] == "AWS::KMS::Key"
    assert key_id.startswith("SearchKey")  # its own key, not the lake's
    assert props["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert props["DomainEndpointOptions"]["EnforceHTTPS"] is True
    assert props["DomainEndpointOptions"]["TLSSecurityPolicy"] == "Policy-Min-TLS-1-2-2019-07"
    security = props["AdvancedSecurityOptions"]
    assert security["Enabled"] is True
    assert security["InternalUserDatabaseEnabled"] is False
    (master,) = refs(security["MasterUserOptions"]["MasterUserARN"])
    assert master == mapping_role(managed)  # the master is the role-mapping function's role, nobody else's
    assert "MasterUserPassword" not in security["MasterUserOptions"]
    assert not managed.of_type("AWS::SecretsManager::Secret")
    cluster = props["ClusterConfig"]
    assert (cluster["InstanceType"], cluster["InstanceCount"]) == ("t3.medium.search", 1)
    assert cluster["DedicatedMasterEnabled"] is False
    assert cluster["ZoneAwarenessEnabled"] is False
    assert cluster["MultiAZWithStandbyEnabled"] is False
    assert props["EBSOptions"] == {"EBSEnabled": True, "VolumeSize": 10, "VolumeType": "gp3"}


def test_the_domain_publishes_slow_application_and_audit_logs_to_retained_groups(managed: Synthesized) -> None:
    ((_, domain),) = managed.of_type("AWS::OpenSearchService::Domain").items()
    published = domain["Properties"]["LogPublishingOptions"]
    assert set(published) == {"SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS", "ES_APPLICATION_LOGS", "AUDIT_LOGS"}
    groups = managed.of_type("AWS::Logs::LogGroup")
    for option in published.values():
        assert option["Enabled"] is True
        (group,) = refs(option["CloudWatchLogsLogGroupArn"])
        assert groups[group]["Properties"]["RetentionInDays"] >= 90
        assert "KmsKeyId" in groups[group]["Properties"]
    # The service may write only to these groups, for this account and domain; the domain waits for the policy.
    ((policy_id, policy),) = managed.of_type("AWS::Logs::ResourcePolicy").items()
    document = policy["Properties"]["PolicyDocument"]
    assert "es.amazonaws.com" in json.dumps(document)
    assert refs(document) >= {refs(o["CloudWatchLogsLogGroupArn"]).pop() for o in published.values()}
    assert "aws:SourceAccount" in json.dumps(document)
    assert policy_id in domain["DependsOn"]


def mapping_role(synthesized: Synthesized) -> str:
    """The role the role-mapping function runs as."""
    ((_, function),) = [
        (k, f) for k, f in synthesized.of_type("AWS::Lambda::Function").items() if k.startswith("SearchRoleMapping")
    ]
    (role,) = refs(function["Properties"]["Role"])
    return role


def test_the_domain_access_policy_names_only_the_granted_roles(managed: Synthesized) -> None:
    ((_, domain),) = managed.of_type("AWS::OpenSearchService::Domain").items()
    statements = domain["Properties"]["AccessPolicies"]["Statement"]
    principals = [refs(s["Principal"]) for s in statements]
    reader, writer = (
        next(k for k in managed.of_type("AWS::IAM::Role") if k.startswith(p)) for p in ("ReaderRole", "WriterRole")
    )
    assert principals == [{mapping_role(managed)}, {reader}, {writer}]
    assert "*" not in json.dumps([s["Principal"] for s in statements])
    security, read, write = statements
    assert actions(security) == {"es:ESHttpGet", "es:ESHttpPut", "es:ESHttpDelete"}
    assert flat(security["Resource"]).endswith(f"domain/{NAME}/_plugins/_security/api/*")
    assert actions(read) == {"es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"}
    assert {"es:ESHttpPut", "es:ESHttpDelete"} <= actions(write)
    domain_arn = f"arn:<AWS::Partition>:es:eu-west-1:123456789012:domain/{NAME}"
    assert flat(read["Resource"]) == f"{domain_arn}/{INDEX}*"
    written = {flat(r) for r in write["Resource"]}
    assert written == {f"{domain_arn}/{p}" for p in (f"{INDEX}*", "_bulk", "_aliases", f"_alias/{INDEX}")}


def test_the_granted_roles_are_mapped_by_a_custom_resource_running_as_the_master(managed: Synthesized) -> None:
    (mapping,) = managed.of_type("Custom::OpenSearchRoleMappings").values()
    props = mapping["Properties"]
    (function_id,) = refs(props["ServiceToken"])
    assert function_id.startswith("SearchRoleMapping")
    (domain_id,) = managed.of_type("AWS::OpenSearchService::Domain")
    assert refs(props["Endpoint"]) == {domain_id}
    assert props["Index"] == INDEX
    ((reader,), (writer,)) = ([refs(r) for r in props[key]] for key in ("Readers", "Writers"))
    assert ({r[:10] for r in reader}, {w[:10] for w in writer}) == ({"ReaderRole"}, {"WriterRole"})
    # it runs only once its role may call the security API
    (policy_id,) = [
        k
        for k, p in managed.of_type("AWS::IAM::Policy").items()
        if {"Ref": mapping_role(managed)} in p["Properties"]["Roles"]
    ]
    assert policy_id in mapping["DependsOn"]


def test_granted_roles_get_http_verbs_on_the_index_paths_only(managed: Synthesized) -> None:
    (read,) = [s for s in managed.role_statements("ReaderRole") if s.get("Sid") == "SearchIndexRead"]
    assert actions(read) == {"es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"}
    (write,) = [s for s in managed.role_statements("WriterRole") if s.get("Sid") == "SearchIndexWrite"]
    assert "es:ESHttpDelete" in actions(write)
    # the lake holds the pointer to the live version and the query model beside it, on every backend
    lake = [flat(s["Resource"]) for s in managed.role_statements("ReaderRole") if "s3:GetObject" in actions(s)]
    assert lake == [f"arn:<AWS::Partition>:s3:::shelfwise-ci-lake/{PREFIX}*"]


def test_two_or_more_nodes_spread_over_zones_and_masters_are_a_setting(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Sized", env={"region": "eu-west-1", "account": "123456789012"})
    key = kms.Key(stack, "Key")
    settings = SearchBackendSettings(kind="opensearch", instance_count=2, dedicated_masters=True, volume_gb=50)
    search = VectorSearch(
        stack, "Search", settings=settings, name=NAME, index_name=INDEX, lake=LakeRef("b", key), lake_prefix=PREFIX,
        log_key=key,
    )  # fmt: skip
    search.grant_read(iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")))
    (domain,) = Template.from_stack(stack).find_resources("AWS::OpenSearchService::Domain").values()
    cluster = domain["Properties"]["ClusterConfig"]
    assert cluster["ZoneAwarenessEnabled"] is True
    assert cluster["ZoneAwarenessConfig"] == {"AvailabilityZoneCount": 2}
    assert (cluster["DedicatedMasterEnabled"], cluster["DedicatedMasterCount"]) == (True, 3)
    assert domain["Properties"]["EBSOptions"]["VolumeSize"] == 50


def test_a_provisioned_backend_granted_to_nobody_is_refused(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Unused", env={"region": "eu-west-1", "account": "123456789012"})
    key = kms.Key(stack, "Key")
    VectorSearch(
        stack, "Search", settings=SearchBackendSettings(kind="opensearch-serverless"), name=NAME, index_name=INDEX,
        lake=LakeRef("b", key), lake_prefix=PREFIX, log_key=key,
    )  # fmt: skip
    with pytest.raises(Exception, match="granted to no role"):
        app.synth()


# -- Serverless --------------------------------------------------------------------------------------------------
def test_the_collection_is_a_vector_collection_created_after_its_three_policies(serverless: Synthesized) -> None:
    ((_, collection),) = serverless.of_type("AWS::OpenSearchServerless::Collection").items()
    assert collection["Properties"]["Type"] == "VECTORSEARCH"
    assert collection["Properties"]["Name"] == NAME
    assert collection["Properties"]["StandbyReplicas"] == "DISABLED"
    policies = serverless.of_type("AWS::OpenSearchServerless::SecurityPolicy")
    by_type = {p["Properties"]["Type"]: k for k, p in policies.items()}
    assert set(by_type) == {"encryption", "network"}
    (access_id,) = serverless.of_type("AWS::OpenSearchServerless::AccessPolicy")
    assert serverless.template["Resources"][access_id]["Properties"]["Type"] == "data"
    assert set(collection["DependsOn"]) >= {by_type["encryption"], by_type["network"], access_id}
    for policy_id in (*by_type.values(), access_id):
        assert serverless.template["Resources"][policy_id]["Properties"]["Name"] == NAME


def test_the_collection_is_encrypted_with_its_own_key_and_reachable_only_by_signed_requests(
    serverless: Synthesized,
) -> None:
    policies = {p["Properties"]["Type"]: p["Properties"]["Policy"] for p in serverless.of_type(
        "AWS::OpenSearchServerless::SecurityPolicy").values()}  # fmt: skip
    encryption = policies["encryption"]
    assert '"AWSOwnedKey":false' in flat(encryption)
    (key_id,) = refs(encryption)
    assert serverless.template["Resources"][key_id]["Type"] == "AWS::KMS::Key"
    assert f"collection/{NAME}" in flat(encryption)
    network = json.loads(policies["network"])
    assert network == [
        {"Rules": [{"ResourceType": "collection", "Resource": [f"collection/{NAME}"]}], "AllowFromPublic": True}
    ]


def test_the_data_access_policy_lets_the_build_write_and_the_function_only_read(serverless: Synthesized) -> None:
    ((_, access),) = serverless.of_type("AWS::OpenSearchServerless::AccessPolicy").items()
    text = flat(access["Properties"]["Policy"])
    rules = json.loads(text)
    read, write = rules
    ((reader,), (writer,)) = read["Principal"], write["Principal"]
    assert (reader[:11], reader[-5:]) == ("<ReaderRole", ".Arn>")
    assert (writer[:11], writer[-5:]) == ("<WriterRole", ".Arn>")
    (read_rule,) = read["Rules"]
    assert read_rule == {"ResourceType": "index", "Resource": [f"index/{NAME}/{INDEX}*"], "Permission": [
        "aoss:ReadDocument"]}  # fmt: skip
    (write_rule,) = write["Rules"]
    assert {"aoss:CreateIndex", "aoss:WriteDocument", "aoss:DeleteIndex"} <= set(write_rule["Permission"])
    assert write_rule["Resource"] == [f"index/{NAME}/{INDEX}*"]
    for role in ("ReaderRole", "WriterRole"):
        (api,) = [s for s in serverless.role_statements(role) if "aoss:APIAccessAll" in actions(s)]
        assert flat(api["Resource"]) == "arn:<AWS::Partition>:aoss:eu-west-1:123456789012:collection/*"
        assert api["Condition"] == {"StringEquals": {"aoss:collection": NAME}}


def test_serverless_reads_the_live_index_pointer_from_the_lake(serverless: Synthesized) -> None:
    (read,) = [s for s in serverless.role_statements("ReaderRole") if s.get("Sid") == "SearchLakeRead"]
    assert flat(read["Resource"]) == f"arn:<AWS::Partition>:s3:::shelfwise-ci-lake/{PREFIX}*"


# -- embedded ----------------------------------------------------------------------------------------------------
def test_embedded_provisions_nothing_but_access_to_the_index_prefix(embedded: Synthesized) -> None:
    kinds = {r["Type"] for r in embedded.template["Resources"].values()}
    assert not {k for k in kinds if k.startswith(("AWS::OpenSearchService::", "AWS::OpenSearchServerless::"))}
    assert kinds == {"AWS::KMS::Key", "AWS::IAM::Role", "AWS::IAM::Policy"}  # the test's key and two roles
    reads = [s for s in embedded.role_statements("ReaderRole") if "s3:GetObject" in actions(s)]
    assert [flat(s["Resource"]) for s in reads] == [f"arn:<AWS::Partition>:s3:::shelfwise-ci-lake/{PREFIX}*"]
    assert not [s for s in embedded.role_statements("ReaderRole") if "s3:PutObject" in actions(s)]
    writes = [s for s in embedded.role_statements("WriterRole") if "s3:PutObject" in actions(s)]
    assert [flat(s["Resource"]) for s in writes] == [f"arn:<AWS::Partition>:s3:::shelfwise-ci-lake/{PREFIX}*"]


# -- every backend: compliance -----------------------------------------------------------------------------------
def test_cdk_nag_finds_nothing_unacknowledged_and_every_acknowledgement_has_a_reason(each: Synthesized) -> None:
    assert each.nag_error is None, each.nag_error[-4000:]
    report = each.outdir / "validation-report.json"
    if report.exists():
        violations = [v for p in json.loads(report.read_text())["pluginReports"] for v in p.get("violations", [])]
        assert violations == []
    found: dict[str, str] = {}
    for path in each.outdir.glob("*.metadata.json"):
        for entries in json.loads(path.read_text()).values():
            found |= {k: v for e in entries if e["type"] == "aws:cdk:acknowledged-rules" for k, v in e["data"].items()}
    assert all(len(reason) >= 40 for reason in found.values()), found
    assert not [f for f in found if "IAM5[Action::" in f]  # no wildcard actions


def test_cfn_lint_finds_no_error(each: Synthesized) -> None:
    from cfnlint.api import lint_file

    matches = lint_file(each.outdir / "Search.template.json")
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")] == []


# -- the setting -------------------------------------------------------------------------------------------------
def test_the_backend_and_its_size_come_from_context_and_bad_values_name_the_key() -> None:
    def deployment(values: dict[str, Any]) -> Any:
        return deployment_from_context(values.get, REPO_ROOT)

    assert deployment({}).search == SearchBackendSettings(kind="embedded")
    sized = deployment(
        {SEARCH_BACKEND_KEY: "opensearch", SEARCH_INSTANCE_TYPE_KEY: "r7g.large.search", SEARCH_INSTANCE_COUNT_KEY: "3"}
    ).search
    assert (sized.kind, sized.instance_type, sized.instance_count, sized.zone_count) == (
        "opensearch",
        "r7g.large.search",
        3,
        3,
    )
    with pytest.raises(DeploymentContextError, match=f"{SEARCH_BACKEND_KEY}='elasticsearch'"):
        deployment({SEARCH_BACKEND_KEY: "elasticsearch"})
    with pytest.raises(DeploymentContextError, match=f"{SEARCH_INSTANCE_TYPE_KEY}='t3.medium'"):
        deployment({SEARCH_INSTANCE_TYPE_KEY: "t3.medium"})
    with pytest.raises(DeploymentContextError, match=f"{SEARCH_INSTANCE_COUNT_KEY}=5.*even count"):
        deployment({SEARCH_INSTANCE_COUNT_KEY: 5})
    with pytest.raises(DeploymentContextError, match=f"{SEARCH_VOLUME_GB_KEY}='5'"):
        deployment({SEARCH_VOLUME_GB_KEY: "5"})


def test_backend_names_fit_the_service_limits() -> None:
    assert backend_name("ci", "visual", 28) == "shelfwise-ci-visual"
    assert backend_name("staging-europe", "visual", 28) == "sw-staging-europe-visual"
    long = backend_name("a" * 21, "visual", 28)
    assert len(long) <= 28
    assert long.startswith("sw-")
    assert long == backend_name("a" * 21, "visual", 28)  # stable
    assert long != backend_name("b" * 21, "visual", 28)


def test_the_api_stack_provisions_the_backend_for_a_function_that_declares_an_index() -> None:
    app = App(context={"aws:cdk:bundling-stacks": []})
    shared = Stack(app, "Shared")
    key = kms.Key(shared, "Key")
    table = dynamodb.Table(
        shared, "Table", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    )
    base = next(d.api for d in DOMAINS if d.api is not None and d.api.name == "demand")
    assert base is not None
    searching = dataclasses.replace(base, search_index=SearchIndex(INDEX, PREFIX))
    stack = ApiStack(
        app,
        "Api",
        cfg=Settings.model_validate({"env": "ci"}),
        lake=LakeRef("shelfwise-ci-lake", key),
        online_table=table,
        operations_key=key,
        alarm_topic=sns.Topic(shared, "Topic"),
        functions=[searching],
        library_dir=REPO_ROOT / "shelfwise",
        constraints=REPO_ROOT / "constraints.txt",
        auth=ApiAuth(),
        waf=False,
        search=SearchBackendSettings(kind="opensearch-serverless"),
    )
    template = Template.from_stack(stack).to_json()
    collections = [r for r in template["Resources"].values() if r["Type"] == "AWS::OpenSearchServerless::Collection"]
    assert [c["Properties"]["Name"] for c in collections] == ["shelfwise-ci-demand-knn"]
    (function,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    env = function["Properties"]["Environment"]["Variables"]
    assert (env[ENV_BACKEND], env[ENV_INDEX], env[ENV_PREFIX]) == ("opensearch-serverless", INDEX, PREFIX)
    assert refs(env[ENV_ENDPOINT]) == {next(k for k, r in template["Resources"].items() if r in collections)}


@pytest.mark.parametrize("kind", ["opensearch", "opensearch-serverless"])
def test_a_grantee_in_another_stack_holds_no_reference_to_the_backend(kind: str, tmp_path: Path) -> None:
    """The backend's policies name the grantee's role, so only the backend's stack may depend on the other."""
    app = App(outdir=str(tmp_path), context={"aws:cdk:bundling-stacks": []})
    env = {"region": "eu-west-1", "account": "123456789012"}
    consumer = Stack(app, "Consumer", env=env)
    role = iam.Role(consumer, "BuildRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    lake_key = kms.Key(Stack(app, "Lake", env=env), "LakeKey")  # as the data lake stack's key: both depend on it
    backend = Stack(app, "Backend", env=env)
    key = kms.Key(backend, "Key")
    search = VectorSearch(
        backend, "Search", settings=SearchBackendSettings(kind=kind), name=NAME, index_name=INDEX,  # type: ignore[arg-type]
        lake=LakeRef("shelfwise-ci-lake", lake_key), lake_prefix=PREFIX, log_key=key,
    )  # fmt: skip
    search.grant_write(role)
    assembly = app.synth()

    def depends_on(stack: str) -> set[str]:
        return {d.id for d in assembly.get_stack_artifact(stack).dependencies if not d.id.endswith(".assets")}

    assert depends_on("Backend") == {"Consumer"}
    assert "Backend" not in depends_on("Consumer")
    assert "Backend:" not in (tmp_path / "Consumer.template.json").read_text()  # no import of its exports
