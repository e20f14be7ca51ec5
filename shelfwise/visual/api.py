"""The visual search routes (a Powertools `Router`) and what they answer.

POST /search/visual                 products that look like an image: JSON `{"image": <base64>, "k", "filters"}` or
                                    the image itself (image/jpeg, image/png, image/webp) with `k` and the filters in
                                    the query string (`shelfwise.visual.requests`)
GET  /products/{sku}/similar?k=...  the products closest to the stored vector of `sku`, the product left out
GET  /visual/swagger                Swagger UI (`?format=json`: the OpenAPI document)

Both answer `{"results": [{"sku", "score", <attributes>, "image_key"}], "model_version", "index_version"}`, closest
first, with `k` results (fewer only if fewer products pass the filters). The search's embedding is computed here, by
the exported model in ONNX Runtime (`shelfwise.visual.query_embedder`); the similar route makes no model call.

Client mistakes are 4xx naming the field: 400 a query parameter or a body that cannot be read, or an image that is
not one or is corrupt; 413 a body or image too large; 415 a content type or image format the route does not take;
422 a JSON body the request model refuses, or an image too large in pixels, too small or a decompression bomb; 404 an
unknown SKU. The body is checked by the route's own parser, not by the shared API's JSON checks (`OWN_BODY_ROUTES`).
503 while no index version has been stored, or when the stored model is unusable.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, Field

from shelfwise.api import ApiError, error_doc
from shelfwise.domain import ApiRoute
from shelfwise.visual.domain import DOMAIN, SEARCH_PATH
from shelfwise.visual.images import decode_image, to_model_input
from shelfwise.visual.index import Filters, FloatArray, Hit, UnknownSkuError
from shelfwise.visual.index_store import IndexNotFoundError
from shelfwise.visual.query_embedder import ModelContractError
from shelfwise.visual.requests import DOMAIN_ERRORS as REQUEST_ERRORS
from shelfwise.visual.requests import SearchFilters, parse_similar, parse_visual_search
from shelfwise.visual.search_store import ModelIntegrityError
from shelfwise.visual.service import VisualService

SEARCH = SEARCH_PATH
SIMILAR = "/products/<sku>/similar"
SWAGGER = "/visual/swagger"
ROUTES: tuple[ApiRoute, ...] = DOMAIN.api.routes if DOMAIN.api is not None else ()
#: Routes whose body the route reads itself (an image is neither JSON nor within 16 KiB): `shelfwise.api.entry_point`
#: leaves their body to them.
OWN_BODY_ROUTES: tuple[ApiRoute, ...] = tuple(r for r in ROUTES if (r.method, r.path) == ("POST", SEARCH_PATH))


class ResultOut(BaseModel):
    """One product found, with what a result list displays."""

    sku: str
    score: float = Field(description="Higher is closer: 1 + cosine similarity for a non-negative cosine.")
    category: str
    department: str
    price: float
    in_stock: bool
    brand: str
    colour: str
    pattern: str
    image_key: str = Field(description="Lake key of the product's catalogue image.")


class SearchOut(BaseModel):
    results: list[ResultOut]
    model_version: str = Field(description="The lake version of the embedding model (and of the embedded index).")
    index_version: str = Field(description="The index searched: its lake version, or the live OpenSearch index.")


def result_of(hit: Hit) -> ResultOut:
    return ResultOut.model_validate({"sku": hit.sku, "score": hit.score, **hit.attributes, "image_key": hit.image_key})


def index_filters(filters: SearchFilters) -> Filters:
    return Filters(**filters.model_dump())


# ---- errors of the backend --------------------------------------------------------------------------------------


def unknown_sku(error: Exception) -> ApiError:
    sku = error.sku if isinstance(error, UnknownSkuError) else "?"
    return ApiError(HTTPStatus.NOT_FOUND, "product_not_found", f"no product with SKU {sku!r} in the index", "sku")


def index_unavailable(_: Exception) -> ApiError:
    return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "index_unavailable", "no search index has been published yet")


def model_unavailable(_: Exception) -> ApiError:
    return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "model_unavailable", "the search model cannot be loaded")


#: Errors of the visual routes and their answers (`shelfwise.api.build_resolver`).
DOMAIN_ERRORS: tuple[tuple[type[Exception], Callable[[Exception], ApiError]], ...] = (
    *REQUEST_ERRORS,
    (UnknownSkuError, unknown_sku),
    (IndexNotFoundError, index_unavailable),
    (ModelIntegrityError, model_unavailable),
    (ModelContractError, model_unavailable),
)

_ERRORS = {
    400: error_doc("A query parameter or body that cannot be read, or a file that is not a readable image"),
    413: error_doc("Body or image too large"),
    415: error_doc("A content type or image format the route does not take"),
    422: error_doc("A JSON field missing, unknown or invalid; an image with too many or too few pixels"),
    503: error_doc("No index published yet, or the model cannot be loaded"),
}


def visual_router(service: Callable[[], VisualService], metrics: Metrics, tracer: Tracer) -> Router:
    """The visual routes; `service` is called per request (it is built once per container by the caller)."""
    router = Router()  # type: ignore[no-untyped-call]

    # Traced without their results: images and vectors are not the trace's business.
    @tracer.capture_method(capture_response=False)
    def embed(image: bytes, content_type: str | None) -> FloatArray:
        model = service().model().embedder
        return model.embed(to_model_input(decode_image(image, content_type), model.image_size))

    @tracer.capture_method(capture_response=False)
    def answer(hits: list[Hit]) -> SearchOut:
        loaded = service().index()
        return SearchOut(
            results=[result_of(hit) for hit in hits], model_version=service().version(), index_version=loaded.version
        )

    @router.post(
        SEARCH,
        summary="Products that look like an image",
        description="Body: JSON {image: base64, k, filters}, or the image (image/jpeg, image/png, image/webp) with "
        "k, category, department, price_min, price_max and in_stock as query parameters.",
        responses={200: {"description": "The k closest products, closest first"}, **_ERRORS},
    )
    def search() -> SearchOut:
        event = router.current_event
        request = parse_visual_search(
            event.body, bool(event.is_base64_encoded), event.headers.get("content-type"), event.query_string_parameters
        )
        vector = embed(request.image, request.content_type)
        hits = service().index().index.search(vector, request.k, index_filters(request.filters))
        metrics.add_metric(name="VisualSearchAnswers", unit=MetricUnit.Count, value=1)
        return answer(hits)

    @router.get(
        SIMILAR,
        summary="Products that look like a product",
        description="k and the filters (category, department, price_min, price_max, in_stock) as query parameters.",
        responses={
            200: {"description": "The k products closest to the product, closest first, the product left out"},
            404: error_doc("No product with the SKU in the index"),
            **_ERRORS,
        },
    )
    def similar(sku: str) -> SearchOut:
        sku, k, filters = parse_similar(sku, router.current_event.query_string_parameters)
        try:
            hits = service().index().index.neighbours(sku, k, index_filters(filters))
        except UnknownSkuError:
            metrics.add_metric(name="UnknownSkus", unit=MetricUnit.Count, value=1)
            raise
        metrics.add_metric(name="SimilarAnswers", unit=MetricUnit.Count, value=1)
        return answer(hits)

    return router
