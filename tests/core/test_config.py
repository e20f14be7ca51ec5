"""Configuration: defaults, environment overrides, and errors that name the variable."""

from __future__ import annotations

import pytest

from shelfwise.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SHELFWISE_ENV",
        "SHELFWISE_REGION",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "SHELFWISE_LAKE_BUCKET",
        "SHELFWISE_ONLINE_TABLE",
        "SHELFWISE_GLUE_DATABASE",
        "AWS_ENDPOINT_URL",
        "SHELFWISE_LOG_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_local_defaults_derive_names_from_env() -> None:
    cfg = load_settings()
    assert cfg.env == "local"
    assert cfg.lake_bucket == "shelfwise-local-lake"
    assert cfg.online_table == "shelfwise-local-online"
    assert cfg.glue_database == "shelfwise_local"
    assert cfg.aws_endpoint_url is None


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFWISE_ENV", "prod")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("SHELFWISE_LAKE_BUCKET", "acme-lake-123")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    cfg = load_settings()
    assert (cfg.env, cfg.region, cfg.lake_bucket) == ("prod", "eu-west-1", "acme-lake-123")
    assert cfg.online_table == "shelfwise-prod-online"
    assert cfg.aws_endpoint_url == "http://127.0.0.1:5000"


def test_lambda_environment_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFWISE_ENV", "staging")
    variables = load_settings().lambda_environment()
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    again = load_settings()
    assert again.lambda_environment() == variables


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SHELFWISE_ENV", "Prod Env!"),
        ("AWS_REGION", "mars"),
        ("SHELFWISE_LAKE_BUCKET", "Not_A_Bucket"),
        ("AWS_ENDPOINT_URL", "not a url"),
        ("SHELFWISE_LOG_LEVEL", "LOUD"),
    ],
)
def test_malformed_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert variable in str(info.value)
    assert repr(value) in str(info.value)
