"""Publishing a batch run: served customers carry features and scores, other registered customers are cold starts."""

from __future__ import annotations

import datetime as dt

from shelfwise.churn_features import FEATURE_NAMES
from shelfwise.churn_publish import churn_records


def _features(customer_id: str) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(FEATURE_NAMES, 1.0)
    row.update(customer_id=customer_id, cutoff=dt.date(2024, 12, 31))
    return row


def test_served_customers_get_scores_and_the_rest_are_cold_starts() -> None:
    records = churn_records(
        features=[_features("C1"), _features("C2")],
        scores=[{"customer_id": "C1", "probability": 0.8, "model_version": "v1"}],
        customer_ids=["C1", "C2", "C3"],
    )
    by_id = {r.customer_id: r for r in records}
    assert set(by_id) == {"C1", "C2", "C3"}
    assert by_id["C1"].probability == 0.8
    assert by_id["C1"].model_version == "v1"
    assert by_id["C1"].features is not None
    assert set(by_id["C1"].features) == set(FEATURE_NAMES)
    assert by_id["C2"].probability is None  # features but no score: still served, scored online
    assert by_id["C3"].features is None  # registered, never bought
    assert by_id["C3"].as_of == "2024-12-31"
