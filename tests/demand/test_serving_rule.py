"""Which of DeepAR's two ways to sums is served: sharpness subject to calibration."""

from __future__ import annotations

import datetime as dt

from shelfwise.demand.backtest import LEVELS, RECONCILED, BacktestResult, WindowScores
from shelfwise.demand.metrics import Scores


def _result(wql: dict[str, float], coverage: dict[str, float]) -> BacktestResult:
    scores = {
        level: {v: Scores(1, 0.0, 0.0, wql[v], coverage[v], 0.0) for v in ("deepar", RECONCILED)} for level in LEVELS
    }
    return BacktestResult([WindowScores(dt.date(2024, 11, 6), {"sales": scores}, {})], {}, 1, [], {})


def test_the_sharper_variant_is_served_when_both_are_calibrated() -> None:
    assert _result({"deepar": 0.30, RECONCILED: 0.29}, {"deepar": 0.80, RECONCILED: 0.77}).reconcile()
    assert not _result({"deepar": 0.29, RECONCILED: 0.30}, {"deepar": 0.80, RECONCILED: 0.77}).reconcile()


def test_a_lower_wql_from_intervals_too_narrow_does_not_win_over_calibrated_sums() -> None:
    # What the default world's peaks showed: reconciled sums a little sharper, but covering 57% at the total.
    assert not _result({"deepar": 0.2967, RECONCILED: 0.2947}, {"deepar": 0.80, RECONCILED: 0.57}).reconcile()


def test_when_neither_is_calibrated_the_better_calibrated_is_served() -> None:
    assert _result({"deepar": 0.29, RECONCILED: 0.30}, {"deepar": 0.50, RECONCILED: 0.70}).reconcile()
