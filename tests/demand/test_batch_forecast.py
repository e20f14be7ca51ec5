"""The batch forecast's sums: bottom-up from the store x SKU paths, so every level adds up, with intervals of their
own paths (the Schaake shuffle keeps the dependence between series, so the sums are not too narrow)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

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
