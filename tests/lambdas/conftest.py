"""A local AWS with a registered churn model and customers in the online store, and the churn handler on top.

`lambdas/` is not a package (each folder is the root of its own Lambda bundle), so the handler is imported from its
file with `shelfwise.local_api.load_lambda`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from shelfwise.bench.serving import ServingWorld, prepare_serving_world
from shelfwise.local_api import LocalLambdaContext, load_lambda, proxy_event
from shelfwise.local_aws import LocalAws, local_aws


@pytest.fixture(scope="package")
def aws() -> Iterator[LocalAws]:
    with local_aws() as running:
        yield running


@pytest.fixture(scope="package")
def world(aws: LocalAws) -> ServingWorld:
    return prepare_serving_world(aws.settings, customers=300, cold=3, trees=40, depth=3, model_version="v-test")


@pytest.fixture(scope="package")
def churn_app(world: ServingWorld) -> ModuleType:
    return load_lambda("churn", fresh=True)


class Invoke:
    """Calls a handler module with proxy events and decodes the JSON answer."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def __call__(self, event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
        response = self.module.handler(event, LocalLambdaContext(function_name="churn-test"))
        headers = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
        headers |= {k.lower(): [v] for k, v in (response.get("headers") or {}).items()}
        return response["statusCode"], headers, json.loads(response["body"])

    def get_churn(self, customer_id: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
        return self(
            proxy_event(
                "GET",
                f"/customers/{customer_id}/churn",
                resource="/customers/{customer_id}/churn",
                path_parameters={"customer_id": customer_id},
            )
        )

    def score(
        self, body: str | bytes | None, content_type: str | None = "application/json"
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        headers = {"Content-Type": content_type} if content_type else {}
        return self(proxy_event("POST", "/churn/score", headers=headers, body=body))

    @staticmethod
    def assert_client_error(status: int, body: dict[str, Any]) -> None:
        """A 4xx with the API's error shape (conftest modules cannot be imported by tests, hence a method)."""
        assert 400 <= status < 500, (status, body)
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message", "field"}, body
        assert isinstance(body["error"]["code"], str)
        assert isinstance(body["error"]["message"], str)
        assert body["error"]["message"]


@pytest.fixture(scope="package")
def invoke(churn_app: ModuleType) -> Invoke:
    return Invoke(churn_app)
