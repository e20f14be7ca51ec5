"""The requests of the visual search routes, read from what API Gateway passes a proxy Lambda.

POST /search/visual        JSON `{"image": <base64>, "k": 10, "filters": {...}}`, or the image itself as the body
                           (image/jpeg, image/png, image/webp; API Gateway base64-encodes it, `isBase64Encoded`)
                           with `k` and the filters as query parameters
GET  /products/{sku}/similar?k=...&category=...   the same `k` and filters

Pure: the handler passes the event's body, flag, Content-Type and query, and gets a frozen request or a
`RequestError` naming the field. The statuses follow the demand API: 422 for a JSON body the model refuses, 400 for a
query or path parameter or a body that cannot be read, 413 for a body too large to hold an image, 415 for a content
type the route does not take. The image bytes are decoded later (`shelfwise.visual.images.decode_image`).

Base64 in the JSON `image` field: every spelling with exactly one reading is accepted, because refusing it would only
break clients: standard or URL-safe alphabet (not mixed), padded or not, wrapped in whitespace (MIME and `base64`
wrap at 76 columns), and a data URL (`data:image/png;base64,...`, what a browser's FileReader gives; its type is then
checked against the file). Characters outside the alphabet, padding in the middle or a length no encoder writes are
refused. The binary body's base64 is API Gateway's own, so it is read strictly.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Annotated, Final
from urllib.parse import unquote

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from shelfwise.api import ApiError
from shelfwise.demand.keys import checked_id
from shelfwise.visual.images import DEFAULT_LIMITS, MEDIA_TYPES, ImageError, ImageLimits

MAX_K: Final = 50
DEFAULT_K: Final = 10
JSON_TYPE: Final = "application/json"
#: Control characters, invisible format characters, lone surrogates and line separators: no SKU or category holds
#: them (the demand API's rule for ids).
_BASE64_WHITESPACE: Final = str.maketrans("", "", " \t\r\n")
_URLSAFE: Final = str.maketrans("-_", "+/")


class RequestError(Exception):
    """A request the route refuses; `field` names the part at fault, `message` is shown to the client."""

    def __init__(
        self,
        field: str,
        message: str,
        status: HTTPStatus = HTTPStatus.BAD_REQUEST,
        code: str = "invalid_parameter",
    ) -> None:
        super().__init__(message)
        self.field, self.message, self.status, self.code = field, message, status, code


# ---- the models -----------------------------------------------------------------------------------------------


def _checked_label(value: str, info: ValidationInfo) -> str:
    return checked_id(str(info.field_name), value)


Label = Annotated[str, AfterValidator(_checked_label)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"How many products to return, 1-{MAX_K}.")]
_K: Final = TypeAdapter(K, config=ConfigDict(strict=True))


class SearchFilters(BaseModel):
    """What the results must match; a filter left out matches everything."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    category: Label | None = None
    department: Label | None = None
    price_min: Price | None = Field(None, description="Lowest price, inclusive.")
    price_max: Price | None = Field(None, description="Highest price, inclusive; at least price_min.")
    in_stock: bool | None = Field(None, description="Only products in stock (true) or out of stock (false).")

    @field_validator("price_max")
    @classmethod
    def _at_least_price_min(cls, price_max: float | None, info: ValidationInfo) -> float | None:
        price_min = info.data.get("price_min")
        if price_max is not None and price_min is not None and price_max < price_min:
            raise ValueError(f"price_max ({price_max:g}) is below price_min ({price_min:g})")
        return price_max


class VisualSearchBody(BaseModel):
    """The JSON form of POST /search/visual."""

    model_config = ConfigDict(extra="forbid", strict=True)
    image: str = Field(min_length=1, description="The image file (JPEG, PNG or WEBP), base64; a data URL is fine.")
    k: K = DEFAULT_K
    filters: SearchFilters = Field(default_factory=SearchFilters)


