"""The churn report's numbers: calibration by decile and cumulative gains."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shelfwise.churn.report import HeldOut, calibration_by_decile, cumulative_gains, plot_churn_report, truth_auc


def test_calibration_by_decile_matches_a_calibrated_model() -> None:
    rng = np.random.default_rng(0)
    probability = rng.uniform(0, 1, 20_000)
    outcome = rng.uniform(0, 1, 20_000) < probability
    predicted, observed = calibration_by_decile(probability, outcome)
    assert len(predicted) == 10
    assert np.all(np.diff(predicted) > 0)
    assert np.abs(predicted - observed).max() < 0.03


def test_cumulative_gains_of_a_perfect_and_a_random_score() -> None:
    outcome = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    contacted, reached = cumulative_gains(outcome.astype(float), outcome)
    assert reached[3] == 1.0  # the three churners come first
    assert contacted[0] == reached[0] == 0.0
    assert contacted[-1] == reached[-1] == 1.0


def test_truth_auc_needs_both_classes_and_the_report_is_a_png(tmp_path: Path) -> None:
    held = HeldOut(
        cutoff="2024-09-14",
        probability=np.array([0.9, 0.8, 0.2, 0.1]),
        churned=np.array([True, True, False, False]),
        recency_days=np.array([80.0, 60.0, 5.0, 10.0]),
        truly_churned=np.array([True, False, False, False]),
    )
    assert truth_auc(held) == 1.0
    assert truth_auc(HeldOut(**{**held.__dict__, "truly_churned": np.zeros(4, dtype=bool)})) is None
    path = plot_churn_report(held, tmp_path / "report" / "churn.png")
    assert path.read_bytes().startswith(b"\x89PNG")
