"""`VectorSearch`: the backend a searching API function queries, chosen per deployment (`shelfwise:searchBackend`).

- **`embedded`** (the default: zero idle cost). A faiss index the build step writes under a lake prefix and the
  function loads; nothing is provisioned but access to that prefix.
- **`opensearch`**: a managed OpenSearch Service domain (k-NN with the faiss engine). Encryption at rest with its
  own KMS key, HTTPS only with TLS 1.2, node-to-node encryption, fine-grained access control whose master is an IAM
  role (no internal user database, no password), a domain access policy naming only the granted roles, search slow,
  index slow, application and audit logs in CloudWatch, zone awareness from two nodes.
- **`opensearch-serverless`**: a `VECTORSEARCH` collection with its encryption policy (the same kind of key), its
  network policy and a data access policy naming only the granted roles; the collection is created after all three.

**Network placement: a public endpoint, signed requests only.** The callers are Lambda functions and a build step,
none of which runs in a VPC. Every request is SigV4-signed and checked three times: the IAM policy of the caller,
the domain access policy (or the collection's data access policy), and, on a domain, fine-grained access control,
which refuses any IAM role the master has not mapped. A VPC domain would need the consumers moved into the VPC, and
with them interface endpoints (or NAT gateways) for every AWS API they call (S3, STS, KMS, DynamoDB, SageMaker,
X-Ray): a fixed monthly cost larger than the small domain itself. That is what a regulated retailer may still
require; it is not offered as a setting here, because it changes where every consumer runs, not just the domain.

**What a consumer needs** is `environment` (backend kind, endpoint, index name, lake prefix) and `grant_read` (the
API function) or `grant_write` (the index build). A grant adds the role both to its own IAM policy and to the
backend's resource-side policy. The grantee's statements name the backend by name (never by reference), but the
backend's policies reference the grantee's role: a grantee in another stack must not depend on this one, and gets
the endpoint at run time instead (a pipeline parameter the scheduled chain passes, say).

**Fine-grained access control** refuses every IAM role its master has not mapped. The master is the role of a
small function (`lambdas/search_access`, a custom resource) that, on every deployment, writes `<index>-reader`
(read on `<index>*`) and `<index>-writer` (every index action on `<index>*`) and maps them to the granted roles.
Nobody else holds the master role: there is no password and no internal user.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jsii
from aws_cdk import CustomResource, Duration, IStableListProducer, IStableStringProducer, Lazy, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchserverless as aoss
from aws_cdk import aws_opensearchservice as opensearch
from constructs import Construct, IValidation

from shelfwise.domain import LAMBDAS_DIR
from shelfwise_cdk.constructs.encryption import rotating_key
from shelfwise_cdk.constructs.lake_access import grant_lake
from shelfwise_cdk.constructs.python_function import ShelfwisePythonFunction
from shelfwise_cdk.nag import acknowledge, acknowledge_wildcards
from shelfwise_cdk.stacks.data_lake import LakeRef

BackendKind = Literal["opensearch", "opensearch-serverless", "embedded"]
BACKENDS: tuple[BackendKind, ...] = ("opensearch", "opensearch-serverless", "embedded")
#: The newest 2.x line: faiss is the default k-NN engine (2.18+), with cosinesimil (2.19+), efficient filtering and
#: `method_parameters.ef_search` in queries (2.16+), which the index code sends.
ENGINE_VERSION = opensearch.EngineVersion.OPENSEARCH_2_19
#: Environment variables a consumer reads (`VectorSearch.environment`).
ENV_BACKEND = "SHELFWISE_SEARCH_BACKEND"
ENV_ENDPOINT = "SHELFWISE_SEARCH_ENDPOINT"
ENV_INDEX = "SHELFWISE_SEARCH_INDEX"
ENV_PREFIX = "SHELFWISE_SEARCH_PREFIX"
#: Name limits: OpenSearch domains 3-28 characters, Serverless collections and their policies 3-32.
DOMAIN_NAME_LIMIT = 28
COLLECTION_NAME_LIMIT = 32

#: IAM cannot tell a search (POST _search) from a document write (POST _doc): these verbs let a reader reach the
#: index paths, and fine-grained access control's `<index>-reader` role (`lambdas/search_access`) keeps it read-only.
_READ = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"]
_WRITE = [*_READ, "es:ESHttpPut", "es:ESHttpDelete"]
#: Serverless data access: search reads documents; the build creates a version, loads it, counts it, deletes old ones.
_AOSS_READ = ["aoss:ReadDocument"]
_AOSS_WRITE = ["aoss:CreateIndex", "aoss:DeleteIndex", "aoss:DescribeIndex", "aoss:ReadDocument", "aoss:WriteDocument"]


@dataclass(frozen=True)
class SearchBackendSettings:
    """Which backend, and the managed domain's size (the other backends ignore the sizing).

    The defaults are a one-node development domain: a burstable instance (4 GiB: half for the JVM heap, and the
    k-NN graphs may use half of the rest, room for about 1.5 million 128-d vectors at m=16, 1.1 x (4 x 128 + 8 x 16)
    bytes each), no dedicated masters, the smallest gp3 volume.
    """

    kind: BackendKind = "embedded"
    instance_type: str = "t3.medium.search"
    instance_count: int = 1
    dedicated_masters: bool = False
    volume_gb: int = 10
    #: Serverless: standby replicas in a second zone (production) or not (half the minimum OCUs).
    standby_replicas: bool = False

    @property
    def zone_count(self) -> int:
        """Availability zones the data nodes spread over: 1 for one node, 3 when the count divides by 3, else 2."""
        if self.instance_count < 2:
            return 1
        return 3 if self.instance_count % 3 == 0 else 2


class VectorSearch(Construct):
    """The search backend of one vector index; see the module docstring for what each kind provisions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: SearchBackendSettings,
        name: str,
        index_name: str,
        lake: LakeRef,
        lake_prefix: str,
        log_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        if not lake_prefix.endswith("/"):
            raise ValueError(f"lake_prefix must end with '/', got {lake_prefix!r}")
        self.settings, self.kind, self.name = settings, settings.kind, name
        self.index_name, self.lake, self.lake_prefix = index_name, lake, lake_prefix
        self.readers: list[iam.IRole] = []
        self.writers: list[iam.IRole] = []
        self.key: kms.Key | None = None
        self.domain: opensearch.Domain | None = None
        self.collection: aoss.CfnCollection | None = None
        self.role_mapping: ShelfwisePythonFunction | None = None
        self.endpoint: str | None = None
        if settings.kind != "embedded":
            self.key = rotating_key(
                self,
                "Key",
                alias=f"alias/{name}",
                description=f"Shelfwise: encrypts the vector index {index_name} ({settings.kind})",
            )
        if settings.kind == "opensearch":
            self._domain(log_key)
        elif settings.kind == "opensearch-serverless":
            self._collection()
        elif settings.kind != "embedded":
            raise ValueError(f"unknown search backend {settings.kind!r}; expected one of {', '.join(BACKENDS)}")
        self.node.add_validation(_Granted(self))

    # -- what consumers use ------------------------------------------------------------------------------------
    @property
    def environment(self) -> dict[str, str]:
        """The variables a searching function or the build step reads to find the index."""
        env = {ENV_BACKEND: self.kind, ENV_INDEX: self.index_name, ENV_PREFIX: self.lake_prefix}
        if self.endpoint is not None:
            env[ENV_ENDPOINT] = self.endpoint
        return env

    def grant_read(self, role: iam.IRole) -> None:
        """Search the index: read-only HTTP on its paths (domain), read documents (Serverless), or read the prefix."""
        self.readers.append(role)
        if self.kind == "opensearch":
            self._grant_domain(role, "Read", _READ, [self._domain_path(f"{self.index_name}*")])
        elif self.kind == "opensearch-serverless":
            self._grant_collection(role, "Read")
        # On every backend the lake prefix holds the pointer to the live version and the query model beside it
        # (and, embedded, the index's files).
        grant_lake(role, self.lake, read=[self.lake_prefix], list_prefixes=False, sid="SearchLake")

    def grant_write(self, role: iam.IRole) -> None:
        """Build the index: create versions, bulk-load them, move the alias (domain) or the lake pointer, drop old
        versions."""
        self.writers.append(role)
        if self.kind == "opensearch":
            paths = [f"{self.index_name}*", "_bulk", "_aliases", f"_alias/{self.index_name}"]
            self._grant_domain(role, "Write", _WRITE, [self._domain_path(p) for p in paths])
        elif self.kind == "opensearch-serverless":
            self._grant_collection(role, "Write")
        if self.kind != "opensearch":
            grant_lake(role, self.lake, write=[self.lake_prefix], sid="SearchLake")

    # -- managed domain ----------------------------------------------------------------------------------------
    def _domain(self, log_key: kms.IKey) -> None:
        settings, stack = self.settings, Stack.of(self)
        self.domain_arn = stack.format_arn(service="es", resource="domain", resource_name=self.name)
        self.role_mapping = ShelfwisePythonFunction(
            self,
            "RoleMapping",
            handler="app.handler",
            code_dir=LAMBDAS_DIR / "search_access",
            log_key=log_key,
            description=f"Fine-grained access control master of {self.name}: maps the granted IAM roles",
            memory_size=256,
            timeout=Duration.minutes(2),
        )
        logs_by_kind = {
            kind: logs.LogGroup(
                self,
                f"{kind}Logs",
                encryption_key=log_key,
                retention=logs.RetentionDays.ONE_YEAR if kind == "Audit" else logs.RetentionDays.THREE_MONTHS,
                removal_policy=RemovalPolicy.DESTROY,
            )
            for kind in ("SearchSlow", "IndexSlow", "App", "Audit")
        }
        # CDK's own resource policy for these is a custom resource (a Lambda); a plain one does the same.
        logs_policy = logs.ResourcePolicy(
            self,
            "LogsResourcePolicy",
            resource_policy_name=f"{self.name}-logs",
            policy_statements=[
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("es.amazonaws.com")],
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[group.log_group_arn for group in logs_by_kind.values()],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": self.domain_arn},
                    },
                )
            ],
        )
        zones = settings.zone_count
        self.domain = opensearch.Domain(
            self,
            "Domain",
            domain_name=self.name,
            version=ENGINE_VERSION,
            capacity=opensearch.CapacityConfig(
                data_node_instance_type=settings.instance_type,
                data_nodes=settings.instance_count,
                master_node_instance_type=settings.instance_type if settings.dedicated_masters else None,
                master_nodes=3 if settings.dedicated_masters else None,
                # The cdk.json flag would turn standby on by default; it needs 3 zones, masters and no T3 nodes.
                multi_az_with_standby_enabled=False,
            ),
            ebs=opensearch.EbsOptions(
                enabled=True, volume_size=settings.volume_gb, volume_type=ec2.EbsDeviceVolumeType.GP3
            ),
            zone_awareness=opensearch.ZoneAwarenessConfig(
                enabled=zones > 1, availability_zone_count=zones if zones > 1 else None
            ),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True, kms_key=self.key),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2,
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(
                master_user_arn=self.role_mapping.role.role_arn
            ),
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True,
                slow_search_log_group=logs_by_kind["SearchSlow"],
                slow_index_log_enabled=True,
                slow_index_log_group=logs_by_kind["IndexSlow"],
                app_log_enabled=True,
                app_log_group=logs_by_kind["App"],
                audit_log_enabled=True,
                audit_log_group=logs_by_kind["Audit"],
            ),
            suppress_logs_resource_policy=True,
            # The index is rebuilt from the lake's embeddings by every run: a retained domain would only keep billing.
            removal_policy=RemovalPolicy.DESTROY,
        )
        cfn_domain = self.domain.node.default_child
        assert isinstance(cfn_domain, opensearch.CfnDomain)
        # Set on the domain itself (the named ARN avoids a self-reference), not through CDK's custom resource: the
        # policy document is resolved at synthesis, so it holds every role granted until then.
        self._access_policy = iam.PolicyDocument()
        cfn_domain.access_policies = self._access_policy
        cfn_domain.node.add_dependency(logs_policy)
        self.endpoint = f"https://{self.domain.domain_endpoint}"
        self._map_roles(self.role_mapping)
        self._acknowledge_domain()

    def _map_roles(self, function: ShelfwisePythonFunction) -> None:
        """The custom resource that maps the granted roles; it runs again whenever they change."""
        security_api = self._domain_path("_plugins/_security/api/*")
        self._grant_domain(
            function.role, "Security", ["es:ESHttpGet", "es:ESHttpPut", "es:ESHttpDelete"], [security_api]
        )
        mapping = CustomResource(
            self,
            "RoleMappings",
            service_token=function.function.function_arn,
            resource_type="Custom::OpenSearchRoleMappings",
            properties={
                "Endpoint": self.endpoint,
                "Index": self.index_name,
                "Readers": Lazy.list(_ProduceList(lambda: [role.role_arn for role in self.readers])),
                "Writers": Lazy.list(_ProduceList(lambda: [role.role_arn for role in self.writers])),
            },
        )
        mapping.node.add_dependency(function)  # its policies (domain paths, logs) exist before it runs
        acknowledge_wildcards(
            function.role,
            resources={
                security_api: "The security plugin's role and role-mapping paths of this one domain: the role names "
                "follow the index name.",
                "*": "X-Ray PutTraceSegments/PutTelemetryRecords support no resource ARNs.",
            },
        )
        acknowledge(
            function.function,
            "AwsSolutions-L1",
            "Pinned to python3.12 like every Shelfwise function (bundled and tested for it); move with them.",
        )

    def _domain_path(self, path: str) -> str:
        return f"{self.domain_arn}/{path}"

    def _grant_domain(self, role: iam.IRole, sid: str, actions: Sequence[str], resources: Sequence[str]) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(sid=f"SearchIndex{sid}", actions=list(actions), resources=list(resources))
        )
        self._access_policy.add_statements(
            iam.PolicyStatement(
                principals=[iam.ArnPrincipal(role.role_arn)], actions=list(actions), resources=list(resources)
            )
        )
        if any(r.endswith(f"/{self.index_name}*") for r in resources):
            acknowledge_wildcards(
                role,
                resources={
                    self._domain_path(f"{self.index_name}*"): f"The {self.index_name} alias and its versioned indexes "
                    f"({self.index_name}-v<build time>) on this one domain only."
                },
            )

    def _acknowledge_domain(self) -> None:
        assert self.domain is not None
        settings = self.settings
        acknowledge(
            self.domain,
            "AwsSolutions-OS1",
            "A public endpoint on purpose: the consumers are Lambda functions and a build step outside any VPC, and "
            "every request is SigV4-signed, checked by the callers' IAM policies, this domain's access policy "
            "(named roles only) and fine-grained access control; a VPC would add endpoints or NAT for every consumer.",
        )
        acknowledge(
            self.domain,
            "AwsSolutions-OS3",
            "Access is limited to named IAM roles (SigV4), not IP addresses: the callers are Lambda functions "
            "without fixed addresses.",
        )
        if not settings.dedicated_masters:
            acknowledge(
                self.domain,
                "AwsSolutions-OS4",
                f"Dedicated masters are off for this {settings.instance_count}-node domain (deployment setting "
                "shelfwise:searchDedicatedMasters); the index is rebuilt daily from the lake, so a lost cluster "
                "state costs one rebuild.",
            )
        if settings.zone_count < 2:
            acknowledge(
                self.domain,
                "AwsSolutions-OS7",
                "One data node cannot spread over zones (deployment setting shelfwise:searchInstanceCount); two or "
                "more turn zone awareness on.",
            )

    # -- Serverless collection ---------------------------------------------------------------------------------
    def _collection(self) -> None:
        assert self.key is not None
        stack, name = Stack.of(self), self.name
        collection_rule = [{"ResourceType": "collection", "Resource": [f"collection/{name}"]}]
        encryption = aoss.CfnSecurityPolicy(
            self,
            "EncryptionPolicy",
            name=name,
            type="encryption",
            description="The collection's data encrypted with the deployment's own key",
            policy=stack.to_json_string({"Rules": collection_rule, "AWSOwnedKey": False, "KmsARN": self.key.key_arn}),
        )
        network = aoss.CfnSecurityPolicy(
            self,
            "NetworkPolicy",
            name=name,
            type="network",
            description="Public endpoint, SigV4 and the data access policy only (see the construct's docstring)",
            policy=json.dumps([{"Rules": collection_rule, "AllowFromPublic": True}]),
        )
        self._data_access = aoss.CfnAccessPolicy(
            self,
            "DataAccessPolicy",
            name=name,
            type="data",
            description="Only the index build writes; only the searching functions read",
            policy=Lazy.string(_Produce(lambda: stack.to_json_string(self._data_access_rules()))),
        )
        self.collection = aoss.CfnCollection(
            self,
            "Collection",
            name=name,
            type="VECTORSEARCH",
            standby_replicas="ENABLED" if self.settings.standby_replicas else "DISABLED",
            description=f"Shelfwise vector index {self.index_name}",
        )
        for policy in (encryption, network, self._data_access):
            self.collection.add_resource_dependency(policy)
        self.endpoint = self.collection.attr_collection_endpoint

    def _data_access_rules(self) -> list[dict[str, Any]]:
        def rule(roles: Sequence[iam.IRole], permissions: Sequence[str]) -> dict[str, Any]:
            return {
                "Rules": [
                    {
                        "ResourceType": "index",
                        "Resource": [f"index/{self.name}/{self.index_name}*"],
                        "Permission": list(permissions),
                    }
                ],
                "Principal": [role.role_arn for role in roles],
            }

        return [rule(roles, p) for roles, p in ((self.readers, _AOSS_READ), (self.writers, _AOSS_WRITE)) if roles]

    def _grant_collection(self, role: iam.IRole, sid: str) -> None:
        # Data-plane calls need this IAM action on the collection; what they may do there is the data access policy's.
        # Named by its name, not its (generated) id: the grantee's stack then holds no reference to this one.
        collections = Stack.of(self).format_arn(service="aoss", resource="collection", resource_name="*")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=f"SearchCollection{sid}",
                actions=["aoss:APIAccessAll"],
                resources=[collections],
                conditions={"StringEquals": {"aoss:collection": self.name}},
            )
        )
        acknowledge_wildcards(
            role,
            resources={
                collections: f"Collection ids are generated; the condition aoss:collection={self.name} limits the "
                "statement to this deployment's collection."
            },
        )


