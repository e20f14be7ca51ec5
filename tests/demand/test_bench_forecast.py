"""`shelfwise bench forecast`'s peak weeks: scored on the days of the week only, for every candidate."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from shelfwise.bench.forecast import event_weeks
from shelfwise.demand.backtest import CANDIDATES, BacktestResult, SampledWindow


def test_peak_weeks_are_scored_on_their_own_days() -> None:
    rng = np.random.default_rng(0)
    cutoff = dt.date(2024, 11, 6)  # Thanksgiving week (Nov 25 .. Dec 2) inside; Christmas week is not
    sales = rng.poisson(5, size=(4, 28)).astype(float)
    paths = {model: rng.poisson(5, size=(4, 50, 28)).astype(float) for model in CANDIDATES if "+" not in model}
    # DeepAR knew the future exactly in the peak week only.
    peak = slice((dt.date(2024, 11, 25) - cutoff).days, (dt.date(2024, 12, 2) - cutoff).days + 1)
    paths["deepar"][:, :, peak] = sales[:, None, peak]
    window = SampledWindow(cutoff, pd.DataFrame({"store_id": ["S"] * 4, "sku": list("abcd")}), paths, sales, None, [])
    weeks = event_weeks(BacktestResult([], {}, 4, [window], {}))
    assert list(weeks) == ["Black Friday week"]
    assert weeks["Black Friday week"]["deepar"] == pytest.approx(0.0)
    assert weeks["Black Friday week"]["seasonal_naive"] > 0.1
    assert set(weeks["Black Friday week"]) == set(CANDIDATES)
