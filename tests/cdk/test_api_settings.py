"""The API stack's deployment settings: IAM by default, a JWT authorizer for callers without AWS credentials, and
WAF on unless turned off. Each variant is synthesized on its own, without bundling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from shelfwise_cdk.stacks.api import ApiAuth, ApiStack
from shelfwise_cdk.stacks.data_lake import LakeRef

from shelfwise.config import Settings
from shelfwise.domains import DOMAINS

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"


def api_template(auth: ApiAuth, waf: bool) -> dict[str, Any]:
    app = App(context={"aws:cdk:bundling-stacks": []})
    shared = Stack(app, "Shared")
    key = kms.Key(shared, "Key")
    table = dynamodb.Table(
        shared, "Table", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    )
    stack = ApiStack(
        app,
        "Api",
        cfg=Settings.model_validate({"env": "ci"}),
        lake=LakeRef("shelfwise-ci-lake", key),
        online_table=table,
        operations_key=key,
        alarm_topic=sns.Topic(shared, "Topic"),
        functions=[d.api for d in DOMAINS if d.api is not None],
        library_dir=REPO_ROOT / "shelfwise",
        constraints=REPO_ROOT / "constraints.txt",
        auth=auth,
        waf=waf,
    )
    template: dict[str, Any] = Template.from_stack(stack).to_json()
    return template


def of_type(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for r in template["Resources"].values() if r["Type"] == kind]


def test_a_jwt_deployment_authorizes_every_method_with_the_token_authorizer() -> None:
    template = api_template(ApiAuth("jwt", ISSUER, "shop-app"), waf=True)
    (authorizer,) = of_type(template, "AWS::ApiGateway::Authorizer")
    assert authorizer["Type"] == "TOKEN"
    assert authorizer["IdentitySource"] == "method.request.header.Authorization"
    assert authorizer["AuthorizerResultTtlInSeconds"] == 300
    methods = of_type(template, "AWS::ApiGateway::Method")
    assert methods
    for method in methods:
        assert method["AuthorizationType"] == "CUSTOM"
        assert "AuthorizerId" in method
        assert method["ApiKeyRequired"] is True
    functions = of_type(template, "AWS::Lambda::Function")
    (checker,) = [f for f in functions if "SHELFWISE_JWT_ISSUER" in f["Environment"]["Variables"]]
    assert checker["Environment"]["Variables"] == {"SHELFWISE_JWT_ISSUER": ISSUER, "SHELFWISE_JWT_AUDIENCE": "shop-app"}


def test_an_iam_deployment_has_no_authorizer_and_signs_every_method() -> None:
    template = api_template(ApiAuth(), waf=True)
    assert of_type(template, "AWS::ApiGateway::Authorizer") == []
    assert {m["AuthorizationType"] for m in of_type(template, "AWS::ApiGateway::Method")} == {"AWS_IAM"}


def test_waf_can_be_turned_off() -> None:
    template = api_template(ApiAuth(), waf=False)
    assert of_type(template, "AWS::WAFv2::WebACL") == []
    assert of_type(template, "AWS::WAFv2::WebACLAssociation") == []
    assert len(of_type(api_template(ApiAuth(), waf=True), "AWS::WAFv2::WebACL")) == 1


def test_a_jwt_deployment_without_issuer_or_audience_is_refused() -> None:
    with pytest.raises(ValueError, match="issuer and the audience"):
        api_template(ApiAuth("jwt", ISSUER, None), waf=False)
