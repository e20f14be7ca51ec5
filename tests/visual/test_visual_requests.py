"""The visual search routes' requests: both forms of POST /search/visual, GET /products/{sku}/similar, the base64
spellings accepted and refused, and fuzzed bodies and queries that only ever give a RequestError."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from shelfwise.api import error_response
from shelfwise.visual.images import MAX_IMAGE_BYTES, ImageError, ImageLimits, NotAnImageError, decode_image
from shelfwise.visual.requests import (
    MAX_K,
    RequestError,
    SearchFilters,
    VisualSearchRequest,
    decode_base64_image,
    max_body_chars,
    parse_similar,
    parse_visual_search,
    refusal,
)

JSON = "application/json"


def png(width: int = 40, height: int = 36) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


PNG = png()
PNG_B64 = base64.b64encode(PNG).decode()


def json_search(payload: Any, query: dict[str, str] | None = None) -> VisualSearchRequest:
    return parse_visual_search(json.dumps(payload), False, JSON, query or {})


def refused(call: Any, *args: Any) -> RequestError:
    with pytest.raises(RequestError) as error:
        call(*args)
    return error.value


# ---- the JSON form --------------------------------------------------------------------------------------------


def test_a_json_search_reads_image_k_and_filters() -> None:
    filters = {"category": "shirts", "department": "fashion", "price_min": 5, "price_max": 20.5, "in_stock": True}
    request = json_search({"image": PNG_B64, "k": 7, "filters": filters})
    assert request.image == PNG
    assert request.content_type is None
    assert request.k == 7
    assert request.filters == SearchFilters(**filters)
    assert decode_image(request.image, request.content_type).size == (40, 36)


def test_defaults_are_ten_results_and_no_filters() -> None:
    request = json_search({"image": PNG_B64})
    assert request.k == 10
    assert request.filters.model_dump() == dict.fromkeys(
        ["category", "department", "price_min", "price_max", "in_stock"]
    )


def test_the_filters_are_exactly_the_five_fields() -> None:
    assert list(SearchFilters.model_fields) == ["category", "department", "price_min", "price_max", "in_stock"]


def test_the_request_is_frozen_and_does_not_print_the_image() -> None:
    request = json_search({"image": PNG_B64})
    with pytest.raises(ValidationError):
        request.k = 3  # type: ignore[misc]
    assert "PNG" not in repr(request)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"image": PNG_B64, "k": 0}, "k"),
        ({"image": PNG_B64, "k": MAX_K + 1}, "k"),
        ({"image": PNG_B64, "k": "5"}, "k"),
        ({"image": PNG_B64, "k": 5.0}, "k"),
        ({"image": PNG_B64, "k": True}, "k"),
        ({"k": 5}, "image"),
        ({"image": ""}, "image"),
        ({"image": 12}, "image"),
        ({"image": PNG_B64, "colour": "red"}, "colour"),
        ({"image": PNG_B64, "filters": {"colour": "red"}}, "filters.colour"),
        ({"image": PNG_B64, "filters": {"price_min": -1}}, "filters.price_min"),
        ({"image": PNG_B64, "filters": {"price_min": "5"}}, "filters.price_min"),
        ({"image": PNG_B64, "filters": {"price_min": 10, "price_max": 5}}, "filters.price_max"),
        ({"image": PNG_B64, "filters": {"in_stock": "yes"}}, "filters.in_stock"),
        ({"image": PNG_B64, "filters": {"category": ""}}, "filters.category"),
        ({"image": PNG_B64, "filters": {"category": "x" * 61}}, "filters.category"),
        ({"image": PNG_B64, "filters": {"department": "food\u202e"}}, "filters.department"),
        ({"image": PNG_B64, "filters": []}, "filters"),
        ([PNG_B64], "body"),
        ("just a string", "body"),
    ],
)
def test_a_json_body_the_model_refuses_is_a_422_naming_the_field(payload: Any, field: str) -> None:
    error = refused(json_search, payload)
    assert (error.field, error.status, error.code) == (field, 422, "invalid_request")
    assert error.message.startswith(f"{field}: ")


def test_a_price_range_of_one_price_is_fine() -> None:
    assert json_search({"image": PNG_B64, "filters": {"price_min": 5, "price_max": 5}}).filters.price_max == 5


def test_query_parameters_beside_a_json_body_are_refused() -> None:
    error = refused(json_search, {"image": PNG_B64}, {"k": "3"})
    assert (error.field, error.status) == ("k", 400)


@pytest.mark.parametrize("body", ["{", "", "{'image': 1}", "[" * 100_000])
def test_a_body_that_is_not_json_is_refused(body: str) -> None:
    error = refused(parse_visual_search, body, False, JSON, {})
    assert error.field == "body"
    assert error.status == 400


def test_a_base64_encoded_json_body_is_read() -> None:
    body = base64.b64encode(json.dumps({"image": PNG_B64, "k": 4}).encode()).decode()
    assert parse_visual_search(body, True, "application/json; charset=utf-8", None).k == 4
    assert refused(parse_visual_search, "not base64!", True, JSON, None).code == "malformed_body"


def test_no_content_type_means_json() -> None:
    assert parse_visual_search(json.dumps({"image": PNG_B64}), False, None, None).image == PNG


# ---- base64 in the JSON image field: what is accepted ---------------------------------------------------------

SPELLINGS = {
    "standard": PNG_B64,
    "unpadded": PNG_B64.rstrip("="),
    "urlsafe": base64.urlsafe_b64encode(PNG).decode(),
    "urlsafe-unpadded": base64.urlsafe_b64encode(PNG).decode().rstrip("="),
    "mime-wrapped": base64.encodebytes(PNG).decode().replace("\n", "\r\n"),
    "cli-wrapped": base64.encodebytes(PNG).decode(),
    "spaces": " ".join(PNG_B64[i : i + 10] for i in range(0, len(PNG_B64), 10)),
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_unambiguous_base64_spelling_gives_the_same_bytes(spelling: str) -> None:
    assert PNG_B64.endswith("=")  # so that "unpadded" differs from "standard"
    assert json_search({"image": SPELLINGS[spelling]}).image == PNG


def test_a_data_url_gives_the_bytes_and_its_declared_type() -> None:
    request = json_search({"image": f"data:image/png;base64,{PNG_B64}"})
    assert (request.image, request.content_type) == (PNG, "image/png")


def test_a_data_url_declaring_the_wrong_type_is_refused_by_the_decoder() -> None:
    request = json_search({"image": f"data:image/jpeg;base64,{PNG_B64}"})
    with pytest.raises(ImageError) as error:
        decode_image(request.image, request.content_type)
    assert error.value.code == "content_type_mismatch"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("QUJD+/-_", "mixes"),
        ("QUJDR", "length"),
        ("QUJD====", "padding"),
        ("QU==QUJD", "padding"),
        ("QUJ*", "not valid base64"),
        ("QUJé", "not valid base64"),
        ("data:image/png,QUJD", "data URL"),
        ("data:image/png;base64", "data URL"),
    ],
)
def test_base64_without_a_single_reading_is_refused(text: str, why: str) -> None:
    error = refused(decode_base64_image, text)
    assert (error.field, error.status, error.code) == ("image", 400, "malformed_image")
    assert why in error.message


def test_a_valid_base64_of_something_else_reaches_the_decoder() -> None:
    request = json_search({"image": base64.b64encode(b"<html></html>").decode()})
    with pytest.raises(NotAnImageError):
        decode_image(request.image, request.content_type)


# ---- the binary form ------------------------------------------------------------------------------------------


def test_a_binary_body_reads_k_and_filters_from_the_query() -> None:
    query = {"k": "5", "category": "shirts", "price_min": "1.5", "price_max": "30", "in_stock": "false"}
    request = parse_visual_search(PNG_B64, True, "image/png", query)
    assert request.image == PNG
    assert request.content_type == "image/png"
    assert request.k == 5
    assert request.filters == SearchFilters(category="shirts", price_min=1.5, price_max=30.0, in_stock=False)


def test_a_binary_body_that_came_as_text_is_read_back_to_its_bytes() -> None:
    """The local API passes bodies that are valid UTF-8 as text."""
    data = "RIFFé\x00\x00WEBPVP8 rest".encode()
    request = parse_visual_search(data.decode(), False, "image/jpeg", {})
    assert request.image == data


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"k": "0"}, "k"),
        ({"k": "51"}, "k"),
        ({"k": "ten"}, "k"),
        ({"k": "2.5"}, "k"),
        ({"k": ""}, "k"),
        ({"colour": "red"}, "colour"),
        ({"filters": "{}"}, "filters"),
        ({"price_min": "-0.5"}, "price_min"),
        ({"price_min": "nan"}, "price_min"),
        ({"price_max": "inf"}, "price_max"),
        ({"price_min": "9", "price_max": "3"}, "price_max"),
        ({"in_stock": "maybe"}, "in_stock"),
        ({"category": ""}, "category"),
    ],
)
def test_a_query_parameter_that_cannot_be_read_is_a_400_naming_it(query: dict[str, str], field: str) -> None:
    error = refused(parse_visual_search, PNG_B64, True, "image/png", query)
    assert (error.field, error.status, error.code) == (field, 400, "invalid_parameter")


def test_api_gateways_base64_is_read_strictly() -> None:
    error = refused(parse_visual_search, SPELLINGS["mime-wrapped"], True, "image/png", {})
    assert (error.field, error.code) == ("body", "malformed_body")


@pytest.mark.parametrize("content_type", ["text/plain", "image/gif", "multipart/form-data; boundary=x", "image/jpg"])
def test_a_content_type_the_route_does_not_take_is_a_415(content_type: str) -> None:
    error = refused(parse_visual_search, PNG_B64, True, content_type, {})
    assert (error.field, error.status, error.code) == ("Content-Type", 415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", [JSON, "image/png"])
def test_an_empty_body_is_refused(content_type: str) -> None:
    for body in (None, ""):
        assert refused(parse_visual_search, body, False, content_type, {}).code == "missing_body"


def test_a_body_beyond_the_largest_image_is_a_413_before_decoding() -> None:
    limits = ImageLimits(max_bytes=3_000)
    fits = base64.b64encode(b"\x00" * 3_000).decode()
    assert parse_visual_search(fits, True, "image/png", {}, limits).image == b"\x00" * 3_000
    too_long = "A" * (int(max_body_chars(limits) * 4 / 3) + 4)
    error = refused(parse_visual_search, too_long, True, "image/png", {}, limits)
    assert (error.status, error.code) == (413, "payload_too_large")


def test_the_largest_image_fits_the_body_limit_in_every_accepted_spelling() -> None:
    largest = base64.encodebytes(b"\x00" * MAX_IMAGE_BYTES).decode().replace("\n", "\r\n")
    body = json.dumps({"image": largest, "k": 50, "filters": {"category": "x" * 60, "department": "y" * 60}})
    assert len(body) <= max_body_chars(ImageLimits())
    assert json_search(json.loads(body)).image == b"\x00" * MAX_IMAGE_BYTES


# ---- GET /products/{sku}/similar ------------------------------------------------------------------------------


def test_similar_reads_the_sku_k_and_filters() -> None:
    sku, k, filters = parse_similar("SKU00042", {"k": "3", "department": "fashion"})
    assert (sku, k, filters) == ("SKU00042", 3, SearchFilters(department="fashion"))
    assert parse_similar("85123A", None)[:2] == ("85123A", 10)


def test_similar_decodes_a_percent_encoded_sku() -> None:
    assert parse_similar("CAF%C3%89%20%231", {})[0] == "CAFÉ #1"


@pytest.mark.parametrize("sku", ["", "x" * 61, "%FF", "SKU%00", "SKU%E2%80%8B1", "A%0AB"])
def test_a_malformed_sku_is_a_400_naming_it(sku: str) -> None:
    error = refused(parse_similar, sku, {})
    assert (error.field, error.status, error.code) == ("sku", 400, "invalid_parameter")


def test_similar_refuses_a_bad_k_by_name() -> None:
    assert refused(parse_similar, "SKU00001", {"k": "99"}).field == "k"


# ---- refusals as the API's error shape ------------------------------------------------------------------------


def test_refusals_become_the_apis_error_shape_with_the_field() -> None:
    answer = error_response(refusal(refused(json_search, {"image": PNG_B64, "k": 0})))
    assert answer.status_code == 422
    assert json.loads(str(answer.body))["error"] == {
        "code": "invalid_request",
        "message": "k: Input should be greater than or equal to 1",
        "field": "k",
    }
    with pytest.raises(ImageError) as image_error:
        decode_image(b"GIF89a" + b"\x00" * 40, None)
    answer = error_response(refusal(image_error.value))
    assert answer.status_code == 415
    assert json.loads(str(answer.body))["error"]["field"] == "image"


# ---- fuzzing: anything a client sends gives a request or a RequestError ---------------------------------------

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=15,
)
names = st.sampled_from(["k", "category", "department", "price_min", "price_max", "in_stock"]) | st.text(max_size=8)
queries = st.dictionaries(names, st.text(max_size=12), max_size=4)
content_types = st.sampled_from([None, JSON, "image/png", "image/jpeg", "image/webp", "text/html"]) | st.text(
    max_size=20
)


def outcome(call: Any, *args: Any) -> tuple[Any, Exception | None]:
    """What `call` returns, or the RequestError or ImageError it raises; anything else fails the test."""
    try:
        return call(*args), None
    except (RequestError, ImageError) as error:
        return None, error


def assert_parses_or_refuses(body: str | None, is_base64: bool, content_type: str | None, query: Any) -> None:
    """A request whose image decodes or is refused with a 4xx, or a RequestError naming a field with a 4xx."""
    request, error = outcome(parse_visual_search, body, is_base64, content_type, query)
    if isinstance(error, RequestError):
        assert error.status in (400, 413, 415, 422)
        assert error.field
        return
    assert 1 <= request.k <= MAX_K
    _, image_error = outcome(decode_image, request.image, request.content_type)
    assert image_error is None or 400 <= image_error.status < 500  # type: ignore[attr-defined]


@FUZZ
@given(payload=json_values, query=queries)
def test_any_json_value_is_read_or_refused(payload: Any, query: dict[str, str]) -> None:
    assert_parses_or_refuses(json.dumps(payload), False, JSON, query)


@FUZZ
@given(
    image=st.sampled_from([PNG_B64, "", "QUJD", "data:image/png;base64," + PNG_B64]) | st.text(max_size=40),
    k=json_values,
    filters=st.dictionaries(names, json_values, max_size=4) | json_values,
)
def test_any_search_shaped_json_is_read_or_refused(image: str, k: Any, filters: Any) -> None:
    assert_parses_or_refuses(json.dumps({"image": image, "k": k, "filters": filters}), False, JSON, {})


@FUZZ
@given(body=st.text(max_size=200) | st.none(), is_base64=st.booleans(), content_type=content_types, query=queries)
def test_any_body_content_type_and_query_is_read_or_refused(
    body: str | None, is_base64: bool, content_type: str | None, query: dict[str, str]
) -> None:
    assert_parses_or_refuses(body, is_base64, content_type, query)


@FUZZ
@given(sku=st.text(max_size=70), query=queries)
def test_any_sku_and_query_for_similar_is_read_or_refused(sku: str, query: dict[str, str]) -> None:
    answer, error = outcome(parse_similar, sku, query)
    if isinstance(error, RequestError):
        assert error.field in {"sku", "k", "query", *query}
        assert error.status == 400
        return
    found, k, _ = answer
    assert 0 < len(found) <= 60
    assert 1 <= k <= MAX_K
