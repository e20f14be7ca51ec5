"""What the visual search domain contributes: its pipelines, its API function, the vector index it searches and its
lake prefixes.

No Glue job: the pipelines read the raw products and images. No publisher: the scoring pipeline's last step builds
the index the API serves (`shelfwise.visual.search_store.store_search_version`), so the daily chain ends there.
"""

from __future__ import annotations

from shelfwise.domain import (
    SAGEMAKER_DIR,
    ApiFunction,
    ApiRoute,
    DemoHooks,
    Domain,
    ModelPipeline,
    Retention,
    SearchIndex,
)
from shelfwise.visual.demo import demo_report, demo_requests
from shelfwise.visual.pipeline import (
    IMAGES_PREFIX,
    PREDICTIONS_PREFIX,
    PRODUCTS_PREFIX,
    RUNS_PREFIX,
    SEARCH_BACKEND,
    SEARCH_ENDPOINT,
    scoring_pipeline_spec,
    training_pipeline_spec,
)
from shelfwise.visual.search_store import LAKE_PREFIX
from shelfwise.visual.service import INDEX_NAME

#: `k` and the filters, in the query string of both routes (of the search, with a binary image body).
QUERY_PARAMETERS = ("k", "category", "department", "price_min", "price_max", "in_stock")
SEARCH_PATH = "/search/visual"
MODELS = "models/visual/"
#: The pure library modules the pipeline steps import (staged in the steps' source tarball).
LIBRARY_MODULES = tuple(
    f"shelfwise/visual/{name}.py"
    for name in (
        "augment",
        "baselines",
        "batch_embed",
        "catalogue",
        "embedding",
        "evaluation",
        "faiss_index",
        "images",
        "index",
        "index_store",
        "opensearch_index",
        "query_embedder",
        "retrieval",
        "search_store",
        "training_data",
    )
)

DOMAIN = Domain(
    name="visual",
    description="Visual product search: products that look like an uploaded image, and a product's look-alikes",
    pipeline=ModelPipeline(
        name="visual",
        scripts=SAGEMAKER_DIR / "visual",
        library_modules=LIBRARY_MODULES,
        training=training_pipeline_spec,
        scoring=scoring_pipeline_spec,
        reads=(PRODUCTS_PREFIX, IMAGES_PREFIX, "code/visual/"),
        # The index build writes the served versions and their pointer (the API's search index prefix).
        writes=(
            MODELS,
            PREDICTIONS_PREFIX,
            f"{RUNS_PREFIX}/",
            LAKE_PREFIX,
            "quarantine/visual-prepare/",
            "quarantine/visual-embed/",
        ),
        run_partitions={},
        predictions_prefix=PREDICTIONS_PREFIX,
        requirements=SAGEMAKER_DIR / "visual" / "requirements.txt",
        search_parameters=(SEARCH_BACKEND, SEARCH_ENDPOINT),
    ),
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
    # Run scratch and embeddings expire; the index's versions stay (a few MB each: every one can be rolled back to).
    retention=(
        Retention(f"{RUNS_PREFIX}/", 30),
        Retention(PREDICTIONS_PREFIX, 30),
        Retention("quarantine/visual-", 180),
    ),
    # The demo world's 140 training SKUs make two batches an epoch: after 40 or 200 epochs the embedding finds a
    # product from its photo less often than colour histograms do (recall@1 0.18, 0.33 against 0.36) and the gate
    # rejects it; after 600 (about 110 s on 2 cores) it passes (0.51).
    demo=DemoHooks(report=demo_report, requests=demo_requests, training_params={"Epochs": "600"}),
    prefixes=(MODELS, LAKE_PREFIX, PREDICTIONS_PREFIX, f"{RUNS_PREFIX}/", "quarantine/visual-"),
)
