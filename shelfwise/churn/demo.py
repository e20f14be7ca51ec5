"""The churn domain's part of `shelfwise demo`: its evaluation table and picture, and the requests that show its API."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shelfwise.churn.features import FEATURE_NAMES, FEATURE_SET
from shelfwise.domain import DemoReport, DemoRequest

_MODELS = {
    "recency": "baseline: recency rule",
    "logistic_rfm": "baseline: logistic RFM",
    "bgnbd": "baseline: BG/NBD P(no purchase)",
}


def demo_report(lake: Any, world_dir: Path, evaluation: Mapping[str, Any]) -> DemoReport:
    """The candidate against the baselines on the held-out cutoff, the split, the cold-start prior, and the picture
    of the served model (calibration by decile, cumulative gains against the recency rule)."""
    from shelfwise.churn.report import held_out_scores, plot_churn_report, truth_auc
    from shelfwise.pipelines.registry import NoApprovedModelError, newest_approved, sagemaker_client

    columns = ("model", "AUC", "PR-AUC", "Brier", "top-decile lift")
    rows = [("XGBoost (candidate)", *_figures(evaluation.get("churn", {})))]
    rows += [(_MODELS.get(name, name), *_figures(values)) for name, values in evaluation.get("baselines", {}).items()]
    notes = []
    if evaluation:
        train = evaluation.get("train_cutoffs", [])
        notes.append(
            f"Held-out cutoff {evaluation['cutoff']} ({evaluation['n']:,} customers, churn rate "
            f"{evaluation['base_rate']:.3f}); trained on {len(train)} cutoffs up to {train[-1] if train else '?'}: "
            f"every label window ({FEATURE_SET.label_horizon_days} days) closes before the next split starts."
        )
        cold = evaluation.get("cold_start", {})
        if cold.get("customers"):
            notes.append(
                f"Cold-start prior {cold['prior']:.3f} against {cold['observed_rate']:.3f} observed among "
                f"{cold['customers']:,} registered customers without a purchase at the held-out cutoff."
            )
    picture = None
    try:
        package = newest_approved(lake.cfg.model_group("churn"), sagemaker_client(lake.cfg))
    except NoApprovedModelError:
        notes.append("No approved model: nothing is served yet.")
    else:
        key = package.artifact_uri.removeprefix(f"s3://{lake.bucket}/")
        held = held_out_scores(lake, key, world_dir / "truth" / "customers.parquet")
        auc = truth_auc(held)
        if auc is not None:
            notes.append(
                f"Served model's AUC against the synthetic world's true churn (not the observed label): {auc:.3f}"
            )
        picture = plot_churn_report(held, lake.cfg.work_dir / "reports" / "churn.png")
    return DemoReport(
        title="Churn model on the held-out cutoff",
        columns=columns,
        rows=tuple(rows),
        notes=tuple(notes),
        picture=picture,
    )


def demo_requests(lake: Any, predictions_prefix: str) -> list[DemoRequest]:
    """The riskiest, a middling and the safest scored customers, a cold start, an unknown id, a what-if."""
    predictions = lake.read_table(predictions_prefix).to_pylist()
    scores = sorted(predictions, key=lambda r: r["probability"])
    as_of = scores[0]["as_of"] if scores else None
    serving = lake.read_table(f"features/churn/serving/cutoff={as_of}/").to_pylist() if as_of else []
    features = {r["customer_id"]: r for r in serving}
    customers = lake.read_table("raw/customers/").column("customer_id").to_pylist()
    cold = next((c for c in customers if c not in features), None)
    requests = [
        DemoRequest("GET", f"/customers/{scores[-1]['customer_id']}/churn", note="riskiest customer"),
        DemoRequest("GET", f"/customers/{scores[len(scores) // 2]['customer_id']}/churn", note="median customer"),
        DemoRequest("GET", f"/customers/{scores[0]['customer_id']}/churn", note="safest customer"),
    ]
    if cold is not None:
        requests.append(DemoRequest("GET", f"/customers/{cold}/churn", note="registered, never bought"))
    requests.append(DemoRequest("GET", "/customers/C-does-not-exist/churn", note="unknown customer"))
    risky = features[scores[-1]["customer_id"]]
    what_if = {name: risky[name] for name in FEATURE_NAMES}
    # What if the riskiest customer had just come back twice this month?
    what_if["recency_days"] = 3
    what_if["orders_30d"] = max(int(what_if["orders_30d"]), 2)
    what_if["orders_90d"] = max(int(what_if["orders_90d"]), what_if["orders_30d"])
    what_if["frequency"] = int(what_if["frequency"]) + 2
    what_if["trend_30_90"] = min(3.0, 3 * what_if["orders_30d"] / what_if["orders_90d"])
    requests.append(DemoRequest("POST", "/churn/score", {"features": what_if}, "riskiest, back twice this month"))
    requests.append(DemoRequest("POST", "/churn/score", {"features": {"recency_days": "soon"}}, "bad request"))
    return requests


def _figures(values: Mapping[str, float]) -> tuple[str, ...]:
    return tuple(
        "-" if values.get(key) is None else f"{values[key]:.3f}"
        for key in ("auc", "pr_auc", "brier", "top_decile_lift")
    )
