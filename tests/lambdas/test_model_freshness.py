"""The model a request sees is the newest approved one, re-checked after the TTL without a restart: a new approval
is served, a rejected one stops being served, nothing approved is cached with a backoff, a tampered artifact or a
model of another feature-set version is refused. The real handler against moto, with a clock the test moves."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shelfwise.bench.serving import (
    ServingWorld,
    prepare_serving_world,
    register_churn_artifact,
    synthetic_feature_rows,
    train_churn_booster,
    write_churn_artifact,
)
from shelfwise.config import settings
from shelfwise.local_api import LocalLambdaContext, load_lambda, proxy_event
from shelfwise.local_aws import LocalAws, local_aws
from shelfwise.pipelines.registry import sagemaker_client, set_approval

TTL = 300.0


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    """A local AWS of this module's own: other modules reset moto's process-wide state when theirs stop."""
    with local_aws() as running:
        yield running


@pytest.fixture(scope="module")
def world(aws: LocalAws) -> ServingWorld:
    return prepare_serving_world(aws.settings, customers=20, cold=1, trees=5, depth=2, model_version="v-fresh")


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def group(world: ServingWorld, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[str]:
    """A model package group of its own (the package's other tests keep theirs), empty at first."""
    prefix = f"fresh{abs(hash(request.node.name)) % 10**8}-"
    monkeypatch.setenv("SHELFWISE_MODEL_GROUP_PREFIX", prefix)
    monkeypatch.setenv("SHELFWISE_MODEL_CACHE_SECONDS", str(int(TTL)))
    settings.cache_clear()
    yield f"{prefix}churn"
    settings.cache_clear()


@dataclass
class Container:
    """One warm API container: the handler module, its clock, and its registry calls."""

    module: ModuleType
    clock: Clock
    registry_calls: list[str]

    def get(self, customer_id: str) -> tuple[int, dict[str, Any]]:
        event = proxy_event(
            "GET",
            f"/customers/{customer_id}/churn",
            resource="/customers/{customer_id}/churn",
            path_parameters={"customer_id": customer_id},
        )
        response = self.module.handler(event, LocalLambdaContext(function_name="churn-fresh"))
        return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def container(group: str) -> Container:
    module = load_lambda("churn", fresh=True)
    models = module.service().models
    clock, calls = Clock(), []
    registry = models.sagemaker

    class Spy:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(registry(), name)

    models.clock, models.sagemaker = clock, Spy
    return Container(module, clock, calls)


def register(version: str, world: ServingWorld, **kwargs: Any) -> str:
    """Train a tiny model, register it in the current group, approved unless told otherwise; its package ARN."""
    rows, labels = synthetic_feature_rows(300, seed=len(version))
    booster = train_churn_booster(rows, labels, trees=5, depth=2, seed=1)
    metadata = kwargs.pop("feature_set_version", None)
    with tempfile.TemporaryDirectory() as tmp:
        extra = {"feature_set_version": metadata} if metadata else {}
        archive = write_churn_artifact(booster, Path(tmp) / "model.tar.gz", version, 0.3, **extra)
        return register_churn_artifact(settings(), archive, version, **kwargs)


def test_a_new_approval_is_served_after_the_ttl_without_a_restart(world: ServingWorld, container: Container) -> None:
    customer = sorted(world.rows)[0]
    register("v1", world)
    assert container.get(customer)[1]["model_version"] == "v1"
    register("v2", world)
    container.clock.now += TTL - 1
    assert container.get(customer)[1]["model_version"] == "v1"  # within the TTL: no registry call
    assert container.registry_calls.count("list_model_packages") == 1
    container.clock.now += 2
    assert container.get(customer)[1]["model_version"] == "v2"
    assert container.registry_calls.count("list_model_packages") == 2


def test_a_rejected_model_stops_being_served(world: ServingWorld, container: Container) -> None:
    customer = sorted(world.rows)[0]
    register("v1", world)
    newer = register("v2", world)
    assert container.get(customer)[1]["model_version"] == "v2"
    set_approval(sagemaker_client(), newer, "Rejected")
    container.clock.now += TTL + 1
    assert container.get(customer)[1]["model_version"] == "v1"


def test_nothing_approved_is_a_503_cached_with_a_growing_backoff(world: ServingWorld, container: Container) -> None:
    customer = sorted(world.rows)[0]
    register("pending", world, approval="PendingManualApproval")
    for _ in range(5):
        status, body = container.get(customer)
        assert (status, body["error"]["code"]) == (503, "no_approved_model")
    assert container.registry_calls.count("list_model_packages") == 1  # the answer is cached
    for pause in (15, 30, 60, 120, 240, 300, 300):  # each pause doubles, up to the TTL
        calls = container.registry_calls.count("list_model_packages")
        container.clock.now += pause - 0.5
        container.get(customer)
        assert container.registry_calls.count("list_model_packages") == calls  # still backing off
        container.clock.now += 0.5
        container.get(customer)
        assert container.registry_calls.count("list_model_packages") == calls + 1
    register("approved", world)
    container.clock.now += TTL
    assert container.get(customer)[1]["model_version"] == "approved"


def test_an_artifact_whose_bytes_differ_from_the_registered_ones_is_refused(
    world: ServingWorld, container: Container
) -> None:
    register("tampered", world, sha256="0" * 64)
    status, body = container.get(sorted(world.rows)[0])
    assert (status, body["error"]["code"]) == (503, "model_rejected")
    assert "arn:" not in body["error"]["message"]
    assert "s3://" not in body["error"]["message"]
    downloads = container.registry_calls.count("describe_model_package")
    container.clock.now += 1
    assert container.get(sorted(world.rows)[0])[0] == 503
    assert container.registry_calls.count("describe_model_package") == downloads  # refused once, not retried


def test_a_model_of_another_feature_set_version_is_refused(world: ServingWorld, container: Container) -> None:
    register("old-features", world, feature_set_version="churn/1")
    status, body = container.get(sorted(world.rows)[0])
    assert (status, body["error"]["code"]) == (503, "model_rejected")
    register("current", world)
    container.clock.now += TTL + 1
    assert container.get(sorted(world.rows)[0])[1]["model_version"] == "current"
