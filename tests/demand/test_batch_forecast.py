"""The batch forecast's sums: bottom-up from the store x SKU paths, so every level adds up, with intervals of their
own paths (the Schaake shuffle keeps the dependence between series, so the sums are not too narrow)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shelfwise.demand.batch_forecast import LEVEL_COLUMNS, aggregate_records, series_records

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
