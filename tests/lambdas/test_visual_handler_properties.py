"""Property tests: whatever a client sends the visual search handler (bodies, content types, query strings, SKUs,
methods and paths), it answers 200 or a 4xx JSON error naming a field, never a 5xx."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelfwise.bench.visual_world import VisualWorld, prepare_visual_world
from shelfwise.local_api import LocalLambdaContext, load_lambda, proxy_event
from shelfwise.local_aws import LocalAws, local_aws
from shelfwise.visual.domain import QUERY_PARAMETERS
from shelfwise.visual.search_store import LakeObjects

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=5),
    max_leaves=20,
)
content_types = st.none() | st.sampled_from(
    ["application/json", "image/png", "image/jpeg", "image/webp", "image/gif", "text/plain", "multipart/form-data",
     "application/x-www-form-urlencoded", "image/png; charset=binary", "IMAGE/PNG"]
) | st.text(max_size=30)  # fmt: skip
query_values = st.sampled_from(["", "0", "1", "51", "-3", "1e3", "NaN", "true", "balls", "yes", "\u202e", "%ff"])
queries = st.lists(
    st.tuples(st.sampled_from(QUERY_PARAMETERS) | st.text(max_size=8), query_values | st.text(max_size=12)),
    max_size=4,
)


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    """A local AWS of this module's own: other modules reset moto's process-wide state when theirs stop."""
    with local_aws() as running:
        yield running


@pytest.fixture(scope="module")
def world(aws: LocalAws) -> VisualWorld:
    cfg = aws.settings
    s3 = boto3.client("s3", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)
    return prepare_visual_world(LakeObjects(s3, cfg.lake_bucket, cfg.expected_owner()))


@pytest.fixture(scope="module")
def visual(world: VisualWorld) -> ModuleType:
    return load_lambda("visual", fresh=True)


def answer(visual: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = visual.handler(event, LocalLambdaContext(function_name="visual-properties"))
    body = json.loads(response["body"])
    status = response["statusCode"]
    if status == 200:
        assert set(body) == {"results", "model_version", "index_version"} or "openapi" in body, body
    else:
        assert 400 <= status < 500, (status, body)
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message", "field"}, body
        assert body["error"]["message"]
    return status, body


def search_event(body: bytes | str | None, content_type: str | None, query: list[tuple[str, str]]) -> dict[str, Any]:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return proxy_event("POST", "/search/visual", headers=headers, query=query, body=body)


@SETTINGS
@given(body=st.binary(max_size=400) | st.text(max_size=400), content_type=content_types, query=queries)
def test_arbitrary_bodies_content_types_and_queries_never_5xx(
    visual: ModuleType, body: bytes | str, content_type: str | None, query: list[tuple[str, str]]
) -> None:
    answer(visual, search_event(body, content_type, query))


@SETTINGS
@given(payload=json_values)
def test_any_json_value_is_a_4xx(visual: ModuleType, payload: Any) -> None:
    status, _ = answer(visual, search_event(json.dumps(payload), "application/json", []))
    assert status != 200


@SETTINGS
@given(
    image=st.sampled_from(["good", "truncated", "garbage", "empty"]),
    k=json_values,
    filters=json_values | st.fixed_dictionaries({}, optional=dict.fromkeys(QUERY_PARAMETERS[1:], json_values)),
)
def test_json_searches_with_arbitrary_k_and_filters_never_5xx(
    visual: ModuleType, world: VisualWorld, image: str, k: Any, filters: Any
) -> None:
    png = world.pngs[world.skus[0]]
    data = {"good": png, "truncated": png[: len(png) // 3], "garbage": b"\x00garbage", "empty": b""}[image]
    payload = {"image": base64.b64encode(data).decode(), "k": k, "filters": filters}
    status, body = answer(visual, search_event(json.dumps(payload), "application/json", []))
    if status == 200:
        assert image == "good"
        assert 1 <= len(body["results"]) <= 50


@SETTINGS
@given(image=st.sampled_from(["good", "truncated"]), content_type=content_types, query=queries)
def test_binary_images_with_arbitrary_types_and_queries_never_5xx(
    visual: ModuleType, world: VisualWorld, image: str, content_type: str | None, query: list[tuple[str, str]]
) -> None:
    png = world.pngs[world.skus[1]]
    event = search_event(None, content_type, query)
    event["body"] = base64.b64encode(png if image == "good" else png[:200]).decode()
    event["isBase64Encoded"] = True
    answer(visual, event)


@SETTINGS
@given(sku=st.text(max_size=80) | st.sampled_from(["SKU00001", "SKU00002"]), query=queries)
def test_any_sku_and_query_on_similar_is_an_answer_or_a_4xx(
    visual: ModuleType, world: VisualWorld, sku: str, query: list[tuple[str, str]]
) -> None:
    from urllib.parse import quote

    path = f"/products/{quote(sku, safe='')}/similar"
    event = proxy_event("GET", path, resource="/products/{sku}/similar", path_parameters={"sku": sku}, query=query)
    status, body = answer(visual, event)
    if status == 200:
        assert sku in world.skus
        assert sku not in [r["sku"] for r in body["results"]]


@SETTINGS
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    path=st.sampled_from(["/search/visual", "/products/SKU00001/similar", "/visual/swagger"]) | st.text(max_size=40),
    body=st.none() | st.binary(max_size=100),
    query=queries,
)
def test_arbitrary_methods_and_paths_never_5xx(
    visual: ModuleType, method: str, path: str, body: bytes | None, query: list[tuple[str, str]]
) -> None:
    event = proxy_event(method, path if path.startswith("/") else "/" + path, query=query, body=body)
    response = visual.handler(event, LocalLambdaContext(function_name="visual-properties"))
    assert response["statusCode"] < 500, response
