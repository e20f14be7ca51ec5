"""Customers: acquisition over time, heterogeneous purchase rates, channel preference, and churn.

Churn is a daily hazard: a little pure chance, more as time since the last purchase grows relative to the
customer's own rate, and more after recent bad experiences (wanting a SKU their store had run out of).
Simulated day by day, vectorised over customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelfwise.world.arrays import BoolArray, FloatArray, IntArray
from shelfwise.world.calendar import STORE
from shelfwise.world.catalog import Stores

NEVER = np.iinfo(np.int64).max
_RANDOM_HAZARD = 0.0003  # per day, whatever the customer does (moves away, ...)
_RECENCY_HAZARD = 0.012  # per day, reached when far more purchases than expected have been skipped
_RECENCY_MIDPOINT = 3.5  # expected purchases skipped at half the recency hazard
_BAD_HAZARD = 0.0006  # per day per recent stockout met
_BAD_DECAY = 0.5 ** (1 / 45)  # a stockout's memory halves in 45 days
_ONLINE_PREFERENCE = 0.3
_MAX_CUSTOMER_SHARE = 0.95  # customers' expected orders never exceed this share of a store-day's orders


@dataclass
class Customers:
    """The customer base and its mutable state."""

    signup_day: IntArray  # day index (negative = before the history)
    home_store: IntArray  # a physical store
    prefers_online: BoolArray
    online_share: FloatArray  # probability that an order is placed online
    rate: FloatArray  # expected orders a day at ordinary traffic
    last_purchase: IntArray
    churn_day: IntArray  # first day without activity; NEVER while active
    stockouts_met: IntArray
    bad: FloatArray  # decayed count of recent stockouts met

    @property
    def n(self) -> int:
        return len(self.rate)


def build_customers(
    n: int, n_days: int, stores: Stores, acquisition: FloatArray, mean_rate: float, rng: np.random.Generator
) -> Customers:
    """`acquisition` (day,) weights when new customers sign up (busy days bring more)."""
    existing = int(n * 0.35)
    signup = np.concatenate(
        [
            -rng.integers(30, 1100, size=existing),
            np.sort(rng.choice(n_days, size=n - existing, p=acquisition / acquisition.sum())),
        ]
    ).astype(np.int64)
    physical = np.flatnonzero(stores.channel == STORE)
    weights = stores.size[physical] / stores.size[physical].sum()
    home = physical[rng.choice(len(physical), size=n, p=weights)]
    # Customers cannot belong to a store that opens after they sign up: they pick among the old stores.
    old = physical[stores.open_day[physical] < 0]
    early = signup < stores.open_day[home]
    old_weights = stores.size[old] / stores.size[old].sum()
    home[early] = old[rng.choice(len(old), size=int(early.sum()), p=old_weights)]
    online = rng.random(n) < _ONLINE_PREFERENCE
    share = np.where(online, rng.beta(8, 2, size=n), rng.beta(1, 12, size=n))
    rate = np.minimum(rng.gamma(0.8, mean_rate / 0.8, size=n), 0.5)
    # Existing customers last bought a typical gap before the history starts (but not before signing up).
    gap = np.clip(np.ceil(rng.exponential(1 / np.maximum(rate, 1e-3))), 1, np.maximum(-signup, 1))
    last = np.where(signup < 0, -gap, signup).astype(np.int64)
    return Customers(
        signup_day=signup,
        home_store=home.astype(np.int64),
        prefers_online=online,
        online_share=share,
        rate=rate,
        last_purchase=last,
        churn_day=np.full(n, NEVER, dtype=np.int64),
        stockouts_met=np.zeros(n, dtype=np.int64),
        bad=np.zeros(n),
    )


@dataclass(frozen=True)
class Visits:
    customer: IntArray
    store: IntArray
    expected: FloatArray  # (store,) customers' expected orders


def active(c: Customers, day: int) -> BoolArray:
    mask: BoolArray = (c.signup_day <= day) & (c.churn_day > day)
    return mask


def draw_visits(
    c: Customers, day: int, traffic: FloatArray, orders: FloatArray, online_store: int, rng: np.random.Generator
) -> Visits:
    """Which active customers order today, and where. `traffic` and `orders` are per store for the day."""
    alive = active(c, day)
    p_store = np.where(alive, c.rate * (1 - c.online_share) * traffic[c.home_store], 0.0)
    p_online = np.where(alive, c.rate * c.online_share * traffic[online_store], 0.0)
    expected = np.bincount(c.home_store, weights=p_store, minlength=len(traffic))
    expected[online_store] = p_online.sum()
    # Thin customers where they would outnumber the store's orders (a very loyal base in a quiet store).
    cap = _MAX_CUSTOMER_SHARE * orders
    thin = np.where(expected > cap, cap / np.maximum(expected, 1e-12), 1.0)
    p_store = p_store * thin[c.home_store]
    p_online = p_online * thin[online_store]
    u = rng.random(c.n)
    at_store = u < p_store
    at_online = ~at_store & (u < p_store + p_online)
    who = np.flatnonzero(at_store | at_online)
    where = np.where(at_store[who], c.home_store[who], online_store)
    return Visits(who.astype(np.int64), where.astype(np.int64), expected * thin)


def end_day(c: Customers, day: int, bought: IntArray, met_stockout: IntArray, rng: np.random.Generator) -> None:
    """Record the day's purchases and stockouts met, then let some customers churn (from tomorrow)."""
    c.last_purchase[bought] = day
    np.add.at(c.stockouts_met, met_stockout, 1)
    c.bad *= _BAD_DECAY
    np.add.at(c.bad, met_stockout, 1.0)
    alive = active(c, day)
    skipped = (day - c.last_purchase) * c.rate
    hazard = _RANDOM_HAZARD + _RECENCY_HAZARD / (1 + np.exp(-1.6 * (skipped - _RECENCY_MIDPOINT))) + _BAD_HAZARD * c.bad
    churned = alive & (rng.random(c.n) < hazard)
    c.churn_day[churned] = day + 1
