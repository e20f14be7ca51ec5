"""Which deployment to synthesize: read from CDK context (`cdk.json` or `-c key=value`) into `Settings`.

The context, not the shell environment, is the source: two synths of the same context give the same templates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aws_cdk import Environment
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from shelfwise.config import Settings
from shelfwise_cdk.constructs.vector_search import BACKENDS, SearchBackendSettings

#: CDK context keys and the `Settings` input they fill (by the name `Settings` accepts at construction).
CONTEXT_KEYS: dict[str, str] = {
    "shelfwise:env": "env",
    "shelfwise:region": "SHELFWISE_REGION",
    "shelfwise:lakeBucketName": "SHELFWISE_LAKE_BUCKET",
    "shelfwise:onlineTableName": "SHELFWISE_ONLINE_TABLE",
    "shelfwise:glueDatabaseName": "SHELFWISE_GLUE_DATABASE",
    "shelfwise:modelGroupPrefix": "model_group_prefix",
}
ACCOUNT_KEY = "shelfwise:account"
#: When EventBridge starts the daily chain (an EventBridge schedule expression, UTC).
SCHEDULE_KEY = "shelfwise:orchestrationSchedule"
DEFAULT_SCHEDULE = "cron(0 3 * * ? *)"
#: How API callers authenticate: "iam" (SigV4, the default) or "jwt" (with the issuer and audience below).
API_AUTH_KEY = "shelfwise:apiAuth"
JWT_ISSUER_KEY = "shelfwise:jwtIssuer"
JWT_AUDIENCE_KEY = "shelfwise:jwtAudience"
#: AWS WAF in front of the API (default true; false saves its monthly cost, see the README).
WAF_KEY = "shelfwise:waf"
#: The vector search backend of an API function that declares a search index: "embedded" (the default, no idle cost),
#: "opensearch" (a managed domain, sized by the keys below) or "opensearch-serverless" (a vector search collection).
SEARCH_BACKEND_KEY = "shelfwise:searchBackend"
SEARCH_INSTANCE_TYPE_KEY = "shelfwise:searchInstanceType"
SEARCH_INSTANCE_COUNT_KEY = "shelfwise:searchInstanceCount"
SEARCH_DEDICATED_MASTERS_KEY = "shelfwise:searchDedicatedMasters"
SEARCH_VOLUME_GB_KEY = "shelfwise:searchVolumeGb"
SEARCH_STANDBY_REPLICAS_KEY = "shelfwise:searchStandbyReplicas"
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+\.search$")
_SCHEDULE = re.compile(r"^(cron\((\S+ ){5}\S+\)|rate\([1-9]\d* (minute|minutes|hour|hours|day|days)\))$")


class ContextSettings(Settings):
    """`Settings` from the values given only: synthesis must not depend on the shell's SHELFWISE_* or AWS_*."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class DeploymentContextError(ValueError):
    """A context value is malformed; the message names the context key."""


@dataclass(frozen=True)
class Deployment:
    """One deployment: the shared settings, the target account (None = any) and where the sources are."""

    settings: Settings
    account: str | None
    sources: SourceLayout
    schedule: str = DEFAULT_SCHEDULE
    api_auth: ApiAuthSetting = field(default_factory=lambda: ApiAuthSetting())
    waf: bool = True
    search: SearchBackendSettings = field(default_factory=SearchBackendSettings)

    @property
    def environment(self) -> Environment:
        """Region always explicit (image URIs and service principals depend on it); account optional."""
        return Environment(account=self.account, region=self.settings.region)

    def stack_name(self, concern: str) -> str:
        return self.settings.resource_name(concern)


@dataclass(frozen=True)
class ApiAuthSetting:
    """`iam` (SigV4) or `jwt` with the OIDC issuer URL (a Cognito user pool's, or any provider's) and the audience."""

    mode: Literal["iam", "jwt"] = "iam"
    issuer: str | None = None
    audience: str | None = None


@dataclass(frozen=True)
class SourceLayout:
    """Where the code that the stacks ship lives in the repository."""

    root: Path

    @property
    def library(self) -> Path:
        return self.root / "shelfwise"

    @property
    def glue_jobs(self) -> Path:
        return self.root / "glue_jobs"

    @property
    def constraints(self) -> Path:
        """Every package's exact version: Lambda bundles and Glue modules install these."""
        return self.root / "constraints.txt"


