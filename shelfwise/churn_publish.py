"""Publish a churn batch run to the online store: the latest serving features joined with their batch scores.

Registered customers without purchase history get a cold-start item, so the API can tell them apart from unknown ids.
"""

from __future__ import annotations

from typing import Any

from shelfwise.churn_features import CUSTOMER, FEATURE_NAMES
from shelfwise.lake import Lake
from shelfwise.online_store import ChurnRecord, WriteReport, write_churn_records

SERVING_PREFIX = "features/churn/serving/"
CUSTOMERS_PREFIX = "raw/customers/"


def churn_records(
    features: list[dict[str, Any]], scores: list[dict[str, Any]], customer_ids: list[str]
) -> list[ChurnRecord]:
    """One record per served customer (features + score) and one cold-start record per other registered customer."""
    key = CUSTOMER.join_key
    by_customer = {row[key]: row for row in scores}
    records = []
    for row in features:
        score = by_customer.get(row[key])
        records.append(
            ChurnRecord(
                customer_id=row[key],
                features={name: float(row[name]) for name in FEATURE_NAMES},
                as_of=str(row["cutoff"])[:10],
                probability=None if score is None else float(score["probability"]),
                model_version=None if score is None else str(score["model_version"]),
            )
        )
    served = {row[key] for row in features}
    as_of = str(features[0]["cutoff"])[:10] if features else ""
    records.extend(
        ChurnRecord(customer_id=customer_id, features=None, as_of=as_of)
        for customer_id in customer_ids
        if customer_id not in served
    )
    return records


def publish_churn(lake: Lake, predictions_prefix: str) -> WriteReport:
    """Read the serving features, the batch scores and the customers from the lake; write them to the online store."""
    features = lake.read_table(SERVING_PREFIX).to_pylist()
    scores = lake.read_table(predictions_prefix).to_pylist()
    customer_ids = [str(c) for c in lake.read_table(CUSTOMERS_PREFIX).column(CUSTOMER.join_key).to_pylist()]
    return write_churn_records(churn_records(features, scores, customer_ids), table=lake.cfg.online_table)
