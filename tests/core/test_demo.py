"""The local end-to-end run on the small world: every stage runs and the API answers as the contract says."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise.config import settings
from shelfwise.demo import DemoOptions, run_demo, stages


def test_stages_come_from_the_domains_in_run_order() -> None:
    assert stages() == (
        "world",
        "ingest",
        "curate_orders",
        "customer_features",
        "demand_features",
        "churn_training",
        "churn_scoring",
        "churn_publish",
        "demand_training",
        "demand_scoring",
        "demand_publish",
        "visual_training",
        "visual_scoring",
        "api",
    )


@pytest.mark.slow
def test_demo_runs_every_stage_and_answers_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFWISE_WORK_DIR", str(tmp_path))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    settings.cache_clear()
    served: list[str] = []

    # The small world's test cutoff is too small for the gate's interval to clear zero, and a DeepAR of one epoch
    # need not beat seasonal naive; the gates have their own tests.
    quick_demand = {"Epochs": "1", "Networks": "1", "BacktestSeries": "20", "MinImprovementOverSeasonalNaive": -1.0}
    # The visual model of one epoch need not beat the baselines either; its pipeline still builds the served index.
    quick_visual = {"Epochs": "1", "MinMarginOverBaselines": -1.0}
    options = DemoOptions(
        scale="small",
        seed=11,
        training_params={"churn": {"MinMarginOverBaseline": -1.0}, "demand": quick_demand, "visual": quick_visual},
    )
    result = run_demo(options, serve=served.append)

    assert [stage.name for stage in result.stages] == list(stages())
    assert result.failures == []
    report, demand, visual = result.reports
    figures = {row[0]: row for row in report.rows}
    candidate = float(figures["XGBoost (candidate)"][1])
    assert all(candidate > float(row[1]) for name, row in figures.items() if name.startswith("baseline"))
    assert any("true churn" in note for note in report.notes)
    assert report.picture is not None
    assert report.picture.read_bytes().startswith(b"\x89PNG")
    assert served == [result.api_url]
    statuses = [exchange.status for exchange in result.exchanges]
    assert statuses.count(200) >= 4
    assert 404 in statuses
    assert 422 in statuses
    # demand: every candidate's wQL at every level, the selected one marked, fan charts drawn
    assert [row[0].removesuffix(" (selected)") for row in demand.rows] == [
        "DeepAR",
        "AutoETS",
        "seasonal naive (weekly)",
        "NPTS",
        "mean of DeepAR and AutoETS quantiles",
        "  DeepAR, plain sums",
        "  DeepAR, reconciled to comparable days",
        "  DeepAR 80% coverage, before -> after its spread factor",
    ]
    assert sum(row[0].endswith("(selected)") for row in demand.rows) == 1
    assert demand.picture is not None
    assert demand.picture.read_bytes().startswith(b"\x89PNG")
    forecasts = [e for e in result.exchanges if e.path.startswith("/forecast/") and e.status == 200]
    assert {len(e.body["days"]) for e in forecasts} == {28}
    decisions = {e.note: e for e in result.exchanges if e.path == "/inventory/decision"}
    assert [e.status for e in decisions.values()] == [200, 200, 400]
    assert any(e.status == 404 and "NO-SUCH-SKU" in e.path for e in result.exchanges)
    answers = [e.body for e in result.exchanges if e.status == 200 and "cold_start" in e.body]
    assert any(a["cold_start"] for a in answers)
    assert any(a["reasons"] for a in answers if not a["cold_start"])
    # visual: three searches with five answers each, drawn on the contact sheet; its routes answered
    assert len(visual.rows) == 3
    assert visual.picture is not None
    assert visual.picture.read_bytes().startswith(b"\x89PNG")
    similar = [e for e in result.exchanges if e.path.startswith("/products/") and e.status == 200]
    assert similar
    assert all(len(e.body["results"]) > 0 for e in similar)
    searches = [e for e in result.exchanges if e.path.startswith("/search/visual") and e.status == 200]
    assert searches
    assert all(e.body["results"] for e in searches)
    for zone in ("raw", "curated", "features", "models", "predictions"):
        assert result.zones[zone][0] > 0, zone
        assert result.zone_rows.get(zone, 0) > 0 or zone == "predictions", zone