def cdk_json_context(path: Path) -> dict[str, Any]:
    """The `context` of `cdk.json`, so that `python cdk/app.py` without the CDK CLI synthesizes the same deployment
    (the CLI passes it, and `-c` overrides, in CDK_CONTEXT_JSON, which takes precedence)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DeploymentContextError(f"cannot read the context of {path}: {exc}") from None
    context = data.get("context", {})
    if not isinstance(context, dict):
        raise DeploymentContextError(f"{path}: 'context' must be an object")
    return context


def deployment_from_context(try_get_context: Callable[[str], Any], root: Path) -> Deployment:
    """Build the deployment from context values; unset keys take the `Settings` defaults."""
    values = {name: try_get_context(key) for key, name in CONTEXT_KEYS.items()}
    inputs = {name: value for name, value in values.items() if value not in (None, "")}
    try:
        cfg = ContextSettings(**inputs)
    except ValidationError as exc:
        raise DeploymentContextError(_describe(exc, inputs)) from None
    account = try_get_context(ACCOUNT_KEY)
    if account not in (None, "") and not (isinstance(account, str) and account.isdigit() and len(account) == 12):
        raise DeploymentContextError(f"context {ACCOUNT_KEY}={account!r}: expected a 12-digit AWS account id")
    schedule = try_get_context(SCHEDULE_KEY) or DEFAULT_SCHEDULE
    if not (isinstance(schedule, str) and _SCHEDULE.match(schedule)):
        raise DeploymentContextError(
            f"context {SCHEDULE_KEY}={schedule!r}: expected an EventBridge schedule such as {DEFAULT_SCHEDULE!r} "
            "or 'rate(1 day)'"
        )
    return Deployment(
        settings=cfg,
        account=account or None,
        sources=SourceLayout(root),
        schedule=schedule,
        api_auth=_api_auth(try_get_context),
        waf=_flag(try_get_context, WAF_KEY, default=True),
        search=_search_backend(try_get_context),
    )


def _search_backend(try_get_context: Callable[[str], Any]) -> SearchBackendSettings:
    defaults = SearchBackendSettings()
    kind = try_get_context(SEARCH_BACKEND_KEY) or defaults.kind
    if kind not in BACKENDS:
        raise DeploymentContextError(f"context {SEARCH_BACKEND_KEY}={kind!r}: expected one of {', '.join(BACKENDS)}")
    instance_type = try_get_context(SEARCH_INSTANCE_TYPE_KEY) or defaults.instance_type
    if not (isinstance(instance_type, str) and _INSTANCE_TYPE.match(instance_type)):
        raise DeploymentContextError(
            f"context {SEARCH_INSTANCE_TYPE_KEY}={instance_type!r}: expected an OpenSearch instance type such as "
            f"{defaults.instance_type!r}"
        )
    count = _integer(try_get_context, SEARCH_INSTANCE_COUNT_KEY, defaults.instance_count, minimum=1)
    if count > 1 and count % 2 and count % 3:
        raise DeploymentContextError(
            f"context {SEARCH_INSTANCE_COUNT_KEY}={count!r}: zone awareness needs an even count (2 zones) or a "
            "multiple of 3 (3 zones)"
        )
    return SearchBackendSettings(
        kind=kind,
        instance_type=instance_type,
        instance_count=count,
        dedicated_masters=_flag(try_get_context, SEARCH_DEDICATED_MASTERS_KEY, default=defaults.dedicated_masters),
        # 10 GiB is the smallest gp3 volume OpenSearch Service accepts.
        volume_gb=_integer(try_get_context, SEARCH_VOLUME_GB_KEY, defaults.volume_gb, minimum=10),
        standby_replicas=_flag(try_get_context, SEARCH_STANDBY_REPLICAS_KEY, default=defaults.standby_replicas),
    )


def _integer(try_get_context: Callable[[str], Any], key: str, default: int, minimum: int) -> int:
    value = try_get_context(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < minimum:
        raise DeploymentContextError(f"context {key}={value!r}: expected a whole number of at least {minimum}")
    return int(value)


def _api_auth(try_get_context: Callable[[str], Any]) -> ApiAuthSetting:
    mode = try_get_context(API_AUTH_KEY) or "iam"
    if mode == "iam":
        return ApiAuthSetting()
    if mode != "jwt":
        raise DeploymentContextError(f"context {API_AUTH_KEY}={mode!r}: expected 'iam' or 'jwt'")
    issuer, audience = try_get_context(JWT_ISSUER_KEY), try_get_context(JWT_AUDIENCE_KEY)
    if not (isinstance(issuer, str) and re.match(r"^https://[^\s/]+(/[^\s]*)?$", issuer)):
        raise DeploymentContextError(
            f"context {JWT_ISSUER_KEY}={issuer!r}: {API_AUTH_KEY}=jwt needs the issuer's https URL, e.g. "
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
        )
    if not (isinstance(audience, str) and audience.strip()):
        raise DeploymentContextError(
            f"context {JWT_AUDIENCE_KEY}={audience!r}: {API_AUTH_KEY}=jwt needs the audience (client id) tokens carry"
        )
    return ApiAuthSetting("jwt", issuer.rstrip("/"), audience.strip())


def _flag(try_get_context: Callable[[str], Any], key: str, default: bool) -> bool:
    value = try_get_context(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise DeploymentContextError(f"context {key}={value!r}: expected true or false")


def _describe(exc: ValidationError, inputs: dict[str, Any]) -> str:
    key_for = {name: key for key, name in CONTEXT_KEYS.items()}
    problems = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        problems.append(f"context {key_for.get(name, name)}={inputs.get(name)!r}: {err['msg']}")
    return "invalid Shelfwise deployment context: " + "; ".join(problems)
