"""The demand domain's part of `shelfwise demo`: the evaluation table per level, fan charts, and the requests that
show its API (forecasts of a series, a cold start and sums, inventory decisions, bad requests)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shelfwise.demand.pipeline import CANDIDATE_NAMES
from shelfwise.domain import DemoReport, DemoRequest

_LEVELS = ("store x sku", "store", "region", "category", "department", "total")
PREDICTIONS_PREFIX = "predictions/demand/"
DAILY_FEATURES_PREFIX = "features/demand/daily/"


def demo_report(lake: Any, world_dir: Path, evaluation: Mapping[str, Any]) -> DemoReport:
    """wQL of every candidate at every level (the selected one marked), the gate's numbers, and the fan charts."""
    levels = evaluation.get("levels", {})
    selected = str(evaluation.get("selected", ""))
    rows = []
    for model, name in CANDIDATE_NAMES.items():
        cells = [f"{levels[level][model]['wql']:.3f}" if model in levels.get(level, {}) else "-" for level in _LEVELS]
        rows.append((f"{name}{' (selected)' if model == selected else ''}", *cells))
    calibration = evaluation.get("calibration", {})
    if calibration:
        variants = (("wql_summed", "DeepAR, plain sums"), ("wql_reconciled", "DeepAR, reconciled to comparable days"))
        for key, name in variants:
            rows.append((f"  {name}", *(f"{calibration[level][key]:.3f}" for level in _LEVELS)))
        rows.append(
            (
                "  DeepAR 80% coverage, before -> after its spread factor",
                *(
                    f"{calibration[level]['coverage_80_before']:.0%} -> {calibration[level]['coverage_80']:.0%}"
                    for level in _LEVELS
                ),
            )
        )
    notes = []
    if evaluation:
        bottom = levels["store x sku"][selected]
        total = levels["total"][selected]
        notes += [
            f"wQL against sales (stocked-out days left out), mean of the windows starting "
            f"{', '.join(evaluation['windows'])}; {evaluation['sampled_series']:,} of {evaluation['series']:,} "
            "store x SKU series scored by every model, sums over every series.",
            f"Selected {CANDIDATE_NAMES[selected]}: {evaluation['improvement_over_seasonal_naive']:+.1%} wQL against "
            f"seasonal naive over the windows, {evaluation['improvement_worst_window']:+.1%} in the worst (the gate's "
            "figure).",
            f"80% intervals of the selected model cover {bottom['coverage_80']:.0%} of store x SKU days and "
            f"{total['coverage_80']:.0%} of the total's (target 80%). Sums are sums of the series' paths after the "
            "Schaake shuffle, so every level adds up; DeepAR's series are "
            + ("reconciled to a forecast of the total first" if evaluation.get("reconciled_to_total") else "summed")
            + " (calibrated first, then the lower wQL over the levels), and each level's paths are widened by a "
            "factor fitted on the windows before.",
        ]
    picture = _fan_charts(lake, world_dir, evaluation)
    if picture is not None:
        notes.append(f"Fan charts: {picture}")
    return DemoReport(
        title="Demand forecasts on the backtest windows (wQL, lower is better)",
        columns=("model", *_LEVELS),
        rows=tuple(rows),
        notes=tuple(notes),
        picture=picture,
    )


def demo_requests(lake: Any, predictions_prefix: str) -> list[DemoRequest]:
    """The busiest series' forecast and an inventory decision from it, a cold start, sums, and bad requests."""
    forecasts = lake.read_table(predictions_prefix).to_pandas()
    first = forecasts[forecasts["date"] == forecasts["date"].min()]
    busiest = first.sort_values("mean", ascending=False).iloc[0]
    store, sku = str(busiest["store_id"]), str(busiest["sku"])
    path = f"/forecast/stores/{quote(store, safe='')}/skus/{quote(sku, safe='')}"
    requests = [DemoRequest("GET", path, note="busiest store x SKU")]
    cold = first[first["cold_start"]]
    if len(cold):
        row = cold.iloc[0]
        requests.append(
            DemoRequest(
                "GET",
                f"/forecast/stores/{quote(str(row['store_id']), safe='')}/skus/{quote(str(row['sku']), safe='')}",
                note="new launch (cold start)",
            )
        )
    requests += [
        DemoRequest("GET", "/forecast/aggregates?level=total", note="the whole business"),
        DemoRequest("GET", f"/forecast/aggregates?level=store&key={quote(store, safe='')}", note="its store"),
    ]
    decision = {"store_id": store, "sku": sku, "on_hand": 10, "on_order": 0, "lead_time_days": 2}
    requests += [
        DemoRequest(
            "POST",
            "/inventory/decision",
            {**decision, "review_period_days": 7, "policy": "order_up_to", "service_level": 0.95},
            "order-up-to, 95% cycle service, review weekly, lead time 2 days",
        ),
        DemoRequest(
            "POST",
            "/inventory/decision",
            {
                **decision,
                "review_period_days": 7,
                "policy": "newsvendor",
                "unit_cost": 4.0,
                "price": 10.0,
                "salvage_value": 1.0,
                "holding_cost": 0.5,
            },
            "newsvendor from costs",
        ),
        DemoRequest(
            "POST",
            "/inventory/decision",
            {**decision, "review_period_days": 30, "policy": "order_up_to", "service_level": 0.95},
            "bad request: L + R beyond the 28-day horizon",
        ),
        DemoRequest("GET", f"/forecast/stores/{quote(store, safe='')}/skus/NO-SUCH-SKU", note="unknown SKU"),
    ]
    return requests


