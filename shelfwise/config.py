"""One typed configuration for every part of Shelfwise, read once from the environment.

In AWS the values come from environment variables that the CDK stacks set on Lambdas and Glue jobs; locally the
defaults apply and `AWS_ENDPOINT_URL` points boto3 at the moto server.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHELFWISE_"

#: The environment variables that CDK sets on every Lambda function and Glue job (see `cdk/`).
ENV_VARS: dict[str, str] = {
    "env": "SHELFWISE_ENV",
    "region": "AWS_REGION",
    "lake_bucket": "SHELFWISE_LAKE_BUCKET",
    "online_table": "SHELFWISE_ONLINE_TABLE",
    "glue_database": "SHELFWISE_GLUE_DATABASE",
    "model_group_prefix": "SHELFWISE_MODEL_GROUP_PREFIX",
    "lake_bucket_owner": "SHELFWISE_LAKE_BUCKET_OWNER",
    "aws_endpoint_url": "AWS_ENDPOINT_URL",
}

_NAME = r"^[a-z][a-z0-9-]{1,20}$"
_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
_TABLE = r"^[A-Za-z0-9_.-]{3,255}$"


class ConfigError(ValueError):
    """A setting in the environment is malformed; the message names the variable."""


class Settings(BaseSettings):
    """Names and locations shared by the CLI, Glue jobs, pipelines, handlers and stacks."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore", populate_by_name=True)

    env: str = Field("local", pattern=_NAME, description="Deployment name; prefixes every resource name.")
    region: str = Field(
        "us-east-1",
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        validation_alias=AliasChoices("SHELFWISE_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    lake_bucket_name: str | None = Field(None, pattern=_BUCKET, validation_alias=AliasChoices("SHELFWISE_LAKE_BUCKET"))
    online_table_name: str | None = Field(None, pattern=_TABLE, validation_alias=AliasChoices("SHELFWISE_ONLINE_TABLE"))
    glue_database_name: str | None = Field(
        None, pattern=r"^[a-z0-9_]{1,255}$", validation_alias=AliasChoices("SHELFWISE_GLUE_DATABASE")
    )
    model_group_prefix: str = Field(
        "",
        pattern=r"^([a-zA-Z0-9](-*[a-zA-Z0-9]){0,40}-)?$",
        description="Prepended to each domain's model package group name (`churn` -> `<prefix>churn`).",
    )
    lake_bucket_owner: str | None = Field(
        None,
        pattern=r"^\d{12}$",
        description="Account that must own the lake bucket: every S3 call sends it as ExpectedBucketOwner.",
    )
    model_cache_seconds: int = Field(
        300, ge=0, le=3600, description="How long an API container serves a model before asking the registry again."
    )
    aws_endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(:\d+)?/?$",
        validation_alias=AliasChoices("AWS_ENDPOINT_URL"),
        description="Set locally to the moto server; unset in AWS.",
    )
    work_dir: Path = Field(Path(".shelfwise"), description="Local folder for generated worlds and job scratch.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("work_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Jobs run as subprocesses in their own folders: a relative work dir would point elsewhere there.
        return value.expanduser().resolve()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def lake_bucket(self) -> str:
        return self.lake_bucket_name or f"shelfwise-{self.env}-lake"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def online_table(self) -> str:
        return self.online_table_name or f"shelfwise-{self.env}-online"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def glue_database(self) -> str:
        return self.glue_database_name or f"shelfwise_{self.env.replace('-', '_')}"

    def model_group(self, name: str) -> str:
        """The model package group of a domain's pipeline."""
        return f"{self.model_group_prefix}{name}"

    def expected_owner(self) -> dict[str, str]:
        """`ExpectedBucketOwner` for S3 calls on the lake, when the owner is configured (always in AWS)."""
        return {"ExpectedBucketOwner": self.lake_bucket_owner} if self.lake_bucket_owner else {}

    def resource_name(self, suffix: str) -> str:
        """A deployment-scoped name such as `shelfwise-prod-curate-orders`."""
        return f"shelfwise-{self.env}-{suffix}"

    def lambda_environment(self) -> dict[str, str]:
        """The variables CDK sets on functions and jobs so that they read the same names as local runs."""
        return {
            ENV_VARS["env"]: self.env,
            ENV_VARS["lake_bucket"]: self.lake_bucket,
            ENV_VARS["online_table"]: self.online_table,
            ENV_VARS["glue_database"]: self.glue_database,
            ENV_VARS["model_group_prefix"]: self.model_group_prefix,
        }


def _candidates(field: str) -> list[str]:
    """The environment variables that can set `field`, in precedence order."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [ENV_PREFIX + field.upper()]


def _variable_for(loc: str) -> str:
    """The variable behind a validation error location (a field name or one of its aliases)."""
    for field in Settings.model_fields:
        candidates = _candidates(field)
        if loc == field or loc in candidates:
            return next((name for name in candidates if name in os.environ), candidates[0])
    return loc


def load_settings() -> Settings:
    """Read the settings from the environment; fail naming each malformed variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            variable = _variable_for(str(err["loc"][0]) if err["loc"] else "?")
            problems.append(f"{variable}={os.environ.get(variable, err.get('input'))!r}: {err['msg']}")
        raise ConfigError("invalid Shelfwise setting: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
