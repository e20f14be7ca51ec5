"""What the churn domain contributes: its Glue job, its pipelines, its API routes, its publisher and lake prefixes."""

from __future__ import annotations

from typing import Any

from shelfwise.churn.demo import demo_report, demo_requests
from shelfwise.churn.features import FEATURES
from shelfwise.churn.pipeline import (
    PREDICTIONS_PREFIX,
    SERVING_FEATURES,
    scoring_pipeline_spec,
    training_pipeline_spec,
)
from shelfwise.domain import (
    SAGEMAKER_DIR,
    ApiFunction,
    ApiRoute,
    DemoHooks,
    Domain,
    GlueJob,
    ModelPipeline,
    Publisher,
    Retention,
)

TRAINING_FEATURES = "features/churn/training/"
COLD_START_FEATURES = "features/churn/cold_start/"
SERVING_FEATURES_PREFIX = "features/churn/serving/"
MODELS = "models/churn/"

CUSTOMER_FEATURES = GlueJob(
    name="customer_features",
    description="curated orders + products, customers, stockouts -> churn training set, cold starts, serving features",
    inputs={
        "orders_path": "curated/order_lines/",
        "products_path": "raw/products/",
        "customers_path": "raw/customers/",
        "stockouts_path": "raw/stockouts/",
    },
    outputs={
        "training_path": TRAINING_FEATURES,
        "cold_start_path": COLD_START_FEATURES,
        "serving_path": SERVING_FEATURES_PREFIX,
    },
    options=("cutoffs", "first_cutoff", "last_cutoff", "step_days", "serving_cutoff"),
    run_date_option="serving_cutoff",
)


def score_request_schema() -> dict[str, Any]:
    """The what-if body's shape (JSON schema draft 4), as the handler's `WhatIfRequest`.

    API Gateway rejects wrong shapes and types before the function runs; missing features and out-of-range values
    are left to the function, which names the offending field in its answer.
    """
    kinds = {"int": "integer", "float": "number"}
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "ScoreRequest",
        "type": "object",
        "required": ["features"],
        "additionalProperties": False,
        "properties": {
            "features": {
                "type": "object",
                "properties": {f.name: {"type": kinds[f.dtype]} for f in FEATURES},
                "additionalProperties": False,
            }
        },
    }


DOMAIN = Domain(
    name="churn",
    description="Churn risk per customer: XGBoost against recency, logistic RFM and BG/NBD, served by key lookup",
    glue_jobs=(CUSTOMER_FEATURES,),
    pipeline=ModelPipeline(
        name="churn",
        scripts=SAGEMAKER_DIR / "churn",
        library_modules=("shelfwise/churn/features.py", "shelfwise/churn/bgnbd.py", "shelfwise/churn/scoring.py"),
        training=training_pipeline_spec,
        scoring=scoring_pipeline_spec,
        reads=("features/churn/", "raw/customers/"),
        writes=(
            MODELS,
            PREDICTIONS_PREFIX,
            "pipelines/churn/",
            "quarantine/churn-prepare/",
            "quarantine/churn-batch-score/",
        ),
        run_partitions={SERVING_FEATURES: SERVING_FEATURES_PREFIX},
        predictions_prefix=PREDICTIONS_PREFIX,
    ),
    api=ApiFunction(
        name="churn",
        description="churn scores by customer and what-if scoring",
        routes=(
            ApiRoute("GET", "/customers/{customer_id}/churn", "Churn risk of a customer"),
            ApiRoute("POST", "/churn/score", "What-if churn score", request_schema=score_request_schema()),
            ApiRoute("GET", "/churn/swagger", "Swagger UI of the churn routes", query_parameters=("format",)),
        ),
        reads=(MODELS,),
    ),
    publisher=Publisher(
        name="churn_publish",
        description="writes a churn scoring run's online records to the online store",
        reads=(PREDICTIONS_PREFIX,),
        writes=("quarantine/churn-publish/",),
    ),
    retention=(
        Retention(SERVING_FEATURES_PREFIX, 30),
        Retention("pipelines/churn/", 30),
        Retention(PREDICTIONS_PREFIX, 90),
        Retention("quarantine/churn-", 180),
    ),
    demo=DemoHooks(report=demo_report, requests=demo_requests),
    prefixes=("features/churn/", MODELS, PREDICTIONS_PREFIX, "pipelines/churn/", "quarantine/churn-"),
)
