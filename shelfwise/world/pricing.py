"""Shelf prices that change over time, and promotions (a discount, a display uplift, then a post-promotion dip)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelfwise.world.arrays import FloatArray, IntArray
from shelfwise.world.catalog import CATEGORIES, Products

DIP_DAYS = 14
_DIP_DECAY_DAYS = 5.0


@dataclass(frozen=True)
class Promotions:
    """One row per promotion; a SKU never has two at once (anywhere)."""

    sku: IntArray
    store: IntArray  # -1 = every store
    start: IntArray  # first day index
    end: IntArray  # last day index (inclusive)
    discount: FloatArray
    display: FloatArray  # demand multiplier from display and advertising (on top of the price effect)
    dip: FloatArray  # depth of the post-promotion dip on its first day

    @property
    def n(self) -> int:
        return len(self.sku)


@dataclass(frozen=True)
class PricePlan:
    shelf: FloatArray  # (day, sku) regular shelf price, the same in every store
    promotions: Promotions


def _round_price(price: FloatArray) -> FloatArray:
    rounded: FloatArray = np.where(price >= 5, np.round(price) - 0.01, np.round(price * 20) / 20)
    return np.maximum(rounded, 0.05)


def shelf_prices(products: Products, n_days: int, rng: np.random.Generator) -> FloatArray:
    """(day, sku) shelf price: a piecewise-constant walk in log price, changing every couple of months."""
    n = products.n
    max_changes = n_days // 20 + 2
    gaps = rng.exponential(50.0, size=(n, max_changes)) + 14
    change_day = np.cumsum(gaps, axis=1).astype(np.int64) - rng.integers(0, 60, size=(n, 1))
    steps = rng.normal(0.0, 0.24, size=(n, max_changes))
    log_level = np.clip(np.cumsum(steps, axis=1), -0.55, 0.45)
    days = np.arange(n_days)
    # For each SKU and day, how many price changes have happened so far (0 = the base price).
    changes = np.stack([np.searchsorted(change_day[k], days, side="right") for k in range(n)], axis=1)
    levels = np.concatenate([np.zeros((n, 1)), log_level], axis=1)
    log_shift = np.take_along_axis(levels.T, changes, axis=0)
    return _round_price(products.base_price[None, :] * np.exp(log_shift))


def plan_promotions(products: Products, n_stores_physical: int, n_days: int, rng: np.random.Generator) -> Promotions:
    """About three promotions a year per SKU, 7 or 14 days, nationwide or in one store, spaced well apart."""
    rows: list[tuple[int, int, int, int, float, float, float]] = []
    for k in range(products.n):
        spec = CATEGORIES[products.category[k]]
        first_day = max(0, int(products.launch_day[k]) + 30)
        last_day = min(n_days - 1, int(products.end_day[k]))
        day = first_day + int(rng.integers(0, 90))
        while True:
            length = int(rng.choice((7, 14)))
            if day + length - 1 > last_day:
                break
            store = int(rng.integers(0, n_stores_physical)) if rng.random() < 0.3 else -1
            discount = float(np.round(rng.uniform(0.1, 0.4), 2))
            display = float(spec.promo_display * np.exp(rng.normal(0, 0.05)))
            rows.append((k, store, day, day + length - 1, discount, display, spec.post_promo_dip))
            day += length + DIP_DAYS + int(rng.exponential(100.0))
    cols = list(zip(*rows, strict=True)) if rows else [()] * 7
    return Promotions(
        sku=np.array(cols[0], dtype=np.int64),
        store=np.array(cols[1], dtype=np.int64),
        start=np.array(cols[2], dtype=np.int64),
        end=np.array(cols[3], dtype=np.int64),
        discount=np.array(cols[4], dtype=np.float64),
        display=np.array(cols[5], dtype=np.float64),
        dip=np.array(cols[6], dtype=np.float64),
    )


@dataclass(frozen=True)
class PromoChunk:
    """Promotion state over a range of days, per (day, store, sku)."""

    discount: FloatArray
    display: FloatArray
    dip: FloatArray  # multiplier <= 1 in the days after a promotion


def promo_chunk(promos: Promotions, start: int, stop: int, n_stores: int, n_skus: int) -> PromoChunk:
    """The promotion arrays for days [start, stop); a nationwide promotion covers every store, online too."""
    shape = (stop - start, n_stores, n_skus)
    discount, display, dip = np.zeros(shape), np.ones(shape), np.ones(shape)
    relevant = np.flatnonzero((promos.start < stop) & (promos.end + DIP_DAYS >= start))
    all_stores = np.arange(n_stores)
    for p in relevant:
        stores = all_stores if promos.store[p] < 0 else np.array([promos.store[p]])
        k = promos.sku[p]
        a, b = max(promos.start[p], start), min(promos.end[p], stop - 1)
        if a <= b:
            discount[a - start : b - start + 1, stores, k] = promos.discount[p]
            display[a - start : b - start + 1, stores, k] = promos.display[p]
        after = np.arange(promos.end[p] + 1, promos.end[p] + 1 + DIP_DAYS)
        after = after[(after >= start) & (after < stop)]
        if len(after):
            depth = 1 - promos.dip[p] * np.exp(-(after - promos.end[p] - 1) / _DIP_DECAY_DAYS)
            dip[(after - start)[:, None], stores[None, :], k] = depth[:, None]
    return PromoChunk(discount, display, dip)
