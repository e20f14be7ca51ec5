"""The visual handler end to end: a catalogue of 40 drawn products, a 1-epoch embedding exported to ONNX and its
faiss index stored in the (moto) lake as the batch-embed step stores them, searched through `lambdas/visual/app.py`."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from shelfwise.bench.visual_world import VisualWorld, prepare_visual_world
from shelfwise.local_api import LocalLambdaContext, load_lambda, proxy_event
from shelfwise.local_aws import local_aws
from shelfwise.visual.index_store import EMBEDDED_POINTER, version_prefix
from shelfwise.visual.requests import MAX_K
from shelfwise.visual.search_store import MODEL_FILE, LakeObjects

RESULT_FIELDS = {"sku", "score", "category", "department", "price", "in_stock", "brand", "colour", "pattern",
                 "image_key"}  # fmt: skip
Answer = tuple[int, dict[str, Any]]


@pytest.fixture(scope="module")
def lake() -> Iterator[LakeObjects]:
    with local_aws() as aws:
        cfg = aws.settings
        s3 = boto3.client("s3", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)
        yield LakeObjects(s3, cfg.lake_bucket, cfg.expected_owner())


@pytest.fixture(scope="module")
def world(lake: LakeObjects) -> VisualWorld:
    return prepare_visual_world(lake)


@pytest.fixture(scope="module")
def app(world: VisualWorld) -> ModuleType:
    return load_lambda("visual", fresh=True)


def call(app: ModuleType, event: dict[str, Any]) -> Answer:
    response = app.handler(event, LocalLambdaContext(function_name="visual-test"))
    assert response["isBase64Encoded"] is False
    return response["statusCode"], json.loads(response["body"])


def json_search(app: ModuleType, payload: Any, content_type: str = "application/json") -> Answer:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return call(app, proxy_event("POST", "/search/visual", headers={"Content-Type": content_type}, body=body))


def binary_search(app: ModuleType, image: bytes, content_type: str, query: list[tuple[str, str]] = ()) -> Answer:  # type: ignore[assignment]
    event = proxy_event("POST", "/search/visual", headers={"Content-Type": content_type}, query=list(query))
    # As API Gateway passes a body whose type is in binaryMediaTypes: always base64.
    event["body"], event["isBase64Encoded"] = base64.b64encode(image).decode(), True
    return call(app, event)


def similar(app: ModuleType, sku: str, query: list[tuple[str, str]] = ()) -> Answer:  # type: ignore[assignment]
    from urllib.parse import quote

    return call(
        app,
        proxy_event(
            "GET",
            f"/products/{quote(sku, safe='')}/similar",
            resource="/products/{sku}/similar",
            path_parameters={"sku": sku},
            query=list(query),
        ),
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_results(body: dict[str, Any], world: VisualWorld, k: int) -> list[dict[str, Any]]:
    assert set(body) == {"results", "model_version", "index_version"}
    assert body["model_version"] == body["index_version"] == world.version
    results: list[dict[str, Any]] = body["results"]
    assert len(results) == k
    for result in results:
        assert set(result) == RESULT_FIELDS
        expected = world.attributes[result["sku"]]
        assert {name: result[name] for name in expected} == expected
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    return results


def assert_error(status: int, body: dict[str, Any], expected_status: int, field: str | None) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["field"] == field, body


def test_a_search_in_a_fresh_interpreter_never_imports_torch(app: ModuleType, world: VisualWorld) -> None:
    """The Lambda bundle has no torch: importing the handler and answering a search must not need it."""
    import subprocess

    from shelfwise.domain import LAMBDAS_DIR, REPO_ROOT

    event = proxy_event("POST", "/search/visual", headers={"Content-Type": "image/png"}, body=world.pngs[world.skus[0]])
    script = (
        "import json, sys; from types import SimpleNamespace; "
        f"sys.path[:0] = [{str(LAMBDAS_DIR / 'visual')!r}, {str(REPO_ROOT)!r}]; import app; "
        "context = SimpleNamespace(function_name='f', memory_limit_in_mb=1024, aws_request_id='r', "
        "invoked_function_arn='arn:aws:lambda:us-east-1:000000000000:function:f'); "
        "answer = app.handler(json.load(sys.stdin), context); "
        "print(json.dumps({'status': answer['statusCode'], 'torch': 'torch' in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(event), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"status": 200, "torch": False}


def test_json_and_binary_searches_find_the_catalogue_image_first_with_the_same_answer(
    app: ModuleType, world: VisualWorld
) -> None:
    sku = world.skus[7]
    status, by_json = json_search(app, {"image": b64(world.pngs[sku]), "k": 5})
    assert status == 200, by_json
    results = assert_results(by_json, world, 5)
    assert results[0]["sku"] == sku
    assert results[0]["score"] == pytest.approx(2.0, abs=1e-5)
    assert results[0]["score"] > results[1]["score"]
    status, by_body = binary_search(app, world.pngs[sku], "image/png", [("k", "5")])
    assert status == 200, by_body
    assert by_body == by_json


def test_every_catalogue_image_finds_itself(app: ModuleType, world: VisualWorld) -> None:
    for sku in world.skus:
        status, body = binary_search(app, world.pngs[sku], "image/png", [("k", "1")])
        assert (status, body["results"][0]["sku"]) == (200, sku), body


def test_a_jpeg_of_a_catalogue_image_finds_it_among_the_first(app: ModuleType, world: VisualWorld) -> None:
    import io

    from PIL import Image

    sku = world.skus[3]
    out = io.BytesIO()
    Image.open(io.BytesIO(world.pngs[sku])).convert("RGB").save(out, format="JPEG", quality=90)
    status, body = binary_search(app, out.getvalue(), "image/jpeg", [("k", "10")])
    assert status == 200, body
    assert sku in [r["sku"] for r in assert_results(body, world, 10)]


def test_filters_are_respected_in_both_forms(app: ModuleType, world: VisualWorld) -> None:
    sku = world.skus[0]
    filters = {"category": "balls", "price_max": 60.0, "in_stock": True}
    passing = [
        s for s, a in world.attributes.items() if a["category"] == "balls" and a["price"] <= 60 and a["in_stock"]
    ]
    k = min(4, len(passing))
    status, by_json = json_search(app, {"image": b64(world.pngs[sku]), "k": k, "filters": filters})
    assert status == 200, by_json
    query = [("k", str(k)), ("category", "balls"), ("price_max", "60"), ("in_stock", "true")]
    status, by_body = binary_search(app, world.pngs[sku], "image/png", query)
    assert status == 200
    assert by_body == by_json
    for result in assert_results(by_json, world, k):
        assert result["sku"] in passing
    status, body = similar(app, sku, query)
    assert status == 200
    assert {r["sku"] for r in assert_results(body, world, k)} <= set(passing)


def test_similar_answers_the_neighbours_without_the_product(app: ModuleType, world: VisualWorld) -> None:
    sku = world.skus[11]
    status, body = similar(app, sku, [("k", "5")])
    assert status == 200, body
    results = assert_results(body, world, 5)
    assert sku not in [r["sku"] for r in results]
    expected = world.index.neighbours(sku, 5)
    assert [r["sku"] for r in results] == [hit.sku for hit in expected]
    status, everything = similar(app, sku, [("k", str(MAX_K))])
    assert status == 200
    assert len(everything["results"]) == len(world.skus) - 1


def test_unknown_sku_is_404(app: ModuleType) -> None:
    status, body = similar(app, "SKU99999")
    assert_error(status, body, 404, "sku")
    assert body["error"]["code"] == "product_not_found"


@pytest.mark.parametrize("k", [0, MAX_K + 1, -1])
def test_k_out_of_range_is_400_or_422_naming_k(app: ModuleType, world: VisualWorld, k: int) -> None:
    image = world.pngs[world.skus[0]]
    assert_error(*binary_search(app, image, "image/png", [("k", str(k))]), 400, "k")
    assert_error(*similar(app, world.skus[0], [("k", str(k))]), 400, "k")
    assert_error(*json_search(app, {"image": b64(image), "k": k}), 422, "k")


def test_wrong_content_types_are_415(app: ModuleType, world: VisualWorld) -> None:
    image = world.pngs[world.skus[0]]
    assert_error(*binary_search(app, image, "text/plain"), 415, "Content-Type")
    assert_error(*binary_search(app, image, "image/gif"), 415, "Content-Type")
    # A PNG sent as a JPEG: the file's own type decides, and the mismatch is named.
    status, body = binary_search(app, image, "image/jpeg")
    assert_error(status, body, 415, "image")
    assert body["error"]["code"] == "content_type_mismatch"


def test_broken_images_are_4xx_naming_the_image(app: ModuleType, world: VisualWorld) -> None:
    png = world.pngs[world.skus[0]]
    for data, code in (
        (png[: len(png) // 2], "corrupt_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 200, "corrupt_image"),
        (b"this is not an image at all", "not_an_image"),
        (b"GIF89a" + b"\0" * 100, "unsupported_format"),
    ):
        status, body = binary_search(app, data, "image/png")
        assert 400 <= status < 500, (code, body)
        assert body["error"]["field"] in ("image", "Content-Type"), (code, body)
        status, body = json_search(app, {"image": b64(data)})
        assert 400 <= status < 500, body
        assert (body["error"]["code"], body["error"]["field"]) == (code, "image"), body


def test_malformed_json_and_base64_are_4xx(app: ModuleType) -> None:
    assert_error(*json_search(app, "{not json"), 400, "body")
    assert_error(*json_search(app, {"image": "***"}), 400, "image")
    assert_error(*json_search(app, {"image": "aGk=", "extra": 1}), 422, "extra")


def test_oversized_bodies_are_413(app: ModuleType) -> None:
    huge = b"\xff\xd8\xff" + b"\0" * (6 * 1024 * 1024)
    status, body = binary_search(app, huge, "image/jpeg")
    assert (status, body["error"]["code"]) == (413, "payload_too_large"), body
    status, body = json_search(app, {"image": "A" * (7 * 1024 * 1024)})
    assert status == 413, body


def test_other_routes_keep_the_shared_json_body_checks(app: ModuleType, world: VisualWorld) -> None:
    """Only POST /search/visual reads its own body: a body elsewhere is still refused by the shared checks."""
    event = proxy_event(
        "GET",
        f"/products/{world.skus[0]}/similar",
        resource="/products/{sku}/similar",
        path_parameters={"sku": world.skus[0]},
        headers={"Content-Type": "image/png"},
        body=world.pngs[world.skus[0]],
    )
    status, body = call(app, event)
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type"), body


def test_no_index_published_is_503_then_served_once_published(lake: LakeObjects, world: VisualWorld) -> None:
    lake.s3.delete_object(Bucket=lake.bucket, Key=EMBEDDED_POINTER)
    try:
        fresh = load_lambda("visual", fresh=True)
        status, body = similar(fresh, world.skus[0])
        assert (status, body["error"]["code"]) == (503, "index_unavailable"), body
        assert "models/" not in body["error"]["message"]
    finally:
        lake.put_bytes(EMBEDDED_POINTER, json.dumps({"version": world.version, "previous": None}).encode())
    status, _ = similar(fresh, world.skus[0])
    assert status == 200


def test_a_tampered_model_is_refused_with_503(lake: LakeObjects, world: VisualWorld) -> None:
    key = version_prefix(world.version) + MODEL_FILE
    lake.put_bytes(key, world.model + b"\0")
    try:
        fresh = load_lambda("visual", fresh=True)
        status, body = binary_search(fresh, world.pngs[world.skus[0]], "image/png")
        assert (status, body["error"]["code"]) == (503, "model_unavailable"), body
        assert similar(fresh, world.skus[0])[0] == 200  # the similar route needs no model
    finally:
        lake.put_bytes(key, world.model)
