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
        "api",
    )


@pytest.mark.slow
def test_demo_runs_every_stage_and_answers_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFWISE_WORK_DIR", str(tmp_path))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    settings.cache_clear()
    served: list[str] = []

    # The small world's test cutoff is too small for the gate's interval to clear zero; the gate has its own tests.
    options = DemoOptions(scale="small", seed=11, training_params={"churn": {"MinMarginOverBaseline": -1.0}})
    result = run_demo(options, serve=served.append)

    assert [stage.name for stage in result.stages] == list(stages())
    assert result.failures == []
    (report,) = result.reports
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
    answers = [e.body for e in result.exchanges if e.status == 200 and "cold_start" in e.body]
    assert any(a["cold_start"] for a in answers)
    assert any(a["reasons"] for a in answers if not a["cold_start"])
    for zone in ("raw", "curated", "features", "models", "predictions"):
        assert result.zones[zone][0] > 0, zone
        assert result.zone_rows.get(zone, 0) > 0 or zone == "predictions", zone
