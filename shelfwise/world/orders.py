"""A day's orders: baskets of order lines drawn from the day's demand, then filled from the shelf.

Each order line picks a SKU with probability proportional to its expected line rate at the store that day, so
expected demand per (store, SKU) equals the demand model's intensity whoever places the orders. Lines are filled
in time order; once a cell's shelf is empty the rest of its demand is censored (lost sales).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelfwise.world.arrays import FloatArray, IntArray
from shelfwise.world.demand import EXTRA_LINES


@dataclass(frozen=True)
class Lines:
    """Order lines of one day (before filling), ordered by order then line number."""

    order: IntArray  # day-local order index
    line_no: IntArray
    store: IntArray
    customer: IntArray  # -1 = walk-in / guest
    sku: IntArray
    quantity: IntArray
    channel: IntArray

    @property
    def n(self) -> int:
        return len(self.order)


@dataclass(frozen=True)
class Filled:
    quantity: IntArray  # per line: units actually sold (0 = lost to a stockout)
    demand: IntArray  # per cell
    sales: IntArray  # per cell


def draw_lines(
    order_store: IntArray,
    order_customer: IntArray,
    line_rate: FloatArray,
    extra_units: FloatArray,
    store_channel: IntArray,
    rng: np.random.Generator,
) -> Lines:
    """Basket sizes, SKUs and quantities for the day's orders; `line_rate` is (store, sku) for the day."""
    n_stores, n_skus = line_rate.shape
    channel = store_channel[order_store]
    n_lines = 1 + rng.poisson(np.take(EXTRA_LINES, channel))
    order = np.repeat(np.arange(len(order_store), dtype=np.int64), n_lines)
    starts = np.cumsum(n_lines) - n_lines
    line_no = np.arange(len(order), dtype=np.int64) - np.repeat(starts, n_lines) + 1
    store = order_store[order]
    # Inverse-CDF draw of a SKU per line within its store's row of the day's mix.
    cum = np.cumsum(line_rate, axis=1)
    total = cum[:, -1:]
    offsets = np.arange(n_stores, dtype=np.float64)[:, None]
    flat = (cum / np.where(total > 0, total, 1.0) + offsets).ravel()
    cell = np.searchsorted(flat, store + rng.random(len(order)), side="right")
    sku = np.minimum(cell - store * n_skus, n_skus - 1)
    quantity = 1 + rng.poisson(extra_units[sku])
    return Lines(order, line_no, store, order_customer[order], sku.astype(np.int64), quantity, channel[order])


def fill(lines: Lines, time: IntArray, on_shelf: IntArray, n_skus: int) -> Filled:
    """Fill lines in `time` order from the shelf stock of their (store, SKU) cell."""
    cell = lines.store * n_skus + lines.sku
    order = np.lexsort((lines.line_no, lines.order, time, cell))
    qty_sorted = lines.quantity[order]
    cum = np.cumsum(qty_sorted)
    cell_sorted = cell[order]
    group_start = np.r_[True, cell_sorted[1:] != cell_sorted[:-1]]
    before = cum - qty_sorted
    before -= np.maximum.accumulate(np.where(group_start, before, 0))
    filled_sorted = np.clip(on_shelf[cell_sorted] - before, 0, qty_sorted)
    filled = np.empty_like(filled_sorted)
    filled[order] = filled_sorted
    n_cells = len(on_shelf)
    demand = np.bincount(cell, weights=lines.quantity, minlength=n_cells).astype(np.int64)
    sales = np.bincount(cell, weights=filled, minlength=n_cells).astype(np.int64)
    return Filled(filled, demand, sales)
