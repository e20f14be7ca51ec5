"""Store inventory under an (s, S) policy with random lead times: the source of stockouts that censor sales.

The planner knows expected demand for the coming week (promotions and holidays included) but orders with a
per-cell safety factor, and suppliers are sometimes late, so some cells run dry. Vectorised over (store, SKU) cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelfwise.world.arrays import BoolArray, FloatArray, IntArray

_REVIEW_SHARE = 3.0 / 7.0  # the reorder point covers about three days of demand (lead time plus a day)
_LATE_PROBABILITY = 0.04


@dataclass
class Inventory:
    """Mutable stock state of every (store, SKU) cell, flattened as store * n_skus + sku."""

    stock: IntArray
    arriving: IntArray  # units on order
    arrival_day: IntArray  # day the order arrives; -1 = nothing on order
    safety: FloatArray  # per-cell safety factor (z) of the planner
    carried: BoolArray  # carried yesterday (a cell that starts being carried gets an opening stock)


def new_inventory(n_cells: int, rng: np.random.Generator) -> Inventory:
    return Inventory(
        stock=np.zeros(n_cells, dtype=np.int64),
        arriving=np.zeros(n_cells, dtype=np.int64),
        arrival_day=np.full(n_cells, -1, dtype=np.int64),
        safety=np.clip(rng.normal(1.0, 0.7, size=n_cells), -0.6, 2.5),
        carried=np.zeros(n_cells, dtype=bool),
    )


def _levels(inv: Inventory, week_ahead: FloatArray) -> tuple[IntArray, IntArray]:
    """Reorder point s and order-up-to level S from the expected demand of the coming week."""
    review = week_ahead * _REVIEW_SHARE
    reorder = np.ceil(review + inv.safety * np.sqrt(review)).astype(np.int64)
    reorder = np.maximum(reorder, 0)
    up_to = reorder + np.maximum(np.ceil(week_ahead).astype(np.int64), 1)
    return reorder, up_to


def open_day(inv: Inventory, day: int, carried: BoolArray, week_ahead: FloatArray) -> IntArray:
    """Receive deliveries and stock newly carried cells; returns the stock on the shelf at opening."""
    due = inv.arrival_day == day
    inv.stock[due] += inv.arriving[due]
    inv.arriving[due] = 0
    inv.arrival_day[due] = -1
    starting = carried & ~inv.carried
    _, up_to = _levels(inv, week_ahead)
    inv.stock[starting] = up_to[starting]
    inv.carried = carried
    return inv.stock.copy()


def close_day(inv: Inventory, day: int, sold: IntArray, week_ahead: FloatArray, rng: np.random.Generator) -> None:
    """Take the day's sales off the shelf and order up to S where stock fell to the reorder point."""
    inv.stock -= sold
    reorder, up_to = _levels(inv, week_ahead)
    order = inv.carried & (inv.arrival_day < 0) & (inv.stock <= reorder) & (up_to > inv.stock)
    n = int(order.sum())
    lead = 1 + rng.binomial(3, 0.3, size=n)
    late = rng.random(n) < _LATE_PROBABILITY
    lead = lead + late * rng.integers(3, 11, size=n)
    inv.arriving[order] = (up_to - inv.stock)[order]
    inv.arrival_day[order] = day + lead


def week_ahead(expected: FloatArray) -> FloatArray:
    """(day, cell) expected demand of the following seven days, from (day + 7, cell) expected demand."""
    csum = np.concatenate([np.zeros((1, expected.shape[1])), np.cumsum(expected, axis=0)])
    n = expected.shape[0] - 7
    ahead: FloatArray = csum[8 : 8 + n] - csum[1 : 1 + n]
    return ahead
