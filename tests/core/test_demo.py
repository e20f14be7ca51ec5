"""The local end-to-end run on the small world: every stage runs and the API answers as the contract says."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise.config import settings
from shelfwise.demo import STAGES, DemoOptions, run_demo


@pytest.mark.slow
def test_demo_runs_every_stage_and_answers_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFWISE_WORK_DIR", str(tmp_path))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    settings.cache_clear()
    served: list[str] = []

    result = run_demo(DemoOptions(scale="small", seed=11), serve=served.append)

    assert [stage.name for stage in result.stages] == list(STAGES)
    assert result.pipeline_status == "Succeeded", result.failure_reason
    assert result.metrics["churn"]["auc"] > result.metrics["best_baseline_auc"]
    assert result.truth_auc is not None
    assert result.truth_auc > 0.7
    assert served == [result.api_url]
    assert result.report_path is not None
    assert result.report_path.read_bytes().startswith(b"\x89PNG")
    statuses = [exchange.status for exchange in result.exchanges]
    assert statuses.count(200) >= 4
    assert 404 in statuses
    assert 422 in statuses
    answers = [e.body for e in result.exchanges if e.status == 200 and "cold_start" in e.body]
    assert any(a["cold_start"] for a in answers)
    assert any(a["reasons"] for a in answers if not a["cold_start"])
    for zone in ("raw", "curated", "features", "models", "predictions"):
        assert result.zones[zone][0] > 0, zone
        assert result.zone_rows[zone] > 0, zone
