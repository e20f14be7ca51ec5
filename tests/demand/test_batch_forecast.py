"""The batch forecast's sums: bottom-up from the store x SKU paths, so every level adds up, with intervals of their
own paths (the Schaake shuffle keeps the dependence between series, so the sums are not too narrow)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shelfwise.demand.batch_forecast import (
    LEVEL_COLUMNS,
    BatchForecast,
    aggregate_records,
    series_records,
    served_paths,
)
from shelfwise.demand.series import DemandPanel

AS_OF = dt.date(2025, 1, 1)


def keys() -> pd.DataFrame:
    rows = [
        {"store_id": store, "sku": sku, "region": region, "category": f"c{k % 2}", "department": "d"}
        for store, region in (("S1", "north"), ("S2", "north"), ("S3", "south"))
        for k, sku in enumerate(("A", "B", "C"))
    ]
    return pd.DataFrame(rows)


def test_reconciled_means_add_up_at_every_level() -> None:
    rng = np.random.default_rng(0)
    frame = keys()
    paths = rng.poisson(rng.uniform(1, 9, size=(len(frame), 1, 1)), size=(len(frame), 200, 28)).astype(float)
    history = rng.poisson(4, size=(len(frame), 120)).astype(float)
    cold = np.zeros(len(frame), dtype=bool)
    cold[4] = True
    series = {(r.store_id, r.sku): np.array(r.mean) for r in series_records(frame, paths, AS_OF, "v1", cold)}
    sums = list(aggregate_records(frame, paths, history, AS_OF, "v1", cold))
    assert {r.level for r in sums} == set(LEVEL_COLUMNS)
    for record in sums:
        column = LEVEL_COLUMNS[record.level]
        members = frame if column is None else frame[frame[column] == record.key]
        expected = np.sum([series[(s, k)] for s, k in zip(members["store_id"], members["sku"], strict=True)], axis=0)
        # each mean is rounded to 0.01, so a sum of n of them may differ by n * 0.005
        assert np.allclose(record.mean, expected, atol=0.005 * (len(members) + 1)), record.level
        assert record.cold_start == bool(cold[members.index].any())
    (total,) = [r for r in sums if r.level == "total"]
    assert total.key is None
    # the quantiles of the sum are the sum's own: its median is not the sum of the members' medians in general
    p50 = np.array(total.quantiles["p50"])
    assert (np.array(total.quantiles["p05"]) <= p50).all()
    assert (p50 <= np.array(total.quantiles["p95"])).all()


def test_served_paths_reconciled_and_widened_stay_coherent_and_leave_cold_starts_as_drawn() -> None:
    rng = np.random.default_rng(3)
    frame = keys()
    history = rng.poisson(5, size=(len(frame), 120)).astype(np.float32)
    n = len(frame)
    panel = DemandPanel(
        frame, AS_OF, history, np.zeros(history.shape, bool), np.zeros(n, np.int64), np.zeros(n, np.int64)
    )
    paths = rng.poisson(4, size=(n, 200, 28)).astype(np.float32)  # short of the history's 5 a day everywhere
    cold = np.zeros(n, dtype=bool)
    cold[2] = True
    spread = {"store x sku": 0.5, "region": 2.0, "total": 1.5}
    served = served_paths(BatchForecast(panel, paths, cold), spread, reconcile=True)
    # Reconciled to a total that knows the level (5 a day), every series is lifted, and the sum with it.
    assert served.sum(axis=0).mean() > 1.1 * paths.sum(axis=0).mean()
    assert served[~cold].std(axis=1).mean() < 0.7 * paths[~cold].std(axis=1).mean()  # narrowed by the 0.5
    series = {(r.store_id, r.sku): np.array(r.mean) for r in series_records(frame, served, AS_OF, "v1", cold)}
    sums = {(r.level, r.key): r for r in aggregate_records(frame, served, history, AS_OF, "v1", cold, spread=spread)}
    total = np.sum(list(series.values()), axis=0)
    assert np.allclose(sums["total", None].mean, total, atol=0.005 * (n + 1))
    north = frame[frame["region"] == "north"]
    expected = np.sum([series[(s, k)] for s, k in zip(north["store_id"], north["sku"], strict=True)], axis=0)
    assert np.allclose(sums["region", "north"].mean, expected, atol=0.005 * (len(north) + 1))
    # The region's interval is widened by its factor 2 about the same mean.
    plain = {(r.level, r.key): r for r in aggregate_records(frame, served, history, AS_OF, "v1", cold)}
    width = lambda r: np.array(r.quantiles["p95"]) - np.array(r.quantiles["p05"])  # noqa: E731
    assert width(sums["region", "north"]).mean() == pytest.approx(2 * width(plain["region", "north"]).mean(), rel=0.1)
    # A cold start's paths are its own (reconciled, never widened).
    unwidened = served_paths(BatchForecast(panel, paths, cold), {}, reconcile=True)
    assert np.array_equal(served[cold], unwidened[cold])


@pytest.mark.slow
def test_forecast_out_writes_the_next_28_days_of_every_series_on_sale(tmp_path: Path) -> None:
    """`shelfwise bench forecast --forecast-out`: what a user forecasts their real future with."""
    from shelfwise.bench.forecast import write_forecasts
    from shelfwise.demand.models import DeepARSettings
    from shelfwise.demand.series import DemandPanel

    rng = np.random.default_rng(1)
    frame = keys()
    units = rng.poisson(3, size=(len(frame), 120)).astype(np.float32)
    units[0, -1] = np.nan  # off sale on the last day: not forecast
    units[1, :100] = np.nan  # launched 20 days ago: a cold start
    start = np.array([0, 100, *[0] * (len(frame) - 2)])
    panel = DemandPanel(
        frame.assign(format="f", price_tier="mid"),
        dt.date(2024, 9, 1),
        units,
        np.zeros(units.shape, bool),
        start,
        start,
    )
    out = tmp_path / "next.csv"
    rows = write_forecasts(panel, "seasonal_naive", DeepARSettings(epochs=1, num_batches_per_epoch=5), tmp_path, out, 0)
    written = pd.read_csv(out)
    assert rows == len(written) == (len(frame) - 1) * 28
    assert list(written.columns) == ["store_id", "sku", "date", "mean", "p05", "p10", "p25", "p50", "p75", "p90", "p95"]
    assert written["date"].min() == "2024-12-30"  # the day after the last day of history
    assert ("S1", "A") not in set(zip(written["store_id"], written["sku"], strict=True))
    assert (written[["p05", "p10", "p25", "p50", "p75", "p90", "p95"]].diff(axis=1).iloc[:, 1:] >= 0).all().all()
