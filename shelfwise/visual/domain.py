"""What the visual search domain contributes: its API function, the vector index it searches and its lake prefix.

No Glue job, pipeline, publisher or demo hooks yet: the batch-embed step that writes the served versions
(`shelfwise.visual.search_store.store_search_version`) is not part of the scheduled chain.
"""

from __future__ import annotations

from shelfwise.domain import ApiFunction, ApiRoute, Domain, SearchIndex
from shelfwise.visual.search_store import LAKE_PREFIX
from shelfwise.visual.service import INDEX_NAME

#: `k` and the filters, in the query string of both routes (of the search, with a binary image body).
QUERY_PARAMETERS = ("k", "category", "department", "price_min", "price_max", "in_stock")
SEARCH_PATH = "/search/visual"

DOMAIN = Domain(
    name="visual",
    description="Visual product search: products that look like an uploaded image, and a product's look-alikes",
    api=ApiFunction(
        name="visual",
        description="visual product search by image and look-alikes of a product",
        routes=(
            # The body is an image or JSON holding one: the handler checks it (no API Gateway request model).
            ApiRoute("POST", SEARCH_PATH, "Products that look like an image", query_parameters=QUERY_PARAMETERS),
            ApiRoute(
                "GET", "/products/{sku}/similar", "Products that look like a product", query_parameters=QUERY_PARAMETERS
            ),
            ApiRoute("GET", "/visual/swagger", "Swagger UI of the visual routes", query_parameters=("format",)),
        ),
        # The query model lives beside the index's versions, which the search index's read grant covers; the model
        # is not taken from the registry, so no registry access either.
        reads=(),
        search_index=SearchIndex(INDEX_NAME, LAKE_PREFIX),
    ),
    prefixes=(LAKE_PREFIX,),
)
