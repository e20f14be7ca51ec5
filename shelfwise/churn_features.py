"""The churn feature set: its entity, its features and its label, defined once.

The Glue job computes these columns, training reads them, the online store holds them and the API validates what-if
payloads against their ranges. Pure Python: no Spark, no pandas, so the Lambda can import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Entity:
    name: str
    join_key: str
    description: str


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: Literal["int", "float"]
    description: str
    minimum: float
    maximum: float


CUSTOMER = Entity("customer", "customer_id", "A registered customer; walk-in orders have no customer.")

#: Days after the cutoff in which a customer without a purchase counts as churned.
LABEL_HORIZON_DAYS = 90
LABEL = "churned"
CUTOFF = "cutoff"

_YEARS = 36500.0
_MONEY = 1e8

FEATURES: tuple[Feature, ...] = (
    Feature("recency_days", "int", "Days from the last purchase to the cutoff.", 0, _YEARS),
    Feature("tenure_days", "int", "Days from signup (or first purchase) to the cutoff.", 0, _YEARS),
    Feature("frequency", "int", "Distinct orders with a purchase before the cutoff.", 0, 1e6),
    Feature("monetary", "float", "Net spend before the cutoff (returns subtracted).", -_MONEY, _MONEY),
    Feature("avg_order_value", "float", "Mean gross spend per order.", 0, _MONEY),
    Feature("orders_30d", "int", "Orders in the 30 days before the cutoff.", 0, 1e5),
    Feature("orders_90d", "int", "Orders in the 90 days before the cutoff.", 0, 1e5),
    Feature("spend_30d", "float", "Gross spend in the 30 days before the cutoff.", 0, _MONEY),
    Feature("spend_90d", "float", "Gross spend in the 90 days before the cutoff.", 0, _MONEY),
    Feature(
        "trend_30_90",
        "float",
        "Orders in the last 30 days over a third of the last 90 days' orders (1 = steady).",
        0,
        3,
    ),
    Feature("ipt_mean_days", "float", "Mean days between consecutive orders (-1 with fewer than two).", -1, _YEARS),
    Feature(
        "ipt_std_days", "float", "Standard deviation of days between orders (-1 with fewer than three).", -1, _YEARS
    ),
    Feature("ipt_max_days", "float", "Longest gap between consecutive orders (-1 with fewer than two).", -1, _YEARS),
    Feature("basket_size", "float", "Mean units per order.", 0, 1e6),
    Feature("category_diversity", "int", "Distinct categories bought.", 0, 1e4),
    Feature("discount_share", "float", "Share of gross spend bought on promotion.", 0, 1),
    Feature("returns_rate", "float", "Returned units over purchased units.", 0, 1e3),
    Feature(
        "stockouts_met_90d", "int", "Visits in the last 90 days to a store with a favourite SKU out of stock.", 0, 1e5
    ),
    Feature("online_share", "float", "Share of orders placed online.", 0, 1),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