class VisualSearchRequest(BaseModel):
    """A search as read: the image file's bytes (not yet decoded), its declared type, k and the filters."""

    model_config = ConfigDict(frozen=True)
    image: bytes = Field(repr=False)
    #: The image's declared media type (the body's Content-Type, or a data URL's); None when nothing declares one.
    content_type: str | None
    k: int
    filters: SearchFilters


# ---- POST /search/visual --------------------------------------------------------------------------------------


def max_body_chars(limits: ImageLimits) -> int:
    """The longest body that can hold an image within the limits: base64 of the largest image wrapped at 76
    columns with CRLF (4 characters in a JSON string), and 4 KiB for the rest of the JSON. With the default limits
    5,890,844 characters, under the 6 MiB a Lambda invocation carries."""
    encoded = 4 * -(-limits.max_bytes // 3)
    return encoded + 4 * (encoded // 76 + 1) + 4096


def parse_visual_search(
    event_body: str | None,
    is_base64: bool,
    content_type: str | None,
    query: Mapping[str, str] | None,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> VisualSearchRequest:
    """The request in the event's body (`body`, `isBase64Encoded`, the Content-Type header, the query string);
    RequestError naming the field otherwise."""
    query = query or {}
    media_type = (content_type or JSON_TYPE).split(";", 1)[0].strip().lower()
    if media_type not in (JSON_TYPE, *MEDIA_TYPES):
        raise RequestError(
            "Content-Type",
            f"send application/json, image/jpeg, image/png or image/webp, not {media_type[:60]!r}",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
    if not event_body:
        raise RequestError("body", "the request has no body: send an image", code="missing_body")
    if len(event_body) > max_body_chars(limits) * (4 / 3 if is_base64 else 1):
        raise RequestError(
            "body",
            f"the body exceeds what an image of {limits.max_bytes:,} bytes needs",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "payload_too_large",
        )
    if media_type == JSON_TYPE:
        return _json_request(_body_text(event_body, is_base64), query)
    k, filters = parse_query(query)
    return VisualSearchRequest(image=_body_bytes(event_body, is_base64), content_type=media_type, k=k, filters=filters)


def _body_text(event_body: str, is_base64: bool) -> str:
    if not is_base64:
        return event_body
    try:
        return base64.b64decode(event_body, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, a character outside ASCII, or UnicodeDecodeError
        raise RequestError("body", "the body is not valid base64-encoded UTF-8", code="malformed_body") from None


def _body_bytes(event_body: str, is_base64: bool) -> bytes:
    """The binary body's bytes. Without the base64 flag the body came as text, which happens for exactly the bytes
    that are valid UTF-8 (the local API; API Gateway without the image types in `binaryMediaTypes` would have
    mangled it, which the image decoder then refuses): encoding it back gives the bytes sent."""
    try:
        return base64.b64decode(event_body, validate=True) if is_base64 else event_body.encode("utf-8")
    except ValueError:  # binascii.Error, a character outside ASCII, or UnicodeEncodeError (lone surrogates)
        raise RequestError("body", "the body is not valid base64", code="malformed_body") from None


def _json_request(text: str, query: Mapping[str, str]) -> VisualSearchRequest:
    if query:
        raise RequestError(
            sorted(query)[0] or "query", "with a JSON body, k and the filters go in the body, not in the query string"
        )
    try:
        payload = json.loads(text)
    # ValueError covers JSONDecodeError and integers beyond Python's digit limit; RecursionError deep nesting.
    except (ValueError, RecursionError):
        raise RequestError("body", "the request body is not valid JSON", code="malformed_json") from None
    if not isinstance(payload, dict):
        raise RequestError("body", "body: must be a JSON object", HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_request")
    try:
        body = VisualSearchBody.model_validate(payload)
    except ValidationError as error:
        raise _refused(error, status=HTTPStatus.UNPROCESSABLE_ENTITY, code="invalid_request") from None
    image, declared = decode_base64_image(body.image)
    return VisualSearchRequest(image=image, content_type=declared, k=body.k, filters=body.filters)


def decode_base64_image(text: str) -> tuple[bytes, str | None]:
    """The bytes of the JSON `image` field and the media type a data URL declares (module doc: what is accepted)."""
    declared = None
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise _malformed_image("a data URL must be base64: data:image/png;base64,...")
        declared = header[len("data:") :].split(";", 1)[0] or None
    data = text.translate(_BASE64_WHITESPACE)
    if "-" in data or "_" in data:
        if "+" in data or "/" in data:
            raise _malformed_image("the image mixes the standard and URL-safe base64 alphabets")
        data = data.translate(_URLSAFE)
    core = data.rstrip("=")
    padding, needed = len(data) - len(core), -len(core) % 4
    if len(core) % 4 == 1 or padding not in (0, needed) or "=" in core:
        raise _malformed_image("the image is not valid base64 (its length or padding is wrong)")
    try:
        return base64.b64decode(core + "=" * needed, validate=True), declared
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise _malformed_image("the image is not valid base64") from None


def _malformed_image(message: str) -> RequestError:
    return RequestError("image", message, code="malformed_image")


# ---- query strings and paths ----------------------------------------------------------------------------------


def parse_query(query: Mapping[str, str]) -> tuple[int, SearchFilters]:
    """`k` and the filters from the query string, each parameter read as its JSON counterpart would be."""
    rest = dict(query)
    raw_k = rest.pop("k", None)
    try:
        k = DEFAULT_K if raw_k is None else _K.validate_strings(raw_k)
    except ValidationError as error:
        raise _refused(error, status=HTTPStatus.BAD_REQUEST, code="invalid_parameter", field="k") from None
    try:
        return k, SearchFilters.model_validate_strings(rest)
    except ValidationError as error:
        raise _refused(error, status=HTTPStatus.BAD_REQUEST, code="invalid_parameter", fallback="query") from None


def parse_similar(sku_path_param: str, query: Mapping[str, str] | None) -> tuple[str, int, SearchFilters]:
    """(sku, k, filters) of GET /products/{sku}/similar. `sku_path_param` is the path parameter as Powertools passes
    it, percent-encoded (API Gateway decodes only `pathParameters`); a SKU is any 1-60 visible characters, as in
    the demand API (the world's are `SKU00042`, a retailer's may be `85123A`)."""
    try:
        sku = unquote(sku_path_param, errors="strict")
        checked_id("sku", sku)
    except UnicodeDecodeError:
        raise RequestError("sku", "sku is not percent-encoded UTF-8") from None
    except ValueError as error:
        raise RequestError("sku", str(error)) from None
    k, filters = parse_query(query or {})
    return sku, k, filters


# ---- refusals as API answers ----------------------------------------------------------------------------------


def _refused(
    error: ValidationError, *, status: HTTPStatus, code: str, field: str | None = None, fallback: str = "body"
) -> RequestError:
    """The first problem pydantic found, named by its dotted field path (`filters.price_max`) as the shared API's
    validation answers are, or by `field` for a single value; `fallback` when the location is empty (the whole
    body, or a query parameter without a name)."""
    problems = error.errors()
    first = problems[0]
    field = field or ".".join(str(part) for part in first["loc"]) or fallback
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return RequestError(field, f"{field}: {first['msg'].removeprefix('Value error, ')}{more}", status, code)


def refusal(error: Exception) -> ApiError:
    """The API's answer to a refused request or image; an image's problems are the `image` field's."""
    if isinstance(error, RequestError):
        return ApiError(error.status, error.code, error.message, error.field)
    if isinstance(error, ImageError):
        return ApiError(error.status, error.code, error.message, "image")
    raise TypeError(f"not a refusal: {type(error).__name__}")


#: The refusals of the visual routes and their answers, for `shelfwise.api.build_resolver(domain_errors=...)`.
DOMAIN_ERRORS: tuple[tuple[type[Exception], Callable[[Exception], ApiError]], ...] = (
    (RequestError, refusal),
    (ImageError, refusal),
)