def _fan_charts(lake: Any, world_dir: Path, evaluation: Mapping[str, Any]) -> Path | None:
    """The evaluation's examples with the world's true demand, and the newest batch forecast's first cold start."""
    import pandas as pd

    from shelfwise.demand.report import HISTORY_DAYS, plot_fan_charts

    examples = list(evaluation.get("examples", []))
    if not examples:
        return None
    cold = _cold_start_example(lake, HISTORY_DAYS)
    if cold is None:  # nothing launched lately: show how the latest launch was forecast a week after it
        launch = _launch_example(lake)
        examples += [launch] if launch is not None else []
    truth_file = world_dir / "truth" / "demand.parquet"
    truth = pd.read_parquet(truth_file, columns=["store_id", "sku", "date", "demand"]) if truth_file.is_file() else None
    truths: list[list[float | None] | None] = []
    for example in examples:
        if truth is None:
            truths.append(None)
            continue
        cutoff = pd.Timestamp(example["cutoff"])
        days = pd.date_range(cutoff, periods=len(example["sales"]), freq="D")
        mine = truth[(truth["store_id"] == example["store_id"]) & (truth["sku"] == example["sku"])]
        by_day = mine.assign(date=pd.to_datetime(mine["date"])).set_index("date")["demand"]
        truths.append([None if pd.isna(v) else float(v) for v in by_day.reindex(days)])
    return plot_fan_charts(examples, truths, cold, lake.cfg.work_dir / "reports" / "demand.png")


def _launch_example(lake: Any) -> dict[str, Any] | None:
    """The latest launch in the newest demand features, forecast as it was a week after it went on sale."""
    from shelfwise.demand.report import launch_example
    from shelfwise.demand.series import build_panel

    written = [o.key for o in lake.list(DAILY_FEATURES_PREFIX) if "/as_of=" in o.key]
    if not written:
        return None
    as_of = max(key.split("/as_of=", 1)[1].split("/", 1)[0] for key in written)
    daily = lake.read_table(f"{DAILY_FEATURES_PREFIX}as_of={as_of}/").to_pandas()
    static = lake.read_table(f"features/demand/static/as_of={as_of}/").to_pandas()
    daily[["store_id", "sku"]] = daily[["store_id", "sku"]].astype(str)
    static[["store_id", "sku"]] = static[["store_id", "sku"]].astype(str)
    static = static.drop(columns=["as_of", "feature_set_version"], errors="ignore").drop_duplicates(["store_id", "sku"])
    return launch_example(build_panel(daily, static))


def _cold_start_example(lake: Any, history_days: int) -> dict[str, Any] | None:
    """A cold start of the newest batch forecast, with its short history."""
    written = [o for o in lake.list(PREDICTIONS_PREFIX) if o.key.endswith("forecasts.parquet")]
    if not written:
        return None
    newest = max(written, key=lambda o: o.last_modified).key
    forecasts = lake.read_table(newest.rsplit("/", 1)[0] + "/").to_pandas()
    cold = forecasts[forecasts["cold_start"]]
    if cold.empty:
        return None
    store, sku = cold["store_id"].iloc[0], cold["sku"].iloc[0]
    series = cold[(cold["store_id"] == store) & (cold["sku"] == sku)].sort_values("date")
    first = dt.date.fromisoformat(str(series["date"].iloc[0])[:10])
    as_of = str(series["as_of"].iloc[0])
    daily = lake.read_table(f"features/demand/daily/as_of={as_of}/").to_pandas()
    mine = daily[(daily["store_id"] == store) & (daily["sku"] == sku)].sort_values("date")
    return {
        "title": "new launch",
        "store_id": store,
        "sku": sku,
        "cutoff": first.isoformat(),
        "history": [float(v) for v in mine["units"].tail(history_days)],
        "quantiles": {f"{q:.2f}": series[f"p{round(q * 100):02d}"].tolist() for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
    }
