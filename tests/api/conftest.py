"""A local AWS with a registered churn model and a populated online store, for the API server and store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shelfwise.bench.serving import ServingWorld, prepare_serving_world
from shelfwise.local_aws import LocalAws, local_aws


@pytest.fixture(scope="package")
def aws() -> Iterator[LocalAws]:
    with local_aws() as running:
        yield running


@pytest.fixture(scope="package")
def world(aws: LocalAws) -> ServingWorld:
    return prepare_serving_world(aws.settings, customers=100, cold=2, trees=20, depth=3, model_version="v-api")