def backend_name(env: str, suffix: str, limit: int) -> str:
    """`shelfwise-<env>-<suffix>` when it fits the service's name limit, else `sw-<env>-<suffix>`, else (long
    deployment names) `sw-<hash of env>-<suffix>`, cut to the limit: stable per deployment either way."""
    digest = hashlib.sha256(env.encode()).hexdigest()[:8]
    for candidate in (f"shelfwise-{env}-{suffix}", f"sw-{env}-{suffix}"):
        if len(candidate) <= limit:
            return candidate
    return f"sw-{digest}-{suffix}"[:limit].rstrip("-")


@jsii.implements(IStableStringProducer)
class _Produce:
    """A string computed at synthesis (after every grant), for `Lazy.string`."""

    def __init__(self, produce: Callable[[], str]) -> None:
        self._produce = produce

    def produce(self) -> str:
        return self._produce()


@jsii.implements(IStableListProducer)
class _ProduceList:
    """A list computed at synthesis (after every grant), for `Lazy.list`."""

    def __init__(self, produce: Callable[[], list[str]]) -> None:
        self._produce = produce

    def produce(self) -> list[str]:
        return self._produce()


@jsii.implements(IValidation)
class _Granted:
    """A provisioned backend nobody may use is a mistake (and an empty resource policy is refused by the service)."""

    def __init__(self, search: VectorSearch) -> None:
        self._search = search

    def validate(self) -> list[str]:
        search = self._search
        if search.kind != "embedded" and not (search.readers or search.writers):
            return [f"the {search.kind} backend of {search.index_name} was granted to no role: call grant_read/write"]
        return []
