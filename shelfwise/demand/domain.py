"""What the demand domain contributes: its Glue job, its pipelines, its API routes, its publisher and lake prefixes."""

from __future__ import annotations

from typing import Any

from shelfwise.curation.domain import CURATED_ORDERS
from shelfwise.demand.demo import demo_report, demo_requests
from shelfwise.demand.pipeline import (
    DAILY_FEATURES as DAILY_PARAMETER,
)
from shelfwise.demand.pipeline import (
    HOLIDAYS_PREFIX,
    PREDICTIONS_PREFIX,
    scoring_pipeline_spec,
    training_pipeline_spec,
)
from shelfwise.demand.pipeline import (
    STATIC_FEATURES as STATIC_PARAMETER,
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

FEATURES = "features/demand/"
DAILY_FEATURES = f"{FEATURES}daily/"
STATIC_FEATURES = f"{FEATURES}static/"
MODELS = "models/demand/"
#: The pure library modules the pipeline steps import (staged in the steps' source tarball).
LIBRARY_MODULES = (
    "shelfwise/config.py",
    "shelfwise/online_store.py",
    "shelfwise/pipelines/spec.py",
    "shelfwise/publishing.py",
    "shelfwise/retail_calendar.py",
    *(
        f"shelfwise/demand/{name}.py"
        for name in (
            "aggregation",
            "backtest",
            "batch_forecast",
            "calendar",
            "cold_start",
            "comparable_days",
            "forecast_records",
            "inventory",
            "keys",
            "metrics",
            "model_store",
            "models",
            "pipeline",
            "publish",
            "report",
            "series",
        )
    ),
)

DEMAND_FEATURES = GlueJob(
    name="demand_features",
    description="curated orders + products, stores, stockouts, listings -> daily demand per location x SKU and "
    "the static attributes of each",
    inputs={
        "orders_path": CURATED_ORDERS,
        "products_path": "raw/products/",
        "stores_path": "raw/stores/",
        "stockouts_path": "raw/stockouts/",
        "listings_path": "raw/listings/",
    },
    outputs={"daily_path": DAILY_FEATURES, "static_path": STATIC_FEATURES},
    options=("as_of",),
    run_date_option="as_of",
)

#: The decision body's fields and their JSON types, as the handler's `DecisionRequest` (a test holds them equal).
DECISION_FIELDS: dict[str, str] = {
    "store_id": "string",
    "sku": "string",
    "on_hand": "number",
    "on_order": "number",
    "lead_time_days": "integer",
    "review_period_days": "integer",
    "policy": "string",
    "service_level": "number",
    "unit_cost": "number",
    "price": "number",
    "salvage_value": "number",
    "holding_cost": "number",
}
#: Fields every decision needs; the rest are the chosen policy's, which the function checks and names.
DECISION_REQUIRED = ("store_id", "sku", "on_hand", "lead_time_days", "review_period_days", "policy")


def decision_request_schema() -> dict[str, Any]:
    """The inventory decision body's shape (JSON schema draft 4), as the handler's `DecisionRequest`.

    API Gateway rejects unknown fields and wrong types before the function runs; which fields the chosen policy
    needs, and every range, are left to the function, which names the offending field in its answer.
    """
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "DecisionRequest",
        "type": "object",
        "required": list(DECISION_REQUIRED),
        "additionalProperties": False,
        "properties": {name: {"type": kind} for name, kind in DECISION_FIELDS.items()},
    }


DOMAIN = Domain(
    name="demand",
    description="Daily demand per location x SKU: probabilistic forecasts and the inventory decisions they inform",
    glue_jobs=(DEMAND_FEATURES,),
    pipeline=ModelPipeline(
        name="demand",
        scripts=SAGEMAKER_DIR / "demand",
        library_modules=LIBRARY_MODULES,
        training=training_pipeline_spec,
        scoring=scoring_pipeline_spec,
        reads=(FEATURES, HOLIDAYS_PREFIX, "code/demand/"),
        writes=(
            MODELS,
            PREDICTIONS_PREFIX,
            "pipelines/demand/",
            "quarantine/demand-prepare/",
            "quarantine/demand-forecast/",
        ),
        run_partitions={DAILY_PARAMETER: DAILY_FEATURES, STATIC_PARAMETER: STATIC_FEATURES},
        predictions_prefix=PREDICTIONS_PREFIX,
        partition_name="as_of",
        training_takes_run_partitions=True,
        requirements=SAGEMAKER_DIR / "demand" / "requirements.txt",
    ),
    api=ApiFunction(
        name="demand",
        description="demand forecasts by store x SKU and aggregate, and inventory decisions from them",
        routes=(
            ApiRoute("GET", "/forecast/stores/{store_id}/skus/{sku}", "Daily demand forecast of a store x SKU"),
            ApiRoute(
                "GET", "/forecast/aggregates", "Daily demand forecast of a sum", query_parameters=("level", "key")
            ),
            ApiRoute(
                "POST",
                "/inventory/decision",
                "Inventory decision from a forecast",
                request_schema=decision_request_schema(),
            ),
            ApiRoute("GET", "/demand/swagger", "Swagger UI of the demand routes", query_parameters=("format",)),
        ),
        # The forecasts are precomputed in the online store: no model artifact to read.
        reads=(),
    ),
    publisher=Publisher(
        name="demand_publish",
        description="writes a batch forecast's records (store x SKU and sums) to the online store",
        reads=(PREDICTIONS_PREFIX,),
        writes=("quarantine/demand-publish/",),
    ),
    # Every run writes the whole history as of its date: older runs are only kept to redo or compare them.
    retention=(
        Retention(DAILY_FEATURES, 30),
        Retention(STATIC_FEATURES, 30),
        Retention("pipelines/demand/", 30),
        Retention(PREDICTIONS_PREFIX, 90),
        Retention("quarantine/demand-", 180),
    ),
    # On 2 cores the local run trains one DeepAR network for 4 epochs (three of 10 in AWS) and scores the slow
    # baselines on 100 series.
    demo=DemoHooks(
        report=demo_report,
        requests=demo_requests,
        training_params={"Epochs": "4", "Networks": "1", "BacktestSeries": "100"},
    ),
    prefixes=(FEATURES, MODELS, PREDICTIONS_PREFIX, "pipelines/demand/", "quarantine/demand-"),
)
